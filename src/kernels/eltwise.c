/* eltwise.c — entry points of the elementwise kernels (targets/eltwise.c,
 * built per target CPU). */
#include "kernels/isa.h"

void nb_relu_inplace(float *x, size_t n) { nb_isa_active()->relu_inplace(x, n); }

void nb_copy_stride2(float *dst, const float *src, int n) { nb_isa_active()->copy_stride2(dst, src, n); }

void nb_add_stride2(float *dst, const float *src, int n) { nb_isa_active()->add_stride2(dst, src, n); }
