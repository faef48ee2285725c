/* fma_peak.c — the measured single-core FP32 FMA peak of the running SIMD
 * target, the yardstick for "% of peak" in bench/compare.py and
 * `nabla bench`. NABLA_ISA=avx2 (etc.) measures another target.
 *
 *     ./build/bench/fma_peak [seconds, default 0.5] [--json]
 */
#include <nabla.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    double seconds = 0.5;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else seconds = atof(argv[i]);
    }
    if (nb_isa_check_env() != NB_OK) {
        fprintf(stderr, "fma_peak: %s\n", nb_last_error());
        return 2;
    }
    double peak = nb_isa_fma_peak_gflops(seconds > 0 ? seconds : 0.5);
    if (json) printf("{\"fma_peak_gflops\": %.2f, \"isa\": \"%s\"}\n", peak, nb_isa_name());
    else printf("FMA peak, 1 thread (%s): %.1f GFLOP/s\n", nb_isa_name(), peak);
    return 0;
}
