/* kernels.h — the hot numerical kernels, as plain functions over float
 * pointers with their shapes as integer arguments. The graph and the
 * operators call these; nothing here knows about nodes. */
#ifndef NB_KERNELS_H
#define NB_KERNELS_H

#include <stddef.h>

/* ---- matrix multiply ------------------------------------------------------ */

/* C = alpha * op(A) op(B) + beta * C, row-major. op(A) is M x K, op(B) is
 * K x N, C is M x N; lda/ldb/ldc are row strides of A, B, C as stored.
 * trans_a: A is stored K x M. trans_b: B is stored N x K. beta == 0 means C
 * is not read (it may hold garbage). Parallel over tiles of C with OpenMP;
 * each element of C is summed in the same order whatever the thread count. */
void nb_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* The simple triple loop nb_sgemm is tested against. */
void nb_sgemm_reference(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                        int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* The micro-kernels nb_sgemm can run. AUTO picks the best the CPU has. */
typedef enum nb_gemm_path {
    NB_GEMM_AUTO = 0,
    NB_GEMM_GENERIC, /* portable C */
    NB_GEMM_AVX2,    /* AVX2 + FMA, 6 x 16 tiles */
    NB_GEMM_AVX512   /* AVX-512F, 6 x 32 tiles */
} nb_gemm_path;

/* Force a micro-kernel (tests and benchmarks hold the SIMD paths against the
 * portable one). Returns 0, changing nothing, when this CPU or this build
 * lacks it. Not thread-safe: call it while no nb_sgemm is running. */
int nb_gemm_use(nb_gemm_path path);
/* The name of the micro-kernel nb_sgemm runs now: "avx512", "avx2", "generic". */
const char *nb_gemm_kernel_name(void);

/* ---- CPU features (cpu.c) -------------------------------------------------- */

/* Whether the CPU and the OS support the instruction set, and the compiler
 * could build code for it. */
int nb_cpu_has_avx2_fma(void);
int nb_cpu_has_avx512f(void);

/* ---- convolution lowering (im2col.c) --------------------------------------- */

/* The geometry of one 2-D convolution or pooling window sweep. */
typedef struct nb_conv_geom {
    int channels, height, width;     /* one input sample is C x H x W */
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_h, pad_w;                /* zero padding on each side */
    int out_h, out_w;
} nb_conv_geom;

/* x is (count, C, H, W); cols is (C*KH*KW, count*OH*OW): row (c, kh, kw),
 * column (sample, oh, ow) holds the input pixel that kernel tap meets, or 0
 * in the padding. */
void nb_im2col(const nb_conv_geom *g, const float *x, int count, float *cols);

/* The adjoint of nb_im2col: x (count, C, H, W) += every column entry added
 * back onto the pixel it was copied from. Each pixel's sum runs in a fixed
 * order, so the result does not depend on the thread count. */
void nb_col2im_add(const nb_conv_geom *g, const float *cols, int count, float *x);

#endif
