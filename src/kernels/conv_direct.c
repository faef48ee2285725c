/* conv_direct.c — convolution without im2col, for layers with few input
 * channels (a network's first layer: LeNet-5's conv1 has one).
 *
 * With C*KH*KW small (25 for conv1), im2col + GEMM is a poor fit: the
 * column matrix is 25 rows by every output position of the batch, written
 * once and read once, and the product has an inner dimension of 25, so
 * moving data costs more than the multiply-adds. Here each sample's input
 * is copied once into a zero-padded image on the stack, and every output
 * row is computed in registers: for each tap (c, kh, kw), one load of 32
 * input pixels serves six output channels' worth of FMAs.
 *
 * Forward: y[o][oh][ow] = b[o] + sum over (c, kh, kw) in that order of
 *          w[o][c][kh][kw] * xpad[c][oh + kh][ow + kw]
 * Weights: dw[o][c][kh][kw] = sum over (oh, ow) of dy[o][oh][ow] * xpad[c][oh + kh][ow + kw]
 *          db[o] = sum over (oh, ow) of dy[o][oh][ow]
 * Both work on ONE sample; the operator runs samples in parallel and sums
 * the per-sample weight gradients in sample order, so the result does not
 * depend on the thread count.
 *
 * The SIMD version needs AVX-512; where the CPU lacks it, nb_conv_direct_fits
 * says no and the operator keeps im2col + GEMM. The tests hold it against the
 * plain loops of conv_reference.c. */
#include "kernels/kernels.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NB_X86_KERNELS 1
#include <immintrin.h>
#endif

/* Output columns are computed 32 at a time (two 16-lane vectors). */
#define COLS 32

/* Rows of the padded image: every input row, plus the padding. Its width
 * covers the 32-column blocks of the output plus the kernel's reach, so
 * every vector load stays inside the buffer. */
static int padded_h(const nb_conv_geom *g) { return g->height + 2 * g->pad_h; }
static int padded_w(const nb_conv_geom *g) {
    int blocks = (g->out_w + COLS - 1) / COLS;
    return (blocks * COLS + g->kernel_w - 1 + 15) / 16 * 16;
}

int nb_conv_direct_fits(const nb_conv_geom *g) {
    if (g->stride_h != 1 || g->stride_w != 1) return 0;
    if (g->channels > NB_CONV_DIRECT_MAX_CHANNELS || g->out_w < 16) return 0;
    if ((long)g->channels * padded_h(g) * padded_w(g) > NB_CONV_DIRECT_MAX_PAD) return 0;
    if (g->kernel_h * g->kernel_w > 64) return 0;
    return nb_cpu_has_avx512f();
}

#ifdef NB_X86_KERNELS
/* ---- AVX-512 ------------------------------------------------------------------ */

/* Copy one sample into the zero-padded image xp[c][HP][WP]. */
static void pad_sample(const nb_conv_geom *g, const float *x, float *xp) {
    const int hp = padded_h(g), wp = padded_w(g);
    memset(xp, 0, (size_t)g->channels * hp * wp * sizeof(float));
    for (int c = 0; c < g->channels; c++)
        for (int ih = 0; ih < g->height; ih++)
            memcpy(xp + ((size_t)c * hp + ih + g->pad_h) * wp + g->pad_w,
                   x + ((size_t)c * g->height + ih) * g->width, (size_t)g->width * sizeof(float));
}

/* The lanes of a 32-column block that hold real output columns. */
static inline __mmask16 lanes(int remaining) {
    return remaining >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (remaining > 0 ? remaining : 0)) - 1);
}

/* One output channel's two accumulators (columns 0-15 and 16-31 of the
 * block); up to six channels run at once, twelve registers, so each pair
 * of input loads feeds twelve FMAs. Channel o exists when o < ob. */
#define FWD_FMA(o)                                                                              \
    if (ob > (o)) {                                                                             \
        __m512 wv = _mm512_set1_ps(wt[(size_t)(o) * wstride]);                                 \
        a##o##0 = _mm512_fmadd_ps(wv, x0, a##o##0);                                             \
        a##o##1 = _mm512_fmadd_ps(wv, x1, a##o##1);                                             \
    }
#define FWD_INIT(o)                                                                             \
    __m512 a##o##0 = _mm512_set1_ps(ob > (o) && b ? b[o0 + (o)] : 0.0f), a##o##1 = a##o##0;
#define FWD_STORE(o)                                                                            \
    if (ob > (o)) {                                                                             \
        float *yr = y + ((size_t)(o0 + (o)) * g->out_h + oh) * g->out_w + col;                  \
        if (relu) a##o##0 = _mm512_max_ps(a##o##0, zero), a##o##1 = _mm512_max_ps(a##o##1, zero); \
        _mm512_mask_storeu_ps(yr, m0, a##o##0);                                                 \
        _mm512_mask_storeu_ps(yr + 16, m1, a##o##1);                                            \
    }

/* max(v, 0) is 0 for a NaN v, as the relu op's x > 0 ? x : 0 is. */
__attribute__((target("avx512f"))) static void direct_forward_avx512(const nb_conv_geom *g, int out_ch,
                                                              const float *x, const float *w,
                                                              const float *b, float *y, int relu) {
    const __m512 zero = _mm512_setzero_ps();
    _Alignas(64) float xp[NB_CONV_DIRECT_MAX_PAD];
    pad_sample(g, x, xp);
    const int hp = padded_h(g), wp = padded_w(g), kk = g->kernel_h * g->kernel_w;
    const size_t wstride = (size_t)g->channels * kk; /* one output channel's weights */
    for (int o0 = 0; o0 < out_ch; o0 += 6) {
        const int ob = out_ch - o0 < 6 ? out_ch - o0 : 6;
        for (int oh = 0; oh < g->out_h; oh++)
            for (int col = 0; col < g->out_w; col += COLS) {
                const __mmask16 m0 = lanes(g->out_w - col), m1 = lanes(g->out_w - col - 16);
                FWD_INIT(0) FWD_INIT(1) FWD_INIT(2) FWD_INIT(3) FWD_INIT(4) FWD_INIT(5)
                for (int c = 0; c < g->channels; c++)
                    for (int kh = 0; kh < g->kernel_h; kh++) {
                        const float *row = xp + ((size_t)c * hp + oh + kh) * wp + col;
                        const float *wrow = w + (size_t)o0 * wstride + (size_t)c * kk + kh * g->kernel_w;
                        for (int kw = 0; kw < g->kernel_w; kw++) {
                            const __m512 x0 = _mm512_loadu_ps(row + kw), x1 = _mm512_loadu_ps(row + kw + 16);
                            const float *wt = wrow + kw;
                            FWD_FMA(0) FWD_FMA(1) FWD_FMA(2) FWD_FMA(3) FWD_FMA(4) FWD_FMA(5)
                        }
                    }
                FWD_STORE(0) FWD_STORE(1) FWD_STORE(2) FWD_STORE(3) FWD_STORE(4) FWD_STORE(5)
            }
    }
}

/* Weight gradient of a block of up to five taps (kw0 .. kw0+4 of one kernel
 * row) for up to two output channels: per output row, the two channels' dy
 * rows are loaded once and meet each tap's shifted input row, twenty
 * accumulators in all, so a load feeds more than one FMA. Lanes past the
 * last output column load zeros on both sides, so a non-finite pixel there
 * cannot leak in as 0 * inf. Each tap sums over rows in order, lane by
 * lane, then across lanes. The counts are constants where the block is
 * full, and always_inline folds the tests on them away. */
#define TAP_BLOCK 5
#define CH_BLOCK 2

static inline __attribute__((always_inline, target("avx512f"))) void
bwd_block(const nb_conv_geom *g, const float *xp, const float *dy, float *dw, int o0, int c, int kh,
          int kw0, const int no, const int nt) {
    const int hp = padded_h(g), wp = padded_w(g), kk = g->kernel_h * g->kernel_w;
    const size_t wstride = (size_t)g->channels * kk, plane = (size_t)g->out_h * g->out_w;
    __m512 acc[CH_BLOCK][TAP_BLOCK][2];
#pragma GCC unroll 2
    for (int o = 0; o < CH_BLOCK; o++)
#pragma GCC unroll 5
        for (int j = 0; j < TAP_BLOCK; j++) acc[o][j][0] = acc[o][j][1] = _mm512_setzero_ps();
    for (int oh = 0; oh < g->out_h; oh++) {
        const float *row = xp + ((size_t)c * hp + oh + kh) * wp + kw0;
        for (int col = 0; col < g->out_w; col += COLS) {
            const __mmask16 m0 = lanes(g->out_w - col), m1 = lanes(g->out_w - col - 16);
            __m512 d[CH_BLOCK][2] = {{_mm512_setzero_ps(), _mm512_setzero_ps()}};
#pragma GCC unroll 2
            for (int o = 0; o < no; o++) {
                const float *dr = dy + (size_t)(o0 + o) * plane + (size_t)oh * g->out_w + col;
                d[o][0] = _mm512_maskz_loadu_ps(m0, dr);
                d[o][1] = _mm512_maskz_loadu_ps(m1, dr + 16);
            }
#pragma GCC unroll 5
            for (int j = 0; j < nt; j++) {
                const __m512 x0 = _mm512_maskz_loadu_ps(m0, row + col + j);
                const __m512 x1 = _mm512_maskz_loadu_ps(m1, row + col + j + 16);
#pragma GCC unroll 2
                for (int o = 0; o < no; o++) {
                    acc[o][j][0] = _mm512_fmadd_ps(d[o][0], x0, acc[o][j][0]);
                    acc[o][j][1] = _mm512_fmadd_ps(d[o][1], x1, acc[o][j][1]);
                }
            }
        }
    }
#pragma GCC unroll 2
    for (int o = 0; o < no; o++)
#pragma GCC unroll 5
        for (int j = 0; j < nt; j++)
            dw[(size_t)(o0 + o) * wstride + (size_t)c * kk + kh * g->kernel_w + kw0 + j] =
                _mm512_reduce_add_ps(_mm512_add_ps(acc[o][j][0], acc[o][j][1]));
}

__attribute__((target("avx512f"))) static void direct_backward_avx512(const nb_conv_geom *g, int out_ch,
                                                               const float *x, const float *dy,
                                                               float *dw, float *db) {
    _Alignas(64) float xp[NB_CONV_DIRECT_MAX_PAD];
    pad_sample(g, x, xp);
    for (int o0 = 0; o0 < out_ch; o0 += CH_BLOCK) {
        const int no = out_ch - o0 < CH_BLOCK ? out_ch - o0 : CH_BLOCK;
        for (int c = 0; c < g->channels; c++)
            for (int kh = 0; kh < g->kernel_h; kh++)
                for (int kw0 = 0; kw0 < g->kernel_w; kw0 += TAP_BLOCK) {
                    const int nt = g->kernel_w - kw0 < TAP_BLOCK ? g->kernel_w - kw0 : TAP_BLOCK;
                    if (no == CH_BLOCK && nt == TAP_BLOCK) bwd_block(g, xp, dy, dw, o0, c, kh, kw0, CH_BLOCK, TAP_BLOCK);
                    else bwd_block(g, xp, dy, dw, o0, c, kh, kw0, no, nt);
                }
    }
    if (!db) return;
    const int ohw = g->out_h * g->out_w;
    for (int o = 0; o < out_ch; o++) {
        const float *d = dy + (size_t)o * ohw;
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < ohw; i += 16) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(lanes(ohw - i), d + i));
        db[o] = _mm512_reduce_add_ps(acc);
    }
}
#endif

void nb_conv_direct_forward(const nb_conv_geom *g, int out_ch, const float *x, const float *w,
                            const float *b, float *y, int relu) {
#ifdef NB_X86_KERNELS
    if (nb_conv_direct_fits(g)) {
        direct_forward_avx512(g, out_ch, x, w, b, y, relu);
        return;
    }
#endif
    nb_conv_forward_reference(g, out_ch, x, w, b, y);
    if (relu) nb_relu_inplace(y, (size_t)out_ch * g->out_h * g->out_w);
}

void nb_conv_direct_backward(const nb_conv_geom *g, int out_ch, const float *x, const float *dy,
                             float *dw, float *db) {
#ifdef NB_X86_KERNELS
    if (nb_conv_direct_fits(g)) {
        direct_backward_avx512(g, out_ch, x, dy, dw, db);
        return;
    }
#endif
    nb_conv_weight_grad_reference(g, out_ch, x, dy, dw, db);
}
