/* targets/eltwise.c — elementwise loops over simd.h, built per target. */
#include "kernels/targets/targets.h"

/* x = x > 0 ? x : 0 over n floats (a NaN becomes 0, as the relu op's). */
void NB_K(relu_inplace)(float *x, size_t n) {
    size_t i = 0;
    for (; i + NB_LANES <= n; i += NB_LANES) vf_store(x + i, vf_relu(vf_load(x + i)));
    if (i < n) vf_store_part(x + i, vf_relu(vf_load_part(x + i, (int)(n - i))), (int)(n - i));
}

/* dst[i] = src[2 i] for i < n: a stride-2 row of im2col. The vector loop
 * stops one vector short of the end, so it never reads past src[2 n - 2],
 * the last element the row needs (a row may end an image). */
void NB_K(copy_stride2)(float *dst, const float *src, int n) {
    int i = 0;
    for (; i + NB_LANES < n; i += NB_LANES) {
        vf even, odd;
        vf_deinterleave(vf_load(src + 2 * i), vf_load(src + 2 * i + NB_LANES), &even, &odd);
        vf_store(dst + i, even);
    }
    for (; i < n; i++) dst[i] = src[2 * i];
}

/* dst[2 i] += src[i] for i < n: a stride-2 row of col2im. The odd elements
 * between are stored back unchanged, all of them before dst[2 n - 2]. */
void NB_K(add_stride2)(float *dst, const float *src, int n) {
    int i = 0;
    for (; i + NB_LANES < n; i += NB_LANES) {
        vf even, odd, lo, hi;
        vf_deinterleave(vf_load(dst + 2 * i), vf_load(dst + 2 * i + NB_LANES), &even, &odd);
        vf_interleave(vf_add(even, vf_load(src + i)), odd, &lo, &hi);
        vf_store(dst + 2 * i, lo);
        vf_store(dst + 2 * i + NB_LANES, hi);
    }
    for (; i < n; i++) dst[2 * i] += src[i];
}
