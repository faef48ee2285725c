/* targets/conv_direct.c — the direct convolution for few input channels
 * (see src/kernels/conv_direct.c for the method and the sums), over
 * simd.h, built per target. ONE sample per call.
 *
 * Forward: six output channels of one output row at a time, DIRECT_NV
 * vectors of columns each, so one load of the shifted input row feeds six
 * FMAs. Weights: a block of up to five taps of one kernel row for up to two
 * output channels, BWD_NV vectors of columns, the dy rows loaded once per
 * output row and met by every tap's shifted input row. */
#include "kernels/targets/targets.h"

/* Registers: 6 channels x DIRECT_NV accumulators + DIRECT_NV input vectors
 * + one weight; 2 channels x 5 taps x BWD_NV + 3 x BWD_NV for backward. The
 * forward's columns per pass, DIRECT_NV * NB_LANES, divide the 32 the
 * padded image is laid out for (nb_conv_direct_padded_w). */
#if NB_LANES >= 16
#define DIRECT_NV 2
#define BWD_NV 2
#elif NB_VREGS >= 32
#define DIRECT_NV 4
#define BWD_NV 2
#else
#define DIRECT_NV 2
#define BWD_NV 1
#endif
#define DIRECT_COLS (DIRECT_NV * NB_LANES)
#define BWD_COLS (BWD_NV * NB_LANES)
#define OUT_BLOCK 6
#define TAP_BLOCK 5
#define CH_BLOCK 2

/* Copy one sample into the zero-padded image xp[c][HP][WP]. */
static void pad_sample(const nb_conv_geom *g, const float *x, float *xp) {
    const int hp = nb_conv_direct_padded_h(g), wp = nb_conv_direct_padded_w(g);
    memset(xp, 0, (size_t)g->channels * hp * wp * sizeof(float));
    for (int c = 0; c < g->channels; c++)
        for (int ih = 0; ih < g->height; ih++)
            memcpy(xp + ((size_t)c * hp + ih + g->pad_h) * wp + g->pad_w,
                   x + ((size_t)c * g->height + ih) * g->width, (size_t)g->width * sizeof(float));
}

/* Output channels o0 .. o0+ob-1 (ob <= 6, a constant where the block is
 * full) of output row oh, columns col .. col+DIRECT_COLS-1. */
NB_VINLINE void fwd_block(const nb_conv_geom *g, const float *xp, const float *w, const float *b, float *y,
                          int o0, int oh, int col, int relu, const int ob) {
    const int hp = nb_conv_direct_padded_h(g), wp = nb_conv_direct_padded_w(g), kk = g->kernel_h * g->kernel_w;
    const size_t wstride = (size_t)g->channels * kk; /* one output channel's weights */
    vf acc[OUT_BLOCK][DIRECT_NV];
#pragma GCC unroll 6
    for (int o = 0; o < OUT_BLOCK; o++) {
        const vf bias = vf_set1(b && o < ob ? b[o0 + o] : 0.0f);
#pragma GCC unroll 4
        for (int j = 0; j < DIRECT_NV; j++) acc[o][j] = bias;
    }
    for (int c = 0; c < g->channels; c++)
        for (int kh = 0; kh < g->kernel_h; kh++) {
            const float *row = xp + ((size_t)c * hp + oh + kh) * wp + col;
            const float *wrow = w + (size_t)o0 * wstride + (size_t)c * kk + kh * g->kernel_w;
            for (int kw = 0; kw < g->kernel_w; kw++) {
                vf xv[DIRECT_NV];
#pragma GCC unroll 4
                for (int j = 0; j < DIRECT_NV; j++) xv[j] = vf_load(row + kw + j * NB_LANES);
#pragma GCC unroll 6
                for (int o = 0; o < ob; o++) {
                    const vf wv = vf_set1(wrow[(size_t)o * wstride + kw]);
#pragma GCC unroll 4
                    for (int j = 0; j < DIRECT_NV; j++) acc[o][j] = vf_fma(wv, xv[j], acc[o][j]);
                }
            }
        }
#pragma GCC unroll 6
    for (int o = 0; o < ob; o++) {
        float *yr = y + ((size_t)(o0 + o) * g->out_h + oh) * g->out_w + col;
#pragma GCC unroll 4
        for (int j = 0; j < DIRECT_NV; j++)
            vf_store_n(yr + j * NB_LANES, relu ? vf_relu(acc[o][j]) : acc[o][j], g->out_w - col - j * NB_LANES);
    }
}

void NB_K(conv_direct_forward)(const nb_conv_geom *g, int out_ch, const float *x, const float *w, const float *b,
                               float *y, int relu) {
    _Alignas(64) float xp[NB_CONV_DIRECT_MAX_PAD];
    pad_sample(g, x, xp);
    for (int o0 = 0; o0 < out_ch; o0 += OUT_BLOCK) {
        const int ob = out_ch - o0 < OUT_BLOCK ? out_ch - o0 : OUT_BLOCK;
        for (int oh = 0; oh < g->out_h; oh++)
            for (int col = 0; col < g->out_w; col += DIRECT_COLS) {
                if (ob == OUT_BLOCK) fwd_block(g, xp, w, b, y, o0, oh, col, relu, OUT_BLOCK);
                else fwd_block(g, xp, w, b, y, o0, oh, col, relu, ob);
            }
    }
}

/* Taps kw0 .. kw0+nt-1 of kernel row kh, input channel c, for output
 * channels o0 .. o0+no-1. Lanes past the last output column load zeros on
 * both sides, so a non-finite pixel there cannot leak in as 0 * inf. Each
 * tap sums over rows in order, lane by lane, then across lanes. */
NB_VINLINE void bwd_block(const nb_conv_geom *g, const float *xp, const float *dy, float *dw, int o0, int c, int kh,
                          int kw0, const int no, const int nt) {
    const int hp = nb_conv_direct_padded_h(g), wp = nb_conv_direct_padded_w(g), kk = g->kernel_h * g->kernel_w;
    const size_t wstride = (size_t)g->channels * kk, plane = (size_t)g->out_h * g->out_w;
    vf acc[CH_BLOCK][TAP_BLOCK][BWD_NV];
#pragma GCC unroll 2
    for (int o = 0; o < CH_BLOCK; o++)
#pragma GCC unroll 5
        for (int t = 0; t < TAP_BLOCK; t++)
#pragma GCC unroll 2
            for (int j = 0; j < BWD_NV; j++) acc[o][t][j] = vf_zero();
    for (int oh = 0; oh < g->out_h; oh++) {
        const float *row = xp + ((size_t)c * hp + oh + kh) * wp + kw0;
        for (int col = 0; col < g->out_w; col += BWD_COLS) {
            vf d[CH_BLOCK][BWD_NV];
#pragma GCC unroll 2
            for (int o = 0; o < CH_BLOCK; o++)
#pragma GCC unroll 2
                for (int j = 0; j < BWD_NV; j++) d[o][j] = vf_zero();
#pragma GCC unroll 2
            for (int o = 0; o < no; o++) {
                const float *dr = dy + (size_t)(o0 + o) * plane + (size_t)oh * g->out_w + col;
#pragma GCC unroll 2
                for (int j = 0; j < BWD_NV; j++) d[o][j] = vf_load_n(dr + j * NB_LANES, g->out_w - col - j * NB_LANES);
            }
#pragma GCC unroll 5
            for (int t = 0; t < nt; t++) {
#pragma GCC unroll 2
                for (int j = 0; j < BWD_NV; j++) {
                    const vf xv = vf_load_n(row + col + t + j * NB_LANES, g->out_w - col - j * NB_LANES);
#pragma GCC unroll 2
                    for (int o = 0; o < no; o++) acc[o][t][j] = vf_fma(d[o][j], xv, acc[o][t][j]);
                }
            }
        }
    }
#pragma GCC unroll 2
    for (int o = 0; o < no; o++)
#pragma GCC unroll 5
        for (int t = 0; t < nt; t++) {
            vf s = acc[o][t][0];
#pragma GCC unroll 2
            for (int j = 1; j < BWD_NV; j++) s = vf_add(s, acc[o][t][j]);
            dw[(size_t)(o0 + o) * wstride + (size_t)c * kk + kh * g->kernel_w + kw0 + t] = vf_hsum(s);
        }
}

void NB_K(conv_direct_backward)(const nb_conv_geom *g, int out_ch, const float *x, const float *dy, float *dw,
                                float *db) {
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
        vf acc = vf_zero();
        for (int i = 0; i < ohw; i += NB_LANES) acc = vf_add(acc, vf_load_n(d + i, ohw - i));
        db[o] = vf_hsum(acc);
    }
}
