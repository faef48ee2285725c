/* conv_direct.c — convolution without im2col, for layers with few input
 * channels (a network's first layer: LeNet-5's conv1 has one).
 *
 * With C*KH*KW small (25 for conv1), im2col + GEMM is a poor fit: the
 * column matrix is 25 rows by every output position of the batch, written
 * once and read once, and the product has an inner dimension of 25, so
 * moving data costs more than the multiply-adds. Here each sample's input
 * is copied once into a zero-padded image on the stack, and every output
 * row is computed in registers: for each tap (c, kh, kw), one load of a vector
 * of input pixels serves six output channels' worth of FMAs.
 *
 * Forward: y[o][oh][ow] = b[o] + sum over (c, kh, kw) in that order of
 *          w[o][c][kh][kw] * xpad[c][oh + kh][ow + kw]
 * Weights: dw[o][c][kh][kw] = sum over (oh, ow) of dy[o][oh][ow] * xpad[c][oh + kh][ow + kw]
 *          db[o] = sum over (oh, ow) of dy[o][oh][ow]
 * Both work on ONE sample; the operator runs samples in parallel and sums
 * the per-sample weight gradients in sample order, so the result does not
 * depend on the thread count.
 *
 * The kernels are in targets/conv_direct.c, built per target CPU; the
 * tests hold each target's against the plain loops of conv_reference.c. */
#include "kernels/isa.h"

int nb_conv_direct_fits(const nb_conv_geom *g) {
    if (g->stride_h != 1 || g->stride_w != 1) return 0;
    if (g->channels > NB_CONV_DIRECT_MAX_CHANNELS || g->out_w < 16) return 0;
    if ((long)g->channels * nb_conv_direct_padded_h(g) * nb_conv_direct_padded_w(g) > NB_CONV_DIRECT_MAX_PAD) return 0;
    return g->kernel_h * g->kernel_w <= 64;
}

void nb_conv_direct_forward(const nb_conv_geom *g, int out_ch, const float *x, const float *w, const float *b,
                            float *y, int relu) {
    if (nb_conv_direct_fits(g)) {
        nb_isa_active()->conv_direct_forward(g, out_ch, x, w, b, y, relu);
        return;
    }
    nb_conv_forward_reference(g, out_ch, x, w, b, y);
    if (relu) nb_relu_inplace(y, (size_t)out_ch * g->out_h * g->out_w);
}

void nb_conv_direct_backward(const nb_conv_geom *g, int out_ch, const float *x, const float *dy, float *dw,
                             float *db) {
    if (nb_conv_direct_fits(g)) {
        nb_isa_active()->conv_direct_backward(g, out_ch, x, dy, dw, db);
        return;
    }
    nb_conv_weight_grad_reference(g, out_ch, x, dy, dw, db);
}
