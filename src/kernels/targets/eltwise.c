/* targets/eltwise.c — elementwise loops over simd.h, built per target. */
#include "kernels/targets/targets.h"

/* x = x > 0 ? x : 0 over n floats (a NaN becomes 0, as the relu op's). */
void NB_K(relu_inplace)(float *x, size_t n) {
    size_t i = 0;
    for (; i + NB_LANES <= n; i += NB_LANES) vf_store(x + i, vf_relu(vf_load(x + i)));
    if (i < n) vf_store_part(x + i, vf_relu(vf_load_part(x + i, (int)(n - i))), (int)(n - i));
}
