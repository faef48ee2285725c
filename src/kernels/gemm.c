/* gemm.c — single-precision matrix multiply.
 *
 * The classic packed, cache-blocked scheme (Goto and van de Geijn): op(B) is
 * cut into KC x NC panels that are packed into NR-wide slivers, op(A) into
 * MC x KC blocks packed into MR-tall slivers, and a register-blocked
 * micro-kernel multiplies one A sliver by one B sliver into an MR x NR tile
 * of C. Packing makes the kernel's loads contiguous and keeps the B sliver in
 * L1 and the A block in L2 while they are reused.
 *
 * Determinism: threads split only the tiles of C, never K. Every element is
 * summed the same way (k in order within a KC block by the kernel, then the
 * KC blocks one after another into C, always starting at k = 0) whichever
 * thread computes it, so results do not depend on the thread count.
 *
 * The micro-kernels are compiled for AVX-512 and AVX2 through function
 * target attributes and chosen at run time, so the library itself still runs
 * on any x86-64 CPU; a portable C kernel serves everywhere else. */
#include "kernels/kernels.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NB_X86_KERNELS 1
#include <immintrin.h>
#endif

void nb_sgemm_reference(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                        int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float acc = 0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = alpha * acc + (beta == 0.0f ? 0.0f : beta * *c);
        }
}

/* ---- micro-kernels ----------------------------------------------------------
 * Each computes one full MR x NR tile: acc = sum over k of a[k*MR + i] *
 * b[k*NR + j] (the packed slivers), then c = alpha*acc + beta*c, where
 * beta == 0 means c is not read. The store is a multiply and an add, not an
 * FMA, so that edge tiles, finished in scalar code from a kernel run with
 * alpha = 1, beta = 0, round exactly like full ones. */
typedef void (*ukernel_fn)(int kc, const float *a, const float *b, float *c, int ldc, float alpha,
                           float beta);

#define MR_MAX 8
#define NR_MAX 32

#define GEN_MR 4
#define GEN_NR 16

static void kernel_generic(int kc, const float *a, const float *b, float *c, int ldc, float alpha,
                           float beta) {
    float acc[GEN_MR][GEN_NR] = {{0}};
    for (int k = 0; k < kc; k++, a += GEN_MR, b += GEN_NR)
        for (int i = 0; i < GEN_MR; i++)
            for (int j = 0; j < GEN_NR; j++) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < GEN_MR; i++)
        for (int j = 0; j < GEN_NR; j++) {
            float *cij = &c[(size_t)i * ldc + j];
            *cij = alpha * acc[i][j] + (beta == 0.0f ? 0.0f : beta * *cij);
        }
}

#ifdef NB_X86_KERNELS
/* Rows are spelled out by macros rather than loops over arrays of vectors:
 * the accumulators must live in registers, and an array invites spills. */
#define AVX2_FMA_ROW(i)                                                                        \
    do {                                                                                       \
        __m256 ai = _mm256_broadcast_ss(a + (i));                                              \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                                            \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);                                            \
    } while (0)
#define AVX2_STORE_ROW(i)                                                                      \
    do {                                                                                       \
        float *ci = c + (size_t)(i) * ldc;                                                     \
        __m256 v0 = _mm256_mul_ps(va, c##i##0), v1 = _mm256_mul_ps(va, c##i##1);               \
        if (beta != 0.0f) {                                                                    \
            v0 = _mm256_add_ps(v0, _mm256_mul_ps(vb, _mm256_loadu_ps(ci)));                    \
            v1 = _mm256_add_ps(v1, _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8)));                \
        }                                                                                      \
        _mm256_storeu_ps(ci, v0);                                                              \
        _mm256_storeu_ps(ci + 8, v1);                                                          \
    } while (0)

/* 6 x 16: twelve ymm accumulators, two for B and one broadcast of 16. */
__attribute__((target("avx2,fma"))) static void kernel_avx2(int kc, const float *a, const float *b,
                                                            float *c, int ldc, float alpha,
                                                            float beta) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int k = 0; k < kc; k++, a += 6, b += 16) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        AVX2_FMA_ROW(0);
        AVX2_FMA_ROW(1);
        AVX2_FMA_ROW(2);
        AVX2_FMA_ROW(3);
        AVX2_FMA_ROW(4);
        AVX2_FMA_ROW(5);
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    AVX2_STORE_ROW(0);
    AVX2_STORE_ROW(1);
    AVX2_STORE_ROW(2);
    AVX2_STORE_ROW(3);
    AVX2_STORE_ROW(4);
    AVX2_STORE_ROW(5);
}

#define AVX512_FMA_ROW(i)                                                                      \
    do {                                                                                       \
        __m512 ai = _mm512_set1_ps(a[i]);                                                      \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0);                                            \
        c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);                                            \
    } while (0)
#define AVX512_STORE_ROW(i)                                                                    \
    do {                                                                                       \
        float *ci = c + (size_t)(i) * ldc;                                                     \
        __m512 v0 = _mm512_mul_ps(va, c##i##0), v1 = _mm512_mul_ps(va, c##i##1);               \
        if (beta != 0.0f) {                                                                    \
            v0 = _mm512_add_ps(v0, _mm512_mul_ps(vb, _mm512_loadu_ps(ci)));                    \
            v1 = _mm512_add_ps(v1, _mm512_mul_ps(vb, _mm512_loadu_ps(ci + 16)));               \
        }                                                                                      \
        _mm512_storeu_ps(ci, v0);                                                              \
        _mm512_storeu_ps(ci + 16, v1);                                                         \
    } while (0)

/* 6 x 32: twelve zmm accumulators; per k, 12 FMAs against 2 loads and 6
 * broadcasts, so the FMA units rather than the load ports set the pace. */
__attribute__((target("avx512f"))) static void kernel_avx512(int kc, const float *a,
                                                             const float *b, float *c, int ldc,
                                                             float alpha, float beta) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int k = 0; k < kc; k++, a += 6, b += 32) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        AVX512_FMA_ROW(0);
        AVX512_FMA_ROW(1);
        AVX512_FMA_ROW(2);
        AVX512_FMA_ROW(3);
        AVX512_FMA_ROW(4);
        AVX512_FMA_ROW(5);
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    AVX512_STORE_ROW(0);
    AVX512_STORE_ROW(1);
    AVX512_STORE_ROW(2);
    AVX512_STORE_ROW(3);
    AVX512_STORE_ROW(4);
    AVX512_STORE_ROW(5);
}
#endif

/* A micro-kernel and the blocking that suits it: an MC x KC block of A and
 * the KC x NR sliver of B it meets stay in L2, a KC x NC panel of B in L3.
 * KC is long: measured on a Zen 4 core (1024^3, one thread), KC = 256 gave
 * 76-90 GFLOP/s and KC = 1024 gave 102-106 (90% of the FMA peak). Each
 * kernel call then streams its slivers from L2 for a thousand steps of k,
 * and loading, scaling and storing the C tile, and repacking A for every
 * KC block, become rare. */
typedef struct {
    const char *name;
    int mr, nr, kc, mc, nc;
    ukernel_fn fn;
} gemm_kernel;

static const gemm_kernel generic_kernel = {"generic", GEN_MR, GEN_NR, 256, 64, 1024, kernel_generic};
#ifdef NB_X86_KERNELS
static const gemm_kernel avx2_kernel = {"avx2", 6, 16, 512, 120, 2048, kernel_avx2};
static const gemm_kernel avx512_kernel = {"avx512", 6, 32, 1024, 96, 2048, kernel_avx512};
#endif

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static const gemm_kernel *detected;
static const gemm_kernel *forced;

static void detect(void) {
    detected = &generic_kernel;
#ifdef NB_X86_KERNELS
    if (nb_cpu_has_avx2_fma()) detected = &avx2_kernel;
    if (nb_cpu_has_avx512f()) detected = &avx512_kernel;
#endif
}

static const gemm_kernel *current_kernel(void) {
    pthread_once(&detect_once, detect);
    return forced ? forced : detected;
}

int nb_gemm_use(nb_gemm_path path) {
    switch (path) {
    case NB_GEMM_AUTO: forced = NULL; return 1;
    case NB_GEMM_GENERIC: forced = &generic_kernel; return 1;
#ifdef NB_X86_KERNELS
    case NB_GEMM_AVX2:
        if (!nb_cpu_has_avx2_fma()) return 0;
        forced = &avx2_kernel;
        return 1;
    case NB_GEMM_AVX512:
        if (!nb_cpu_has_avx512f()) return 0;
        forced = &avx512_kernel;
        return 1;
#endif
    default: return 0;
    }
}

const char *nb_gemm_kernel_name(void) { return current_kernel()->name; }

/* ---- packing buffers --------------------------------------------------------
 * One buffer per calling thread, grown on demand and kept, so steady-state
 * calls allocate nothing and concurrent callers never share one. It comes
 * from the C library, not nb_alloc: a kernel cannot report failure (it falls
 * back to the reference loop instead, whose rounding differs, a price paid
 * only when memory has run out), and a cache that outlives any graph
 * must not live in an embedder's heap that may be torn down. A thread-exit
 * destructor frees it for threads other than the main one. */
static _Thread_local struct {
    float *data;
    size_t cap;
} pack;
static pthread_key_t pack_key;
static pthread_once_t pack_key_once = PTHREAD_ONCE_INIT;
static bool pack_key_ok;

static void free_pack(void *p) { free(p); }
static void make_pack_key(void) { pack_key_ok = pthread_key_create(&pack_key, free_pack) == 0; }

static float *pack_space(size_t floats) {
    if (floats <= pack.cap) return pack.data;
    size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (!p) return NULL;
    free(pack.data);
    pack.data = p;
    pack.cap = floats;
    pthread_once(&pack_key_once, make_pack_key);
    if (pack_key_ok) pthread_setspecific(pack_key, p);
    return p;
}

/* ---- packing ---------------------------------------------------------------- */

/* Rows i0 .. i0+rows-1 (rows <= mr) and columns p0 .. p0+kc-1 of op(A) into
 * dst[k*mr + r], zero-filled up to mr rows. */
static void pack_a(int trans_a, const float *A, int lda, int i0, int rows, int p0, int kc, int mr,
                   float *dst) {
    if (trans_a) {
        for (int k = 0; k < kc; k++) {
            const float *src = A + (size_t)(p0 + k) * lda + i0;
            float *d = dst + (size_t)k * mr;
            for (int r = 0; r < rows; r++) d[r] = src[r];
            for (int r = rows; r < mr; r++) d[r] = 0.0f;
        }
        return;
    }
    for (int r = 0; r < rows; r++) {
        const float *src = A + (size_t)(i0 + r) * lda + p0;
        for (int k = 0; k < kc; k++) dst[(size_t)k * mr + r] = src[k];
    }
    for (int r = rows; r < mr; r++)
        for (int k = 0; k < kc; k++) dst[(size_t)k * mr + r] = 0.0f;
}

/* Rows p0 .. p0+kc-1 and columns j0 .. j0+cols-1 (cols <= nr) of op(B) into
 * dst[k*nr + j], zero-filled up to nr columns. */
static void pack_b(int trans_b, const float *B, int ldb, int p0, int kc, int j0, int cols, int nr,
                   float *dst) {
    if (!trans_b) {
        for (int k = 0; k < kc; k++) {
            const float *src = B + (size_t)(p0 + k) * ldb + j0;
            float *d = dst + (size_t)k * nr;
            /* Fixed-size chunks, which the compiler turns into vector moves:
             * a call to memcpy costs more than copying one short row. */
            int j = 0;
            for (; j + 16 <= cols; j += 16) memcpy(d + j, src + j, 16 * sizeof(float));
            for (; j < cols; j++) d[j] = src[j];
            for (; j < nr; j++) d[j] = 0.0f;
        }
        return;
    }
    /* A transpose: walk k in short runs so the reads stay sequential in each
     * of the nr source rows and the writes stay inside a few cache lines. */
    enum { RUN = 16 };
    for (int k0 = 0; k0 < kc; k0 += RUN) {
        int k1 = k0 + RUN < kc ? k0 + RUN : kc;
        for (int j = 0; j < cols; j++) {
            const float *src = B + (size_t)(j0 + j) * ldb + p0;
            for (int k = k0; k < k1; k++) dst[(size_t)k * nr + j] = src[k];
        }
        for (int j = cols; j < nr; j++)
            for (int k = k0; k < k1; k++) dst[(size_t)k * nr + j] = 0.0f;
    }
}

#ifdef NB_X86_KERNELS
/* pack_b's transpose for the AVX-512 kernel (nr a multiple of 16), sixteen
 * by sixteen in registers: B's rows j (k contiguous) become the sliver's
 * rows k (j contiguous). The scalar transpose above costs as much as a
 * third of a weight-gradient product (dY cols^T), whose B is wide and is
 * packed for every thread. Rows past `cols` and k past `kc` load as zeros,
 * which is the zero fill; only rows k < kc are stored. The same floats land
 * in the same places as pack_b's, so results do not change. */
__attribute__((target("avx512f"))) static void pack_b_transposed_avx512(const float *B, int ldb, int p0,
                                                                        int kc, int j0, int cols, int nr,
                                                                        float *dst) {
    for (int k0 = 0; k0 < kc; k0 += 16) {
        const int run = kc - k0 < 16 ? kc - k0 : 16;
        const __mmask16 kmask = (__mmask16)(run == 16 ? 0xffff : (1u << run) - 1);
        for (int jb = 0; jb < nr; jb += 16) {
            __m512 r[16], t[16], u[16];
            for (int i = 0; i < 16; i++)
                r[i] = jb + i < cols ? _mm512_maskz_loadu_ps(kmask, B + (size_t)(j0 + jb + i) * ldb + p0 + k0)
                                     : _mm512_setzero_ps();
            /* 32-bit pairs, then 64-bit pairs: u[4i + q], 128-bit lane L,
             * holds column 4L + q of rows 4i .. 4i+3. */
            for (int i = 0; i < 16; i += 2) {
                t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
                t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
            }
            for (int i = 0; i < 16; i += 4) {
                const __m512d t0 = _mm512_castps_pd(t[i]), t1 = _mm512_castps_pd(t[i + 1]);
                const __m512d t2 = _mm512_castps_pd(t[i + 2]), t3 = _mm512_castps_pd(t[i + 3]);
                u[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
                u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
                u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
                u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
            }
            /* Gather lane L of u[q], u[4+q], u[8+q], u[12+q]: column 4L + q. */
            for (int q = 0; q < 4; q++) {
                const __m512 v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x44);
                const __m512 v1 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x44);
                const __m512 v2 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xEE);
                const __m512 v3 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xEE);
                const __m512 col[4] = {_mm512_shuffle_f32x4(v0, v1, 0x88), _mm512_shuffle_f32x4(v0, v1, 0xDD),
                                       _mm512_shuffle_f32x4(v2, v3, 0x88), _mm512_shuffle_f32x4(v2, v3, 0xDD)};
                for (int l = 0; l < 4; l++) {
                    const int k = 4 * l + q;
                    if (k < run) _mm512_storeu_ps(dst + (size_t)(k0 + k) * nr + jb, col[l]);
                }
            }
        }
    }
}
#endif

/* ---- the blocked product ------------------------------------------------------ */

static void run_tile(const gemm_kernel *kr, int kc, const float *a, const float *b, float *c,
                     int ldc, int rows, int cols, float alpha, float beta) {
    if (rows == kr->mr && cols == kr->nr) {
        kr->fn(kc, a, b, c, ldc, alpha, beta);
        return;
    }
    _Alignas(64) float tmp[MR_MAX * NR_MAX];
    kr->fn(kc, a, b, tmp, kr->nr, 1.0f, 0.0f);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            float *cij = &c[(size_t)i * ldc + j];
            *cij = alpha * tmp[i * kr->nr + j] + (beta == 0.0f ? 0.0f : beta * *cij);
        }
}

static void scale_c(int M, int N, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) memset(c, 0, (size_t)N * sizeof(float));
        else
            for (int j = 0; j < N; j++) c[j] *= beta;
    }
}

static inline int min_int(int a, int b) { return a < b ? a : b; }
static inline int round_up(int x, int to) { return (x + to - 1) / to * to; }

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define PARALLEL_MIN_WORK (64.0 * 64.0 * 64.0)

/* Large products are cut into RECTS_PER_THREAD rectangles per thread,
 * handed out dynamically: when one thread loses its core for a while (a
 * shared machine), the others take its remaining rectangles instead of
 * waiting at the closing barrier. Which thread computes a rectangle never
 * changes how an element is summed. */
#define RECTS_PER_THREAD 2
#define SHARED_MIN_WORK (256.0 * 256.0 * 256.0)


typedef struct {
    int trans_a, trans_b, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
} gemm_args;

/* Rows [m0, m1) and columns [n0, n1) of C, with the calling thread's own
 * packing buffers. The KC blocks always start at k = 0, so how C is cut
 * into such rectangles never changes how an element is summed. */
static void gemm_rect(const gemm_kernel *kr, const gemm_args *g, int m0, int m1, int n0, int n1) {
    if (m0 >= m1 || n0 >= n1) return;
    const int mr = kr->mr, nr = kr->nr, K = g->K;
    const int kc_max = min_int(kr->kc, K);
    const int nc_max = min_int(kr->nc, round_up(n1 - n0, nr));
    const int mc_max = min_int(kr->mc, round_up(m1 - m0, mr));
    const size_t a_floats = (size_t)round_up(mc_max, 16) * kc_max;
    float *space = pack_space(a_floats + (size_t)kc_max * nc_max);
    if (!space) {
        const float *a = g->A + (g->trans_a ? (size_t)m0 : (size_t)m0 * g->lda);
        const float *b = g->B + (g->trans_b ? (size_t)n0 * g->ldb : (size_t)n0);
        nb_sgemm_reference(g->trans_a, g->trans_b, m1 - m0, n1 - n0, K, g->alpha, a, g->lda, b,
                           g->ldb, g->beta, g->C + (size_t)m0 * g->ldc + n0, g->ldc);
        return;
    }
    float *pa = space, *pb = space + a_floats;
    for (int jc = n0; jc < n1; jc += nc_max) {
        const int nc = min_int(nc_max, n1 - jc), b_slivers = (nc + nr - 1) / nr;
        for (int pc = 0; pc < K; pc += kc_max) {
            const int kc = min_int(kc_max, K - pc);
            /* Later KC blocks add onto what the earlier ones left in C. */
            const float beta = pc == 0 ? g->beta : 1.0f;
            for (int s = 0; s < b_slivers; s++) {
                const int j = jc + s * nr, cols = min_int(nr, nc - s * nr);
                float *dst = pb + (size_t)s * nr * kc;
#ifdef NB_X86_KERNELS
                if (g->trans_b && kr == &avx512_kernel) {
                    pack_b_transposed_avx512(g->B, g->ldb, pc, kc, j, cols, nr, dst);
                    continue;
                }
#endif
                pack_b(g->trans_b, g->B, g->ldb, pc, kc, j, cols, nr, dst);
            }
            for (int ic = m0; ic < m1; ic += mc_max) {
                const int mc = min_int(mc_max, m1 - ic), a_slivers = (mc + mr - 1) / mr;
                for (int s = 0; s < a_slivers; s++)
                    pack_a(g->trans_a, g->A, g->lda, ic + s * mr, min_int(mr, mc - s * mr), pc, kc,
                           mr, pa + (size_t)s * mr * kc);
                /* B-sliver-major: consecutive tiles reuse the B sliver in L1. */
                for (int js = 0; js < b_slivers; js++)
                    for (int is = 0; is < a_slivers; is++) {
                        const int i = ic + is * mr, j = jc + js * nr;
                        run_tile(kr, kc, pa + (size_t)is * mr * kc, pb + (size_t)js * nr * kc,
                                 g->C + (size_t)i * g->ldc + j, g->ldc, min_int(mr, m1 - i),
                                 min_int(nr, n1 - j), g->alpha, beta);
                    }
            }
        }
    }
}

/* ---- few rows: a fully-connected layer on a small batch --------------------
 * With M <= 8 (AlexNet's classifier at batch 8: 8 x 9216 times 9216 x 4096)
 * each element of B is used at most eight times, so the product runs at the
 * speed B streams from memory, and packing B would triple that traffic
 * (read, write, read again). These kernels read B where it lies:
 *   trans_b: C[m][n] = sum over k of A[m][k] B[n][k]   (x W^T: dot products
 *            along the contiguous k, two rows of B against all M rows of A)
 *   else:    C[m][n] = sum over k of A[m][k] B[k][n]   (dy W: 32 columns of
 *            C in registers for all M rows while k walks down B)
 * Each element is summed in an order fixed by K (and, for the dot
 * products, by the 16 lanes), whichever thread computes it. */
#define SMALL_M 8
#define SMALL_MIN_WORK (1 << 16)

#ifdef NB_X86_KERNELS
static inline void store_c(float *c, float v, float alpha, float beta) {
    *c = alpha * v + (beta == 0.0f ? 0.0f : beta * *c);
}

/* The kernels below take M as a constant (a switch picks 1..8), so their
 * per-row accumulators are registers, not an array in memory. */
#define SMALL_INLINE static inline __attribute__((always_inline, target("avx512f")))
#define SMALL_M_DISPATCH(FN, ...)                                                               \
    switch (M) {                                                                                \
    case 1: FN(__VA_ARGS__, 1); break;                                                          \
    case 2: FN(__VA_ARGS__, 2); break;                                                          \
    case 3: FN(__VA_ARGS__, 3); break;                                                          \
    case 4: FN(__VA_ARGS__, 4); break;                                                          \
    case 5: FN(__VA_ARGS__, 5); break;                                                          \
    case 6: FN(__VA_ARGS__, 6); break;                                                          \
    case 7: FN(__VA_ARGS__, 7); break;                                                          \
    default: FN(__VA_ARGS__, 8); break;                                                         \
    }

/* C rows 0..M-1, columns n0..n1-1, with B stored N x K; ap is A packed by
 * pack_a_interleaved. Packing matters: A's rows lie a whole row of B apart
 * (36 KiB for AlexNet's classifier.1), so reading them in place puts eight
 * streams, and B's two, on the same few L1 sets; packed, the eight loads of
 * a step of k are one run of 512 bytes. */
/* How far ahead (floats) the few-rows kernels ask for B's next lines. The
 * hardware prefetcher alone, following two to sixteen streams, left these
 * products at a third of the memory bandwidth (measured on Zen 4: 27 to 43
 * GFLOP/s on one core for AlexNet's classifier.1 with it). */
#define PREFETCH_AHEAD 512
/* Rows of B per pass of small_m_dot: 3 x 8 accumulators, 3 rows and one
 * row of A fill 28 of the 32 vector registers, and each load of A feeds
 * three FMAs. */
#define DOT_ROWS 3
SMALL_INLINE void small_m_dot_body(const gemm_args *g, const float *ap, int n0, int n1, const int M) {
    const int K = g->K;
    const __mmask16 tail = (__mmask16)((1u << (K % 16)) - 1);
    for (int n = n0; n < n1; n += DOT_ROWS) {
        const int rows = n1 - n < DOT_ROWS ? n1 - n : DOT_ROWS;
        const float *b[DOT_ROWS];
        for (int r = 0; r < DOT_ROWS; r++) b[r] = g->B + (size_t)(n + (r < rows ? r : 0)) * g->ldb;
        __m512 acc[DOT_ROWS][SMALL_M];
#pragma GCC unroll 8
        for (int m = 0; m < M; m++)
            for (int r = 0; r < DOT_ROWS; r++) acc[r][m] = _mm512_setzero_ps();
        const float *a = ap;
        int k = 0;
        for (; k + 16 <= K; k += 16, a += 16 * M) {
            __m512 v[DOT_ROWS];
            for (int r = 0; r < DOT_ROWS; r++) {
                _mm_prefetch((const char *)(b[r] + k + PREFETCH_AHEAD), _MM_HINT_T0);
                v[r] = _mm512_loadu_ps(b[r] + k);
            }
#pragma GCC unroll 8
            for (int m = 0; m < M; m++) {
                const __m512 am = _mm512_load_ps(a + 16 * m);
                for (int r = 0; r < DOT_ROWS; r++) acc[r][m] = _mm512_fmadd_ps(am, v[r], acc[r][m]);
            }
        }
        if (k < K) {
            __m512 v[DOT_ROWS];
            for (int r = 0; r < DOT_ROWS; r++) v[r] = _mm512_maskz_loadu_ps(tail, b[r] + k);
#pragma GCC unroll 8
            for (int m = 0; m < M; m++) {
                const __m512 am = _mm512_load_ps(a + 16 * m); /* zero past K */
                for (int r = 0; r < DOT_ROWS; r++) acc[r][m] = _mm512_fmadd_ps(am, v[r], acc[r][m]);
            }
        }
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) {
            float *c = g->C + (size_t)m * g->ldc + n;
            for (int r = 0; r < rows; r++) store_c(c + r, _mm512_reduce_add_ps(acc[r][m]), g->alpha, g->beta);
        }
    }
}

/* Floats of A packed for small_m_dot: K rounded up to 16, times M. */
static size_t interleaved_floats(int M, int K) { return (size_t)(K + 15) / 16 * 16 * M; }

/* A (M x K, not transposed) into dst[k / 16][m][k % 16], zero past K. */
static void pack_a_interleaved(const gemm_args *g, int M, float *dst) {
    const int K = g->K;
    for (int k0 = 0; k0 < K; k0 += 16)
        for (int m = 0; m < M; m++) {
            const float *src = g->A + (size_t)m * g->lda + k0;
            float *d = dst + (size_t)k0 * M + (size_t)m * 16;
            const int run = K - k0 < 16 ? K - k0 : 16;
            for (int i = 0; i < run; i++) d[i] = src[i];
            for (int i = run; i < 16; i++) d[i] = 0.0f;
        }
}

__attribute__((target("avx512f"))) static void small_m_dot(const gemm_args *g, const float *ap, int M,
                                                           int n0, int n1) {
    SMALL_M_DISPATCH(small_m_dot_body, g, ap, n0, n1)
}

/* C rows 0..M-1, columns n0..n1-1, with B stored K x N. B is walked a band
 * of rows at a time, each row read whole and in order (a column block per
 * row would hop a page per row); the sums wait in acc [M][n1-n0] between
 * bands, and every element adds its k in order. */
#define AXPY_BAND 16
SMALL_INLINE void small_m_axpy_body(const gemm_args *g, int n0, int n1, float *acc, const int M) {
    const int width = n1 - n0;
    for (int k0 = 0; k0 < g->K; k0 += AXPY_BAND) {
        const int k1 = min_int(g->K, k0 + AXPY_BAND);
        for (int n = 0; n < width; n += 32) {
            const __mmask16 m0 = (__mmask16)(width - n >= 16 ? 0xffff : (1u << (width - n)) - 1);
            const __mmask16 m1 = (__mmask16)(width - n >= 32 ? 0xffff : width - n <= 16 ? 0 : (1u << (width - n - 16)) - 1);
            __m512 s0[SMALL_M], s1[SMALL_M];
#pragma GCC unroll 8
            for (int m = 0; m < M; m++) {
                s0[m] = k0 ? _mm512_maskz_loadu_ps(m0, acc + (size_t)m * width + n) : _mm512_setzero_ps();
                s1[m] = k0 ? _mm512_maskz_loadu_ps(m1, acc + (size_t)m * width + n + 16) : _mm512_setzero_ps();
            }
            const float *b = g->B + (size_t)k0 * g->ldb + n0 + n;
            for (int k = k0; k < k1; k++, b += g->ldb) {
                _mm_prefetch((const char *)(b + PREFETCH_AHEAD), _MM_HINT_T0);
                _mm_prefetch((const char *)(b + PREFETCH_AHEAD + 16), _MM_HINT_T0);
                const __m512 v0 = _mm512_maskz_loadu_ps(m0, b), v1 = _mm512_maskz_loadu_ps(m1, b + 16);
#pragma GCC unroll 8
                for (int m = 0; m < M; m++) {
                    const __m512 a = _mm512_set1_ps(g->A[(size_t)m * g->lda + k]);
                    s0[m] = _mm512_fmadd_ps(a, v0, s0[m]);
                    s1[m] = _mm512_fmadd_ps(a, v1, s1[m]);
                }
            }
#pragma GCC unroll 8
            for (int m = 0; m < M; m++) {
                _mm512_mask_storeu_ps(acc + (size_t)m * width + n, m0, s0[m]);
                _mm512_mask_storeu_ps(acc + (size_t)m * width + n + 16, m1, s1[m]);
            }
        }
    }
    for (int m = 0; m < M; m++)
        for (int n = 0; n < width; n++) store_c(g->C + (size_t)m * g->ldc + n0 + n, acc[(size_t)m * width + n], g->alpha, g->beta);
}

__attribute__((target("avx512f"))) static void small_m_axpy(const gemm_args *g, int M, int n0, int n1,
                                                            float *acc) {
    SMALL_M_DISPATCH(small_m_axpy_body, g, n0, n1, acc)
}
#endif

/* Whether the few-rows path takes this product: the AVX-512 kernel in use,
 * A not transposed, and enough work to matter. */
static bool small_m_fits(const gemm_kernel *kr, int trans_a, int M, int N, int K) {
#ifdef NB_X86_KERNELS
    return kr == &avx512_kernel && !trans_a && M <= SMALL_M && (double)N * K >= SMALL_MIN_WORK;
#else
    (void)kr, (void)trans_a, (void)M, (void)N, (void)K;
    return false;
#endif
}

static void small_m(const gemm_args *g, int M, int N) {
#ifdef NB_X86_KERNELS
    /* Runs of whole 32-column blocks, handed out dynamically (as
     * nb_sgemm's rectangles). The dot kernel reads A from
     * the thread's packing buffer, packed once; the axpy kernel keeps its
     * sums there. If that cannot grow, the columns go through the packed
     * path (which falls back to the reference loop), a price paid only
     * when memory has run out. */
    const int blocks = (N + 31) / 32;
    /* The axpy kernel streams whole rows of B best in one wide run. */
    const int per_thread = g->trans_b && (double)M * N * g->K >= SHARED_MIN_WORK ? 2 * RECTS_PER_THREAD : 1;
#pragma omp parallel if ((double)M * N * g->K >= PARALLEL_MIN_WORK && !omp_in_parallel())
    {
        int threads = 1;
#ifdef _OPENMP
        threads = omp_get_num_threads();
#endif
        const int runs = min_int(blocks, threads * per_thread);
        float *space = g->trans_b ? pack_space(interleaved_floats(M, g->K))
                                  : pack_space((size_t)M * 32 * ((blocks + runs - 1) / runs));
        if (space && g->trans_b) pack_a_interleaved(g, M, space);
#pragma omp for schedule(dynamic)
        for (int run = 0; run < runs; run++) {
            const int n0 = min_int(N, (int)((long)blocks * run / runs) * 32);
            const int n1 = min_int(N, (int)((long)blocks * (run + 1) / runs) * 32);
            if (n0 >= n1) continue;
            if (!space) gemm_rect(current_kernel(), g, 0, M, n0, n1);
            else if (g->trans_b) small_m_dot(g, space, M, n0, n1);
            else small_m_axpy(g, M, n0, n1, space);
        }
    }
#else
    (void)g, (void)M, (void)N;
#endif
}

/* ---- short K: a fully-connected layer's weight gradient ----------------------
 * dW = dY^T x on a batch of 8 (AlexNet's classifier.1: 4096 x 9216, K = 8)
 * does 8 multiply-adds per element of C, so writing C is the whole cost:
 * 151 MB. The packed path's tiles store C through the cache, which first
 * reads every line it will overwrite. These rows go straight out with
 * streaming stores when C is written (beta == 0), from each row's first
 * cache-line boundary on (measured on Zen 4: 27 to 37 GFLOP/s on one core).
 * Each element still sums its k in order from zero and is then scaled by
 * alpha, as the micro-kernels do. B (K x N, not transposed) is a few rows
 * and stays in L2. Rows of C are split among the threads. */
#define SMALL_K 16

static bool small_k_fits(const gemm_kernel *kr, int trans_b, int M, int N, int K) {
#ifdef NB_X86_KERNELS
    return kr == &avx512_kernel && !trans_b && K <= SMALL_K && (double)M * N >= (double)(1 << 20);
#else
    (void)kr, (void)trans_b, (void)M, (void)N, (void)K;
    return false;
#endif
}

#ifdef NB_X86_KERNELS
__attribute__((target("avx512f"))) static void small_k_rows(const gemm_args *g, int N, int m0, int m1) {
    const int K = g->K;
    const __m512 va = _mm512_set1_ps(g->alpha), vb = _mm512_set1_ps(g->beta);
    for (int i = m0; i < m1; i++) {
        float a[SMALL_K];
        for (int k = 0; k < K; k++) a[k] = g->trans_a ? g->A[(size_t)k * g->lda + i] : g->A[(size_t)i * g->lda + k];
        float *c = g->C + (size_t)i * g->ldc;
        /* A first short chunk brings the rest of the row onto cache lines. */
        const int head = (int)((64 - ((uintptr_t)c & 63)) & 63) / (int)sizeof(float);
        const bool stream = g->beta == 0.0f && ((uintptr_t)c & 3) == 0;
        for (int n = 0, width; n < N; n += width) {
            width = n == 0 && head ? head : 16;
            if (width > N - n) width = N - n;
            const __mmask16 mask = (__mmask16)(width == 16 ? 0xffff : (1u << width) - 1);
            __m512 acc = _mm512_setzero_ps();
            for (int k = 0; k < K; k++)
                acc = _mm512_fmadd_ps(_mm512_set1_ps(a[k]), _mm512_maskz_loadu_ps(mask, g->B + (size_t)k * g->ldb + n), acc);
            acc = _mm512_mul_ps(va, acc);
            if (g->beta != 0.0f) acc = _mm512_add_ps(acc, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mask, c + n)));
            if (stream && width == 16 && ((uintptr_t)(c + n) & 63) == 0) _mm512_stream_ps(c + n, acc);
            else _mm512_mask_storeu_ps(c + n, mask, acc);
        }
    }
    _mm_sfence(); /* the streamed lines are out before the caller reads C */
}
#endif

static void small_k(const gemm_args *g, int M, int N) {
#ifdef NB_X86_KERNELS
#pragma omp parallel if (!omp_in_parallel())
    {
        int threads = 1, t = 0;
#ifdef _OPENMP
        threads = omp_get_num_threads();
        t = omp_get_thread_num();
#endif
        small_k_rows(g, N, (int)((long)M * t / threads), (int)((long)M * (t + 1) / threads));
    }
#else
    (void)g, (void)M, (void)N;
#endif
}

/* Cut the grid of MR x NR tiles into tm x tn rectangles, one per thread,
 * minimising the busiest thread's work per step of k: its multiply-adds
 * plus the panels it packs (a packed float costs roughly what a few
 * multiply-adds do). */
static void split_threads(const gemm_kernel *kr, int threads, int m_slivers, int n_slivers,
                          int *tm, int *tn) {
    double best = -1;
    for (int d = 1; d <= threads; d++) {
        if (threads % d) continue;
        int rows = threads / d;
        double ms = (m_slivers + rows - 1) / rows, ns = (n_slivers + d - 1) / d;
        double cost = ms * ns * kr->mr * kr->nr + 4.0 * (ms * kr->mr + ns * kr->nr);
        if (best < 0 || cost < best) best = cost, *tm = rows, *tn = d;
    }
}

/* Each thread packs its own panels and owns its rectangles of C, so the
 * threads never wait on each other: no barrier but the closing one. That
 * matters on a loaded machine, where a barrier waits for a descheduled
 * thread's next time slice. Packing is repeated across threads, which costs
 * little next to the product. */
void nb_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    const gemm_kernel *kr = current_kernel();
    const gemm_args g = {trans_a, trans_b, K, lda, ldb, ldc, alpha, beta, A, B, C};
    if (small_m_fits(kr, trans_a, M, N, K)) {
        small_m(&g, M, N);
        return;
    }
    if (small_k_fits(kr, trans_b, M, N, K)) {
        small_k(&g, M, N);
        return;
    }
    const int m_slivers = (M + kr->mr - 1) / kr->mr, n_slivers = (N + kr->nr - 1) / kr->nr;
/* Called from inside a parallel region (an operator that runs a product per
 * thread), the product runs on the calling thread alone. */
    const int per_thread = (double)M * N * K >= SHARED_MIN_WORK ? RECTS_PER_THREAD : 1;
#pragma omp parallel if ((double)M * N * K >= PARALLEL_MIN_WORK && !omp_in_parallel())
    {
        int threads = 1, tm = 1, tn = 1;
#ifdef _OPENMP
        threads = omp_get_num_threads();
#endif
        const int rects = threads * per_thread;
        split_threads(kr, rects, m_slivers, n_slivers, &tm, &tn);
#pragma omp for schedule(dynamic)
        for (int rect = 0; rect < rects; rect++) {
            const int ti = rect / tn, tj = rect % tn;
            const int s0 = (int)((long)m_slivers * ti / tm), s1 = (int)((long)m_slivers * (ti + 1) / tm);
            const int r0 = (int)((long)n_slivers * tj / tn), r1 = (int)((long)n_slivers * (tj + 1) / tn);
            gemm_rect(kr, &g, s0 * kr->mr, min_int(M, s1 * kr->mr), r0 * kr->nr, min_int(N, r1 * kr->nr));
        }
    }
}
