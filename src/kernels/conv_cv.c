/* conv_cv.c — channel-vectorised direct convolution, for small layers
 * (LeNet-5's conv2: 6 -> 16 channels on 14x14 images).
 *
 * There im2col + GEMM spends more time copying than multiplying: the
 * column matrix has rows of ten pixels, each a separate copy, and GEMM
 * then copies it again into its packed layout. Here nothing is lowered.
 * Sixteen output channels fill one AVX-512 vector, so an output position
 * is a vector accumulator and each tap is one FMA: the tap's input pixel
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
 * Sums run in a fixed order: forward over k; the weight gradient over the
 * samples given, then positions; the input gradient over o, then adds the
 * taps position by position. The operator runs samples in parallel and
 * sums per-group weight gradients in group order, so the thread count
 * never changes a bit. AVX-512 only: nb_conv_cv_fits says no elsewhere. */
#include "kernels/kernels.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NB_X86_KERNELS 1
#include <immintrin.h>
#endif

#define LANES 16

static int cv_hp(const nb_conv_geom *g) { return g->height + 2 * g->pad_h; }
static int cv_wp(const nb_conv_geom *g) { return g->width + 2 * g->pad_w; }
static int cv_taps(const nb_conv_geom *g) { return g->channels * g->kernel_h * g->kernel_w; }
static int cv_blocks(int out_ch) { return (out_ch + LANES - 1) / LANES; }

int nb_conv_cv_fits(const nb_conv_geom *g, int out_ch) {
    /* Enough output channels to fill most of a vector, and a layer small
     * enough that its packed weights stay in L1/L2 next to the image. */
    if (out_ch < 12) return 0;
    if ((size_t)cv_taps(g) * out_ch > ((size_t)1 << 16)) return 0;
    if ((size_t)g->channels * cv_hp(g) * cv_wp(g) > ((size_t)1 << 16)) return 0;
    return nb_cpu_has_avx512f();
}

size_t nb_conv_cv_packed_floats(const nb_conv_geom *g, int out_ch) {
    return (size_t)cv_blocks(out_ch) * cv_taps(g) * LANES;
}

/* Scratch per call: the padded image, the tap offsets and a transposed
 * block of outputs (or of dy); or the input gradient's column matrix. */
size_t nb_conv_cv_scratch_floats(const nb_conv_geom *g, int out_ch) {
    (void)out_ch;
    size_t ohw = (size_t)g->out_h * g->out_w, k = (size_t)cv_taps(g);
    size_t image = (size_t)g->channels * cv_hp(g) * cv_wp(g) + k + ohw * LANES + 64;
    return image > k * ohw ? image : k * ohw;
}

void nb_conv_cv_pack_weights(const nb_conv_geom *g, int out_ch, const float *w, float *wt) {
    const int k = cv_taps(g);
    for (int b = 0; b < cv_blocks(out_ch); b++)
        for (int t = 0; t < k; t++)
            for (int j = 0; j < LANES; j++) {
                int o = b * LANES + j;
                wt[((size_t)b * k + t) * LANES + j] = o < out_ch ? w[(size_t)o * k + t] : 0.0f;
            }
}

void nb_conv_cv_unpack_grad(const nb_conv_geom *g, int out_ch, const float *dwt, float *dw, int first) {
    const int k = cv_taps(g);
    for (int o = 0; o < out_ch; o++)
        for (int t = 0; t < k; t++) {
            float v = dwt[((size_t)(o / LANES) * k + t) * LANES + o % LANES];
            dw[(size_t)o * k + t] = first ? v : dw[(size_t)o * k + t] + v;
        }
}

#ifdef NB_X86_KERNELS /* the helpers below serve only the AVX-512 kernels */

/* The zero-padded image and the tap offsets, at the front of scratch. */
static float *prepare(const nb_conv_geom *g, const float *x, float *scratch, int **off) {
    const int hp = cv_hp(g), wp = cv_wp(g);
    float *xp = scratch;
    memset(xp, 0, (size_t)g->channels * hp * wp * sizeof(float));
    for (int c = 0; c < g->channels; c++)
        for (int ih = 0; ih < g->height; ih++)
            memcpy(xp + ((size_t)c * hp + ih + g->pad_h) * wp + g->pad_w,
                   x + ((size_t)c * g->height + ih) * g->width, (size_t)g->width * sizeof(float));
    int *o = (int *)(xp + (size_t)g->channels * hp * wp);
    int t = 0;
    for (int c = 0; c < g->channels; c++)
        for (int kh = 0; kh < g->kernel_h; kh++)
            for (int kw = 0; kw < g->kernel_w; kw++) o[t++] = (c * hp + kh) * wp + kw;
    *off = o;
    return xp;
}

/* Where the block buffer starts: after the image and offsets, 64-byte aligned. */
static float *block_of(const nb_conv_geom *g, float *scratch) {
    size_t used = (size_t)g->channels * cv_hp(g) * cv_wp(g) + (size_t)cv_taps(g);
    uintptr_t p = (uintptr_t)(scratch + used);
    return (float *)((p + 63) & ~(uintptr_t)63);
}

/* Position pos's offset into the padded image. */
static inline int base_of(const nb_conv_geom *g, int pos, int wp) {
    int oh = pos / g->out_w, ow = pos % g->out_w;
    return oh * g->stride_h * wp + ow * g->stride_w;
}

/* The blocks below take their count (positions or taps, at most 8) as a
 * constant where the block is full: always_inline then folds every
 * "if (n > j)" away, and only the last, partial block of a sample pays for
 * the tests. */
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))

/* ---- forward ------------------------------------------------------------------ */

#define FWD_DECL(p) __m512 a##p = bias; const float *x##p = xp + (np > (p) ? base_of(g, pos0 + (p), wp) : 0);
#define FWD_FMA(p) if (np > (p)) a##p = _mm512_fmadd_ps(_mm512_set1_ps(x##p[o]), wv, a##p);
#define FWD_STORE(p) if (np > (p)) _mm512_store_ps(out + (size_t)(pos0 + (p)) * LANES, relu ? _mm512_max_ps(a##p, _mm512_setzero_ps()) : a##p);

/* Outputs pos0 .. pos0+np-1 for sixteen channels, into out[pos][16]. */
AVX512_INLINE void fwd_block(const nb_conv_geom *g, const float *xp, const int *off, const float *wb,
                             __m512 bias, float *out, int pos0, const int np, int relu) {
    const int wp = cv_wp(g), k = cv_taps(g);
    FWD_DECL(0) FWD_DECL(1) FWD_DECL(2) FWD_DECL(3) FWD_DECL(4) FWD_DECL(5) FWD_DECL(6) FWD_DECL(7)
    for (int t = 0; t < k; t++) {
        const __m512 wv = _mm512_loadu_ps(wb + (size_t)t * LANES);
        const int o = off[t];
        FWD_FMA(0) FWD_FMA(1) FWD_FMA(2) FWD_FMA(3) FWD_FMA(4) FWD_FMA(5) FWD_FMA(6) FWD_FMA(7)
    }
    FWD_STORE(0) FWD_STORE(1) FWD_STORE(2) FWD_STORE(3) FWD_STORE(4) FWD_STORE(5) FWD_STORE(6) FWD_STORE(7)
}

__attribute__((target("avx512f"))) static void cv_forward_avx512(const nb_conv_geom *g, int out_ch,
                                                              const float *x, const float *wt,
                                                              const float *b, float *y,
                                                              float *scratch, int relu) {
    int *off;
    const float *xp = prepare(g, x, scratch, &off);
    float *out = block_of(g, scratch);
    const int k = cv_taps(g), ohw = g->out_h * g->out_w;
    for (int blk = 0; blk < cv_blocks(out_ch); blk++) {
        const int valid = out_ch - blk * LANES < LANES ? out_ch - blk * LANES : LANES;
        const __mmask16 vm = (__mmask16)((1u << valid) - 1);
        const __m512 bias = b ? _mm512_maskz_loadu_ps(vm, b + blk * LANES) : _mm512_setzero_ps();
        const float *wb = wt + (size_t)blk * k * LANES;
        int pos0 = 0;
        for (; pos0 + 8 <= ohw; pos0 += 8) fwd_block(g, xp, off, wb, bias, out, pos0, 8, relu);
        if (pos0 < ohw) fwd_block(g, xp, off, wb, bias, out, pos0, ohw - pos0, relu);
        /* out is [position][16 channels]; y wants each channel's plane. */
        for (int j = 0; j < valid; j++) {
            float *yo = y + (size_t)(blk * LANES + j) * ohw;
            for (int pos = 0; pos < ohw; pos++) yo[pos] = out[(size_t)pos * LANES + j];
        }
    }
}

/* ---- weight gradient ---------------------------------------------------------- */

#define WG_DECL(j) __m512 a##j = first || nt <= (j) ? _mm512_setzero_ps() : _mm512_loadu_ps(dwb + (size_t)(t0 + (j)) * LANES); \
    const int o##j = nt > (j) ? off[t0 + (j)] : 0;
#define WG_FMA(j) if (nt > (j)) a##j = _mm512_fmadd_ps(_mm512_set1_ps(xq[o##j]), d, a##j);
#define WG_STORE(j) if (nt > (j)) _mm512_storeu_ps(dwb + (size_t)(t0 + (j)) * LANES, a##j);

/* Taps t0 .. t0+nt-1 of sixteen channels, summed over every position. */
AVX512_INLINE void wg_block(const nb_conv_geom *g, const float *xp, const int *off, const float *dyt,
                            float *dwb, int first, int t0, const int nt) {
    const int wp = cv_wp(g), ohw = g->out_h * g->out_w;
    WG_DECL(0) WG_DECL(1) WG_DECL(2) WG_DECL(3) WG_DECL(4) WG_DECL(5) WG_DECL(6) WG_DECL(7)
    for (int oh = 0, pos = 0; oh < g->out_h; oh++) {
        const float *xq = xp + oh * g->stride_h * wp;
        for (int ow = 0; ow < g->out_w; ow++, pos++, xq += g->stride_w) {
            const __m512 d = _mm512_load_ps(dyt + (size_t)pos * LANES);
            WG_FMA(0) WG_FMA(1) WG_FMA(2) WG_FMA(3) WG_FMA(4) WG_FMA(5) WG_FMA(6) WG_FMA(7)
        }
    }
    (void)ohw;
    WG_STORE(0) WG_STORE(1) WG_STORE(2) WG_STORE(3) WG_STORE(4) WG_STORE(5) WG_STORE(6) WG_STORE(7)
}

__attribute__((target("avx512f"))) static void cv_weight_grad_avx512(const nb_conv_geom *g, int out_ch,
                                                                  const float *x, const float *dy,
                                                                  float *dwt, int first,
                                                                  float *scratch) {
    int *off;
    const float *xp = prepare(g, x, scratch, &off);
    float *dyt = block_of(g, scratch);
    const int k = cv_taps(g), ohw = g->out_h * g->out_w;
    for (int blk = 0; blk < cv_blocks(out_ch); blk++) {
        const int valid = out_ch - blk * LANES < LANES ? out_ch - blk * LANES : LANES;
        /* dy of this block of channels as [position][16], zero past the last. */
        for (int pos = 0; pos < ohw; pos++)
            for (int j = 0; j < LANES; j++)
                dyt[(size_t)pos * LANES + j] = j < valid ? dy[(size_t)(blk * LANES + j) * ohw + pos] : 0.0f;
        float *dwb = dwt + (size_t)blk * k * LANES;
        int t0 = 0;
        for (; t0 + 8 <= k; t0 += 8) wg_block(g, xp, off, dyt, dwb, first, t0, 8);
        if (t0 < k) wg_block(g, xp, off, dyt, dwb, first, t0, k - t0);
    }
}

/* ---- input gradient ------------------------------------------------------------ */

/* The column matrix of the input gradient, cols[t][pos] = sum over o of
 * w[o][t] dy[o][pos], sixteen positions per vector and eight taps at once;
 * then col2im adds each column onto the pixel it came from. */
#define IG_DECL(j) __m512 a##j = _mm512_setzero_ps();
#define IG_FMA(j) if (nt > (j)) a##j = _mm512_fmadd_ps(_mm512_set1_ps(wo[t0 + (j)]), d, a##j);
#define IG_STORE(j) if (nt > (j)) _mm512_mask_storeu_ps(cols + (size_t)(t0 + (j)) * ohw + p0, pm, a##j);

AVX512_INLINE void ig_block(const float *w, const float *dy, float *cols, int out_ch, int k, int ohw,
                            int p0, __mmask16 pm, int t0, const int nt) {
    IG_DECL(0) IG_DECL(1) IG_DECL(2) IG_DECL(3) IG_DECL(4) IG_DECL(5) IG_DECL(6) IG_DECL(7)
    for (int o = 0; o < out_ch; o++) {
        const __m512 d = _mm512_maskz_loadu_ps(pm, dy + (size_t)o * ohw + p0);
        const float *wo = w + (size_t)o * k;
        IG_FMA(0) IG_FMA(1) IG_FMA(2) IG_FMA(3) IG_FMA(4) IG_FMA(5) IG_FMA(6) IG_FMA(7)
    }
    IG_STORE(0) IG_STORE(1) IG_STORE(2) IG_STORE(3) IG_STORE(4) IG_STORE(5) IG_STORE(6) IG_STORE(7)
}

__attribute__((target("avx512f"))) static void cv_input_grad_avx512(const nb_conv_geom *g, int out_ch,
                                                                 const float *w, const float *dy,
                                                                 float *dx, float *scratch) {
    const int k = cv_taps(g), ohw = g->out_h * g->out_w;
    float *cols = scratch;
    for (int p0 = 0; p0 < ohw; p0 += LANES) {
        const __mmask16 pm = (__mmask16)(ohw - p0 >= LANES ? 0xffff : (1u << (ohw - p0)) - 1);
        int t0 = 0;
        for (; t0 + 8 <= k; t0 += 8) ig_block(w, dy, cols, out_ch, k, ohw, p0, pm, t0, 8);
        if (t0 < k) ig_block(w, dy, cols, out_ch, k, ohw, p0, pm, t0, k - t0);
    }
    if (g->stride_w != 1 || cv_wp(g) > LANES) {
        nb_col2im_add(g, cols, 1, dx);
        return;
    }
    /* Stride 1 and a padded row of at most 16: each input row (c, ih) is
     * summed in a register from the column rows that reach it, every kh
     * whose output row oh = ih + pad - kh exists and every kw, shifted into
     * place by a masked load from kw floats before the column row (element
     * ow lands in lane ow + kw), then added to dx in one masked access. */
    const int hp = cv_hp(g);
    const __mmask16 row_mask = (__mmask16)((1u << g->out_w) - 1);
    const __mmask16 in_mask = (__mmask16)(((1u << g->width) - 1) << g->pad_w);
    for (int c = 0; c < g->channels; c++)
        for (int r = g->pad_h; r < g->pad_h + g->height; r++) {
            __m512 acc = _mm512_setzero_ps();
            for (int kh = 0; kh < g->kernel_h; kh++) {
                const int oh = r - kh;
                if (oh < 0 || oh >= g->out_h) continue;
                const float *src = cols + ((size_t)(c * g->kernel_h + kh) * g->kernel_w) * ohw + (size_t)oh * g->out_w;
                /* Each kh its own chain of adds, so the rows overlap in flight. */
                __m512 part = _mm512_setzero_ps();
                for (int kw = 0; kw < g->kernel_w; kw++, src += ohw)
                    part = _mm512_add_ps(part, _mm512_maskz_loadu_ps((__mmask16)(row_mask << kw), src - kw));
                acc = _mm512_add_ps(acc, part);
            }
            float *dst = dx + ((size_t)c * g->height + r - g->pad_h) * g->width - g->pad_w;
            _mm512_mask_storeu_ps(dst, in_mask, _mm512_add_ps(_mm512_maskz_loadu_ps(in_mask, dst), acc));
        }
    (void)hp;
}
#endif

void nb_conv_cv_forward(const nb_conv_geom *g, int out_ch, const float *x, const float *wt,
                        const float *b, float *y, float *scratch, int relu) {
#ifdef NB_X86_KERNELS
    cv_forward_avx512(g, out_ch, x, wt, b, y, scratch, relu);
#else
    (void)g, (void)out_ch, (void)x, (void)wt, (void)b, (void)y, (void)scratch, (void)relu;
#endif
}

void nb_conv_cv_weight_grad(const nb_conv_geom *g, int out_ch, const float *x, const float *dy,
                            float *dwt, int first, float *scratch) {
#ifdef NB_X86_KERNELS
    cv_weight_grad_avx512(g, out_ch, x, dy, dwt, first, scratch);
#else
    (void)g, (void)out_ch, (void)x, (void)dy, (void)dwt, (void)first, (void)scratch;
#endif
}

void nb_conv_cv_input_grad(const nb_conv_geom *g, int out_ch, const float *w, const float *dy,
                           float *dx, float *scratch) {
#ifdef NB_X86_KERNELS
    cv_input_grad_avx512(g, out_ch, w, dy, dx, scratch);
#else
    (void)g, (void)out_ch, (void)w, (void)dy, (void)dx, (void)scratch;
#endif
}
