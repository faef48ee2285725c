/* eltwise.c — entry points of the elementwise kernels (targets/eltwise.c,
 * built per target CPU). */
#include "kernels/isa.h"

void nb_relu_inplace(float *x, size_t n) { nb_isa_active()->relu_inplace(x, n); }
