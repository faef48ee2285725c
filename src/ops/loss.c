/* loss.c — the losses: softmax cross-entropy, binary cross-entropy (on
 * probabilities and on logits) and the squared error. Each gives a scalar of
 * shape [1]; sums accumulate in double, in index order.
 *
 * Forward cannot fail, yet label values are only known at forward time. A
 * label that is not an integer in [0, C) therefore makes the loss NaN (and
 * its row's gradient NaN), which a training loop's finite check reports;
 * the nn layer validates labels before feeding them. */
#include "core/internal.h"

#include <math.h>
#include <string.h>

static nb_status infer_scalar(nb_node *n) {
    n->value.ndim = 1;
    n->value.shape[0] = 1;
    return NB_OK;
}

/* Elementwise losses compare two tensors of one shape. */
static nb_status infer_pair(nb_node *n) {
    const nb_tensor *y = &n->in[0]->value, *t = &n->in[1]->value;
    if (!nb_same_shape(y, t)) return nb_fail_shapes(n, "prediction and target shapes differ", y, t);
    return infer_scalar(n);
}

/* ---- softmax cross-entropy ---------------------------------------------------
 * Per row, J_r = log sum_j exp(x_j) - x_label, computed as a log-sum-exp
 * shifted by the row max so large logits neither overflow nor lose the
 * answer; dJ_r/dx_j = p_j - [j == label]. The probabilities p are saved.
 *
 * With label smoothing e (attr.scalar; F.cross_entropy(label_smoothing=e))
 * the target is q = (1 - e) onehot(label) + e / C, so
 *     J_r = (1 - e) (lse - x_label) + e (lse - mean_j x_j),
 *     dJ_r/dx_j = p_j - q_j. */

static nb_status infer_softmax_ce(nb_node *n) {
    const nb_tensor *x = &n->in[0]->value, *labels = &n->in[1]->value;
    if (x->ndim != 2 || labels->ndim != 1 || labels->shape[0] != x->shape[0])
        return nb_fail_shapes(n, "expected logits [N, classes] and labels [N]", x, labels);
    n->aux_bytes = nb_tensor_numel(x) * sizeof(float);
    return infer_scalar(n);
}

/* The class index of a label, or -1 when it is not an integer in [0, c). */
static int class_of(float label, int c) {
    if (!(label >= 0.0f && label < (float)c) || label != floorf(label)) return -1;
    return (int)label;
}

static void forward_softmax_ce(nb_node *n) {
    int rows = n->in[0]->value.shape[0], c = n->in[0]->value.shape[1];
    const float *labels = n->in[1]->value.data;
    float *probs = n->aux;
    double total = 0;
    for (int r = 0; r < rows; r++) {
        const float *x = n->in[0]->value.data + (size_t)r * c;
        float *p = probs + (size_t)r * c;
        float max = x[0];
        for (int j = 1; j < c; j++)
            if (x[j] > max) max = x[j];
        double sum = 0;
        for (int j = 0; j < c; j++) {
            p[j] = expf(x[j] - max);
            sum += p[j];
        }
        for (int j = 0; j < c; j++) p[j] = (float)(p[j] / sum);
        int k = class_of(labels[r], c);
        const double lse = log(sum) + max, e = n->attr.scalar;
        double row = k < 0 ? NAN : lse - x[k];
        if (e != 0.0) {
            double mean = 0;
            for (int j = 0; j < c; j++) mean += x[j];
            row = (1.0 - e) * row + e * (lse - mean / c);
        }
        total += row;
    }
    n->value.data[0] = (float)(total / rows);
}

static void backward_softmax_ce(nb_node *n) {
    if (!n->in[0]->needs_grad) return; /* labels are not differentiable */
    int rows = n->in[0]->value.shape[0], c = n->in[0]->value.shape[1];
    const float *labels = n->in[1]->value.data, *probs = n->aux;
    float scale = n->grad.data[0] / (float)rows;
    for (int r = 0; r < rows; r++) {
        const float *p = probs + (size_t)r * c;
        float *dx = n->in[0]->grad.data + (size_t)r * c;
        int k = class_of(labels[r], c);
        const float e = n->attr.scalar, off = e / (float)c, on = 1.0f - e + off;
        for (int j = 0; j < c; j++) dx[j] += k < 0 ? NAN : scale * (p[j] - (j == k ? on : off));
    }
}

/* ---- binary cross-entropy on probabilities ------------------------------------
 * J = -mean(t log p + (1 - t) log(1 - p)). Each log is clamped at -100, as
 * PyTorch does, so p = 0 or 1 gives a large finite loss instead of infinity;
 * where the clamp holds, that log's derivative is 0. */

static inline float clamped_log(float v) { return fmaxf(logf(v), -100.0f); }
static inline float clamped_log_deriv(float v) { return logf(v) > -100.0f ? 1.0f / v : 0.0f; }

static void forward_bce(nb_node *n) {
    const float *p = n->in[0]->value.data, *t = n->in[1]->value.data;
    size_t count = nb_tensor_numel(&n->in[0]->value);
    double total = 0;
    for (size_t i = 0; i < count; i++)
        total -= t[i] * clamped_log(p[i]) + (1.0f - t[i]) * clamped_log(1.0f - p[i]);
    n->value.data[0] = (float)(total / (double)count);
}

static void backward_bce(nb_node *n) {
    const float *p = n->in[0]->value.data, *t = n->in[1]->value.data;
    size_t count = nb_tensor_numel(&n->in[0]->value);
    float scale = n->grad.data[0] / (float)count;
    if (n->in[0]->needs_grad) {
        float *dp = n->in[0]->grad.data;
        for (size_t i = 0; i < count; i++)
            dp[i] -= scale * (t[i] * clamped_log_deriv(p[i]) - (1.0f - t[i]) * clamped_log_deriv(1.0f - p[i]));
    }
    if (n->in[1]->needs_grad) {
        float *dt = n->in[1]->grad.data;
        for (size_t i = 0; i < count; i++) dt[i] -= scale * (clamped_log(p[i]) - clamped_log(1.0f - p[i]));
    }
}

/* ---- binary cross-entropy on logits --------------------------------------------
 * With p = sigmoid(x), -(t log p + (1 - t) log(1 - p)) equals
 * max(x, 0) - x t + log(1 + exp(-|x|)), which never overflows and keeps its
 * precision when p is near 0 or 1. dJ/dx = p - t and dJ/dt = -x. */

static inline float sigmoid_of(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

static void forward_bce_logits(nb_node *n) {
    const float *x = n->in[0]->value.data, *t = n->in[1]->value.data;
    size_t count = nb_tensor_numel(&n->in[0]->value);
    double total = 0;
    for (size_t i = 0; i < count; i++)
        total += fmaxf(x[i], 0.0f) - x[i] * t[i] + log1pf(expf(-fabsf(x[i])));
    n->value.data[0] = (float)(total / (double)count);
}

static void backward_bce_logits(nb_node *n) {
    const float *x = n->in[0]->value.data, *t = n->in[1]->value.data;
    size_t count = nb_tensor_numel(&n->in[0]->value);
    float scale = n->grad.data[0] / (float)count;
    if (n->in[0]->needs_grad) {
        float *dx = n->in[0]->grad.data;
        for (size_t i = 0; i < count; i++) dx[i] += scale * (sigmoid_of(x[i]) - t[i]);
    }
    if (n->in[1]->needs_grad) {
        float *dt = n->in[1]->grad.data;
        for (size_t i = 0; i < count; i++) dt[i] -= scale * x[i];
    }
}

/* ---- squared error -----------------------------------------------------------
 * J = s/2 sum (y - t)^2 with s = 1 (sum) or 1/count (mean): the 1/2 makes
 * dJ/dy = s (y - t), and dJ/dt is its negative. */

static double squared_error_scale(const nb_node *n) {
    return n->attr.reduction == NB_REDUCE_MEAN ? 1.0 / (double)nb_tensor_numel(&n->in[0]->value) : 1.0;
}

static void forward_squared_error(nb_node *n) {
    const float *y = n->in[0]->value.data, *t = n->in[1]->value.data;
    size_t count = nb_tensor_numel(&n->in[0]->value);
    double total = 0;
    for (size_t i = 0; i < count; i++) {
        double d = (double)y[i] - t[i];
        total += d * d;
    }
    n->value.data[0] = (float)(0.5 * total * squared_error_scale(n));
}

static void backward_squared_error(nb_node *n) {
    const float *y = n->in[0]->value.data, *t = n->in[1]->value.data;
    size_t count = nb_tensor_numel(&n->in[0]->value);
    float scale = n->grad.data[0] * (float)squared_error_scale(n);
    if (n->in[0]->needs_grad) {
        float *dy = n->in[0]->grad.data;
        for (size_t i = 0; i < count; i++) dy[i] += scale * (y[i] - t[i]);
    }
    if (n->in[1]->needs_grad) {
        float *dt = n->in[1]->grad.data;
        for (size_t i = 0; i < count; i++) dt[i] -= scale * (y[i] - t[i]);
    }
}

static nb_status infer_squared_error(nb_node *n) {
    if (n->attr.reduction != NB_REDUCE_SUM && n->attr.reduction != NB_REDUCE_MEAN)
        return nb_fail(NB_ERR_ARG, "squared_error: reduction %d, expected NB_REDUCE_SUM or NB_REDUCE_MEAN",
                       (int)n->attr.reduction);
    return infer_pair(n);
}

static const nb_op_def softmax_ce_def = {NB_OP_SOFTMAX_CE, "softmax_cross_entropy", false,
                                         infer_softmax_ce, forward_softmax_ce, backward_softmax_ce, false, false};
static const nb_op_def bce_def = {NB_OP_BCE, "bce", false, infer_pair, forward_bce, backward_bce, false, false};
static const nb_op_def bce_logits_def = {NB_OP_BCE_LOGITS, "bce_with_logits", false, infer_pair,
                                         forward_bce_logits, backward_bce_logits, false, false};
static const nb_op_def squared_error_def = {NB_OP_SQUARED_ERROR, "squared_error", false,
                                            infer_squared_error, forward_squared_error,
                                            backward_squared_error, false, false};

nb_node *nb_softmax_cross_entropy(nb_graph *g, nb_node *logits, nb_node *labels) {
    return nb_node_new_op(g, &softmax_ce_def, (nb_node *[]){logits, labels}, 2, NULL);
}

nb_status nb_set_label_smoothing(nb_node *loss, float smoothing) {
    if (!loss || loss->op != &softmax_ce_def)
        return nb_fail(NB_ERR_ARG, "label smoothing: node '%s' is not a softmax_cross_entropy",
                       loss ? loss->name : "(null)");
    if (!(smoothing >= 0.0f && smoothing <= 1.0f))
        return nb_fail(NB_ERR_ARG, "label smoothing %g, expected 0 <= smoothing <= 1",
                       (double)smoothing);
    loss->attr.scalar = smoothing;
    loss->graph->forward_done = false;
    return NB_OK;
}

nb_node *nb_bce(nb_graph *g, nb_node *probs, nb_node *targets) {
    return nb_node_new_op(g, &bce_def, (nb_node *[]){probs, targets}, 2, NULL);
}

nb_node *nb_bce_with_logits(nb_graph *g, nb_node *logits, nb_node *targets) {
    return nb_node_new_op(g, &bce_logits_def, (nb_node *[]){logits, targets}, 2, NULL);
}

nb_node *nb_squared_error(nb_graph *g, nb_node *y, nb_node *target, nb_reduction reduction) {
    nb_op_attr attr = {.reduction = reduction};
    return nb_node_new_op(g, &squared_error_def, (nb_node *[]){y, target}, 2, &attr);
}
