/* targets/maxpool.c — max pooling over simd.h, built per target (the rule
 * and the layouts are in src/kernels/maxpool.c): a vector of outputs of a
 * row at a time, the window's taps compared in row-major order with a
 * strict >, a NaN winning over a number, the winner's index carried in an
 * integer vector. */
#include "kernels/targets/targets.h"

/* Whether v beats the running maximum m: strictly greater, or a NaN over a number. */
#define BEATS(v) vm_or(vf_gt(v, m), vm_andnot(vf_isnan(v), vf_isnan(m)))
/* Take v (at positions pos) where it beats the running maximum m. */
#define TAKE(v, pos)                                                                               \
    do {                                                                                           \
        const vm k = BEATS(v);                                                                     \
        m = vf_select(k, v, m);                                                                    \
        a = vi_select(k, pos, a);                                                                  \
    } while (0)

/* Stride 2, n outputs of a row (n <= NB_LANES) whose windows' top-left
 * tap is x[first] and which all lie inside x: each window row's taps j and
 * j + 1 are the even and odd columns of one pair of loads from column j, so
 * the window costs loads and shuffles, not a gather per tap (ResNet-18's
 * 3x3 max-pool, batch 16, 2 threads on Zen 4: 17 to 6 ms). */
NB_VINLINE void window_stride2(const float *x, int first, int rows, int w, int kw, int n, vf *mp, vi *ap) {
    vf m = vf_zero();
    vi a = vi_set1(0);
    for (int i = 0; i < rows; i++) {
        const int start = first + i * w;
        for (int j = 0; j < kw; j += 2) {
            /* Floats read from column j: 2n, or 2n - 1 when j + 1 is past the window. */
            const int need = 2 * n - (j + 1 < kw ? 0 : 1);
            vf e, o;
            vf_deinterleave(vf_load_n(x + start + j, need), vf_load_part(x + start + j + NB_LANES, need - NB_LANES), &e, &o);
            const vi pos = vi_ramp(start + j, 2);
            if (i == 0 && j == 0) m = e, a = pos;
            else TAKE(e, pos);
            if (j + 1 < kw) TAKE(o, vi_add(pos, vi_set1(1)));
        }
    }
    *mp = m, *ap = a;
}

/* 2x2, stride 2: two input rows are loaded two vectors at a time, split
 * into even and odd columns, and compared in the window's order. */
/* keep = 0: no backward to come (eval mode, arg NULL), the maxima alone
 * by the same comparisons; both forms are compiled from this one. */
NB_VINLINE void pool2x2_forward(const float *x, int h, int w, float *y, int32_t *arg, const int keep) {
    const int oh = h / 2, ow = w / 2;
    for (int oy = 0; oy < oh; oy++) {
        const float *r0 = x + (size_t)2 * oy * w, *r1 = r0 + w;
        for (int ox = 0; ox < ow; ox += NB_LANES) {
            const int n = ow - ox < NB_LANES ? ow - ox : NB_LANES;
            vf e0, o0, e1, o1;
            vf_deinterleave(vf_load_part(r0 + 2 * ox, 2 * n), vf_load_part(r0 + 2 * ox + NB_LANES, 2 * n - NB_LANES), &e0, &o0);
            vf_deinterleave(vf_load_part(r1 + 2 * ox, 2 * n), vf_load_part(r1 + 2 * ox + NB_LANES, 2 * n - NB_LANES), &e1, &o1);
            vf m = e0;
            if (keep) {
                const vi base = vi_ramp(2 * oy * w + 2 * ox, 2);
                vi a = base;
                TAKE(o0, vi_add(base, vi_set1(1)));
                TAKE(e1, vi_add(base, vi_set1(w)));
                TAKE(o1, vi_add(base, vi_set1(w + 1)));
                vi_store_part(arg + (size_t)oy * ow + ox, a, n);
            } else {
                m = vf_select(BEATS(o0), o0, m);
                m = vf_select(BEATS(e1), e1, m);
                m = vf_select(BEATS(o1), o1, m);
            }
            vf_store_part(y + (size_t)oy * ow + ox, m, n);
        }
    }
}

void NB_K(maxpool2x2_forward)(const float *x, int h, int w, float *y, int32_t *arg) {
    if (arg) pool2x2_forward(x, h, w, y, arg, 1);
    else pool2x2_forward(x, h, w, y, NULL, 0);
}

/* The windows tile the image, so every input gradient is written: the
 * output's gradient at the winner, 0 at the other three, interleaved back
 * into the two rows. */
void NB_K(maxpool2x2_backward)(const float *dy, const int32_t *arg, int h, int w, float *dx) {
    const int oh = h / 2, ow = w / 2;
    for (int oy = 0; oy < oh; oy++) {
        float *r0 = dx + (size_t)2 * oy * w, *r1 = r0 + w;
        for (int ox = 0; ox < ow; ox += NB_LANES) {
            const int n = ow - ox < NB_LANES ? ow - ox : NB_LANES;
            const vf g = vf_load_part(dy + (size_t)oy * ow + ox, n);
            const vi a = vi_load_part(arg + (size_t)oy * ow + ox, n);
            const vi base = vi_ramp(2 * oy * w + 2 * ox, 2);
            const vf v00 = vf_keep(vi_eq(a, base), g), v01 = vf_keep(vi_eq(a, vi_add(base, vi_set1(1))), g);
            const vf v10 = vf_keep(vi_eq(a, vi_add(base, vi_set1(w))), g);
            const vf v11 = vf_keep(vi_eq(a, vi_add(base, vi_set1(w + 1))), g);
            vf lo, hi;
            vf_interleave(v00, v01, &lo, &hi);
            vf_store_part(r0 + 2 * ox, lo, 2 * n);
            vf_store_part(r0 + 2 * ox + NB_LANES, hi, 2 * n - NB_LANES);
            vf_interleave(v10, v11, &lo, &hi);
            vf_store_part(r1 + 2 * ox, lo, 2 * n);
            vf_store_part(r1 + 2 * ox + NB_LANES, hi, 2 * n - NB_LANES);
        }
    }
}

/* Any window and stride, no padding: each tap of the window is a gather of
 * the pixels it meets (columns ox*sw + j); lanes past the row's last
 * output gather nothing. */
void NB_K(maxpool_forward)(const float *x, int h, int w, int kh, int kw, int sh, int sw, float *y, int32_t *arg) {
    const int oh = (h - kh) / sh + 1, ow = (w - kw) / sw + 1;
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox += NB_LANES) {
            const int n = ow - ox < NB_LANES ? ow - ox : NB_LANES;
            vf m;
            vi a;
            if (sw == 2) {
                window_stride2(x, oy * sh * w + ox * sw, kh, w, kw, n, &m, &a);
                vf_store_part(y + (size_t)oy * ow + ox, m, n);
                vi_store_part(arg + (size_t)oy * ow + ox, a, n);
                continue;
            }
            const vi base = vi_ramp(oy * sh * w + ox * sw, sw);
            m = vf_gather_part(x, base, n);
            a = base;
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++) {
                    if (i == 0 && j == 0) continue;
                    const vi pos = vi_add(base, vi_set1(i * w + j));
                    const vf v = vf_gather_part(x, pos, n);
                    TAKE(v, pos);
                }
            vf_store_part(y + (size_t)oy * ow + ox, m, n);
            vi_store_part(arg + (size_t)oy * ow + ox, a, n);
        }
}

/* With padding: per output row, the window's rows clipped to the image;
 * outputs [lo, hi) of the row have windows spanning whole columns and run
 * as vectors (gathers, as above, from the clipped window's first tap), the
 * rest one by one (nb_maxpool_window). */
void NB_K(maxpool_forward_padded)(const nb_conv_geom *g, const float *x, float *y, int32_t *arg) {
    const int w = g->width, kw = g->kernel_w, sw = g->stride_w, pw = g->pad_w;
    int lo = (pw + sw - 1) / sw; /* ox * sw - pw >= 0 */
    int hi = w + pw - kw >= 0 ? (w + pw - kw) / sw + 1 : 0; /* ox * sw - pw + kw <= w */
    if (hi > g->out_w) hi = g->out_w;
    if (lo > hi) lo = hi;
    for (int oy = 0; oy < g->out_h; oy++) {
        const int top = oy * g->stride_h - g->pad_h;
        const int i0 = top < 0 ? -top : 0, i1 = top + g->kernel_h < g->height ? g->kernel_h : g->height - top;
        for (int ox = 0; ox < lo; ox++) nb_maxpool_window(g, x, oy, ox, y, arg);
        for (int ox = lo; ox < hi; ox += NB_LANES) {
            const int n = hi - ox < NB_LANES ? hi - ox : NB_LANES;
            vf m;
            vi a;
            if (sw == 2) {
                window_stride2(x, (top + i0) * w + ox * sw - pw, i1 - i0, w, kw, n, &m, &a);
                vf_store_part(y + (size_t)oy * g->out_w + ox, m, n);
                vi_store_part(arg + (size_t)oy * g->out_w + ox, a, n);
                continue;
            }
            const vi base = vi_ramp((top + i0) * w + ox * sw - pw, sw);
            m = vf_gather_part(x, base, n);
            a = base;
            for (int i = i0; i < i1; i++)
                for (int j = 0; j < kw; j++) {
                    if (i == i0 && j == 0) continue;
                    const vi pos = vi_add(base, vi_set1((i - i0) * w + j));
                    const vf v = vf_gather_part(x, pos, n);
                    TAKE(v, pos);
                }
            vf_store_part(y + (size_t)oy * g->out_w + ox, m, n);
            vi_store_part(arg + (size_t)oy * g->out_w + ox, a, n);
        }
        for (int ox = hi; ox < g->out_w; ox++) nb_maxpool_window(g, x, oy, ox, y, arg);
    }
}
