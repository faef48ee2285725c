/* cpu.c — which SIMD instruction sets the running CPU offers.
 *
 * The build targets generic x86-64, so the fast kernels are compiled with
 * per-function target attributes and chosen here at run time. The compiler's
 * __builtin_cpu_supports also checks that the OS saves the wide registers
 * (XGETBV), which a raw CPUID test would miss. */
#include "kernels/kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NB_X86_DISPATCH 1
#endif

int nb_cpu_has_avx2_fma(void) {
#ifdef NB_X86_DISPATCH
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int nb_cpu_has_avx512f(void) {
#ifdef NB_X86_DISPATCH
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}
