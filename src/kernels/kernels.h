/* kernels.h — the hot numerical kernels, as plain functions over float
 * pointers with their shapes as integer arguments. The graph and the
 * operators call these; nothing here knows about nodes. */
#ifndef NB_KERNELS_H
#define NB_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* `omp simd` for a plain loop GCC's -O2 would not vectorise (it will not add
 * a runtime alias check unasked). clang vectorises such loops by itself and
 * turns a simd request it cannot meet (at -O1 under the sanitizers) into a
 * warning, fatal with -Werror, so clang is not asked. NB_SIMD_CLAUSE is the
 * same as a clause of a combined `omp parallel for` pragma. */
#if defined(_OPENMP) && defined(__GNUC__) && !defined(__clang__)
#define NB_SIMD _Pragma("omp simd")
#define NB_SIMD_CLAUSE simd
#else
#define NB_SIMD
#define NB_SIMD_CLAUSE
#endif

/* x = x > 0 ? x : 0 over n floats (a NaN becomes 0, as the relu op's). */
void nb_relu_inplace(float *x, size_t n);
/* dst[i] = src[2 i], and dst[2 i] += src[i], for i < n: im2col's and
 * col2im's stride-2 rows. Neither touches src or dst past element 2 n - 2. */
void nb_copy_stride2(float *dst, const float *src, int n);
void nb_add_stride2(float *dst, const float *src, int n);

/* ---- batch normalisation, one channel (batchnorm.c) ------------------------
 * A channel of x [N, C, inner] is `batch` runs of `inner` floats, `stride`
 * (= C * inner) floats apart; y, dy and dx are laid out as x. Each sum runs
 * in an order fixed by the shape (the fast kernels: float lanes over short
 * blocks, added into doubles; the references: one double), so a channel
 * gives the same result on any thread. */

/* The channel's mean and the sum of its squared deviations from it. */
void nb_bn_stats(const float *x, size_t batch, size_t stride, size_t inner, double *mean, double *sqdev);
/* y = x * scale + shift, or max(that, 0) (0 for a NaN) with relu nonzero. */
void nb_bn_apply(const float *x, float *y, size_t batch, size_t stride, size_t inner, float scale, float shift,
                 int relu);
/* The sums of dy and of dy (x - mean). */
void nb_bn_grad_sums(const float *x, const float *dy, size_t batch, size_t stride, size_t inner, float mean,
                     double *sum_dy, double *sum_dy_dev);
/* dx = k dy + c0 + c1 (x - mean), written, or added with accumulate nonzero. */
void nb_bn_grad_input(const float *x, const float *dy, float *dx, size_t batch, size_t stride, size_t inner,
                      float mean, float k, float c0, float c1, int accumulate);
/* The plain loops the fast ones are tested against. */
void nb_bn_stats_reference(const float *x, size_t batch, size_t stride, size_t inner, double *mean, double *sqdev);
void nb_bn_apply_reference(const float *x, float *y, size_t batch, size_t stride, size_t inner, float scale,
                           float shift, int relu);
void nb_bn_grad_sums_reference(const float *x, const float *dy, size_t batch, size_t stride, size_t inner,
                               float mean, double *sum_dy, double *sum_dy_dev);
void nb_bn_grad_input_reference(const float *x, const float *dy, float *dx, size_t batch, size_t stride,
                                size_t inner, float mean, float k, float c0, float c1, int accumulate);

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

/* Which target's kernels run (every fast kernel here has a build per
 * target: nb_isa_name, nb_isa_set in nabla.h; the table in isa.h). */

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

/* ---- direct convolution for few input channels (conv_direct.c) ------------ */

/* Limits of the direct path: input channels, and floats of one sample's
 * zero-padded image (a stack buffer). */
#define NB_CONV_DIRECT_MAX_CHANNELS 4
#define NB_CONV_DIRECT_MAX_PAD 8192

/* Whether the direct kernels take this geometry on this CPU: stride 1, at
 * most NB_CONV_DIRECT_MAX_CHANNELS input channels, output rows of 16 or
 * more, and a padded sample that fits the stack buffer. */
int nb_conv_direct_fits(const nb_conv_geom *g);

/* ONE sample. x is (C, H, W); w is (O, C, KH, KW); b is (O) or NULL; y is
 * (O, OH, OW), written; with relu nonzero, max(y, 0) (0 for a NaN) is. */
void nb_conv_direct_forward(const nb_conv_geom *g, int out_ch, const float *x, const float *w,
                            const float *b, float *y, int relu);
/* ONE sample's weight gradient dw (O, C, KH, KW) and, when db is not NULL,
 * bias gradient db (O), written (not added), from x (C, H, W) and dy
 * (O, OH, OW). */
void nb_conv_direct_backward(const nb_conv_geom *g, int out_ch, const float *x, const float *dy,
                             float *dw, float *db);

/* ---- convolution of one sample, from the definition (conv_reference.c) ------ */

/* What the fast kernels are tested against; any geometry. y and dw/db are
 * written, dx is added into. */
void nb_conv_forward_reference(const nb_conv_geom *g, int out_ch, const float *x, const float *w,
                               const float *b, float *y);
void nb_conv_weight_grad_reference(const nb_conv_geom *g, int out_ch, const float *x, const float *dy,
                                   float *dw, float *db);
void nb_conv_input_grad_reference(const nb_conv_geom *g, int out_ch, const float *w, const float *dy,
                                  float *dx);

/* ---- Winograd F(2x2, 3x3) and F(2x2, 5x5) (winograd.c) ------------------- */

/* Whether the Winograd kernels take this geometry: a 3x3 or 5x5 kernel,
 * stride 1, any padding, an output of at least 2x2 and at most 2 *
 * NB_WINOGRAD_MAX_TILES_W wide (a tile row's rows are stack buffers). */
#define NB_WINOGRAD_MAX_TILES_W 256
int nb_winograd_fits(const nb_conv_geom *g);
/* The transformed domain's points, P = (r + 1)^2 for an r x r kernel: 16
 * or 36. */
int nb_winograd_planes(const nb_conv_geom *g);
/* 2x2 output tiles per sample (odd edges round up). */
int nb_winograd_tiles(const nb_conv_geom *g);
/* w (O, C, kernel, kernel) into u [P][O][C]; with adjoint nonzero, the
 * filters of the input gradient's convolution (each turned 180 degrees)
 * into u [P][C][O]. */
void nb_winograd_weights(int kernel, int out_ch, int channels, const float *w, float *u, int adjoint);
/* `count` samples x (C, H, W) into v [C][P][count * tiles]. */
void nb_winograd_input(const nb_conv_geom *g, const float *x, int count, float *v);
/* m [O][P][count * tiles] (the P products u[xi] v[xi]) into y
 * (count, O, OH, OW), written, plus b (O) when not NULL; with relu nonzero,
 * max(y, 0) (0 for a NaN); with accumulate nonzero, added into y instead
 * (b and relu unused). */
void nb_winograd_output(const nb_conv_geom *g, int out_ch, const float *m, int count, const float *b,
                        float *y, int relu, int accumulate);
/* The weight gradient: dy (count, O, OH, OW) into its transform e
 * [O][P][count * tiles] (each 2x2 tile as A dy A^T); the P products
 * mw[xi] = e[xi] v[xi]^T ([O, T] x [T, C], v from nb_winograd_input,
 * summed over groups of samples) then go into dw (O, C, kernel, kernel) as
 * G^T mw G, written, or added with accumulate nonzero. */
void nb_winograd_grad_output(const nb_conv_geom *g, int out_ch, const float *dy, int count, float *e);
void nb_winograd_weight_grad(int kernel, int out_ch, int channels, const float *mw, float *dw, int accumulate);

/* ---- max pooling (maxpool.c) --------------------------------------------------- */

/* ONE image x (h, w), h and w even: y (h/2, w/2) the window maxima (the
 * first of equal maxima; a NaN wins), arg the winner's index iy * w + ix
 * (arg may be NULL when no backward follows). */
void nb_maxpool2x2_forward(const float *x, int h, int w, float *y, int32_t *arg);
/* ONE image's input gradient, WRITTEN: dx (h, w) is dy at each window's
 * winner and 0 elsewhere (the windows tile the image). */
void nb_maxpool2x2_backward(const float *dy, const int32_t *arg, int h, int w, float *dx);
void nb_maxpool2x2_forward_reference(const float *x, int h, int w, float *y, int32_t *arg);
void nb_maxpool2x2_backward_reference(const float *dy, const int32_t *arg, int h, int w, float *dx);
/* ONE image x (h, w), windows kh x kw with strides sh, sw and no padding:
 * y ((h-kh)/sh+1, (w-kw)/sw+1) and arg, by the same rule. */
void nb_maxpool_forward(const float *x, int h, int w, int kh, int kw, int sh, int sw, float *y,
                        int32_t *arg);
void nb_maxpool_forward_reference(const float *x, int h, int w, int kh, int kw, int sh, int sw,
                                  float *y, int32_t *arg);
/* ONE image x (g's height, width) with padding (ResNet's 3x3, stride 2,
 * padding 1): y (out_h, out_w) and arg, by the same rule over each window
 * clipped to the image (padding never wins). g's channels are unused. */
void nb_maxpool_forward_padded(const nb_conv_geom *g, const float *x, float *y, int32_t *arg);
void nb_maxpool_forward_padded_reference(const nb_conv_geom *g, const float *x, float *y, int32_t *arg);

/* ---- channel-vectorised direct convolution (conv_cv.c) --------------------- */

/* Whether the kernels below take this layer: at least 12 output channels,
 * an image of at most 1 MB, at most max_weights floats of packed weights
 * (nb_conv_cv_max_weights: the active target's limit). Any stride and
 * padding. */
int nb_conv_cv_fits(const nb_conv_geom *g, int out_ch, size_t max_weights);
size_t nb_conv_cv_max_weights(void);
/* Floats of the packed weights wt ([O/16 blocks][C*KH*KW][16]) and of the
 * scratch a call on `count` samples needs (one per thread running at
 * once); the samples a call should take (1 for large images, more for
 * small ones). */
size_t nb_conv_cv_packed_floats(const nb_conv_geom *g, int out_ch);
size_t nb_conv_cv_scratch_floats(const nb_conv_geom *g, int out_ch, int count);
int nb_conv_cv_samples(const nb_conv_geom *g);
/* w (O, C, KH, KW) into the packed layout, zero-padded to whole blocks. */
void nb_conv_cv_pack_weights(const nb_conv_geom *g, int out_ch, const float *w, float *wt);
/* dw (O, C, KH, KW) = (first) or += a packed-layout gradient dwt. */
void nb_conv_cv_unpack_grad(const nb_conv_geom *g, int out_ch, const float *dwt, float *dw, int first);
/* How the forward stores y: written, written through relu (max(y, 0), 0
 * for a NaN), or added to what y holds (the input gradient run as a
 * forward convolution, below). */
enum { NB_CV_WRITE = 0, NB_CV_WRITE_RELU = 1, NB_CV_ADD = 2 };
/* `count` samples, contiguous in x (C, H, W each) and y (O, OH, OW each):
 * y = b + w * x, stored as `store` says, from packed weights (b may be
 * NULL). */
void nb_conv_cv_forward(const nb_conv_geom *g, int out_ch, int count, const float *x, const float *wt,
                        const float *b, float *y, float *scratch, int store);
/* A stride-1 layer's input gradient is a forward convolution of dy by the
 * turned filters, w'[c][o][kh][kw] = w[o][c][KH-1-kh][KW-1-kw], over the
 * adjoint geometry (dy's O channels in, C out, padding K-1-pad): w into
 * that convolution's packed layout, nb_conv_cv_packed_floats(adjoint, C)
 * floats. */
void nb_conv_cv_pack_turned(const nb_conv_geom *g, int out_ch, const float *w, float *wt);
/* `count` contiguous samples' weight gradient in the packed layout, summed
 * sample after sample: written when first is nonzero, else added (the
 * same bits as one call per sample). */
void nb_conv_cv_weight_grad(const nb_conv_geom *g, int out_ch, int count, const float *x, const float *dy,
                            float *dwt, int first, float *scratch);
/* The whole batch's weight gradient at once, for layers whose images are
 * small beside their weights (nb_conv_cv_batch_pays): the batch padded
 * into `images` (nb_conv_cv_batch_floats), then the threads take blocks of
 * 16 output channels, each summing every tap over every sample and
 * position in order straight into dw (O, C, KH, KW): written when first
 * is nonzero, else added. No per-group copies of the weights to sum, and
 * the same bits at any thread count. Thread i uses scratch + i *
 * scratch_stride (at least nb_conv_cv_batch_scratch_floats); at most
 * `threads` run. */
int nb_conv_cv_batch_pays(const nb_conv_geom *g, int out_ch, int batch, int groups);
size_t nb_conv_cv_batch_floats(const nb_conv_geom *g, int batch);
size_t nb_conv_cv_batch_scratch_floats(const nb_conv_geom *g, int batch);
void nb_conv_cv_weight_grad_batch(const nb_conv_geom *g, int out_ch, int batch, const float *x, const float *dy,
                                  float *dw, int first, float *images, float *scratch, size_t scratch_stride,
                                  int threads);
/* ONE sample's input gradient ADDED into dx (C, H, W), from w (O, C, KH, KW). */
void nb_conv_cv_input_grad(const nb_conv_geom *g, int out_ch, const float *w, const float *dy,
                           float *dx, float *scratch);

#endif
