/* winograd.c — the geometry of the Winograd convolutions F(2x2, 3x3) and
 * F(2x2, 5x5), and their entry points. The method, the matrices and the
 * layouts are described in targets/winograd.c, whose transforms are built
 * once per target CPU (their loops are `omp simd`, vectorised for each
 * target's width); the products between them are the GEMM's. */
#include "kernels/isa.h"

int nb_winograd_fits(const nb_conv_geom *g) {
    return (g->kernel_h == 3 || g->kernel_h == 5) && g->kernel_w == g->kernel_h && g->stride_h == 1 &&
           g->stride_w == 1 && g->out_h >= 2 && g->out_w >= 2 && (g->out_w + 1) / 2 <= NB_WINOGRAD_MAX_TILES_W;
}

int nb_winograd_planes(const nb_conv_geom *g) { return (g->kernel_h + 1) * (g->kernel_h + 1); }

int nb_winograd_tiles(const nb_conv_geom *g) { return ((g->out_h + 1) / 2) * ((g->out_w + 1) / 2); }

void nb_winograd_weights(int kernel, int out_ch, int channels, const float *w, float *u, int adjoint) {
    nb_isa_active()->winograd_weights(kernel, out_ch, channels, w, u, adjoint);
}

void nb_winograd_input(const nb_conv_geom *g, const float *x, int count, float *v) {
    nb_isa_active()->winograd_input(g, x, count, v);
}

void nb_winograd_output(const nb_conv_geom *g, int out_ch, const float *m, int count, const float *b, float *y,
                        int relu, int accumulate) {
    nb_isa_active()->winograd_output(g, out_ch, m, count, b, y, relu, accumulate);
}

void nb_winograd_grad_output(const nb_conv_geom *g, int out_ch, const float *dy, int count, float *e) {
    nb_isa_active()->winograd_grad_output(g, out_ch, dy, count, e);
}

void nb_winograd_weight_grad(int kernel, int out_ch, int channels, const float *mw, float *dw, int accumulate) {
    nb_isa_active()->winograd_weight_grad(kernel, out_ch, channels, mw, dw, accumulate);
}
