/* fma_peak.c — the measured single-core FP32 FMA peak, the yardstick for
 * "% of peak" in bench/compare.py and `nabla bench`.
 *
 *     ./build/bench/fma_peak [seconds, default 0.5] [--json]
 */
#include "../tools/fma_peak.h"

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
    double peak = fma_peak_gflops(seconds > 0 ? seconds : 0.5);
    if (json) printf("{\"fma_peak_gflops\": %.2f, \"isa\": \"%s\"}\n", peak, fma_peak_isa());
    else printf("FMA peak, 1 thread (%s): %.1f GFLOP/s\n", fma_peak_isa(), peak);
    return 0;
}
