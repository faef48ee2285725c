/* pool.c — max pooling, average pooling and adaptive average pooling over
 * (N, C, H, W) tensors, with PyTorch's semantics (floor output sizes).
 *
 * Every image (one sample's one channel) is independent, so the loops run
 * in parallel over images; inside one image, overlapping windows add into a
 * pixel's gradient in a fixed order, so results do not depend on threads. */
#include "core/internal.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define PARALLEL_MIN_FLOATS 32768

/* One window sweep, read from the node's attributes and shapes. */
typedef struct {
    int images;      /* N*C */
    int h, w, oh, ow;
    int kh, kw, sh, sw, ph, pw;
} pool_dims;

static pool_dims pool_dims_of(const nb_node *n) {
    const nb_tensor *x = &n->in[0]->value;
    pool_dims d;
    d.images = x->shape[0] * x->shape[1];
    d.h = x->shape[2];
    d.w = x->shape[3];
    d.oh = n->value.shape[2];
    d.ow = n->value.shape[3];
    d.kh = n->attr.pool.kernel_h;
    d.kw = n->attr.pool.kernel_w;
    d.sh = n->attr.pool.stride_h;
    d.sw = n->attr.pool.stride_w;
    d.ph = n->attr.pool.pad_h;
    d.pw = n->attr.pool.pad_w;
    return d;
}

static nb_status expect_4d(const nb_node *n) {
    const nb_tensor *x = &n->in[0]->value;
    if (x->ndim == 4) return NB_OK;
    char sx[64];
    return nb_fail(NB_ERR_SHAPE, "%s%s%s: expected x [N, C, H, W], got %s", n->op->name,
                   n->name[0] ? " " : "", n->name, nb_shape_str(x, sx, sizeof sx));
}

static void set_output(nb_node *n, int oh, int ow) {
    const nb_tensor *x = &n->in[0]->value;
    n->value.ndim = 4;
    n->value.shape[0] = x->shape[0];
    n->value.shape[1] = x->shape[1];
    n->value.shape[2] = oh;
    n->value.shape[3] = ow;
}

/* Kernel, stride and padding checks shared by max and average pooling. */
static nb_status infer_window(nb_node *n) {
    nb_status s = expect_4d(n);
    if (s) return s;
    const nb_tensor *x = &n->in[0]->value;
    const int kh = n->attr.pool.kernel_h, kw = n->attr.pool.kernel_w;
    const int sh = n->attr.pool.stride_h, sw = n->attr.pool.stride_w;
    const int ph = n->attr.pool.pad_h, pw = n->attr.pool.pad_w;
    const char *op = n->op->name, *sep = n->name[0] ? " " : "";
    if (kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0)
        return nb_fail(NB_ERR_ARG, "%s%s%s: kernel %dx%d, stride %dx%d: expected both > 0", op, sep,
                       n->name, kh, kw, sh, sw);
    if (ph < 0 || pw < 0 || ph > kh / 2 || pw > kw / 2)
        return nb_fail(NB_ERR_ARG, "%s%s%s: padding %dx%d with kernel %dx%d: expected 0 <= padding "
                       "<= kernel/2", op, sep, n->name, ph, pw, kh, kw);
    if (x->shape[2] + 2 * ph < kh || x->shape[3] + 2 * pw < kw) {
        char sx[64];
        return nb_fail(NB_ERR_SHAPE, "%s%s%s: input %s padded by %dx%d is smaller than the kernel "
                       "%dx%d; the output would be empty", op, sep, n->name,
                       nb_shape_str(x, sx, sizeof sx), ph, pw, kh, kw);
    }
    set_output(n, (x->shape[2] + 2 * ph - kh) / sh + 1, (x->shape[3] + 2 * pw - kw) / sw + 1);
    n->workspace_bytes = 0;
    return NB_OK;
}

/* The window of output (oy, ox), clipped to the image: rows [*y0, *y1),
 * columns [*x0, *x1). Padding never holds the maximum and adds 0 to a sum. */
static inline void window(const pool_dims *d, int oy, int ox, int *y0, int *y1, int *x0, int *x1) {
    int top = oy * d->sh - d->ph, left = ox * d->sw - d->pw;
    *y0 = top < 0 ? 0 : top;
    *y1 = top + d->kh < d->h ? top + d->kh : d->h;
    *x0 = left < 0 ? 0 : left;
    *x1 = left + d->kw < d->w ? left + d->kw : d->w;
}

/* ---- max pooling ------------------------------------------------------------
 * Forward saves, per output, the index of its maximum within the image
 * (int32, in aux); backward routes each gradient there. A strict > keeps the
 * first maximum in row-major order on ties; a NaN wins so it propagates. */

static nb_status infer_maxpool(nb_node *n) {
    nb_status s = infer_window(n);
    if (s) return s;
    n->aux_bytes = nb_tensor_numel(&n->value) * sizeof(int32_t);
    return NB_OK;
}

/* 2x2 windows with stride 2 tiling an even-sized image: the kernel in
 * kernels/pool2x2.c, whose backward writes every input gradient. */
static bool is_2x2_tiling(const pool_dims *d) {
    return d->kh == 2 && d->kw == 2 && d->sh == 2 && d->sw == 2 && d->ph == 0 && d->pw == 0 &&
           d->h % 2 == 0 && d->w % 2 == 0;
}

static void forward_maxpool(nb_node *n) {
    const pool_dims d = pool_dims_of(n);
    const float *x = n->in[0]->value.data;
    float *y = n->value.data;
    int32_t *arg = n->aux;
    const size_t plane = (size_t)d.h * d.w, out_plane = (size_t)d.oh * d.ow;
    if (is_2x2_tiling(&d)) {
        /* No gradient to route (eval mode): the kernel skips the indices. */
        const bool keep = n->in[0]->needs_grad;
#pragma omp parallel for schedule(static) if (plane * d.images >= PARALLEL_MIN_FLOATS)
        for (int im = 0; im < d.images; im++)
            nb_maxpool2x2_forward(x + im * plane, d.h, d.w, y + im * out_plane, keep ? arg + im * out_plane : NULL);
        return;
    }
    if (d.ph == 0 && d.pw == 0) {
#pragma omp parallel for schedule(static) if (plane * d.images >= PARALLEL_MIN_FLOATS)
        for (int im = 0; im < d.images; im++)
            nb_maxpool_forward(x + im * plane, d.h, d.w, d.kh, d.kw, d.sh, d.sw, y + im * out_plane,
                               arg + im * out_plane);
        return;
    }
    /* Windows clipped to the image (ResNet's 3x3, stride 2, padding 1). */
    const nb_conv_geom g = {1, d.h, d.w, d.kh, d.kw, d.sh, d.sw, d.ph, d.pw, d.oh, d.ow};
#pragma omp parallel for schedule(static) if (plane * d.images >= PARALLEL_MIN_FLOATS)
    for (int im = 0; im < d.images; im++)
        nb_maxpool_forward_padded(&g, x + im * plane, y + im * out_plane, arg + im * out_plane);
}

static void backward_maxpool(nb_node *n) {
    if (!n->in[0]->needs_grad) return;
    const pool_dims d = pool_dims_of(n);
    const float *dy = n->grad.data;
    float *dx = n->in[0]->grad.data;
    const int32_t *arg = n->aux;
    const size_t plane = (size_t)d.h * d.w, out_plane = (size_t)d.oh * d.ow;
    if (is_2x2_tiling(&d) && nb_grad_first(n->in[0])) {
#pragma omp parallel for schedule(static) if (plane * d.images >= PARALLEL_MIN_FLOATS)
        for (int im = 0; im < d.images; im++)
            nb_maxpool2x2_backward(dy + im * out_plane, arg + im * out_plane, d.h, d.w, dx + im * plane);
        return;
    }
    nb_grad_begin_add(n->in[0]);
#pragma omp parallel for schedule(static) if (plane * d.images >= PARALLEL_MIN_FLOATS)
    for (int im = 0; im < d.images; im++)
        for (size_t o = im * out_plane; o < (im + 1) * out_plane; o++) dx[im * plane + arg[o]] += dy[o];
}

/* ---- average pooling ----------------------------------------------------------
 * The divisor is always KH*KW: padding counts as zeros (PyTorch's
 * count_include_pad=True), and with floor output sizes no window reaches
 * past the padding. */

static nb_status infer_avgpool(nb_node *n) {
    nb_status s = infer_window(n);
    n->aux_bytes = 0;
    return s;
}

static void forward_avgpool(nb_node *n) {
    const pool_dims d = pool_dims_of(n);
    const float *x = n->in[0]->value.data;
    float *y = n->value.data;
    const float scale = 1.0f / (float)(d.kh * d.kw);
    const size_t plane = (size_t)d.h * d.w, out_plane = (size_t)d.oh * d.ow;
#pragma omp parallel for schedule(static) if (plane * d.images >= PARALLEL_MIN_FLOATS)
    for (int im = 0; im < d.images; im++) {
        const float *xi = x + im * plane;
        for (int oy = 0; oy < d.oh; oy++)
            for (int ox = 0; ox < d.ow; ox++) {
                int y0, y1, x0, x1;
                window(&d, oy, ox, &y0, &y1, &x0, &x1);
                float sum = 0.0f;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) sum += xi[iy * d.w + ix];
                y[im * out_plane + (size_t)oy * d.ow + ox] = sum * scale;
            }
    }
}

static void backward_avgpool(nb_node *n) {
    if (!n->in[0]->needs_grad) return;
    const pool_dims d = pool_dims_of(n);
    const float *dy = n->grad.data;
    float *dx = n->in[0]->grad.data;
    const float scale = 1.0f / (float)(d.kh * d.kw);
    const size_t plane = (size_t)d.h * d.w, out_plane = (size_t)d.oh * d.ow;
#pragma omp parallel for schedule(static) if (plane * d.images >= PARALLEL_MIN_FLOATS)
    for (int im = 0; im < d.images; im++) {
        float *dxi = dx + im * plane;
        for (int oy = 0; oy < d.oh; oy++)
            for (int ox = 0; ox < d.ow; ox++) {
                int y0, y1, x0, x1;
                window(&d, oy, ox, &y0, &y1, &x0, &x1);
                const float g = dy[im * out_plane + (size_t)oy * d.ow + ox] * scale;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) dxi[iy * d.w + ix] += g;
            }
    }
}

/* ---- adaptive average pooling -------------------------------------------------
 * Output i of an axis averages input [floor(i*H/OH), ceil((i+1)*H/OH)):
 * PyTorch's bins, which cover the input and overlap when H % OH != 0. */

static inline int bin_start(int i, int in, int out) { return (int)((long)i * in / out); }
static inline int bin_end(int i, int in, int out) { return (int)(((long)(i + 1) * in + out - 1) / out); }

static nb_status infer_adaptive(nb_node *n) {
    nb_status s = expect_4d(n);
    if (s) return s;
    const int oh = n->attr.adaptive.out_h, ow = n->attr.adaptive.out_w;
    if (oh <= 0 || ow <= 0)
        return nb_fail(NB_ERR_ARG, "%s%s%s: output size %dx%d: expected both > 0", n->op->name,
                       n->name[0] ? " " : "", n->name, oh, ow);
    set_output(n, oh, ow);
    n->aux_bytes = 0;
    n->workspace_bytes = 0;
    return NB_OK;
}

static void forward_adaptive(nb_node *n) {
    const pool_dims d = pool_dims_of(n);
    const float *x = n->in[0]->value.data;
    float *y = n->value.data;
    const size_t plane = (size_t)d.h * d.w, out_plane = (size_t)d.oh * d.ow;
#pragma omp parallel for schedule(static) if (plane * d.images >= PARALLEL_MIN_FLOATS)
    for (int im = 0; im < d.images; im++) {
        const float *xi = x + im * plane;
        for (int oy = 0; oy < d.oh; oy++) {
            const int y0 = bin_start(oy, d.h, d.oh), y1 = bin_end(oy, d.h, d.oh);
            for (int ox = 0; ox < d.ow; ox++) {
                const int x0 = bin_start(ox, d.w, d.ow), x1 = bin_end(ox, d.w, d.ow);
                float sum = 0.0f;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) sum += xi[iy * d.w + ix];
                y[im * out_plane + (size_t)oy * d.ow + ox] = sum / (float)((y1 - y0) * (x1 - x0));
            }
        }
    }
}

static void backward_adaptive(nb_node *n) {
    if (!n->in[0]->needs_grad) return;
    const pool_dims d = pool_dims_of(n);
    const float *dy = n->grad.data;
    float *dx = n->in[0]->grad.data;
    const size_t plane = (size_t)d.h * d.w, out_plane = (size_t)d.oh * d.ow;
#pragma omp parallel for schedule(static) if (plane * d.images >= PARALLEL_MIN_FLOATS)
    for (int im = 0; im < d.images; im++) {
        float *dxi = dx + im * plane;
        for (int oy = 0; oy < d.oh; oy++) {
            const int y0 = bin_start(oy, d.h, d.oh), y1 = bin_end(oy, d.h, d.oh);
            for (int ox = 0; ox < d.ow; ox++) {
                const int x0 = bin_start(ox, d.w, d.ow), x1 = bin_end(ox, d.w, d.ow);
                const float g = dy[im * out_plane + (size_t)oy * d.ow + ox] /
                                (float)((y1 - y0) * (x1 - x0));
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) dxi[iy * d.w + ix] += g;
            }
        }
    }
}

static const nb_op_def maxpool_def = {NB_OP_MAXPOOL2D, "maxpool2d", false, infer_maxpool,
                                      forward_maxpool, backward_maxpool, true, false};
static const nb_op_def avgpool_def = {NB_OP_AVGPOOL2D, "avgpool2d", false, infer_avgpool,
                                      forward_avgpool, backward_avgpool, false, false};
static const nb_op_def adaptive_def = {NB_OP_ADAPTIVE_AVGPOOL2D, "adaptive_avgpool2d", false,
                                       infer_adaptive, forward_adaptive, backward_adaptive, false, false};

static nb_node *pool(nb_graph *g, const nb_op_def *def, nb_node *x, int kh, int kw, int sh, int sw,
                     int ph, int pw) {
    nb_op_attr attr = {.pool = {kh, kw, sh, sw, ph, pw}};
    return nb_node_new_op(g, def, &x, 1, &attr);
}

nb_node *nb_maxpool2d(nb_graph *g, nb_node *x, int kernel_h, int kernel_w, int stride_h,
                      int stride_w, int pad_h, int pad_w) {
    return pool(g, &maxpool_def, x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w);
}

nb_node *nb_avgpool2d(nb_graph *g, nb_node *x, int kernel_h, int kernel_w, int stride_h,
                      int stride_w, int pad_h, int pad_w) {
    return pool(g, &avgpool_def, x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w);
}

nb_node *nb_adaptive_avgpool2d(nb_graph *g, nb_node *x, int out_h, int out_w) {
    nb_op_attr attr = {.adaptive = {out_h, out_w}};
    return nb_node_new_op(g, &adaptive_def, &x, 1, &attr);
}
