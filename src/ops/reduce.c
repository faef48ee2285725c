/* reduce.c — sum and mean, over everything or along one axis.
 *
 * Sums accumulate in double, in index order, so a loss over a large batch
 * keeps its precision and never depends on the thread count. Along an axis
 * the input is read as [outer, len, inner] and the axis is dropped. */
#include "core/internal.h"

#include <string.h>

typedef struct {
    size_t outer, len, inner;
} axis_split;

static axis_split split_at(const nb_tensor *t, int axis) {
    axis_split s = {nb_numel(axis, t->shape), (size_t)t->shape[axis],
                    nb_numel(t->ndim - axis - 1, t->shape + axis + 1)};
    return s;
}

static nb_status infer_all(nb_node *n) {
    n->value.ndim = 1;
    n->value.shape[0] = 1;
    return NB_OK;
}

static nb_status infer_axis(nb_node *n) {
    const nb_tensor *a = &n->in[0]->value;
    int axis = n->attr.axis;
    if (axis < 0 || axis >= a->ndim) {
        char sh[64];
        return nb_fail(NB_ERR_SHAPE, "%s: axis %d is outside the %d axes of %s", n->op->name, axis,
                       a->ndim, nb_shape_str(a, sh, sizeof sh));
    }
    if (a->ndim == 1) return infer_all(n);
    n->value.ndim = a->ndim - 1;
    for (int i = 0, k = 0; i < a->ndim; i++)
        if (i != axis) n->value.shape[k++] = a->shape[i];
    return NB_OK;
}

/* ---- over everything --------------------------------------------------------- */

static double total(const nb_node *n) {
    const float *x = n->in[0]->value.data;
    size_t count = nb_tensor_numel(&n->in[0]->value);
    double acc = 0;
    for (size_t i = 0; i < count; i++) acc += x[i];
    return acc;
}

static void forward_sum_all(nb_node *n) { n->value.data[0] = (float)total(n); }

static void forward_mean_all(nb_node *n) {
    n->value.data[0] = (float)(total(n) / (double)nb_tensor_numel(&n->in[0]->value));
}

/* Every input element gets dy (sum) or dy / count (mean). */
static void spread(nb_node *n, float each) {
    if (!n->in[0]->needs_grad) return;
    float *dx = n->in[0]->grad.data;
    size_t count = nb_tensor_numel(&n->in[0]->value);
    for (size_t i = 0; i < count; i++) dx[i] += each;
}

static void backward_sum_all(nb_node *n) { spread(n, n->grad.data[0]); }

static void backward_mean_all(nb_node *n) {
    spread(n, n->grad.data[0] / (float)nb_tensor_numel(&n->in[0]->value));
}

/* ---- along an axis ------------------------------------------------------------ */

static void reduce_axis(nb_node *n, double scale) {
    axis_split s = split_at(&n->in[0]->value, n->attr.axis);
    const float *x = n->in[0]->value.data;
    float *y = n->value.data;
    for (size_t o = 0; o < s.outer; o++)
        for (size_t i = 0; i < s.inner; i++) {
            double acc = 0;
            for (size_t k = 0; k < s.len; k++) acc += x[(o * s.len + k) * s.inner + i];
            y[o * s.inner + i] = (float)(acc * scale);
        }
}

static void spread_axis(nb_node *n, float scale) {
    if (!n->in[0]->needs_grad) return;
    axis_split s = split_at(&n->in[0]->value, n->attr.axis);
    const float *dy = n->grad.data;
    float *dx = n->in[0]->grad.data;
    for (size_t o = 0; o < s.outer; o++)
        for (size_t k = 0; k < s.len; k++)
            for (size_t i = 0; i < s.inner; i++) dx[(o * s.len + k) * s.inner + i] += dy[o * s.inner + i] * scale;
}

static void forward_sum(nb_node *n) { reduce_axis(n, 1.0); }
static void backward_sum(nb_node *n) { spread_axis(n, 1.0f); }
static void forward_mean(nb_node *n) { reduce_axis(n, 1.0 / n->in[0]->value.shape[n->attr.axis]); }
static void backward_mean(nb_node *n) { spread_axis(n, 1.0f / (float)n->in[0]->value.shape[n->attr.axis]); }

static const nb_op_def sum_all_def = {NB_OP_SUM_ALL, "sum_all", false, infer_all, forward_sum_all, backward_sum_all, false, false};
static const nb_op_def mean_all_def = {NB_OP_MEAN_ALL, "mean_all", false, infer_all, forward_mean_all, backward_mean_all, false, false};
static const nb_op_def sum_def = {NB_OP_SUM, "sum", false, infer_axis, forward_sum, backward_sum, false, false};
static const nb_op_def mean_def = {NB_OP_MEAN, "mean", false, infer_axis, forward_mean, backward_mean, false, false};

nb_node *nb_sum_all(nb_graph *g, nb_node *a) { return nb_node_new_op(g, &sum_all_def, &a, 1, NULL); }
nb_node *nb_mean_all(nb_graph *g, nb_node *a) { return nb_node_new_op(g, &mean_all_def, &a, 1, NULL); }

nb_node *nb_sum(nb_graph *g, nb_node *a, int axis) {
    nb_op_attr attr = {.axis = axis};
    return nb_node_new_op(g, &sum_def, &a, 1, &attr);
}

nb_node *nb_mean(nb_graph *g, nb_node *a, int axis) {
    nb_op_attr attr = {.axis = axis};
    return nb_node_new_op(g, &mean_def, &a, 1, &attr);
}
