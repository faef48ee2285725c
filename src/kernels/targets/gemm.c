/* targets/gemm.c — the GEMM's inner kernels, written once over simd.h and
 * built per target. The blocking, packing of A, threads and the choice of
 * path are the driver's (src/kernels/gemm.c); the layouts are its. */
#include "kernels/targets/targets.h"

static inline int min_int(int a, int b) { return a < b ? a : b; }

/* ---- micro-kernel -------------------------------------------------------------
 * One full GEMM_MR x GEMM_NR tile: acc = sum over k of a[k*MR + i] *
 * b[k*NR + j] (the packed slivers), then c = alpha*acc + beta*c, where
 * beta == 0 means c is not read. The store is a multiply and an add, not an
 * FMA, so that edge tiles, finished in scalar code from a kernel run with
 * alpha = 1, beta = 0, round exactly like full ones. The loops over the
 * tile are unrolled whole, so the accumulators are registers. */
void NB_K(gemm_tile)(int kc, const float *a, const float *b, float *c, int ldc, float alpha, float beta) {
    vf acc[GEMM_MR][GEMM_NV];
#pragma GCC unroll 8
    for (int i = 0; i < GEMM_MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < GEMM_NV; j++) acc[i][j] = vf_zero();
    for (int k = 0; k < kc; k++, a += GEMM_MR, b += GEMM_NR) {
        vf bv[GEMM_NV];
#pragma GCC unroll 4
        for (int j = 0; j < GEMM_NV; j++) bv[j] = vf_load(b + j * NB_LANES);
#pragma GCC unroll 8
        for (int i = 0; i < GEMM_MR; i++) {
            const vf ai = vf_set1(a[i]);
#pragma GCC unroll 4
            for (int j = 0; j < GEMM_NV; j++) acc[i][j] = vf_fma(ai, bv[j], acc[i][j]);
        }
    }
    const vf va = vf_set1(alpha), vb = vf_set1(beta);
#pragma GCC unroll 8
    for (int i = 0; i < GEMM_MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < GEMM_NV; j++) {
            float *cij = c + (size_t)i * ldc + j * NB_LANES;
            vf v = vf_mul(va, acc[i][j]);
            if (beta != 0.0f) v = vf_add(v, vf_mul(vb, vf_load(cij)));
            vf_store(cij, v);
        }
}

/* ---- packing a panel whose k is contiguous ---------------------------------------
 * Rows j0 .. j0+cols-1 of a matrix stored with k along each row (a
 * transposed B, N x K, or a plain A, M x K), columns p0 .. p0+kc-1, into
 * dst[k*nr + j], zero past `cols`: NB_LANES x NB_LANES blocks at a time,
 * transposed in registers. A scalar transpose cost as much as a third of a
 * weight-gradient product (dY cols^T, whose B is wide and packed by every
 * thread), and packing A one float at a time a tenth of a square product.
 * Rows past `cols` and k past `kc` load as zeros; only rows k < kc are
 * stored. A sliver narrower than a vector (A's 6 rows in 8 or 16 lanes) is
 * stored a whole vector per k, each store's spare lanes overwritten by the
 * next k's, and partial stores where a whole one would reach past the
 * sliver's end (the last k or two), so nothing past the sliver is written. The same floats land in the same places as a scalar packer
 * puts them. */
void NB_K(gemm_pack_k_contiguous)(const float *B, int ldb, int p0, int kc, int j0, int cols, int nr, float *dst) {
    for (int k0 = 0; k0 < kc; k0 += NB_LANES) {
        const int run = min_int(NB_LANES, kc - k0);
        for (int jb = 0; jb < nr; jb += NB_LANES) {
            vf r[NB_LANES];
            for (int i = 0; i < NB_LANES; i++)
                r[i] = jb + i < cols ? vf_load_n(B + (size_t)(j0 + jb + i) * ldb + p0 + k0, run) : vf_zero();
            vf_transpose(r);
            const int width = min_int(NB_LANES, nr - jb);
            for (int k = 0; k < run; k++) {
                float *d = dst + (size_t)(k0 + k) * nr + jb;
                if (width == NB_LANES || (nr < NB_LANES && (k0 + k) * nr + NB_LANES <= kc * nr)) vf_store(d, r[k]);
                else vf_store_part(d, r[k], width);
            }
        }
    }
}

/* ---- few rows: a fully-connected layer on a small batch ---------------------
 * (see the driver for why B is read where it lies). The kernels take M as
 * a constant (a switch picks 1..8), so their per-row accumulators are
 * registers, not an array in memory. Each element is summed in an order
 * fixed by K and the lane count, whichever thread computes it. */
#define SMALL_M NB_GEMM_SMALL_M
/* How far ahead (floats) the kernels ask for B's next lines: the hardware
 * prefetcher alone, following two to sixteen streams, left these products
 * at a third of the memory bandwidth (measured on Zen 4). */
#define PREFETCH_AHEAD 512

static inline void store_c(float *c, float v, float alpha, float beta) {
    *c = alpha * v + (beta == 0.0f ? 0.0f : beta * *c);
}

#define SMALL_M_DISPATCH(FN, ...)                                                                   \
    switch (M) {                                                                                    \
    case 1: FN(__VA_ARGS__, 1); break;                                                              \
    case 2: FN(__VA_ARGS__, 2); break;                                                              \
    case 3: FN(__VA_ARGS__, 3); break;                                                              \
    case 4: FN(__VA_ARGS__, 4); break;                                                              \
    case 5: FN(__VA_ARGS__, 5); break;                                                              \
    case 6: FN(__VA_ARGS__, 6); break;                                                              \
    case 7: FN(__VA_ARGS__, 7); break;                                                              \
    default: FN(__VA_ARGS__, 8); break;                                                             \
    }

/* trans_b: C[m][n] = sum over k of A[m][k] B[n][k], DOT_ROWS rows of B
 * against all M rows of A (packed [k / lanes][m][lanes], zero past K), one
 * vector of k at a time, then across the lanes. */
NB_VINLINE void dot_body(const nb_gemm_args *g, const float *ap, int n0, int n1, const int M) {
    const int K = g->K;
    for (int n = n0; n < n1; n += DOT_ROWS) {
        const int rows = min_int(DOT_ROWS, n1 - n);
        const float *b[DOT_ROWS];
        for (int r = 0; r < DOT_ROWS; r++) b[r] = g->B + (size_t)(n + (r < rows ? r : 0)) * g->ldb;
        vf acc[DOT_ROWS][SMALL_M];
#pragma GCC unroll 8
        for (int m = 0; m < M; m++)
#pragma GCC unroll 3
            for (int r = 0; r < DOT_ROWS; r++) acc[r][m] = vf_zero();
        const float *a = ap;
        int k = 0;
        for (; k + NB_LANES <= K; k += NB_LANES, a += NB_LANES * M) {
            vf v[DOT_ROWS];
#pragma GCC unroll 3
            for (int r = 0; r < DOT_ROWS; r++) {
                __builtin_prefetch(b[r] + k + PREFETCH_AHEAD);
                v[r] = vf_load(b[r] + k);
            }
#pragma GCC unroll 8
            for (int m = 0; m < M; m++) {
                const vf am = vf_load(a + NB_LANES * m);
#pragma GCC unroll 3
                for (int r = 0; r < DOT_ROWS; r++) acc[r][m] = vf_fma(am, v[r], acc[r][m]);
            }
        }
        if (k < K) {
            vf v[DOT_ROWS];
#pragma GCC unroll 3
            for (int r = 0; r < DOT_ROWS; r++) v[r] = vf_load_part(b[r] + k, K - k);
#pragma GCC unroll 8
            for (int m = 0; m < M; m++) {
                const vf am = vf_load(a + NB_LANES * m); /* zero past K */
#pragma GCC unroll 3
                for (int r = 0; r < DOT_ROWS; r++) acc[r][m] = vf_fma(am, v[r], acc[r][m]);
            }
        }
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) {
            float *c = g->C + (size_t)m * g->ldc + n;
            for (int r = 0; r < rows; r++) store_c(c + r, vf_hsum(acc[r][m]), g->alpha, g->beta);
        }
    }
}

void NB_K(gemm_few_rows_dot)(const nb_gemm_args *g, const float *ap, int M, int n0, int n1) {
    SMALL_M_DISPATCH(dot_body, g, ap, n0, n1)
}

/* Not transposed: C[m][n] = sum over k of A[m][k] B[k][n]. B is walked a
 * band of rows at a time, each row read whole and in order (a column block
 * per row would hop a page per row); AXPY_NV vectors of columns for all M
 * rows stay in registers while k walks down the band, and the sums wait in
 * acc [M][n1 - n0] between bands, every element adding its k in order. */
#define AXPY_BAND 16
#define AXPY_W (AXPY_NV * NB_LANES)
NB_VINLINE void axpy_body(const nb_gemm_args *g, int n0, int n1, float *acc, const int M) {
    const int width = n1 - n0;
    for (int k0 = 0; k0 < g->K; k0 += AXPY_BAND) {
        const int k1 = min_int(g->K, k0 + AXPY_BAND);
        for (int n = 0; n < width; n += AXPY_W) {
            vf s[SMALL_M][AXPY_NV];
#pragma GCC unroll 8
            for (int m = 0; m < M; m++)
#pragma GCC unroll 3
                for (int j = 0; j < AXPY_NV; j++)
                    s[m][j] = k0 ? vf_load_n(acc + (size_t)m * width + n + j * NB_LANES, width - n - j * NB_LANES) : vf_zero();
            const float *b = g->B + (size_t)k0 * g->ldb + n0 + n;
            for (int k = k0; k < k1; k++, b += g->ldb) {
                vf v[AXPY_NV];
#pragma GCC unroll 3
                for (int j = 0; j < AXPY_NV; j++) {
                    __builtin_prefetch(b + PREFETCH_AHEAD + j * NB_LANES);
                    v[j] = vf_load_n(b + j * NB_LANES, width - n - j * NB_LANES);
                }
#pragma GCC unroll 8
                for (int m = 0; m < M; m++) {
                    const vf a = vf_set1(g->A[(size_t)m * g->lda + k]);
#pragma GCC unroll 3
                    for (int j = 0; j < AXPY_NV; j++) s[m][j] = vf_fma(a, v[j], s[m][j]);
                }
            }
#pragma GCC unroll 8
            for (int m = 0; m < M; m++)
#pragma GCC unroll 3
                for (int j = 0; j < AXPY_NV; j++)
                    vf_store_n(acc + (size_t)m * width + n + j * NB_LANES, s[m][j], width - n - j * NB_LANES);
        }
    }
    for (int m = 0; m < M; m++)
        for (int n = 0; n < width; n++) store_c(g->C + (size_t)m * g->ldc + n0 + n, acc[(size_t)m * width + n], g->alpha, g->beta);
}

void NB_K(gemm_few_rows_axpy)(const nb_gemm_args *g, int M, int n0, int n1, float *acc) {
    SMALL_M_DISPATCH(axpy_body, g, n0, n1, acc)
}

/* ---- short K: a fully-connected layer's weight gradient ----------------------
 * Rows m0..m1-1 of C = alpha op(A) B + beta C with K <= 16 (B stored K x N,
 * a few rows that stay in L2). Writing C is the whole cost, so where C is
 * written (beta == 0) whole vectors go out with streaming stores, from each
 * row's first vector-aligned element on: a store through the cache first
 * reads every line it will overwrite. Each element sums its k in order from
 * zero and is then scaled by alpha, as the micro-kernel does. */
#define SMALL_K NB_GEMM_SMALL_K
void NB_K(gemm_short_k_rows)(const nb_gemm_args *g, int N, int m0, int m1) {
    const int K = g->K;
    const vf va = vf_set1(g->alpha), vb = vf_set1(g->beta);
    for (int i = m0; i < m1; i++) {
        float a[SMALL_K];
        for (int k = 0; k < K; k++) a[k] = g->trans_a ? g->A[(size_t)k * g->lda + i] : g->A[(size_t)i * g->lda + k];
        float *c = g->C + (size_t)i * g->ldc;
        const int stream = g->beta == 0.0f && ((uintptr_t)c & 3) == 0;
        for (int n = 0, width; n < N; n += width) {
            const int misaligned = (int)(((uintptr_t)(c + n) & (NB_VBYTES - 1)) / sizeof(float));
            width = misaligned ? NB_LANES - misaligned : NB_LANES;
            if (width > N - n) width = N - n;
            vf acc = vf_zero();
            for (int k = 0; k < K; k++) acc = vf_fma(vf_set1(a[k]), vf_load_n(g->B + (size_t)k * g->ldb + n, width), acc);
            acc = vf_mul(va, acc);
            if (g->beta != 0.0f) acc = vf_add(acc, vf_mul(vb, vf_load_n(c + n, width)));
            if (stream && width == NB_LANES && !misaligned) vf_stream(c + n, acc);
            else vf_store_n(c + n, acc, width);
        }
    }
    vf_stream_fence(); /* the streamed lines are out before the caller reads C */
}
