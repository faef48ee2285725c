/* conv_cv.c — channel-vectorised direct convolution, for layers whose
 * weights and image fit the cache: LeNet-5's conv2 (6 -> 16 channels on
 * 14x14 images) up to ResNet-18's layer2 (128 channels on 28x28).
 *
 * There im2col + GEMM spends more time copying than multiplying: the
 * column matrix has rows of ten pixels, each a separate copy, and GEMM
 * then copies it again into its packed layout. Here nothing is lowered.
 * Sixteen output channels fill a block (one AVX-512 vector, two AVX2 or
 * four NEON ones), so an output position is a block of accumulators and each tap is one FMA: the tap's input pixel
 * (a broadcast) times the sixteen channels' weights for that tap (one
 * load). Eight positions run at once, so a weight load feeds eight FMAs.
 *
 * Shapes (one sample): x (C, H, W); w (O, C, KH, KW) = [O][K], K = C*KH*KW
 * taps in (c, kh, kw) order; y and dy (O, OH, OW). The input is first
 * copied into a zero-padded image xp (C, HP, WP); tap k of the output at
 * (oh, ow) is then xp[base + off[k]] with base = oh*sh*WP + ow*sw and
 * off[k] = (c*HP + kh)*WP + kw, so no bounds are checked in the loops.
 * Weights go to a packed copy wt [O/16 blocks][K][16], zero-padded.
 *
 * A call takes `count` samples, their padded images one after another,
 * so that small images (7x7 outputs) still give a block's weights enough
 * positions to feed. Sums run in a fixed order: forward over k; the
 * weight gradient over the samples given, then positions; the input gradient of a stride-1 layer is
 * a forward convolution (over dy's taps (o, kh, kw) in order, then added
 * to dx), and of a strided one over o, then the taps position by position.
 * The operator runs samples in parallel and
 * sums per-group weight gradients in group order, so the thread count
 * never changes a bit. The kernels are in targets/conv_cv.c, built per
 * target CPU; this file holds the layouts and the entry points. */
#include "kernels/isa.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int cv_blocks(int out_ch) { return (out_ch + NB_CV_BLOCK - 1) / NB_CV_BLOCK; }

size_t nb_conv_cv_max_weights(void) { return nb_isa_active()->conv_cv_max_weights; }

int nb_conv_cv_fits(const nb_conv_geom *g, int out_ch, size_t max_weights) {
    /* Enough output channels to fill most of a block, a padded image of at
     * most 1 MB, so that the few image rows a block's outputs read stay in
     * L1/L2 as it walks the image, and packed weights within the target's
     * limit (isa.h): a block's weights (taps x 16 channels, 295 KB for a
     * 512-channel 3x3 layer) are read once per sample and stay in L2. */
    if (out_ch < 12) return 0;
    if ((size_t)nb_conv_cv_taps(g) * out_ch > max_weights) return 0;
    return (size_t)g->channels * nb_conv_cv_padded_h(g) * nb_conv_cv_padded_w(g) <= ((size_t)1 << 18);
}

size_t nb_conv_cv_packed_floats(const nb_conv_geom *g, int out_ch) {
    return (size_t)cv_blocks(out_ch) * nb_conv_cv_taps(g) * NB_CV_BLOCK;
}

/* Positions a call should cover: a block's weights are read once per call
 * (from L3 when a layer's do not fit L2: 9.4 MB for 512 channels) and
 * feed every position of it, so ResNet-18's layer4 (49 positions a
 * sample) runs four samples a call. */
#define CV_CALL_POSITIONS 192

int nb_conv_cv_samples(const nb_conv_geom *g) {
    const int ohw = g->out_h * g->out_w;
    size_t n = (size_t)(CV_CALL_POSITIONS + ohw - 1) / (size_t)ohw;
    const size_t fit = ((size_t)1 << 18) / nb_conv_cv_image_floats(g);
    if (n > fit) n = fit;
    return n < 1 ? 1 : (int)n;
}

/* Scratch per call: the padded images, the tap offsets and a transposed
 * block of outputs (or of dy); or the input gradient's column matrix. */
size_t nb_conv_cv_scratch_floats(const nb_conv_geom *g, int out_ch, int count) {
    (void)out_ch;
    size_t ohw = (size_t)g->out_h * g->out_w, k = (size_t)nb_conv_cv_taps(g);
    size_t images = (size_t)count * (nb_conv_cv_image_floats(g) + ohw * NB_CV_BLOCK) + k + 64;
    return images > k * ohw ? images : k * ohw;
}

/* The packs run on every step (9.4 MB for a 512-channel 3x3 layer), so
 * the threads share their blocks. */
#define PACK_PARALLEL_FLOATS ((size_t)1 << 16)

void nb_conv_cv_pack_weights(const nb_conv_geom *g, int out_ch, const float *w, float *wt) {
    const int k = nb_conv_cv_taps(g);
#pragma omp parallel for schedule(static) if ((size_t)k * out_ch >= PACK_PARALLEL_FLOATS && !omp_in_parallel())
    for (int b = 0; b < cv_blocks(out_ch); b++)
        for (int t = 0; t < k; t++)
            for (int j = 0; j < NB_CV_BLOCK; j++) {
                int o = b * NB_CV_BLOCK + j;
                wt[((size_t)b * k + t) * NB_CV_BLOCK + j] = o < out_ch ? w[(size_t)o * k + t] : 0.0f;
            }
}

void nb_conv_cv_pack_turned(const nb_conv_geom *g, int out_ch, const float *w, float *wt) {
    const int kh = g->kernel_h, kw = g->kernel_w, kk = kh * kw, taps = out_ch * kk;
    const size_t ckk = (size_t)g->channels * kk;
#pragma omp parallel for schedule(static) if ((size_t)taps * g->channels >= PACK_PARALLEL_FLOATS && !omp_in_parallel())
    for (int b = 0; b < cv_blocks(g->channels); b++)
        for (int t = 0; t < taps; t++) {
            /* Tap (o, i, j) of the adjoint reads w[o][c][KH-1-i][KW-1-j]. */
            const int o = t / kk, i = t % kk / kw, j = t % kw;
            const float *src = w + (size_t)o * ckk + (size_t)(kh - 1 - i) * kw + (kw - 1 - j);
            float *dst = wt + ((size_t)b * taps + t) * NB_CV_BLOCK;
            for (int l = 0; l < NB_CV_BLOCK; l++) {
                const int c = b * NB_CV_BLOCK + l;
                dst[l] = c < g->channels ? src[(size_t)c * kk] : 0.0f;
            }
        }
}

void nb_conv_cv_unpack_grad(const nb_conv_geom *g, int out_ch, const float *dwt, float *dw, int first) {
    const int k = nb_conv_cv_taps(g);
    for (int o = 0; o < out_ch; o++)
        for (int t = 0; t < k; t++) {
            float v = dwt[((size_t)(o / NB_CV_BLOCK) * k + t) * NB_CV_BLOCK + o % NB_CV_BLOCK];
            dw[(size_t)o * k + t] = first ? v : dw[(size_t)o * k + t] + v;
        }
}

void nb_conv_cv_forward(const nb_conv_geom *g, int out_ch, int count, const float *x, const float *wt,
                        const float *b, float *y, float *scratch, int store) {
    nb_isa_active()->conv_cv_forward(g, out_ch, count, x, wt, b, y, scratch, store);
}

void nb_conv_cv_weight_grad(const nb_conv_geom *g, int out_ch, int count, const float *x, const float *dy,
                            float *dwt, int first, float *scratch) {
    nb_isa_active()->conv_cv_weight_grad(g, out_ch, count, x, dy, dwt, first, scratch);
}

int nb_conv_cv_batch_pays(const nb_conv_geom *g, int out_ch, int batch, int groups) {
    /* Where the batch's padded images take less room than the per-group
     * packed gradients would (ResNet-18's layer3 and layer4, AlexNet's
     * 13x13 layers), and so less memory traffic to sum. */
    return nb_conv_cv_batch_floats(g, batch) <= (size_t)groups * nb_conv_cv_packed_floats(g, out_ch);
}

size_t nb_conv_cv_batch_floats(const nb_conv_geom *g, int batch) {
    return (size_t)batch * nb_conv_cv_image_floats(g) + (size_t)nb_conv_cv_taps(g);
}

size_t nb_conv_cv_batch_scratch_floats(const nb_conv_geom *g, int batch) {
    return (size_t)batch * g->out_h * g->out_w * NB_CV_BLOCK;
}

void nb_conv_cv_weight_grad_batch(const nb_conv_geom *g, int out_ch, int batch, const float *x, const float *dy,
                                  float *dw, int first, float *images, float *scratch, size_t scratch_stride,
                                  int threads) {
    const size_t image = nb_conv_cv_image_floats(g), x_sample = (size_t)g->channels * g->height * g->width;
    int *off = (int *)(images + (size_t)batch * image);
    nb_conv_cv_offsets(g, off);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && batch > 1)
    for (int s = 0; s < batch; s++) nb_conv_cv_pad(g, x + s * x_sample, images + s * image);
    const int blocks = cv_blocks(out_ch);
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (threads > 1 && blocks > 1)
    for (int blk = 0; blk < blocks; blk++) {
#ifdef _OPENMP
        float *dyt = scratch + (size_t)omp_get_thread_num() * scratch_stride;
#else
        float *dyt = scratch;
#endif
        nb_conv_cv_gather_dy(g, out_ch, batch, dy, blk, dyt);
        nb_isa_active()->conv_cv_weight_grad_block(g, out_ch, batch, images, off, dyt, blk, dw, first);
    }
}

void nb_conv_cv_input_grad(const nb_conv_geom *g, int out_ch, const float *w, const float *dy, float *dx,
                           float *scratch) {
    nb_isa_active()->conv_cv_input_grad(g, out_ch, w, dy, dx, scratch);
}
