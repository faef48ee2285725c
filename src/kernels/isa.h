/* isa.h — the dispatch table: one per target CPU, each holding that
 * target's build of every fast kernel (src/kernels/targets/, compiled once
 * per target) and the blocking that suits its registers. The drivers
 * beside this file (GEMM blocking and threads, the convolution and pooling
 * entry points) call through the table of the active target, chosen on
 * first use: the best the CPU has, or the one NABLA_ISA or nb_isa_set
 * names. Internal to the library; nabla.h exposes the names only. */
#ifndef NB_ISA_H
#define NB_ISA_H

#include "kernels/kernels.h"

/* Limits the GEMM driver and every target's kernels share: the largest
 * micro-kernel tile (the driver's edge-tile buffer), and the row and inner
 * sizes of the few-rows and short-K paths. */
#define NB_GEMM_MR_MAX 8
#define NB_GEMM_NR_MAX 32
#define NB_GEMM_SMALL_M 8
#define NB_GEMM_SMALL_K 16

/* One product for the GEMM kernels that read A and B where they lie. */
typedef struct nb_gemm_args {
    int trans_a, trans_b, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
} nb_gemm_args;

typedef struct nb_isa {
    const char *name; /* "avx512", "avx2", "neon", "generic" */
    int lanes, vregs;

    /* GEMM (see gemm.c): the MR x NR micro-kernel and its cache blocking,
     * (KC: gemm_kc_large_l2 where a core has 1 MiB of L2 or more), the
     * packer of panels whose k is contiguous (a transposed B, a plain A),
     * the few-rows kernels and the short-K rows. */
    int gemm_mr, gemm_nr, gemm_kc, gemm_kc_large_l2, gemm_mc, gemm_nc;
    void (*gemm_tile)(int kc, const float *a, const float *b, float *c, int ldc, float alpha, float beta);
    void (*gemm_pack_k_contiguous)(const float *B, int ldb, int p0, int kc, int j0, int cols, int nr, float *dst);
    /* C rows 0..M-1 (M <= 8), columns n0..n1-1: B stored N x K with A packed
     * [K / lanes][M][lanes] in ap (dot), or B stored K x N, sums kept in acc
     * [M][n1 - n0] (axpy). */
    void (*gemm_few_rows_dot)(const nb_gemm_args *g, const float *ap, int M, int n0, int n1);
    void (*gemm_few_rows_axpy)(const nb_gemm_args *g, int M, int n0, int n1, float *acc);
    void (*gemm_short_k_rows)(const nb_gemm_args *g, int N, int m0, int m1);

    /* Floats of packed weights the channel-vectorised convolution takes
     * (conv_cv.c's rule). */
    size_t conv_cv_max_weights;

    /* Convolutions and pooling: the contracts of kernels.h's nb_ entry points. */
    void (*conv_direct_forward)(const nb_conv_geom *g, int out_ch, const float *x, const float *w,
                                const float *b, float *y, int relu);
    void (*conv_direct_backward)(const nb_conv_geom *g, int out_ch, const float *x, const float *dy,
                                 float *dw, float *db);
    void (*conv_cv_forward)(const nb_conv_geom *g, int out_ch, int count, const float *x, const float *wt,
                            const float *b, float *y, float *scratch, int store);
    void (*conv_cv_weight_grad)(const nb_conv_geom *g, int out_ch, int count, const float *x, const float *dy,
                                float *dwt, int first, float *scratch);
    void (*conv_cv_weight_grad_block)(const nb_conv_geom *g, int out_ch, int count, const float *xp,
                                      const int *off, const float *dyt, int blk, float *dw, int first);
    void (*conv_cv_input_grad)(const nb_conv_geom *g, int out_ch, const float *w, const float *dy,
                               float *dx, float *scratch);
    void (*maxpool2x2_forward)(const float *x, int h, int w, float *y, int32_t *arg);
    void (*maxpool2x2_backward)(const float *dy, const int32_t *arg, int h, int w, float *dx);
    void (*maxpool_forward)(const float *x, int h, int w, int kh, int kw, int sh, int sw, float *y,
                            int32_t *arg);
    void (*maxpool_forward_padded)(const nb_conv_geom *g, const float *x, float *y, int32_t *arg);
    void (*winograd_weights)(int kernel, int out_ch, int channels, const float *w, float *u, int adjoint);
    void (*winograd_input)(const nb_conv_geom *g, const float *x, int count, float *v);
    void (*winograd_output)(const nb_conv_geom *g, int out_ch, const float *m, int count, const float *b,
                            float *y, int relu, int accumulate);
    void (*winograd_grad_output)(const nb_conv_geom *g, int out_ch, const float *dy, int count, float *e);
    void (*winograd_weight_grad)(int kernel, int out_ch, int channels, const float *mw, float *dw,
                                 int accumulate);

    /* Elementwise loops. */
    void (*relu_inplace)(float *x, size_t n);
    /* Stride-2 rows of im2col and col2im (kernels.h's nb_copy_stride2, nb_add_stride2). */
    void (*copy_stride2)(float *dst, const float *src, int n);
    void (*add_stride2)(float *dst, const float *src, int n);
    /* Batch normalisation, one channel at a time (kernels.h's nb_bn_*). */
    void (*bn_stats)(const float *x, size_t batch, size_t stride, size_t inner, double *mean, double *sqdev);
    void (*bn_apply)(const float *x, float *y, size_t batch, size_t stride, size_t inner, float scale,
                     float shift, int relu);
    void (*bn_grad_sums)(const float *x, const float *dy, size_t batch, size_t stride, size_t inner, float mean,
                         double *sum_dy, double *sum_dy_dev);
    void (*bn_grad_input)(const float *x, const float *dy, float *dx, size_t batch, size_t stride, size_t inner,
                          float mean, float k, float c0, float c1, int accumulate);

    /* The FMA-peak probe: `iters` rounds of fma_peak_chains independent
     * vector FMAs, as many as the register file holds beside the two
     * constants, so no chain spills; returns the seconds taken. */
    int fma_peak_chains;
    double (*fma_peak)(long iters, volatile float *sink);
} nb_isa;

/* The table of the target in use (chosen on first call). */
const nb_isa *nb_isa_active(void);

/* ---- geometry the drivers and the per-target kernels share ---------------- */

#include <math.h>
#include <string.h>

/* Padded max pooling: output (oy, ox) from its window clipped to the image,
 * taps in row-major order, a strict > (the first of equal maxima wins) and
 * a NaN winning over a number; the reference loop, and the kernels' edges. */
static inline void nb_maxpool_window(const nb_conv_geom *g, const float *x, int oy, int ox, float *y,
                                     int32_t *arg) {
    const int top = oy * g->stride_h - g->pad_h, left = ox * g->stride_w - g->pad_w;
    const int y0 = top < 0 ? 0 : top, y1 = top + g->kernel_h < g->height ? top + g->kernel_h : g->height;
    const int x0 = left < 0 ? 0 : left, x1 = left + g->kernel_w < g->width ? left + g->kernel_w : g->width;
    int best = y0 * g->width + x0;
    float m = x[best];
    for (int iy = y0; iy < y1; iy++)
        for (int ix = x0; ix < x1; ix++) {
            const float v = x[iy * g->width + ix];
            if (v > m || (isnan(v) && !isnan(m))) m = v, best = iy * g->width + ix;
        }
    y[oy * g->out_w + ox] = m;
    arg[oy * g->out_w + ox] = best;
}

/* Direct convolution (conv_direct.c): the zero-padded image of one sample
 * is every input row plus the padding, and wide enough for whole 32-column
 * blocks of the output plus the kernel's reach, so every target's vector
 * loads (32 columns or fewer a pass) stay inside it. */
static inline int nb_conv_direct_padded_h(const nb_conv_geom *g) { return g->height + 2 * g->pad_h; }
static inline int nb_conv_direct_padded_w(const nb_conv_geom *g) {
    int blocks = (g->out_w + 31) / 32;
    return (blocks * 32 + g->kernel_w - 1 + 15) / 16 * 16;
}

/* Channel-vectorised convolution (conv_cv.c): output channels in blocks of
 * 16, whatever the target's vector width (a block is one to four vectors). */
#define NB_CV_BLOCK 16
static inline int nb_conv_cv_padded_h(const nb_conv_geom *g) { return g->height + 2 * g->pad_h; }
static inline int nb_conv_cv_padded_w(const nb_conv_geom *g) { return g->width + 2 * g->pad_w; }
static inline int nb_conv_cv_taps(const nb_conv_geom *g) { return g->channels * g->kernel_h * g->kernel_w; }
/* Floats of one sample's zero-padded image. */
static inline size_t nb_conv_cv_image_floats(const nb_conv_geom *g) {
    return (size_t)g->channels * nb_conv_cv_padded_h(g) * nb_conv_cv_padded_w(g);
}
/* Position pos's offset into the padded images of a call: positions run
 * sample after sample, each sample's OH*OW in row-major order. */
static inline size_t nb_conv_cv_base(const nb_conv_geom *g, int pos, int wp) {
    const int ohw = g->out_h * g->out_w, s = pos / ohw, r = pos % ohw;
    const int oh = r / g->out_w, ow = r % g->out_w;
    return (size_t)s * nb_conv_cv_image_floats(g) + (size_t)oh * g->stride_h * wp + (size_t)ow * g->stride_w;
}
/* One sample's zero-padded image xp (C, HP, WP) from x (C, H, W). */
static inline void nb_conv_cv_pad(const nb_conv_geom *g, const float *x, float *xp) {
    const int hp = nb_conv_cv_padded_h(g), wp = nb_conv_cv_padded_w(g);
    memset(xp, 0, nb_conv_cv_image_floats(g) * sizeof(float));
    for (int c = 0; c < g->channels; c++)
        for (int ih = 0; ih < g->height; ih++)
            memcpy(xp + ((size_t)c * hp + ih + g->pad_h) * wp + g->pad_w, x + ((size_t)c * g->height + ih) * g->width,
                   (size_t)g->width * sizeof(float));
}
/* Tap t = (c, kh, kw)'s offset from a position's base, for every tap. */
static inline void nb_conv_cv_offsets(const nb_conv_geom *g, int *off) {
    const int hp = nb_conv_cv_padded_h(g), wp = nb_conv_cv_padded_w(g);
    int t = 0;
    for (int c = 0; c < g->channels; c++)
        for (int kh = 0; kh < g->kernel_h; kh++)
            for (int kw = 0; kw < g->kernel_w; kw++) off[t++] = (c * hp + kh) * wp + kw;
}
/* The `count` samples' zero-padded images, one after another, and the tap
 * offsets after them, at the front of scratch. */
static inline float *nb_conv_cv_prepare(const nb_conv_geom *g, int count, const float *x, float *scratch,
                                        int **off) {
    const size_t image = nb_conv_cv_image_floats(g), x_sample = (size_t)g->channels * g->height * g->width;
    for (int s = 0; s < count; s++) nb_conv_cv_pad(g, x + s * x_sample, scratch + s * image);
    *off = (int *)(scratch + (size_t)count * image);
    nb_conv_cv_offsets(g, *off);
    return scratch;
}
/* dy of output channels blk*16 .. blk*16+15 of `count` samples (O, OH, OW
 * each) as dyt [sample][position][16], zero past the last channel. */
static inline void nb_conv_cv_gather_dy(const nb_conv_geom *g, int out_ch, int count, const float *dy, int blk,
                                        float *dyt) {
    const int ohw = g->out_h * g->out_w;
    const int valid = out_ch - blk * NB_CV_BLOCK < NB_CV_BLOCK ? out_ch - blk * NB_CV_BLOCK : NB_CV_BLOCK;
    for (int s = 0; s < count; s++) {
        const float *dys = dy + ((size_t)s * out_ch + blk * NB_CV_BLOCK) * ohw;
        float *dst = dyt + (size_t)s * ohw * NB_CV_BLOCK;
        for (int pos = 0; pos < ohw; pos++)
            for (int j = 0; j < NB_CV_BLOCK; j++)
                dst[(size_t)pos * NB_CV_BLOCK + j] = j < valid ? dys[(size_t)j * ohw + pos] : 0.0f;
    }
}
/* Where the block buffer starts: after the images and offsets, 64-byte aligned. */
static inline float *nb_conv_cv_block_of(const nb_conv_geom *g, int count, float *scratch) {
    size_t used = (size_t)count * nb_conv_cv_image_floats(g) + (size_t)nb_conv_cv_taps(g);
    uintptr_t p = (uintptr_t)(scratch + used);
    return (float *)((p + 63) & ~(uintptr_t)63);
}

#endif
