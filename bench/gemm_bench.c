/* gemm_bench.c — GFLOP/s of nb_sgemm on 1024^3 and on the products a small
 * CNN's conv layers make, at 1 and 2 threads, for the micro-kernel the CPU
 * picks (and, on the square product, the others it could run).
 *
 *     ./build/bench/gemm_bench [seconds per measurement, default 0.3]
 *     ./build/bench/gemm_bench --json [seconds]
 *     ./build/bench/gemm_bench --only classifier [seconds]   (shapes whose name has it)
 *
 * --json measures only the square product with the CPU's micro-kernel and
 * prints one line for bench/compare.py:
 *     {"kernel": "avx512", "m": 1024, "gflops_1t": ..., "gflops_2t": ...}
 */
#include "kernels/kernels.h"
#include "nabla.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    const char *what;
    int ta, tb, m, n, k;
} shape;

/* Repeat for about `seconds` and report the best single run. */
static double gflops(const shape *s, double seconds) {
    int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    float *a = malloc((size_t)s->m * s->k * sizeof(float));
    float *b = malloc((size_t)s->k * s->n * sizeof(float));
    float *c = malloc((size_t)s->m * s->n * sizeof(float));
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    for (size_t i = 0; i < (size_t)s->m * s->k; i++) a[i] = nb_rng_uniform(&rng) - 0.5f;
    for (size_t i = 0; i < (size_t)s->k * s->n; i++) b[i] = nb_rng_uniform(&rng) - 0.5f;
    nb_sgemm(s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, lda, b, ldb, 0.0f, c, s->n); /* warm up */
    double best = 1e30, start = now();
    do {
        double t0 = now();
        nb_sgemm(s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, lda, b, ldb, 0.0f, c, s->n);
        double t = now() - t0;
        if (t < best) best = t;
    } while (now() - start < seconds);
    free(a), free(b), free(c);
    return 2.0 * s->m * s->n * s->k / best * 1e-9;
}

int main(int argc, char **argv) {
    double seconds = 0.3;
    int json = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else seconds = atof(argv[i]);
    }
    if (json) {
        const shape sq = {"square", 0, 0, 1024, 1024, 1024};
        nb_set_threads(1);
        double one = gflops(&sq, seconds);
        nb_set_threads(2);
        double two = gflops(&sq, seconds);
        printf("{\"kernel\": \"%s\", \"m\": 1024, \"gflops_1t\": %.2f, \"gflops_2t\": %.2f}\n",
               nb_isa_name(), one, two);
        return 0;
    }
    const shape shapes[] = {
        {"square 1024^3", 0, 0, 1024, 1024, 1024},
        {"conv fwd  32 x 9 x 50176 (W cols, 3x3 on 1ch, batch 64 28x28)", 0, 0, 32, 50176, 9},
        {"conv fwd  64 x 288 x 12544 (W cols, 3x3 32->64, batch 64 14x14)", 0, 0, 64, 12544, 288},
        {"conv dW   64 x 288 x 12544 (dY cols^T)", 0, 1, 64, 288, 12544},
        {"conv dcol 288 x 12544 x 64 (W^T dY)", 1, 0, 288, 12544, 64},
        {"alexnet features.3 fwd, one sample: 192 x 729 x 1600", 0, 0, 192, 729, 1600},
        {"alexnet features.6 fwd, one sample: 384 x 169 x 1728", 0, 0, 384, 169, 1728},
        {"alexnet features.8 fwd, one sample: 256 x 169 x 3456", 0, 0, 256, 169, 3456},
        {"alexnet features.8 fwd, batch 8: 256 x 1352 x 3456", 0, 0, 256, 1352, 3456},
        {"alexnet features.8 dW, batch 8: 256 x 3456 x 1352", 0, 1, 256, 3456, 1352},
        {"alexnet features.8 dcol, one sample: 3456 x 169 x 256", 1, 0, 3456, 169, 256},
        {"alexnet features.8 dcol, batch 8: 3456 x 1352 x 256", 1, 0, 3456, 1352, 256},
        {"alexnet features.3 Winograd 5x5 product, 2 samples: 192 x 392 x 64", 0, 0, 192, 392, 64},
        {"alexnet features.3 Winograd 5x5 product, 8 samples: 192 x 1568 x 64", 0, 0, 192, 1568, 64},
        {"alexnet features.3 Winograd dx product, 2 samples: 64 x 392 x 192", 0, 0, 64, 392, 192},
        {"alexnet features.8 Winograd 3x3 product, batch 8: 256 x 392 x 384", 0, 0, 256, 392, 384},
        {"alexnet classifier.1 fwd, batch 8: 8 x 4096 x 9216 (x W^T)", 0, 1, 8, 4096, 9216},
        {"alexnet classifier.1 dx, batch 8: 8 x 9216 x 4096 (dY W)", 0, 0, 8, 9216, 4096},
        {"alexnet classifier.1 dW, batch 8: 4096 x 9216 x 8 (dY^T x)", 1, 0, 4096, 9216, 8},
    };
    /* The active target (the best, or NABLA_ISA's) on every shape, then each
     * other target this CPU runs on the square product. */
    const char *active = nb_isa_name();
    const char *const others[] = {"avx512", "avx2", "neon", "generic"};
    for (int p = -1; p < 4; p++) {
        if (p >= 0 && (!strcmp(others[p], active) || nb_isa_set(others[p]) != NB_OK)) continue;
        printf("SIMD target: %s\n", nb_isa_name());
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            if (p >= 0 && i > 0) break; /* the other targets: the square product only */
            if (only && !strstr(shapes[i].what, only)) continue;
            nb_set_threads(1);
            double one = gflops(&shapes[i], seconds);
            nb_set_threads(2);
            double two = gflops(&shapes[i], seconds);
            printf("  %-66s %7.1f GFLOP/s (1 thread) %7.1f GFLOP/s (2 threads)\n", shapes[i].what,
                   one, two);
        }
    }
    return 0;
}
