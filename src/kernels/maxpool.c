/* maxpool.c — max pooling kernels: 2x2 windows with stride 2 (LeNet-5's),
 * any window and stride without padding (AlexNet's 3x3, stride 2), and
 * any window, stride and padding (ResNet's).
 *
 * With padding (ResNet's 3x3, stride 2, padding 1), each window is clipped
 * to the image: the kernels run the outputs whose window spans whole
 * columns as vectors and the few at the left and right edges one by one.
 *
 * 2x2, stride 2, no padding, on images of even height and width:
 * Output (oy, ox) is the maximum of input rows 2oy, 2oy+1 and columns 2ox,
 * 2ox+1, taken in row-major order with a strict >, so the first of equal
 * maxima wins, and a NaN wins over a number so that it propagates: exactly
 * the rule of the general pooling loop in ops/pool.c. The index saved for
 * backward is the winner's position in the image (iy * w + ix).
 *
 * The windows tile the image, so backward can write every input gradient
 * (the output's gradient at the winner, 0 at the other three) instead of
 * zeroing the image and scattering into it.
 *
 * The fast versions (targets/maxpool.c, built per target CPU) do a vector
 * of outputs of a row at once: two input rows are loaded two vectors at a
 * time, split into even and odd columns, and compared in the window's
 * order. */
#include "kernels/isa.h"

#include <math.h>


void nb_maxpool2x2_forward_reference(const float *x, int h, int w, float *y, int32_t *arg) {
    const int oh = h / 2, ow = w / 2;
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            int best = 2 * oy * w + 2 * ox;
            float m = x[best];
            const int cand[3] = {best + 1, best + w, best + w + 1};
            for (int k = 0; k < 3; k++) {
                float v = x[cand[k]];
                if (v > m || (isnan(v) && !isnan(m))) m = v, best = cand[k];
            }
            y[oy * ow + ox] = m;
            arg[oy * ow + ox] = best;
        }
}

void nb_maxpool2x2_backward_reference(const float *dy, const int32_t *arg, int h, int w, float *dx) {
    const int oh = h / 2, ow = w / 2;
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            const int base = 2 * oy * w + 2 * ox, a = arg[oy * ow + ox];
            const float g = dy[oy * ow + ox];
            dx[base] = a == base ? g : 0.0f;
            dx[base + 1] = a == base + 1 ? g : 0.0f;
            dx[base + w] = a == base + w ? g : 0.0f;
            dx[base + w + 1] = a == base + w + 1 ? g : 0.0f;
        }
}

/* Any window, any stride, no padding: the window of (oy, ox) is rows
 * oy*sh .. +kh-1 and columns ox*sw .. +kw-1, visited in row-major order. */
void nb_maxpool_forward_reference(const float *x, int h, int w, int kh, int kw, int sh, int sw,
                                  float *y, int32_t *arg) {
    const int oh = (h - kh) / sh + 1, ow = (w - kw) / sw + 1;
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            int best = oy * sh * w + ox * sw;
            float m = x[best];
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++) {
                    int at = (oy * sh + i) * w + ox * sw + j;
                    float v = x[at];
                    if (v > m || (isnan(v) && !isnan(m))) m = v, best = at;
                }
            y[oy * ow + ox] = m;
            arg[oy * ow + ox] = best;
        }
}

void nb_maxpool_forward_padded_reference(const nb_conv_geom *g, const float *x, float *y, int32_t *arg) {
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) nb_maxpool_window(g, x, oy, ox, y, arg);
}

void nb_maxpool2x2_forward(const float *x, int h, int w, float *y, int32_t *arg) {
    nb_isa_active()->maxpool2x2_forward(x, h, w, y, arg);
}

void nb_maxpool2x2_backward(const float *dy, const int32_t *arg, int h, int w, float *dx) {
    nb_isa_active()->maxpool2x2_backward(dy, arg, h, w, dx);
}

void nb_maxpool_forward(const float *x, int h, int w, int kh, int kw, int sh, int sw, float *y, int32_t *arg) {
    nb_isa_active()->maxpool_forward(x, h, w, kh, kw, sh, sw, y, arg);
}

void nb_maxpool_forward_padded(const nb_conv_geom *g, const float *x, float *y, int32_t *arg) {
    nb_isa_active()->maxpool_forward_padded(g, x, y, arg);
}
