/* maxpool.c — max pooling kernels: 2x2 windows with stride 2 (LeNet-5's),
 * and any window and stride without padding (AlexNet's 3x3, stride 2).
 *
 * 2x2, stride 2, no padding, on images of even height and width:
 * Output (oy, ox) is the maximum of input rows 2oy, 2oy+1 and columns 2ox,
 * 2ox+1, taken in row-major order with a strict >, so the first of equal
 * maxima wins, and a NaN wins over a number so that it propagates: exactly
 * the rule of the general pooling loop in ops/pool.c. The index saved for
 * backward is the winner's position in the image (iy * w + ix).
 *
 * The windows tile the image, so backward can write every input gradient
 * (the output's gradient at the winner, 0 at the other three) instead of
 * zeroing the image and scattering into it.
 *
 * The AVX-512 version does 16 outputs of a row at once: two input rows are
 * loaded 32 pixels at a time, split into even and odd columns with one
 * permute each, and compared in the window's order. */
#include "kernels/kernels.h"

#include <math.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NB_X86_KERNELS 1
#include <immintrin.h>
#endif

void nb_maxpool2x2_forward_reference(const float *x, int h, int w, float *y, int32_t *arg) {
    const int oh = h / 2, ow = w / 2;
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            int best = 2 * oy * w + 2 * ox;
            float m = x[best];
            const int cand[3] = {best + 1, best + w, best + w + 1};
            for (int k = 0; k < 3; k++) {
                float v = x[cand[k]];
                if (v > m || (isnan(v) && !isnan(m))) m = v, best = cand[k];
            }
            y[oy * ow + ox] = m;
            arg[oy * ow + ox] = best;
        }
}

void nb_maxpool2x2_backward_reference(const float *dy, const int32_t *arg, int h, int w, float *dx) {
    const int oh = h / 2, ow = w / 2;
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            const int base = 2 * oy * w + 2 * ox, a = arg[oy * ow + ox];
            const float g = dy[oy * ow + ox];
            dx[base] = a == base ? g : 0.0f;
            dx[base + 1] = a == base + 1 ? g : 0.0f;
            dx[base + w] = a == base + w ? g : 0.0f;
            dx[base + w + 1] = a == base + w + 1 ? g : 0.0f;
        }
}

/* Any window, any stride, no padding: the window of (oy, ox) is rows
 * oy*sh .. +kh-1 and columns ox*sw .. +kw-1, visited in row-major order. */
void nb_maxpool_forward_reference(const float *x, int h, int w, int kh, int kw, int sh, int sw,
                                  float *y, int32_t *arg) {
    const int oh = (h - kh) / sh + 1, ow = (w - kw) / sw + 1;
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            int best = oy * sh * w + ox * sw;
            float m = x[best];
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++) {
                    int at = (oy * sh + i) * w + ox * sw + j;
                    float v = x[at];
                    if (v > m || (isnan(v) && !isnan(m))) m = v, best = at;
                }
            y[oy * ow + ox] = m;
            arg[oy * ow + ox] = best;
        }
}

#ifdef NB_X86_KERNELS
static inline __mmask16 lanes(int n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n > 0 ? n : 0)) - 1);
}

/* Take v (at position pos) where it beats the running maximum m. */
#define TAKE(v, pos)                                                                            \
    do {                                                                                        \
        __mmask16 k = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) |                                    \
                      (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) & ~_mm512_cmp_ps_mask(m, m, _CMP_UNORD_Q)); \
        m = _mm512_mask_blend_ps(k, m, v);                                                      \
        a = _mm512_mask_blend_epi32(k, a, pos);                                                 \
    } while (0)

__attribute__((target("avx512f"))) static void pool2x2_forward_avx512(const float *x, int h, int w, float *y,
                                                              int32_t *arg) {
    const int oh = h / 2, ow = w / 2;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int oy = 0; oy < oh; oy++) {
        const float *r0 = x + (size_t)2 * oy * w, *r1 = r0 + w;
        for (int ox = 0; ox < ow; ox += 16) {
            const int n = ow - ox < 16 ? ow - ox : 16;
            const __mmask16 lo = lanes(2 * n), hi = lanes(2 * n - 16), out = lanes(n);
            const __m512 a0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * ox), b0 = _mm512_maskz_loadu_ps(hi, r0 + 2 * ox + 16);
            const __m512 a1 = _mm512_maskz_loadu_ps(lo, r1 + 2 * ox), b1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * ox + 16);
            const __m512i base = _mm512_add_epi32(_mm512_set1_epi32(2 * oy * w + 2 * ox), even);
            __m512 m = _mm512_permutex2var_ps(a0, even, b0);
            __m512i a = base;
            TAKE(_mm512_permutex2var_ps(a0, odd, b0), _mm512_add_epi32(base, _mm512_set1_epi32(1)));
            TAKE(_mm512_permutex2var_ps(a1, even, b1), _mm512_add_epi32(base, _mm512_set1_epi32(w)));
            TAKE(_mm512_permutex2var_ps(a1, odd, b1), _mm512_add_epi32(base, _mm512_set1_epi32(w + 1)));
            _mm512_mask_storeu_ps(y + (size_t)oy * ow + ox, out, m);
            _mm512_mask_storeu_epi32(arg + (size_t)oy * ow + ox, out, a);
        }
    }
}

/* Sixteen outputs of a row at once; each tap of the window is a gather of
 * the sixteen pixels it meets (columns ox*sw + j). */
__attribute__((target("avx512f"))) static void pool_strided_avx512(const float *x, int h, int w, int kh,
                                                              int kw, int sh, int sw, float *y,
                                                              int32_t *arg) {
    const int oh = (h - kh) / sh + 1, ow = (w - kw) / sw + 1;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i col = _mm512_mullo_epi32(lane, _mm512_set1_epi32(sw));
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox += 16) {
            const __mmask16 out = lanes(ow - ox);
            /* Index of tap (0, 0) for each output; masked-off lanes stay at 0. */
            const __m512i base = _mm512_maskz_add_epi32(out, col, _mm512_set1_epi32(oy * sh * w + ox * sw));
            __m512 m = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), out, base, x, 4);
            __m512i a = base;
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++) {
                    if (i == 0 && j == 0) continue;
                    const __m512i pos = _mm512_add_epi32(base, _mm512_set1_epi32(i * w + j));
                    const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), out, pos, x, 4);
                    TAKE(v, pos);
                }
            _mm512_mask_storeu_ps(y + (size_t)oy * ow + ox, out, m);
            _mm512_mask_storeu_epi32(arg + (size_t)oy * ow + ox, out, a);
        }
}

__attribute__((target("avx512f"))) static void pool2x2_backward_avx512(const float *dy, const int32_t *arg,
                                                               int h, int w, float *dx) {
    const int oh = h / 2, ow = w / 2;
    /* Interleave two 16-lane vectors p, q into p0 q0 p1 q1 ... (low and high halves). */
    const __m512i ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ihi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512i step = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int oy = 0; oy < oh; oy++) {
        float *r0 = dx + (size_t)2 * oy * w, *r1 = r0 + w;
        for (int ox = 0; ox < ow; ox += 16) {
            const int n = ow - ox < 16 ? ow - ox : 16;
            const __mmask16 lo = lanes(2 * n), hi = lanes(2 * n - 16), out = lanes(n);
            const __m512 g = _mm512_maskz_loadu_ps(out, dy + (size_t)oy * ow + ox);
            const __m512i a = _mm512_maskz_loadu_epi32(out, arg + (size_t)oy * ow + ox);
            const __m512i base = _mm512_add_epi32(_mm512_set1_epi32(2 * oy * w + 2 * ox), step);
            const __m512 v00 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(a, base), g);
            const __m512 v01 = _mm512_maskz_mov_ps(
                _mm512_cmpeq_epi32_mask(a, _mm512_add_epi32(base, _mm512_set1_epi32(1))), g);
            const __m512 v10 = _mm512_maskz_mov_ps(
                _mm512_cmpeq_epi32_mask(a, _mm512_add_epi32(base, _mm512_set1_epi32(w))), g);
            const __m512 v11 = _mm512_maskz_mov_ps(
                _mm512_cmpeq_epi32_mask(a, _mm512_add_epi32(base, _mm512_set1_epi32(w + 1))), g);
            _mm512_mask_storeu_ps(r0 + 2 * ox, lo, _mm512_permutex2var_ps(v00, ilo, v01));
            _mm512_mask_storeu_ps(r0 + 2 * ox + 16, hi, _mm512_permutex2var_ps(v00, ihi, v01));
            _mm512_mask_storeu_ps(r1 + 2 * ox, lo, _mm512_permutex2var_ps(v10, ilo, v11));
            _mm512_mask_storeu_ps(r1 + 2 * ox + 16, hi, _mm512_permutex2var_ps(v10, ihi, v11));
        }
    }
}
#endif

void nb_maxpool2x2_forward(const float *x, int h, int w, float *y, int32_t *arg) {
#ifdef NB_X86_KERNELS
    if (nb_cpu_has_avx512f()) {
        pool2x2_forward_avx512(x, h, w, y, arg);
        return;
    }
#endif
    nb_maxpool2x2_forward_reference(x, h, w, y, arg);
}

void nb_maxpool2x2_backward(const float *dy, const int32_t *arg, int h, int w, float *dx) {
#ifdef NB_X86_KERNELS
    if (nb_cpu_has_avx512f()) {
        pool2x2_backward_avx512(dy, arg, h, w, dx);
        return;
    }
#endif
    nb_maxpool2x2_backward_reference(dy, arg, h, w, dx);
}

void nb_maxpool_forward(const float *x, int h, int w, int kh, int kw, int sh, int sw, float *y,
                        int32_t *arg) {
#ifdef NB_X86_KERNELS
    if (nb_cpu_has_avx512f()) {
        pool_strided_avx512(x, h, w, kh, kw, sh, sw, y, arg);
        return;
    }
#endif
    nb_maxpool_forward_reference(x, h, w, kh, kw, sh, sw, y, arg);
}
