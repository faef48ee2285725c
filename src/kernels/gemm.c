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
 * This file is the driver: blocking, packing A, threads and the choice of
 * path. The inner kernels (the micro-kernel, the transposing B packer, the
 * few-rows and short-K kernels) are in targets/gemm.c, built once per
 * target CPU, and the active target's table (isa.h) supplies them with the
 * tile size and blocking that suit its registers. */
#include "kernels/isa.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
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

/* A whole sliver of a plain A, mr rows (a constant where it is inlined),
 * k outer: each line of dst is written once, from mr streams of A. Row by
 * row, each row's floats land mr apart and every line is written mr times
 * (26% slower on AlexNet's features.8 product). */
static inline __attribute__((always_inline)) void pack_a_whole(const float *A, int lda, int kc,
                                                                const int mr, float *dst) {
    for (int k = 0; k < kc; k++, dst += mr)
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) dst[r] = A[(size_t)r * lda + k];
}

/* Rows i0 .. i0+rows-1 (rows <= mr) and columns p0 .. p0+kc-1 of op(A) into
 * dst[k*mr + r], zero-filled up to mr rows. A plain A has k along its rows,
 * as a transposed B has, and the target's register transposer packs it
 * where the sliver fills most of a vector (6 rows in 8 lanes: AVX2's 1024^3
 * went from 93 to 99 GFLOP/s on one thread). In 16 lanes, 6 rows leave most
 * of the transpose's work wasted, and one float at a time was faster
 * (AlexNet's features.8, 256 x 169 x 3456, 2 threads: 10% on Zen 4). */
static void pack_a(const nb_isa *kr, int trans_a, const float *A, int lda, int i0, int rows, int p0,
                   int kc, int mr, float *dst) {
    if (!trans_a && 2 * mr > kr->lanes) {
        kr->gemm_pack_k_contiguous(A, lda, p0, kc, i0, rows, mr, dst);
        return;
    }
    if (!trans_a) {
        if (rows == mr && mr == 6) { /* AVX-512's tile, the one that comes here */
            pack_a_whole(A + (size_t)i0 * lda + p0, lda, kc, 6, dst);
            return;
        }
        for (int r = 0; r < rows; r++) {
            const float *src = A + (size_t)(i0 + r) * lda + p0;
            for (int k = 0; k < kc; k++) dst[(size_t)k * mr + r] = src[k];
        }
        for (int r = rows; r < mr; r++)
            for (int k = 0; k < kc; k++) dst[(size_t)k * mr + r] = 0.0f;
        return;
    }
    for (int k = 0; k < kc; k++) {
        const float *src = A + (size_t)(p0 + k) * lda + i0;
        float *d = dst + (size_t)k * mr;
        for (int r = 0; r < rows; r++) d[r] = src[r];
        for (int r = rows; r < mr; r++) d[r] = 0.0f;
    }
}

/* Rows p0 .. p0+kc-1 and columns j0 .. j0+cols-1 (cols <= nr) of B (not
 * transposed: a transposed B is packed by the target's register
 * transposer) into dst[k*nr + j], zero-filled up to nr columns. */
static void pack_b(const float *B, int ldb, int p0, int kc, int j0, int cols, int nr, float *dst) {
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
}

/* ---- the blocked product ------------------------------------------------------ */

static void run_tile(const nb_isa *kr, int kc, const float *a, const float *b, float *c,
                     int ldc, int rows, int cols, float alpha, float beta) {
    if (rows == kr->gemm_mr && cols == kr->gemm_nr) {
        kr->gemm_tile(kc, a, b, c, ldc, alpha, beta);
        return;
    }
    _Alignas(64) float tmp[NB_GEMM_MR_MAX * NB_GEMM_NR_MAX];
    kr->gemm_tile(kc, a, b, tmp, kr->gemm_nr, 1.0f, 0.0f);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            float *cij = &c[(size_t)i * ldc + j];
            *cij = alpha * tmp[i * kr->gemm_nr + j] + (beta == 0.0f ? 0.0f : beta * *cij);
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


typedef nb_gemm_args gemm_args;

/* KC, the length of k one micro-kernel call walks: the table's, or its
 * longer one where a core has 1 MiB of L2 or more, which holds the longer
 * A block (MC x KC) and the B sliver beside it. Measured on Zen 4 (1 MiB
 * L2), AVX2, 1024^3 on one thread: KC = 1024 gave 101-104 GFLOP/s where
 * 512 gave 97-100 (each tile's C is read and written half as often). The
 * choice is fixed per machine, so it never changes with the thread count. */
static pthread_once_t l2_once = PTHREAD_ONCE_INIT;
static long l2_bytes;
static void read_l2_size(void) {
#ifdef _SC_LEVEL2_CACHE_SIZE
    l2_bytes = sysconf(_SC_LEVEL2_CACHE_SIZE); /* 0 or -1 where unknown */
#endif
}
static int block_kc(const nb_isa *kr) {
    pthread_once(&l2_once, read_l2_size);
    return l2_bytes >= (1L << 20) ? kr->gemm_kc_large_l2 : kr->gemm_kc;
}

/* Rows [m0, m1) and columns [n0, n1) of C, with the calling thread's own
 * packing buffers. The KC blocks always start at k = 0, so how C is cut
 * into such rectangles never changes how an element is summed. */
static void gemm_rect(const nb_isa *kr, const gemm_args *g, int m0, int m1, int n0, int n1) {
    if (m0 >= m1 || n0 >= n1) return;
    const int mr = kr->gemm_mr, nr = kr->gemm_nr, K = g->K;
    const int kc_max = min_int(block_kc(kr), K);
    /* Whole slivers: NR need not divide the table's NC (8 x 12 on NEON). */
    const int nc_max = min_int(kr->gemm_nc / nr * nr, round_up(n1 - n0, nr));
    const int mc_max = min_int(kr->gemm_mc, round_up(m1 - m0, mr));
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
                if (g->trans_b) kr->gemm_pack_k_contiguous(g->B, g->ldb, pc, kc, j, cols, nr, dst);
                else pack_b(g->B, g->ldb, pc, kc, j, cols, nr, dst);
            }
            for (int ic = m0; ic < m1; ic += mc_max) {
                const int mc = min_int(mc_max, m1 - ic), a_slivers = (mc + mr - 1) / mr;
                for (int s = 0; s < a_slivers; s++)
                    pack_a(kr, g->trans_a, g->A, g->lda, ic + s * mr, min_int(mr, mc - s * mr), pc, kc,
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
 *            along the contiguous k, rows of B against all M rows of A)
 *   else:    C[m][n] = sum over k of A[m][k] B[k][n]   (dy W: a few vectors
 *            of columns of C in registers for all M rows while k walks B)
 * A is packed for the dot kernel: A's rows lie a whole row of B apart (36
 * KiB for AlexNet's classifier.1), so reading them in place puts eight
 * streams, and B's, on the same few L1 sets; packed, the M loads of a step
 * of k are one contiguous run. */
#define SMALL_MIN_WORK (1 << 16)

/* Floats of A packed for the dot kernel: K rounded up to the lanes, times M. */
static size_t interleaved_floats(int M, int K, int lanes) { return (size_t)(K + lanes - 1) / lanes * lanes * M; }

/* A (M x K, not transposed) into dst[k / lanes][m][k % lanes], zero past K. */
static void pack_a_interleaved(const gemm_args *g, int M, int lanes, float *dst) {
    const int K = g->K;
    for (int k0 = 0; k0 < K; k0 += lanes)
        for (int m = 0; m < M; m++) {
            const float *src = g->A + (size_t)m * g->lda + k0;
            float *d = dst + (size_t)k0 * M + (size_t)m * lanes;
            const int run = K - k0 < lanes ? K - k0 : lanes;
            for (int i = 0; i < run; i++) d[i] = src[i];
            for (int i = run; i < lanes; i++) d[i] = 0.0f;
        }
}

/* Whether the few-rows path takes this product: A not transposed, and
 * enough work to matter. */
static bool small_m_fits(int trans_a, int M, int N, int K) {
    return !trans_a && M <= NB_GEMM_SMALL_M && (double)N * K >= SMALL_MIN_WORK;
}

static void small_m(const nb_isa *kr, const gemm_args *g, int M, int N) {
    /* Runs of whole 32-column blocks, handed out dynamically (as
     * nb_sgemm's rectangles). The dot kernel reads A from the thread's
     * packing buffer, packed once; the axpy kernel keeps its sums there. If
     * that cannot grow, the columns go through the packed path (which falls
     * back to the reference loop), a price paid only when memory has run
     * out. */
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
        float *space = g->trans_b ? pack_space(interleaved_floats(M, g->K, kr->lanes))
                                  : pack_space((size_t)M * 32 * ((blocks + runs - 1) / runs));
        if (space && g->trans_b) pack_a_interleaved(g, M, kr->lanes, space);
#pragma omp for schedule(dynamic)
        for (int run = 0; run < runs; run++) {
            const int n0 = min_int(N, (int)((long)blocks * run / runs) * 32);
            const int n1 = min_int(N, (int)((long)blocks * (run + 1) / runs) * 32);
            if (n0 >= n1) continue;
            if (!space) gemm_rect(kr, g, 0, M, n0, n1);
            else if (g->trans_b) kr->gemm_few_rows_dot(g, space, M, n0, n1);
            else kr->gemm_few_rows_axpy(g, M, n0, n1, space);
        }
    }
}

/* ---- short K: a fully-connected layer's weight gradient ----------------------
 * dW = dY^T x on a batch of 8 (AlexNet's classifier.1: 4096 x 9216, K = 8)
 * does 8 multiply-adds per element of C, so writing C is the whole cost:
 * 151 MB. The packed path's tiles store C through the cache, which first
 * reads every line it will overwrite; the short-K rows go straight out
 * with streaming stores when C is written (measured on Zen 4: 27 to 37
 * GFLOP/s on one core). B (K x N, not transposed) is a few rows and stays
 * in L2. Rows of C are split among the threads. */

static bool small_k_fits(int trans_b, int M, int N, int K) {
    return !trans_b && K <= NB_GEMM_SMALL_K && (double)M * N >= (double)(1 << 20);
}

static void small_k(const nb_isa *kr, const gemm_args *g, int M, int N) {
#pragma omp parallel if (!omp_in_parallel())
    {
        int threads = 1, t = 0;
#ifdef _OPENMP
        threads = omp_get_num_threads();
        t = omp_get_thread_num();
#endif
        kr->gemm_short_k_rows(g, N, (int)((long)M * t / threads), (int)((long)M * (t + 1) / threads));
    }
}

/* Cut the grid of MR x NR tiles into tm x tn rectangles, one per thread,
 * minimising the busiest thread's work per step of k: its multiply-adds
 * plus the panels it packs (a packed float costs roughly what a few
 * multiply-adds do). */
static void split_threads(const nb_isa *kr, int threads, int m_slivers, int n_slivers,
                          int *tm, int *tn) {
    double best = -1;
    for (int d = 1; d <= threads; d++) {
        if (threads % d) continue;
        int rows = threads / d;
        double ms = (m_slivers + rows - 1) / rows, ns = (n_slivers + d - 1) / d;
        double cost = ms * ns * kr->gemm_mr * kr->gemm_nr + 4.0 * (ms * kr->gemm_mr + ns * kr->gemm_nr);
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
    const nb_isa *kr = nb_isa_active();
    const gemm_args g = {trans_a, trans_b, K, lda, ldb, ldc, alpha, beta, A, B, C};
    if (small_m_fits(trans_a, M, N, K)) {
        small_m(kr, &g, M, N);
        return;
    }
    if (small_k_fits(trans_b, M, N, K)) {
        small_k(kr, &g, M, N);
        return;
    }
    const int m_slivers = (M + kr->gemm_mr - 1) / kr->gemm_mr, n_slivers = (N + kr->gemm_nr - 1) / kr->gemm_nr;
/* Called from inside a parallel region (an operator that runs a product per
 * thread), the product runs on the calling thread alone. */
    const int per_thread = (double)M * N * K >= SHARED_MIN_WORK ? RECTS_PER_THREAD : 1;
#pragma omp parallel if ((double)M * N * K >= PARALLEL_MIN_WORK && !omp_in_parallel())
    {
        int threads = 1, tm = 1, tn = 1;
#ifdef _OPENMP
        threads = omp_get_num_threads();
#endif
        /* One thread alone gains nothing from more rectangles, and each
         * packs its own copy of A's rows (a tenth of a square product). */
        const int rects = threads == 1 ? 1 : threads * per_thread;
        split_threads(kr, rects, m_slivers, n_slivers, &tm, &tn);
#pragma omp for schedule(dynamic)
        for (int rect = 0; rect < rects; rect++) {
            const int ti = rect / tn, tj = rect % tn;
            const int s0 = (int)((long)m_slivers * ti / tm), s1 = (int)((long)m_slivers * (ti + 1) / tm);
            const int r0 = (int)((long)n_slivers * tj / tn), r1 = (int)((long)n_slivers * (tj + 1) / tn);
            gemm_rect(kr, &g, s0 * kr->gemm_mr, min_int(M, s1 * kr->gemm_mr), r0 * kr->gemm_nr, min_int(N, r1 * kr->gemm_nr));
        }
    }
}
