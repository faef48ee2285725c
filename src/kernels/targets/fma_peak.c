/* targets/fma_peak.c — the single-core FMA peak that "% of peak" is quoted
 * against, measured with this target's vectors: FMA_PEAK_CHAINS
 * independent chains of vector FMAs, as many as the register file holds
 * beside the two constants (so nothing spills, which would make the loads
 * and stores, not the FMA units, set the pace), and more than the latency
 * (4 cycles) times the FMA units (2 to 4) of current cores. */
#include "kernels/targets/targets.h"

#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Multiplier below 1 and a small addend: the values settle, never
 * overflow. Read through volatile, so the compiler cannot fold a chain
 * that happens to start at a fixed point (1 * 0.999 + 0.001 rounds to 1). */
static volatile float peak_m = 0.999f, peak_c = 1e-3f;

/* `iters` rounds of FMA_PEAK_CHAINS FMAs; the seconds taken. The sum goes
 * to the volatile *sink before the clock is read again: a volatile store
 * cannot move past the call, so neither can the work. Chains start apart,
 * or the compiler would merge identical ones into one. */
double NB_K(fma_peak)(long iters, volatile float *sink) {
    const vf m = vf_set1(peak_m), c = vf_set1(peak_c);
    vf a[FMA_PEAK_CHAINS];
#pragma GCC unroll 32
    for (int j = 0; j < FMA_PEAK_CHAINS; j++) a[j] = vf_set1((float)j);
    const double t0 = now();
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 32
        for (int j = 0; j < FMA_PEAK_CHAINS; j++) a[j] = vf_fma(a[j], m, c);
    }
#pragma GCC unroll 32
    for (int j = 1; j < FMA_PEAK_CHAINS; j++) a[0] = vf_add(a[0], a[j]);
    *sink = vf_hsum(a[0]);
    return now() - t0;
}
