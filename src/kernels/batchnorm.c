/* batchnorm.c — entry points of the per-channel batch normalisation
 * kernels (targets/batchnorm.c, built per target CPU), and the plain loops
 * they are tested against: every sum in one double, in element order. */
#include "kernels/isa.h"

void nb_bn_stats_reference(const float *x, size_t batch, size_t stride, size_t inner, double *mean, double *sqdev) {
    double sum = 0.0;
    for (size_t s = 0; s < batch; s++)
        for (size_t i = 0; i < inner; i++) sum += x[s * stride + i];
    const double mu = sum / (double)(batch * inner);
    double sq = 0.0;
    for (size_t s = 0; s < batch; s++)
        for (size_t i = 0; i < inner; i++) {
            const double dev = x[s * stride + i] - mu;
            sq += dev * dev;
        }
    *mean = mu;
    *sqdev = sq;
}

void nb_bn_apply_reference(const float *x, float *y, size_t batch, size_t stride, size_t inner, float scale,
                           float shift, int relu) {
    for (size_t s = 0; s < batch; s++)
        for (size_t i = 0; i < inner; i++) {
            const float v = x[s * stride + i] * scale + shift;
            y[s * stride + i] = relu ? (v > 0 ? v : 0.0f) : v;
        }
}

void nb_bn_grad_sums_reference(const float *x, const float *dy, size_t batch, size_t stride, size_t inner,
                               float mean, double *sum_dy, double *sum_dy_dev) {
    double sd = 0.0, sdx = 0.0;
    for (size_t s = 0; s < batch; s++)
        for (size_t i = 0; i < inner; i++) {
            const size_t at = s * stride + i;
            sd += dy[at];
            sdx += (double)dy[at] * (x[at] - mean);
        }
    *sum_dy = sd;
    *sum_dy_dev = sdx;
}

void nb_bn_grad_input_reference(const float *x, const float *dy, float *dx, size_t batch, size_t stride,
                                size_t inner, float mean, float k, float c0, float c1, int accumulate) {
    for (size_t s = 0; s < batch; s++)
        for (size_t i = 0; i < inner; i++) {
            const size_t at = s * stride + i;
            const float v = k * dy[at] + c0 + c1 * (x[at] - mean);
            dx[at] = accumulate ? dx[at] + v : v;
        }
}

void nb_bn_stats(const float *x, size_t batch, size_t stride, size_t inner, double *mean, double *sqdev) {
    nb_isa_active()->bn_stats(x, batch, stride, inner, mean, sqdev);
}

void nb_bn_apply(const float *x, float *y, size_t batch, size_t stride, size_t inner, float scale, float shift,
                 int relu) {
    nb_isa_active()->bn_apply(x, y, batch, stride, inner, scale, shift, relu);
}

void nb_bn_grad_sums(const float *x, const float *dy, size_t batch, size_t stride, size_t inner, float mean,
                     double *sum_dy, double *sum_dy_dev) {
    nb_isa_active()->bn_grad_sums(x, dy, batch, stride, inner, mean, sum_dy, sum_dy_dev);
}

void nb_bn_grad_input(const float *x, const float *dy, float *dx, size_t batch, size_t stride, size_t inner,
                      float mean, float k, float c0, float c1, int accumulate) {
    nb_isa_active()->bn_grad_input(x, dy, dx, batch, stride, inner, mean, k, c0, c1, accumulate);
}
