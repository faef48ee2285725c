/* targets/conv_cv.c — the channel-vectorised direct convolution (see
 * src/kernels/conv_cv.c for the layouts and the order of the sums), over
 * simd.h, built per target. ONE sample per call.
 *
 * A block is NB_CV_BLOCK = 16 output channels, CV_NV vectors of the
 * target. Forward: CV_NP output positions of a block at once, each tap one
 * broadcast input pixel times the block's weights for the tap, so a weight
 * load feeds CV_NP FMAs. Weight gradient: CV_NP taps of a block at once,
 * summed over positions. Input gradient: a vector of positions of the
 * column matrix for IG_TAPS taps at once, then col2im. */
#include "kernels/targets/targets.h"

#define CV_NV (NB_CV_BLOCK / NB_LANES)
/* Accumulators CV_NP x CV_NV, plus the block's weights and one broadcast. */
#if NB_LANES >= 16
#define CV_NP 8
#elif NB_VREGS >= 32 || NB_LANES >= 8
#define CV_NP 6
#else
#define CV_NP 2
#endif
#define IG_TAPS 8

/* ---- forward ------------------------------------------------------------------ */

/* Outputs pos0 .. pos0+np-1 of one block, into out[pos][16]. */
NB_VINLINE void fwd_block(const nb_conv_geom *g, const float *xp, const int *off, const float *wb, const vf *bias,
                          float *out, int pos0, int relu, const int np) {
    const int wp = nb_conv_cv_padded_w(g), k = nb_conv_cv_taps(g);
    vf acc[CV_NP][CV_NV];
    const float *xs[CV_NP];
#pragma GCC unroll 8
    for (int p = 0; p < CV_NP; p++) {
        xs[p] = xp + (p < np ? nb_conv_cv_base(g, pos0 + p, wp) : 0);
#pragma GCC unroll 4
        for (int j = 0; j < CV_NV; j++) acc[p][j] = bias[j];
    }
    for (int t = 0; t < k; t++) {
        vf wv[CV_NV];
#pragma GCC unroll 4
        for (int j = 0; j < CV_NV; j++) wv[j] = vf_load(wb + (size_t)t * NB_CV_BLOCK + j * NB_LANES);
        const int o = off[t];
#pragma GCC unroll 8
        for (int p = 0; p < np; p++) {
            const vf xv = vf_set1(xs[p][o]);
#pragma GCC unroll 4
            for (int j = 0; j < CV_NV; j++) acc[p][j] = vf_fma(xv, wv[j], acc[p][j]);
        }
    }
#pragma GCC unroll 8
    for (int p = 0; p < np; p++)
#pragma GCC unroll 4
        for (int j = 0; j < CV_NV; j++)
            vf_store(out + (size_t)(pos0 + p) * NB_CV_BLOCK + j * NB_LANES, relu ? vf_relu(acc[p][j]) : acc[p][j]);
}

void NB_K(conv_cv_forward)(const nb_conv_geom *g, int out_ch, int count, const float *x, const float *wt,
                           const float *b, float *y, float *scratch, int store) {
    const int relu = store == NB_CV_WRITE_RELU;
    int *off;
    const float *xp = nb_conv_cv_prepare(g, count, x, scratch, &off);
    float *out = nb_conv_cv_block_of(g, count, scratch);
    const int k = nb_conv_cv_taps(g), ohw = g->out_h * g->out_w, positions = count * ohw;
    for (int blk = 0; blk * NB_CV_BLOCK < out_ch; blk++) {
        const int valid = out_ch - blk * NB_CV_BLOCK < NB_CV_BLOCK ? out_ch - blk * NB_CV_BLOCK : NB_CV_BLOCK;
        vf bias[CV_NV];
        for (int j = 0; j < CV_NV; j++)
            bias[j] = b ? vf_load_part(b + blk * NB_CV_BLOCK + j * NB_LANES, valid - j * NB_LANES) : vf_zero();
        const float *wb = wt + (size_t)blk * k * NB_CV_BLOCK;
        int pos0 = 0;
        for (; pos0 + CV_NP <= positions; pos0 += CV_NP) fwd_block(g, xp, off, wb, bias, out, pos0, relu, CV_NP);
        if (pos0 < positions) fwd_block(g, xp, off, wb, bias, out, pos0, relu, positions - pos0);
        /* out is [position][16 channels]; y wants each channel's plane. */
        for (int s = 0; s < count; s++)
            for (int j = 0; j < valid; j++) {
                float *yo = y + ((size_t)s * out_ch + blk * NB_CV_BLOCK + j) * ohw;
                const float *src = out + (size_t)s * ohw * NB_CV_BLOCK + j;
                if (store == NB_CV_ADD)
                    for (int pos = 0; pos < ohw; pos++) yo[pos] += src[(size_t)pos * NB_CV_BLOCK];
                else
                    for (int pos = 0; pos < ohw; pos++) yo[pos] = src[(size_t)pos * NB_CV_BLOCK];
            }
    }
}

/* ---- weight gradient ---------------------------------------------------------- */

/* Taps t0 .. t0+nt-1 of one block, summed over every position of the
 * call's samples, in order, into rows[t - t0][16] (added to what they
 * hold unless first). */
NB_VINLINE void wg_block(const nb_conv_geom *g, int count, const float *xp, const int *off, const float *dyt,
                         float *rows, int first, int t0, const int nt) {
    const int wp = nb_conv_cv_padded_w(g);
    const size_t image = nb_conv_cv_image_floats(g);
    vf acc[CV_NP][CV_NV];
    int o[CV_NP];
#pragma GCC unroll 8
    for (int t = 0; t < CV_NP; t++) {
        o[t] = t < nt ? off[t0 + t] : 0;
#pragma GCC unroll 4
        for (int j = 0; j < CV_NV; j++)
            acc[t][j] = first || t >= nt ? vf_zero() : vf_load(rows + (size_t)t * NB_CV_BLOCK + j * NB_LANES);
    }
    const float *d_at = dyt;
    for (int s = 0; s < count; s++)
        for (int oh = 0; oh < g->out_h; oh++) {
            const float *xq = xp + s * image + (size_t)oh * g->stride_h * wp;
            for (int ow = 0; ow < g->out_w; ow++, d_at += NB_CV_BLOCK, xq += g->stride_w) {
                vf d[CV_NV];
#pragma GCC unroll 4
                for (int j = 0; j < CV_NV; j++) d[j] = vf_load(d_at + j * NB_LANES);
#pragma GCC unroll 8
                for (int t = 0; t < nt; t++) {
                    const vf xv = vf_set1(xq[o[t]]);
#pragma GCC unroll 4
                    for (int j = 0; j < CV_NV; j++) acc[t][j] = vf_fma(xv, d[j], acc[t][j]);
                }
            }
        }
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
#pragma GCC unroll 4
        for (int j = 0; j < CV_NV; j++) vf_store(rows + (size_t)t * NB_CV_BLOCK + j * NB_LANES, acc[t][j]);
}

void NB_K(conv_cv_weight_grad)(const nb_conv_geom *g, int out_ch, int count, const float *x, const float *dy,
                               float *dwt, int first, float *scratch) {
    int *off;
    const float *xp = nb_conv_cv_prepare(g, count, x, scratch, &off);
    float *dyt = nb_conv_cv_block_of(g, count, scratch);
    const int k = nb_conv_cv_taps(g);
    for (int blk = 0; blk * NB_CV_BLOCK < out_ch; blk++) {
        nb_conv_cv_gather_dy(g, out_ch, count, dy, blk, dyt);
        float *dwb = dwt + (size_t)blk * k * NB_CV_BLOCK;
        int t0 = 0;
        for (; t0 + CV_NP <= k; t0 += CV_NP)
            wg_block(g, count, xp, off, dyt, dwb + (size_t)t0 * NB_CV_BLOCK, first, t0, CV_NP);
        if (t0 < k) wg_block(g, count, xp, off, dyt, dwb + (size_t)t0 * NB_CV_BLOCK, first, t0, k - t0);
    }
}

void NB_K(conv_cv_weight_grad_block)(const nb_conv_geom *g, int out_ch, int count, const float *xp, const int *off,
                                     const float *dyt, int blk, float *dw, int first) {
    const int k = nb_conv_cv_taps(g);
    const int valid = out_ch - blk * NB_CV_BLOCK < NB_CV_BLOCK ? out_ch - blk * NB_CV_BLOCK : NB_CV_BLOCK;
    _Alignas(64) float rows[CV_NP * NB_CV_BLOCK];
    for (int t0 = 0; t0 < k; t0 += CV_NP) {
        const int nt = k - t0 < CV_NP ? k - t0 : CV_NP;
        if (nt == CV_NP) wg_block(g, count, xp, off, dyt, rows, 1, t0, CV_NP);
        else wg_block(g, count, xp, off, dyt, rows, 1, t0, nt);
        /* rows is [tap][16 channels]; dw wants each channel's taps. */
        for (int j = 0; j < valid; j++) {
            float *dst = dw + (size_t)(blk * NB_CV_BLOCK + j) * k + t0;
            for (int t = 0; t < nt; t++) dst[t] = first ? rows[t * NB_CV_BLOCK + j] : dst[t] + rows[t * NB_CV_BLOCK + j];
        }
    }
}

/* ---- input gradient ------------------------------------------------------------ */

/* cols[t][pos] = sum over o of w[o][t] dy[o][pos], for the positions
 * p0 .. p0+np-1 (one vector) and taps t0 .. t0+nt-1. */
NB_VINLINE void ig_block(const float *w, const float *dy, float *cols, int out_ch, int k, int ohw, int p0, int np,
                         int t0, const int nt) {
    vf acc[IG_TAPS];
#pragma GCC unroll 8
    for (int t = 0; t < IG_TAPS; t++) acc[t] = vf_zero();
    for (int o = 0; o < out_ch; o++) {
        const vf d = vf_load_n(dy + (size_t)o * ohw + p0, np);
        const float *wo = w + (size_t)o * k + t0;
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) acc[t] = vf_fma(vf_set1(wo[t]), d, acc[t]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++) {
        float *dst = cols + (size_t)(t0 + t) * ohw + p0;
        if (np >= NB_LANES) vf_store(dst, acc[t]);
        else vf_store_part(dst, acc[t], np);
    }
}

void NB_K(conv_cv_input_grad)(const nb_conv_geom *g, int out_ch, const float *w, const float *dy, float *dx,
                              float *scratch) {
    const int k = nb_conv_cv_taps(g), ohw = g->out_h * g->out_w;
    float *cols = scratch;
    for (int p0 = 0; p0 < ohw; p0 += NB_LANES) {
        const int np = ohw - p0;
        int t0 = 0;
        for (; t0 + IG_TAPS <= k; t0 += IG_TAPS) ig_block(w, dy, cols, out_ch, k, ohw, p0, np, t0, IG_TAPS);
        if (t0 < k) ig_block(w, dy, cols, out_ch, k, ohw, p0, np, t0, k - t0);
    }
    if (g->stride_w != 1 || g->stride_h != 1 || nb_conv_cv_padded_w(g) > NB_LANES) {
        nb_col2im_add(g, cols, 1, dx);
        return;
    }
    /* Stride 1 and a padded row that fits a vector: each input row (c, ih)
     * is summed in a register from the column rows that reach it, every kh
     * whose output row oh = ih + pad - kh exists and every kw, shifted into
     * place by a load of lanes kw .. kw + OW - 1 from kw floats before the
     * column row (element ow lands in lane ow + kw), then added to dx. */
    for (int c = 0; c < g->channels; c++)
        for (int r = g->pad_h; r < g->pad_h + g->height; r++) {
            vf acc = vf_zero();
            for (int kh = 0; kh < g->kernel_h; kh++) {
                const int oh = r - kh;
                if (oh < 0 || oh >= g->out_h) continue;
                const float *src = cols + ((size_t)(c * g->kernel_h + kh) * g->kernel_w) * ohw + (size_t)oh * g->out_w;
                /* Each kh its own chain of adds, so the rows overlap in flight. */
                vf part = vf_zero();
                for (int kw = 0; kw < g->kernel_w; kw++, src += ohw)
                    part = vf_add(part, vf_load_range(src - kw, kw, kw + g->out_w));
                acc = vf_add(acc, part);
            }
            float lanes[NB_LANES];
            vf_store(lanes, acc);
            float *dst = dx + ((size_t)c * g->height + r - g->pad_h) * g->width;
            for (int ix = 0; ix < g->width; ix++) dst[ix] += lanes[ix + g->pad_w];
        }
}
