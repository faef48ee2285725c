/* view.c — reshape and flatten: new shapes over the input's memory.
 *
 * A view owns no buffers. Forward points its value and gradient at the
 * input's (re-done every forward, because the input's buffers may have grown
 * or, for a parameter, moved). Since the gradient buffer is shared, whatever
 * the view's consumers add into it already lands in the input's gradient,
 * and backward has nothing left to do. Row-major order makes any reshape
 * with the same element count a reinterpretation, never a copy. */
#include "core/internal.h"

#include <stdio.h>
#include <string.h>

static void forward_view(nb_node *n) {
    n->value.data = n->in[0]->value.data;
    n->grad.data = n->in[0]->grad.data;
}

static void backward_view(nb_node *n) { (void)n; }

/* The requested shape, as the input's current batch resolves it. */
static nb_tensor requested_shape(const nb_node *n) {
    nb_tensor want = {.ndim = n->attr.reshape.ndim};
    memcpy(want.shape, n->attr.reshape.shape, sizeof want.shape);
    if (want.shape[0] == -1) want.shape[0] = n->in[0]->value.shape[0];
    return want;
}

static nb_status infer_reshape(nb_node *n) {
    const nb_tensor *x = &n->in[0]->value;
    int ndim = n->attr.reshape.ndim;
    if (ndim < 1 || ndim > NB_MAX_DIMS)
        return nb_fail(NB_ERR_SHAPE, "reshape: the new shape has %d dimensions (or is NULL), expected 1 to %d",
                       ndim, NB_MAX_DIMS);
    nb_tensor want = requested_shape(n);
    for (int i = 0; i < ndim; i++)
        if (want.shape[i] <= 0) {
            char what[128];
            snprintf(what, sizeof what, "dimension %d of the new shape is %d (only dimension 0 may be "
                     "-1, for the batch)", i, n->attr.reshape.shape[i]);
            return nb_fail_shapes(n, what, x, &want);
        }
    if (nb_tensor_numel(&want) != nb_tensor_numel(x))
        return nb_fail_shapes(n, "element counts differ (from, to)", x, &want);
    n->value.ndim = want.ndim;
    memcpy(n->value.shape, want.shape, sizeof n->value.shape);
    return NB_OK;
}

static nb_status infer_flatten(nb_node *n) {
    const nb_tensor *x = &n->in[0]->value;
    n->value.ndim = 2;
    n->value.shape[0] = x->shape[0];
    n->value.shape[1] = (int)nb_numel(x->ndim - 1, x->shape + 1);
    return NB_OK;
}

static const nb_op_def reshape_def = {NB_OP_RESHAPE, "reshape", true, infer_reshape, forward_view,
                                      backward_view, false, false};
static const nb_op_def flatten_def = {NB_OP_FLATTEN, "flatten", true, infer_flatten, forward_view,
                                      backward_view, false, false};

nb_node *nb_reshape(nb_graph *g, nb_node *a, int ndim, const int *shape) {
    nb_op_attr attr = {.reshape = {.ndim = ndim}};
    /* A bad request goes through infer, so the graph records the error. */
    if (!shape) attr.reshape.ndim = 0;
    else if (ndim >= 1 && ndim <= NB_MAX_DIMS) memcpy(attr.reshape.shape, shape, (size_t)ndim * sizeof(int));
    return nb_node_new_op(g, &reshape_def, &a, 1, &attr);
}

nb_node *nb_flatten(nb_graph *g, nb_node *a) { return nb_node_new_op(g, &flatten_def, &a, 1, NULL); }
