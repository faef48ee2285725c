/* batchnorm.c — batch normalisation with torch.nn.BatchNorm1d/2d's
 * semantics, forward and backward fused per channel.
 *
 * x is [N, C, ...] (batchnorm2d: [N, C, H, W]; batchnorm1d: [N, C] or
 * [N, C, L]); weight, bias, running_mean and running_var are [C]. Channel c
 * gathers the m = N * (product of the axes after C) elements x[n, c, ...].
 *
 * Train mode normalises by the batch mean and the biased variance
 * (sum (x - mean)^2 / m), and updates the buffers as PyTorch does:
 *     running_mean = (1 - momentum) running_mean + momentum mean
 *     running_var  = (1 - momentum) running_var  + momentum var m / (m - 1)
 * and counts the batch (num_batches_tracked). Eval mode normalises by the
 * running statistics and changes nothing.
 *
 * Backward (train mode, xhat = (x - mean) invstd):
 *     dbias   = sum dy          dweight = sum dy xhat
 *     dx      = weight invstd (dy - dbias / m - xhat dweight / m)
 * Channels are independent: the loops run in parallel over channels and
 * each channel's sums run in a fixed order in double, so the result is the
 * same at any thread count; each channel's loops are the per-target kernels
 * of kernels/batchnorm.c. forward saves each channel's mean and invstd in
 * aux for backward. When the only consumer is a relu, the graph runs it in
 * place and sets fused_relu: forward then stores max(y, 0), as conv2d
 * does. */
#include "core/internal.h"
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

/* Elements per channel per sample (H*W, L or 1). */
static size_t inner_of(const nb_tensor *x) { return nb_numel(x->ndim - 2, x->shape + 2); }

static nb_status infer_batchnorm(nb_node *n) {
    const nb_tensor *x = &n->in[0]->value;
    const bool spatial = n->attr.batchnorm.spatial;
    const char *label = n->name[0] && strcmp(n->name, n->op->name) ? n->name : "";
    char sx[64], sp[64];
    if (spatial ? x->ndim != 4 : (x->ndim != 2 && x->ndim != 3))
        return nb_fail(NB_ERR_SHAPE, "%s%s%s: expected x %s, got %s",
                       spatial ? "batchnorm2d" : "batchnorm1d", label[0] ? " " : "", label,
                       spatial ? "[N, C, H, W]" : "[N, C] or [N, C, L]",
                       nb_shape_str(x, sx, sizeof sx));
    for (int k = 1; k < 5; k++) {
        const nb_tensor *p = &n->in[k]->value;
        if (p->ndim != 1 || p->shape[0] != x->shape[1]) {
            static const char *what[5] = {"", "weight", "bias", "running_mean", "running_var"};
            return nb_fail(NB_ERR_SHAPE, "%s%s%s: %s is %s, expected [%d] for x %s",
                           spatial ? "batchnorm2d" : "batchnorm1d", label[0] ? " " : "", label,
                           what[k], nb_shape_str(p, sp, sizeof sp), x->shape[1],
                           nb_shape_str(x, sx, sizeof sx));
        }
    }
    if (!(n->attr.batchnorm.eps > 0.0f) || !(n->attr.batchnorm.momentum >= 0.0f) ||
        !(n->attr.batchnorm.momentum <= 1.0f))
        return nb_fail(NB_ERR_ARG, "%s%s%s: eps %g and momentum %g, expected eps > 0 and 0 <= "
                       "momentum <= 1", spatial ? "batchnorm2d" : "batchnorm1d",
                       label[0] ? " " : "", label, (double)n->attr.batchnorm.eps,
                       (double)n->attr.batchnorm.momentum);
    /* PyTorch refuses this too: one value per channel has no variance. Only
     * checked for a forward: a model's graph is built with batch 1. */
    if (n->graph->training && n->graph->planning && (size_t)x->shape[0] * inner_of(x) < 2)
        return nb_fail(NB_ERR_SHAPE, "%s%s%s: expected more than 1 value per channel in train "
                       "mode, got x %s", spatial ? "batchnorm2d" : "batchnorm1d",
                       label[0] ? " " : "", label, nb_shape_str(x, sx, sizeof sx));
    n->value.ndim = x->ndim;
    memcpy(n->value.shape, x->shape, sizeof n->value.shape);
    n->aux_bytes = 2 * (size_t)x->shape[1] * sizeof(float); /* mean, invstd per channel */
    n->workspace_bytes = 0;
    return NB_OK;
}

typedef struct {
    size_t batch, channels, inner, m;
} bn_dims;

static bn_dims dims_of(const nb_node *n) {
    const nb_tensor *x = &n->in[0]->value;
    bn_dims d = {(size_t)x->shape[0], (size_t)x->shape[1], inner_of(x), 0};
    d.m = d.batch * d.inner;
    return d;
}

#define BN_PARALLEL_MIN 32768

static void forward_batchnorm(nb_node *n) {
    const bn_dims d = dims_of(n);
    const float *x = n->in[0]->value.data, *w = n->in[1]->value.data, *b = n->in[2]->value.data;
    float *running_mean = n->in[3]->value.data, *running_var = n->in[4]->value.data;
    float *y = n->value.data, *saved = n->aux;
    const bool training = n->graph->training;
    const int relu = n->fused_relu; /* the consumer's relu, done here (graph.c) */
    const float momentum = n->attr.batchnorm.momentum, eps = n->attr.batchnorm.eps;
    const size_t stride = d.channels * d.inner;
    const long channels = (long)d.channels;
#pragma omp parallel for schedule(static) if (d.m * d.channels >= BN_PARALLEL_MIN)
    for (long cl = 0; cl < channels; cl++) {
        const size_t c = (size_t)cl;
        const float *xc = x + c * d.inner;
        float mean, invstd;
        if (training) {
            double mu, sq;
            nb_bn_stats(xc, d.batch, stride, d.inner, &mu, &sq);
            const double var = sq / (double)d.m;
            mean = (float)mu;
            invstd = (float)(1.0 / sqrt(var + eps));
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] +
                                     momentum * (sq / (double)(d.m - 1)));
        } else {
            mean = running_mean[c];
            invstd = (float)(1.0 / sqrt((double)running_var[c] + eps));
        }
        saved[c] = mean;
        saved[d.channels + c] = invstd;
        const float scale = w[c] * invstd, shift = b[c] - mean * scale;
        nb_bn_apply(xc, y + c * d.inner, d.batch, stride, d.inner, scale, shift, relu);
    }
    if (training) n->attr.batchnorm.batches++;
}

/* dx, dweight and dbias are written when they are the pass's first
 * gradient of their input (grad_write_first), else added. */
static void backward_batchnorm(nb_node *n) {
    const bn_dims d = dims_of(n);
    nb_node *xn = n->in[0], *wn = n->in[1], *bn = n->in[2];
    const float *x = xn->value.data, *w = wn->value.data, *dy = n->grad.data;
    const float *saved = n->aux;
    float *dx = xn->needs_grad ? xn->grad.data : NULL;
    float *dw = wn->needs_grad ? wn->grad.data : NULL;
    float *db = bn->needs_grad ? bn->grad.data : NULL;
    const bool dx_first = dx && nb_grad_first(xn), dw_first = dw && nb_grad_first(wn);
    const bool db_first = db && nb_grad_first(bn);
    const size_t stride = d.channels * d.inner;
    const long channels = (long)d.channels;
#pragma omp parallel for schedule(static) if (d.m * d.channels >= BN_PARALLEL_MIN)
    for (long cl = 0; cl < channels; cl++) {
        const size_t c = (size_t)cl;
        const float mean = saved[c], invstd = saved[d.channels + c];
        const float *xc = x + c * d.inner, *dyc = dy + c * d.inner;
        double sum_dy, sum_dy_dev;
        nb_bn_grad_sums(xc, dyc, d.batch, stride, d.inner, mean, &sum_dy, &sum_dy_dev);
        const double sum_dy_xhat = sum_dy_dev * invstd;
        if (dw) dw[c] = dw_first ? (float)sum_dy_xhat : dw[c] + (float)sum_dy_xhat;
        if (db) db[c] = db_first ? (float)sum_dy : db[c] + (float)sum_dy;
        if (!dx) continue;
        /* dx = k (dy - mean(dy) - xhat mean(dy xhat)), xhat = (x - mean) invstd. */
        const float k = w[c] * invstd;
        const float mean_dy = (float)(sum_dy / (double)d.m);
        const float mean_dy_xhat = (float)(sum_dy_xhat / (double)d.m);
        nb_bn_grad_input(xc, dyc, dx + c * d.inner, d.batch, stride, d.inner, mean, k, -k * mean_dy,
                         -k * invstd * mean_dy_xhat, !dx_first);
    }
}

/* Eval mode never reaches backward (the graph refuses it), so backward
 * always sees the batch statistics its forward used. */
static const nb_op_def batchnorm_def = {NB_OP_BATCHNORM, "batchnorm", false, infer_batchnorm,
                                        forward_batchnorm, backward_batchnorm, true, true};

static nb_node *batchnorm(nb_graph *g, bool spatial, nb_node *x, nb_node *weight, nb_node *bias,
                          nb_node *running_mean, nb_node *running_var, float momentum, float eps) {
    for (int k = 0; k < 2; k++) {
        nb_node *buf = k ? running_var : running_mean;
        if (buf && buf->kind != NB_NODE_BUFFER && g && !g->status) {
            nb_fail(NB_ERR_ARG, "%s: %s '%s' is a %s, expected a buffer (nb_buffer)",
                    spatial ? "batchnorm2d" : "batchnorm1d", k ? "running_var" : "running_mean",
                    buf->name, nb_node_op(buf));
            g->status = NB_ERR_ARG;
            return NULL;
        }
    }
    nb_op_attr attr = {.batchnorm = {momentum, eps, 0, spatial}};
    return nb_node_new_op(g, &batchnorm_def,
                          (nb_node *[]){x, weight, bias, running_mean, running_var}, 5, &attr);
}

nb_node *nb_batchnorm2d(nb_graph *g, nb_node *x, nb_node *weight, nb_node *bias,
                        nb_node *running_mean, nb_node *running_var, float momentum, float eps) {
    return batchnorm(g, true, x, weight, bias, running_mean, running_var, momentum, eps);
}

nb_node *nb_batchnorm1d(nb_graph *g, nb_node *x, nb_node *weight, nb_node *bias,
                        nb_node *running_mean, nb_node *running_var, float momentum, float eps) {
    return batchnorm(g, false, x, weight, bias, running_mean, running_var, momentum, eps);
}

int64_t nb_batchnorm_batches(const nb_node *bn) {
    return bn && bn->op == &batchnorm_def ? bn->attr.batchnorm.batches : 0;
}

void nb_batchnorm_set_batches(nb_node *bn, int64_t batches) {
    if (bn && bn->op == &batchnorm_def) bn->attr.batchnorm.batches = batches;
}
