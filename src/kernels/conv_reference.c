/* conv_reference.c — convolution of one sample, straight from the
 * definition: the loops the fast kernels (conv_direct.c, conv_cv.c) are
 * tested against, and what the direct path falls back to. Any stride and
 * padding. x is (C, H, W); w is (O, C, KH, KW); y and dy are (O, OH, OW). */
#include "kernels/kernels.h"

/* x[c][ih][iw], or 0 in the padding. */
static float pixel(const nb_conv_geom *g, const float *x, int c, int ih, int iw) {
    if (ih < 0 || ih >= g->height || iw < 0 || iw >= g->width) return 0.0f;
    return x[((size_t)c * g->height + ih) * g->width + iw];
}

static size_t w_at(const nb_conv_geom *g, int o, int c, int kh, int kw) {
    return (((size_t)o * g->channels + c) * g->kernel_h + kh) * g->kernel_w + kw;
}

void nb_conv_forward_reference(const nb_conv_geom *g, int out_ch, const float *x, const float *w,
                               const float *b, float *y) {
    for (int o = 0; o < out_ch; o++)
        for (int oh = 0; oh < g->out_h; oh++)
            for (int ow = 0; ow < g->out_w; ow++) {
                float acc = b ? b[o] : 0.0f;
                for (int c = 0; c < g->channels; c++)
                    for (int kh = 0; kh < g->kernel_h; kh++)
                        for (int kw = 0; kw < g->kernel_w; kw++)
                            acc += w[w_at(g, o, c, kh, kw)] *
                                   pixel(g, x, c, oh * g->stride_h - g->pad_h + kh, ow * g->stride_w - g->pad_w + kw);
                y[((size_t)o * g->out_h + oh) * g->out_w + ow] = acc;
            }
}

void nb_conv_weight_grad_reference(const nb_conv_geom *g, int out_ch, const float *x, const float *dy,
                                   float *dw, float *db) {
    const size_t ohw = (size_t)g->out_h * g->out_w;
    for (int o = 0; o < out_ch; o++) {
        const float *d = dy + (size_t)o * ohw;
        for (int c = 0; c < g->channels; c++)
            for (int kh = 0; kh < g->kernel_h; kh++)
                for (int kw = 0; kw < g->kernel_w; kw++) {
                    double acc = 0.0;
                    for (int oh = 0; oh < g->out_h; oh++)
                        for (int ow = 0; ow < g->out_w; ow++)
                            acc += (double)d[(size_t)oh * g->out_w + ow] *
                                   pixel(g, x, c, oh * g->stride_h - g->pad_h + kh, ow * g->stride_w - g->pad_w + kw);
                    dw[w_at(g, o, c, kh, kw)] = (float)acc;
                }
        if (db) {
            double acc = 0.0;
            for (size_t i = 0; i < ohw; i++) acc += d[i];
            db[o] = (float)acc;
        }
    }
}

void nb_conv_input_grad_reference(const nb_conv_geom *g, int out_ch, const float *w, const float *dy,
                                  float *dx) {
    for (int c = 0; c < g->channels; c++)
        for (int ih = 0; ih < g->height; ih++)
            for (int iw = 0; iw < g->width; iw++) {
                double acc = 0.0;
                for (int o = 0; o < out_ch; o++)
                    for (int kh = 0; kh < g->kernel_h; kh++)
                        for (int kw = 0; kw < g->kernel_w; kw++) {
                            int th = ih + g->pad_h - kh, tw = iw + g->pad_w - kw;
                            if (th < 0 || tw < 0 || th % g->stride_h || tw % g->stride_w) continue;
                            int oh = th / g->stride_h, ow = tw / g->stride_w;
                            if (oh >= g->out_h || ow >= g->out_w) continue;
                            acc += (double)w[w_at(g, o, c, kh, kw)] *
                                   dy[((size_t)o * g->out_h + oh) * g->out_w + ow];
                        }
                dx[((size_t)c * g->height + ih) * g->width + iw] += (float)acc;
            }
}
