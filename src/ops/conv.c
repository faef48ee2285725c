/* conv.c — 2-D convolution (cross-correlation, as in PyTorch), lowered to
 * matrix products by im2col.
 *
 * x is (N, C, H, W); w is (O, C, KH, KW), read as a matrix [O, CKK] with
 * CKK = C*KH*KW; b is (O) or absent; y is (N, O, OH, OW). The batch is taken
 * a group of G samples at a time, G chosen from the shapes alone so the
 * scratch space stays a few megabytes:
 *
 *   cols = im2col(x[group])            [CKK, G*OHW]
 *   Y'   = W cols                      [O, G*OHW], then y[n][o] = Y'[o][n] + b[o]
 *
 * and backward, with dY' the group's dy rearranged to [O, G*OHW]:
 *
 *   dW  += dY' cols^T                  (cols recomputed: the workspace is shared)
 *   dx  += col2im(W^T dY')
 *   db  += sum of dy over batch and positions
 *
 * Every sum runs in an order fixed by the shapes (gemm never splits K, col2im
 * gives each image to one thread, groups are visited in order), so results do
 * not depend on the thread count. */
#include "core/internal.h"
#include "kernels/kernels.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Scratch per group, in floats: cols plus Y'. Big enough that the products
 * are long, small enough to stay in the last-level cache. */
#define GROUP_FLOATS ((size_t)1 << 21)

typedef struct {
    nb_conv_geom g;
    int batch, out_ch;
    int ckk;     /* rows of cols: C*KH*KW */
    int ohw;     /* output positions per sample */
    int group;   /* samples per group */
} conv_plan;

static conv_plan plan_of(const nb_node *n) {
    const nb_tensor *x = &n->in[0]->value, *w = &n->in[1]->value;
    conv_plan p;
    p.g.channels = x->shape[1];
    p.g.height = x->shape[2];
    p.g.width = x->shape[3];
    p.g.kernel_h = w->shape[2];
    p.g.kernel_w = w->shape[3];
    p.g.stride_h = n->attr.conv.stride_h;
    p.g.stride_w = n->attr.conv.stride_w;
    p.g.pad_h = n->attr.conv.pad_h;
    p.g.pad_w = n->attr.conv.pad_w;
    p.g.out_h = (p.g.height + 2 * p.g.pad_h - p.g.kernel_h) / p.g.stride_h + 1;
    p.g.out_w = (p.g.width + 2 * p.g.pad_w - p.g.kernel_w) / p.g.stride_w + 1;
    p.batch = x->shape[0];
    p.out_ch = w->shape[0];
    p.ckk = p.g.channels * p.g.kernel_h * p.g.kernel_w;
    p.ohw = p.g.out_h * p.g.out_w;
    size_t per_sample = (size_t)(p.ckk + p.out_ch) * p.ohw;
    size_t group = GROUP_FLOATS / per_sample;
    p.group = group < 1 ? 1 : group > (size_t)p.batch ? p.batch : (int)group;
    return p;
}

static nb_status infer_conv(nb_node *n) {
    const nb_tensor *x = &n->in[0]->value, *w = &n->in[1]->value;
    if (x->ndim != 4 || w->ndim != 4)
        return nb_fail_shapes(n, "expected x [N, C, H, W] and w [O, C, KH, KW]", x, w);
    if (x->shape[1] != w->shape[1])
        return nb_fail_shapes(n, "x's channels (dim 1) differ from w's input channels (dim 1)", x, w);
    const int sh = n->attr.conv.stride_h, sw = n->attr.conv.stride_w;
    const int ph = n->attr.conv.pad_h, pw = n->attr.conv.pad_w;
    if (sh <= 0 || sw <= 0 || ph < 0 || pw < 0)
        return nb_fail(NB_ERR_ARG, "conv2d%s%s: stride %dx%d, padding %dx%d: expected stride > 0 and "
                       "padding >= 0", n->name[0] ? " " : "", n->name, sh, sw, ph, pw);
    if (x->shape[2] + 2 * ph < w->shape[2] || x->shape[3] + 2 * pw < w->shape[3]) {
        char what[96];
        snprintf(what, sizeof what, "the kernel is larger than the input padded by %dx%d; the "
                 "output would be empty", ph, pw);
        return nb_fail_shapes(n, what, x, w);
    }
    if (n->n_in > 2) {
        const nb_tensor *b = &n->in[2]->value;
        if (b->ndim != 1 || b->shape[0] != w->shape[0])
            return nb_fail_shapes(n, "expected a bias with one entry per output channel (w dim 0)", w, b);
    }
    const long oh = (x->shape[2] + 2L * ph - w->shape[2]) / sh + 1;
    const long ow = (x->shape[3] + 2L * pw - w->shape[3]) / sw + 1;
    size_t ckk = (size_t)x->shape[1] * w->shape[2] * w->shape[3];
    if ((size_t)oh * ow > INT_MAX || ckk > INT_MAX)
        return nb_fail_shapes(n, "the layer is too large for 32-bit matrix dimensions", x, w);
    conv_plan p = plan_of(n);
    size_t bytes;
    if ((size_t)p.group * p.ohw > INT_MAX ||
        !nb_mul_size((size_t)(p.ckk + p.out_ch) * p.group, (size_t)p.ohw * sizeof(float), &bytes))
        return nb_fail_shapes(n, "the layer is too large for 32-bit matrix dimensions", x, w);
    n->value.ndim = 4;
    n->value.shape[0] = p.batch;
    n->value.shape[1] = p.out_ch;
    n->value.shape[2] = p.g.out_h;
    n->value.shape[3] = p.g.out_w;
    n->workspace_bytes = bytes;
    n->aux_bytes = 0;
    return NB_OK;
}

static void forward_conv(nb_node *n) {
    const conv_plan p = plan_of(n);
    const float *x = n->in[0]->value.data, *w = n->in[1]->value.data;
    const float *b = n->n_in > 2 ? n->in[2]->value.data : NULL;
    float *y = n->value.data;
    float *cols = n->graph->workspace, *yg = cols + (size_t)p.ckk * p.group * p.ohw;
    const size_t x_sample = (size_t)p.g.channels * p.g.height * p.g.width;
    for (int n0 = 0; n0 < p.batch; n0 += p.group) {
        const int count = p.batch - n0 < p.group ? p.batch - n0 : p.group;
        const int len = count * p.ohw;
        nb_im2col(&p.g, x + (size_t)n0 * x_sample, count, cols);
        nb_sgemm(0, 0, p.out_ch, len, p.ckk, 1.0f, w, p.ckk, cols, len, 0.0f, yg, len);
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)len * p.out_ch >= 65536)
        for (int s = 0; s < count; s++)
            for (int o = 0; o < p.out_ch; o++) {
                const float *src = yg + (size_t)o * len + (size_t)s * p.ohw;
                float *dst = y + ((size_t)(n0 + s) * p.out_ch + o) * p.ohw;
                const float bias = b ? b[o] : 0.0f;
                for (int i = 0; i < p.ohw; i++) dst[i] = src[i] + bias;
            }
    }
}

/* A sum in a fixed order that still vectorises: sixteen independent float
 * lanes (no reassociation needed), combined in double at the end. */
static double sum_lanes(const float *v, int count) {
    enum { LANES = 16 };
    float lane[LANES] = {0};
    int i = 0;
    for (; i + LANES <= count; i += LANES)
        for (int j = 0; j < LANES; j++) lane[j] += v[i + j];
    double acc = 0;
    for (int j = 0; j < LANES; j++) acc += lane[j];
    for (; i < count; i++) acc += v[i];
    return acc;
}

static void backward_conv(nb_node *n) {
    const conv_plan p = plan_of(n);
    nb_node *xn = n->in[0], *wn = n->in[1], *bn = n->n_in > 2 ? n->in[2] : NULL;
    const float *dy = n->grad.data;
    if (bn && bn->needs_grad) {
        float *db = bn->grad.data;
#pragma omp parallel for schedule(static) if ((size_t)p.batch * p.out_ch * p.ohw >= 65536)
        for (int o = 0; o < p.out_ch; o++) {
            double acc = 0;
            for (int s = 0; s < p.batch; s++)
                acc += sum_lanes(dy + ((size_t)s * p.out_ch + o) * p.ohw, p.ohw);
            db[o] += (float)acc;
        }
    }
    if (!xn->needs_grad && !wn->needs_grad) return;
    const float *x = xn->value.data, *w = wn->value.data;
    float *cols = n->graph->workspace, *dyg = cols + (size_t)p.ckk * p.group * p.ohw;
    const size_t x_sample = (size_t)p.g.channels * p.g.height * p.g.width;
    for (int n0 = 0; n0 < p.batch; n0 += p.group) {
        const int count = p.batch - n0 < p.group ? p.batch - n0 : p.group;
        const int len = count * p.ohw;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)len * p.out_ch >= 65536)
        for (int s = 0; s < count; s++)
            for (int o = 0; o < p.out_ch; o++)
                memcpy(dyg + (size_t)o * len + (size_t)s * p.ohw,
                       dy + ((size_t)(n0 + s) * p.out_ch + o) * p.ohw, (size_t)p.ohw * sizeof(float));
        if (wn->needs_grad) {
            nb_im2col(&p.g, x + (size_t)n0 * x_sample, count, cols);
            nb_sgemm(0, 1, p.out_ch, p.ckk, len, 1.0f, dyg, len, cols, len, 1.0f, wn->grad.data, p.ckk);
        }
        if (xn->needs_grad) {
            nb_sgemm(1, 0, p.ckk, len, p.out_ch, 1.0f, w, p.ckk, dyg, len, 0.0f, cols, len);
            nb_col2im_add(&p.g, cols, count, xn->grad.data + (size_t)n0 * x_sample);
        }
    }
}

static const nb_op_def conv2d_def = {NB_OP_CONV2D, "conv2d", false, infer_conv, forward_conv,
                                     backward_conv};

nb_node *nb_conv2d(nb_graph *g, nb_node *x, nb_node *w, nb_node *b, int stride_h, int stride_w,
                   int pad_h, int pad_w) {
    nb_op_attr attr = {.conv = {stride_h, stride_w, pad_h, pad_w}};
    nb_node *in[3] = {x, w, b};
    return nb_node_new_op(g, &conv2d_def, in, b ? 3 : 2, &attr);
}
