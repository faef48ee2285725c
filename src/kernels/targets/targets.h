/* targets.h — what every per-target build of src/kernels/targets/ defines,
 * under its suffixed names (NB_K: gemm_tile_avx2, ...). Each file here is
 * compiled once per target; table.c gathers one build into its nb_isa. */
#ifndef NB_TARGETS_H
#define NB_TARGETS_H

#include "kernels/isa.h"
#include "kernels/simd/simd.h"

void NB_K(gemm_tile)(int kc, const float *a, const float *b, float *c, int ldc, float alpha, float beta);
void NB_K(gemm_pack_k_contiguous)(const float *B, int ldb, int p0, int kc, int j0, int cols, int nr, float *dst);
void NB_K(gemm_few_rows_dot)(const nb_gemm_args *g, const float *ap, int M, int n0, int n1);
void NB_K(gemm_few_rows_axpy)(const nb_gemm_args *g, int M, int n0, int n1, float *acc);
void NB_K(gemm_short_k_rows)(const nb_gemm_args *g, int N, int m0, int m1);
void NB_K(conv_direct_forward)(const nb_conv_geom *g, int out_ch, const float *x, const float *w, const float *b,
                               float *y, int relu);
void NB_K(conv_direct_backward)(const nb_conv_geom *g, int out_ch, const float *x, const float *dy, float *dw,
                                float *db);
void NB_K(conv_cv_forward)(const nb_conv_geom *g, int out_ch, int count, const float *x, const float *wt,
                           const float *b, float *y, float *scratch, int store);
void NB_K(conv_cv_weight_grad)(const nb_conv_geom *g, int out_ch, int count, const float *x, const float *dy,
                               float *dwt, int first, float *scratch);
void NB_K(conv_cv_weight_grad_block)(const nb_conv_geom *g, int out_ch, int count, const float *xp, const int *off,
                                     const float *dyt, int blk, float *dw, int first);
void NB_K(conv_cv_input_grad)(const nb_conv_geom *g, int out_ch, const float *w, const float *dy, float *dx,
                              float *scratch);
void NB_K(maxpool2x2_forward)(const float *x, int h, int w, float *y, int32_t *arg);
void NB_K(maxpool2x2_backward)(const float *dy, const int32_t *arg, int h, int w, float *dx);
void NB_K(maxpool_forward)(const float *x, int h, int w, int kh, int kw, int sh, int sw, float *y, int32_t *arg);
void NB_K(maxpool_forward_padded)(const nb_conv_geom *g, const float *x, float *y, int32_t *arg);
void NB_K(winograd_weights)(int kernel, int out_ch, int channels, const float *w, float *u, int adjoint);
void NB_K(winograd_input)(const nb_conv_geom *g, const float *x, int count, float *v);
void NB_K(winograd_output)(const nb_conv_geom *g, int out_ch, const float *m, int count, const float *b, float *y,
                           int relu, int accumulate);
void NB_K(winograd_grad_output)(const nb_conv_geom *g, int out_ch, const float *dy, int count, float *e);
void NB_K(winograd_weight_grad)(int kernel, int out_ch, int channels, const float *mw, float *dw, int accumulate);
void NB_K(relu_inplace)(float *x, size_t n);
void NB_K(copy_stride2)(float *dst, const float *src, int n);
void NB_K(add_stride2)(float *dst, const float *src, int n);
void NB_K(bn_stats)(const float *x, size_t batch, size_t stride, size_t inner, double *mean, double *sqdev);
void NB_K(bn_apply)(const float *x, float *y, size_t batch, size_t stride, size_t inner, float scale, float shift,
                    int relu);
void NB_K(bn_grad_sums)(const float *x, const float *dy, size_t batch, size_t stride, size_t inner, float mean,
                        double *sum_dy, double *sum_dy_dev);
void NB_K(bn_grad_input)(const float *x, const float *dy, float *dx, size_t batch, size_t stride, size_t inner,
                         float mean, float k, float c0, float c1, int accumulate);
double NB_K(fma_peak)(long iters, volatile float *sink);

/* Register blocking, from the lane count and the register file:
 *                   GEMM tile        few-rows dot     few-rows axpy    FMA peak
 *   16 lanes, 32    6 x 2 vectors    3 rows x 8       8 x 2 vectors    24 chains
 *    4 lanes, 32    8 x 3 vectors    3 rows x 8       8 x 3 vectors    24 chains
 *    8 lanes, 16    6 x 2 vectors    1 row x 8        8 x 1 vector     12 chains
 *    4 lanes, 16    4 x 4 vectors    1 row x 8        8 x 2 vectors    12 chains
 * (accumulators + the B vectors + one broadcast of A stay within the
 * registers; 16 lanes keeps the 6 x 32 tile measured at 90% of peak on
 * Zen 4, where 4 lanes needs more rows to cover the FMA latency). */
#if NB_VREGS >= 32 && NB_LANES >= 16
#define GEMM_MR 6
#define GEMM_NV 2
#define AXPY_NV 2
#elif NB_VREGS >= 32
#define GEMM_MR 8
#define GEMM_NV 3
#define AXPY_NV 3
#elif NB_LANES >= 8
#define GEMM_MR 6
#define GEMM_NV 2
#define AXPY_NV 1
#else
#define GEMM_MR 4
#define GEMM_NV 4
#define AXPY_NV 2
#endif
#if NB_VREGS >= 32
#define DOT_ROWS 3
#define FMA_PEAK_CHAINS 24
#else
#define DOT_ROWS 1
#define FMA_PEAK_CHAINS 12
#endif
#define GEMM_NR (GEMM_NV * NB_LANES)
_Static_assert(GEMM_MR <= NB_GEMM_MR_MAX && GEMM_NR <= NB_GEMM_NR_MAX, "the driver's edge tile holds every tile");

#endif
