/* fma_peak.h — measure the single-core peak of fused multiply-adds, the
 * ceiling "% of peak" is quoted against. Header-only: `nabla bench` and
 * bench/fma_peak.c both include it.
 *
 * The loop runs 16 independent chains of vector FMAs, enough to cover the
 * latency (4 cycles) times the FMA units (2) of current x86 cores, so the
 * units rather than the dependencies set the pace. The widest vectors the
 * CPU has are used: AVX-512, else AVX2+FMA, else plain C (a rough figure). */
#ifndef NABLA_FMA_PEAK_H
#define NABLA_FMA_PEAK_H

#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FMA_PEAK_X86 1
#endif

static double fma_peak_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Multiplier below 1 and a small addend: the values settle, never overflow.
 * Read through volatile, so the compiler cannot fold a chain that happens
 * to start at a fixed point (1 * 0.999 + 0.001 rounds to 1). */
static volatile float fma_peak_m = 0.999f, fma_peak_c = 1e-3f;

/* Each probe runs `iters` rounds of 16 FMAs and returns the seconds taken.
 * The sum goes to the volatile *sink before the clock is read again: a
 * volatile store cannot move past the call, so neither can the work. */
#ifdef FMA_PEAK_X86
#define FMA_PEAK_CHAINS(T, SET, FMA, ADD, STORE, W)                                    \
    T a0 = SET(0), a1 = SET(1), a2 = SET(2), a3 = SET(3), a4 = SET(4), a5 = SET(5);       \
    T a6 = SET(6), a7 = SET(7), a8 = SET(8), a9 = SET(9), a10 = SET(10), a11 = SET(11);   \
    T a12 = SET(12), a13 = SET(13), a14 = SET(14), a15 = SET(15);                        \
    double t0 = fma_peak_now();                                                          \
    for (long i = 0; i < iters; i++) {                                                   \
        a0 = FMA(a0, m, c), a1 = FMA(a1, m, c), a2 = FMA(a2, m, c), a3 = FMA(a3, m, c);   \
        a4 = FMA(a4, m, c), a5 = FMA(a5, m, c), a6 = FMA(a6, m, c), a7 = FMA(a7, m, c);   \
        a8 = FMA(a8, m, c), a9 = FMA(a9, m, c), a10 = FMA(a10, m, c), a11 = FMA(a11, m, c); \
        a12 = FMA(a12, m, c), a13 = FMA(a13, m, c), a14 = FMA(a14, m, c), a15 = FMA(a15, m, c); \
    }                                                                                    \
    T s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));             \
    s = ADD(s, ADD(ADD(ADD(a8, a9), ADD(a10, a11)), ADD(ADD(a12, a13), ADD(a14, a15))));  \
    float lanes[W];                                                                      \
    STORE(lanes, s);                                                                     \
    *sink = lanes[0];                                                                    \
    return fma_peak_now() - t0;

/* Chains start apart, or the compiler would merge identical ones into one. */
#define FMA_PEAK_SET512(i) _mm512_set1_ps((float)(i))
#define FMA_PEAK_SET256(i) _mm256_set1_ps((float)(i))

__attribute__((target("avx512f"))) static double fma_peak_avx512(long iters, volatile float *sink) {
    const __m512 m = _mm512_set1_ps(fma_peak_m), c = _mm512_set1_ps(fma_peak_c);
    FMA_PEAK_CHAINS(__m512, FMA_PEAK_SET512, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps, 16)
}

__attribute__((target("avx2,fma"))) static double fma_peak_avx2(long iters, volatile float *sink) {
    const __m256 m = _mm256_set1_ps(fma_peak_m), c = _mm256_set1_ps(fma_peak_c);
    FMA_PEAK_CHAINS(__m256, FMA_PEAK_SET256, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps, 8)
}
#undef FMA_PEAK_CHAINS
#undef FMA_PEAK_SET512
#undef FMA_PEAK_SET256
#endif

static double fma_peak_scalar(long iters, volatile float *sink) {
    float a[16];
    const float m = fma_peak_m, c = fma_peak_c;
    for (int j = 0; j < 16; j++) a[j] = (float)j;
    double t0 = fma_peak_now();
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < 16; j++) a[j] = a[j] * m + c;
    float s = 0;
    for (int j = 0; j < 16; j++) s += a[j];
    *sink = s;
    return fma_peak_now() - t0;
}

/* The instruction set the probe uses: "avx512", "avx2" or "scalar". */
static const char *fma_peak_isa(void) {
#ifdef FMA_PEAK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "avx512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
#endif
    return "scalar";
}

/* Single-thread FP32 GFLOP/s (an FMA counts 2), the best of short runs over
 * about `seconds`; call it from one thread while the others are idle. */
static double fma_peak_gflops(double seconds) {
    const char *isa = fma_peak_isa();
    int lanes = isa[0] == 'a' ? (isa[3] == '5' ? 16 : 8) : 1;
    long iters = 1L << 16;
    double best = 0.0, start = fma_peak_now();
    volatile float sink = 0;
    do {
        double t;
#ifdef FMA_PEAK_X86
        if (lanes == 16) t = fma_peak_avx512(iters, &sink);
        else if (lanes == 8) t = fma_peak_avx2(iters, &sink);
        else
#endif
            t = fma_peak_scalar(iters, &sink);
        double rate = t > 0 ? 2.0 * 16.0 * lanes * (double)iters / t * 1e-9 : 0.0;
        if (rate > best) best = rate;
    } while (fma_peak_now() - start < seconds);
    return best;
}

#endif
