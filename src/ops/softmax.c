/* softmax.c — softmax and log-softmax along the class axis of [N, C].
 *
 * Each row is shifted by its maximum before exponentiating: the result is
 * unchanged (the shift cancels in the ratio) and exp never overflows, so
 * logits like 1000 and 1001 are fine. Row sums accumulate in double, in
 * index order.
 *
 * Backward, per row, with g the upstream gradient and p the softmax:
 *     softmax:      dx_i = p_i (g_i - sum_j g_j p_j)
 *     log-softmax:  dx_i = g_i - p_i sum_j g_j,  with p_i = exp(y_i)
 * Log-softmax recovers p from its own output, so nothing is saved. */
#include "core/internal.h"

#include <math.h>
#include <string.h>

static nb_status infer_rows(nb_node *n) {
    const nb_tensor *x = &n->in[0]->value;
    if (x->ndim != 2) {
        char sh[64];
        return nb_fail(NB_ERR_SHAPE, "%s: expected a 2-D [N, classes] tensor, got %s", n->op->name,
                       nb_shape_str(x, sh, sizeof sh));
    }
    n->value.ndim = 2;
    memcpy(n->value.shape, x->shape, sizeof n->value.shape);
    return NB_OK;
}

/* Writes exp(x - max) into y, the row's max into *max, and returns the sum
 * of y. */
static double shifted_exp(const float *x, float *y, int c, float *max) {
    float m = x[0];
    for (int j = 1; j < c; j++)
        if (x[j] > m) m = x[j];
    double sum = 0;
    for (int j = 0; j < c; j++) {
        y[j] = expf(x[j] - m);
        sum += y[j];
    }
    *max = m;
    return sum;
}

static void forward_softmax(nb_node *n) {
    int rows = n->value.shape[0], c = n->value.shape[1];
    for (int r = 0; r < rows; r++) {
        float *y = n->value.data + (size_t)r * c, max;
        float inv = (float)(1.0 / shifted_exp(n->in[0]->value.data + (size_t)r * c, y, c, &max));
        for (int j = 0; j < c; j++) y[j] *= inv;
    }
}

static void backward_softmax(nb_node *n) {
    if (!n->in[0]->needs_grad) return;
    int rows = n->value.shape[0], c = n->value.shape[1];
    for (int r = 0; r < rows; r++) {
        const float *p = n->value.data + (size_t)r * c, *g = n->grad.data + (size_t)r * c;
        float *dx = n->in[0]->grad.data + (size_t)r * c;
        double dot = 0;
        for (int j = 0; j < c; j++) dot += (double)g[j] * p[j];
        for (int j = 0; j < c; j++) dx[j] += p[j] * (g[j] - (float)dot);
    }
}

static void forward_log_softmax(nb_node *n) {
    int rows = n->value.shape[0], c = n->value.shape[1];
    for (int r = 0; r < rows; r++) {
        const float *x = n->in[0]->value.data + (size_t)r * c;
        float *y = n->value.data + (size_t)r * c;
        float max;
        float lse = (float)log(shifted_exp(x, y, c, &max)); /* y is scratch here */
        for (int j = 0; j < c; j++) y[j] = (x[j] - max) - lse;
    }
}

static void backward_log_softmax(nb_node *n) {
    if (!n->in[0]->needs_grad) return;
    int rows = n->value.shape[0], c = n->value.shape[1];
    for (int r = 0; r < rows; r++) {
        const float *y = n->value.data + (size_t)r * c, *g = n->grad.data + (size_t)r * c;
        float *dx = n->in[0]->grad.data + (size_t)r * c;
        double total = 0;
        for (int j = 0; j < c; j++) total += g[j];
        for (int j = 0; j < c; j++) dx[j] += g[j] - expf(y[j]) * (float)total;
    }
}

static const nb_op_def softmax_def = {NB_OP_SOFTMAX, "softmax", false, infer_rows, forward_softmax,
                                      backward_softmax, false, false};
static const nb_op_def log_softmax_def = {NB_OP_LOG_SOFTMAX, "log_softmax", false, infer_rows,
                                          forward_log_softmax, backward_log_softmax, false, false};

nb_node *nb_softmax(nb_graph *g, nb_node *a) { return nb_node_new_op(g, &softmax_def, &a, 1, NULL); }
nb_node *nb_log_softmax(nb_graph *g, nb_node *a) { return nb_node_new_op(g, &log_softmax_def, &a, 1, NULL); }
