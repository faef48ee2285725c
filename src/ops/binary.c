/* binary.c — add, sub, mul, div.
 *
 * b either has a's shape or is a vector with one entry per feature/channel
 * (a.shape[1]), broadcast along the batch and spatial axes; that is how a
 * bias meets a [N, C] or [N, C, H, W] tensor. Element i of a then meets
 * b[(i / inner) % C], inner being the product of the axes after the channel.
 * Backward for a broadcast b sums over the axes it was repeated along. */
#include "core/internal.h"
#include "kernels/kernels.h"

#include <string.h>

typedef struct {
    size_t count;    /* elements of a */
    size_t channels; /* entries of b when broadcast, else 0 */
    size_t inner;    /* elements per channel run */
} broadcast;

static broadcast broadcast_of(const nb_node *n) {
    const nb_tensor *a = &n->in[0]->value, *b = &n->in[1]->value;
    broadcast bc = {nb_tensor_numel(a), 0, 1};
    if (!nb_same_shape(a, b)) {
        bc.channels = (size_t)a->shape[1];
        bc.inner = nb_numel(a->ndim - 2, a->shape + 2);
    }
    return bc;
}

static nb_status infer_binary(nb_node *n) {
    const nb_tensor *a = &n->in[0]->value, *b = &n->in[1]->value;
    bool per_channel = b->ndim == 1 && a->ndim >= 2 && b->shape[0] == a->shape[1];
    if (!nb_same_shape(a, b) && !per_channel)
        return nb_fail_shapes(n, "expected equal shapes, or a vector of a.shape[1] entries as b", a, b);
    n->value.ndim = a->ndim;
    memcpy(n->value.shape, a->shape, sizeof n->value.shape);
    return NB_OK;
}

/* b's element for a's element i. */
static inline size_t b_index(const broadcast *bc, size_t i) {
    return bc->channels ? (i / bc->inner) % bc->channels : i;
}

/* Accumulate g[i] * scale[i] (scale NULL means 1) into db, summing over the
 * broadcast axes in a fixed order so results do not depend on threads. */
static void reduce_into_b(const broadcast *bc, float *db, const float *g, const float *scale, float sign) {
    if (!bc->channels) {
        for (size_t i = 0; i < bc->count; i++) db[i] += sign * g[i] * (scale ? scale[i] : 1.0f);
        return;
    }
    size_t run = bc->channels * bc->inner;
    for (size_t c = 0; c < bc->channels; c++) {
        double acc = 0;
        for (size_t base = c * bc->inner; base < bc->count; base += run)
            for (size_t j = base; j < base + bc->inner; j++) acc += (double)g[j] * (scale ? scale[j] : 1.0f);
        db[c] += sign * (float)acc;
    }
}

/* ---- add, sub -------------------------------------------------------------- */

/* Below this many elements a loop runs on one thread. */
#define PARALLEL_MIN 32768

/* Equal shapes (ResNet's residual joins) run vectorised over the threads,
 * with the consumer's relu applied in the store when the graph runs it in
 * place (fused_relu, as conv2d and batch norm do). */
static void forward_add(nb_node *n) {
    broadcast bc = broadcast_of(n);
    const float *a = n->in[0]->value.data, *b = n->in[1]->value.data;
    float *y = n->value.data;
    const long count = (long)bc.count;
    if (bc.channels) {
        for (size_t i = 0; i < bc.count; i++) {
            const float v = a[i] + b[b_index(&bc, i)];
            y[i] = n->fused_relu ? (v > 0 ? v : 0.0f) : v;
        }
    } else if (n->fused_relu) {
#pragma omp parallel for NB_SIMD_CLAUSE schedule(static) if (parallel: count >= PARALLEL_MIN)
        for (long i = 0; i < count; i++) {
            const float v = a[i] + b[i];
            y[i] = v > 0 ? v : 0.0f;
        }
    } else {
#pragma omp parallel for NB_SIMD_CLAUSE schedule(static) if (parallel: count >= PARALLEL_MIN)
        for (long i = 0; i < count; i++) y[i] = a[i] + b[i];
    }
}

static void backward_add_sub(nb_node *n, float sign) {
    broadcast bc = broadcast_of(n);
    const float *dy = n->grad.data;
    if (n->in[0]->needs_grad) {
        float *da = n->in[0]->grad.data;
        for (size_t i = 0; i < bc.count; i++) da[i] += dy[i];
    }
    if (n->in[1]->needs_grad) reduce_into_b(&bc, n->in[1]->grad.data, dy, NULL, sign);
}

/* dx (+)= dy over count floats: written when it is x's first gradient of
 * the pass (no buffer to zero and read back), else added. */
static void pass_gradient(nb_node *x, const float *dy, long count) {
    float *dx = x->grad.data;
    if (nb_grad_first(x)) {
        memcpy(dx, dy, (size_t)count * sizeof(float));
        return;
    }
#pragma omp parallel for NB_SIMD_CLAUSE schedule(static) if (parallel: count >= PARALLEL_MIN)
    for (long i = 0; i < count; i++) dx[i] += dy[i];
}

static void backward_add(nb_node *n) {
    broadcast bc = broadcast_of(n);
    nb_node *a = n->in[0], *b = n->in[1];
    if (bc.channels) {
        if (a->needs_grad) nb_grad_begin_add(a);
        if (b->needs_grad) nb_grad_begin_add(b);
        backward_add_sub(n, 1.0f);
        return;
    }
    /* a + a: the second contribution adds onto the first. */
    if (a->needs_grad) pass_gradient(a, n->grad.data, (long)bc.count);
    if (b->needs_grad) pass_gradient(b, n->grad.data, (long)bc.count);
}

static void forward_sub(nb_node *n) {
    broadcast bc = broadcast_of(n);
    const float *a = n->in[0]->value.data, *b = n->in[1]->value.data;
    float *y = n->value.data;
    for (size_t i = 0; i < bc.count; i++) y[i] = a[i] - b[b_index(&bc, i)];
}

static void backward_sub(nb_node *n) { backward_add_sub(n, -1.0f); }

/* ---- mul ------------------------------------------------------------------- */

static void forward_mul(nb_node *n) {
    broadcast bc = broadcast_of(n);
    const float *a = n->in[0]->value.data, *b = n->in[1]->value.data;
    float *y = n->value.data;
    for (size_t i = 0; i < bc.count; i++) y[i] = a[i] * b[b_index(&bc, i)];
}

/* d(ab)/da = b, d(ab)/db = a. */
static void backward_mul(nb_node *n) {
    broadcast bc = broadcast_of(n);
    const float *a = n->in[0]->value.data, *b = n->in[1]->value.data, *dy = n->grad.data;
    if (n->in[0]->needs_grad) {
        float *da = n->in[0]->grad.data;
        for (size_t i = 0; i < bc.count; i++) da[i] += dy[i] * b[b_index(&bc, i)];
    }
    if (n->in[1]->needs_grad) reduce_into_b(&bc, n->in[1]->grad.data, dy, a, 1.0f);
}

/* ---- div ------------------------------------------------------------------- */

static void forward_div(nb_node *n) {
    broadcast bc = broadcast_of(n);
    const float *a = n->in[0]->value.data, *b = n->in[1]->value.data;
    float *y = n->value.data;
    for (size_t i = 0; i < bc.count; i++) y[i] = a[i] / b[b_index(&bc, i)];
}

/* d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -y/b. */
static void backward_div(nb_node *n) {
    broadcast bc = broadcast_of(n);
    const float *b = n->in[1]->value.data, *y = n->value.data, *dy = n->grad.data;
    if (n->in[0]->needs_grad) {
        float *da = n->in[0]->grad.data;
        for (size_t i = 0; i < bc.count; i++) da[i] += dy[i] / b[b_index(&bc, i)];
    }
    if (n->in[1]->needs_grad) {
        float *db = n->in[1]->grad.data;
        if (!bc.channels) {
            for (size_t i = 0; i < bc.count; i++) db[i] -= dy[i] * y[i] / b[i];
        } else {
            size_t run = bc.channels * bc.inner;
            for (size_t c = 0; c < bc.channels; c++) {
                double acc = 0;
                for (size_t base = c * bc.inner; base < bc.count; base += run)
                    for (size_t j = base; j < base + bc.inner; j++) acc += (double)dy[j] * y[j];
                db[c] -= (float)(acc / b[c]);
            }
        }
    }
}

static const nb_op_def add_def = {NB_OP_ADD, "add", false, infer_binary, forward_add, backward_add, true, true};
static const nb_op_def sub_def = {NB_OP_SUB, "sub", false, infer_binary, forward_sub, backward_sub, false, false};
static const nb_op_def mul_def = {NB_OP_MUL, "mul", false, infer_binary, forward_mul, backward_mul, false, false};
static const nb_op_def div_def = {NB_OP_DIV, "div", false, infer_binary, forward_div, backward_div, false, false};

nb_node *nb_add(nb_graph *g, nb_node *a, nb_node *b) { return nb_node_new_op(g, &add_def, (nb_node *[]){a, b}, 2, NULL); }
nb_node *nb_sub(nb_graph *g, nb_node *a, nb_node *b) { return nb_node_new_op(g, &sub_def, (nb_node *[]){a, b}, 2, NULL); }
nb_node *nb_mul(nb_graph *g, nb_node *a, nb_node *b) { return nb_node_new_op(g, &mul_def, (nb_node *[]){a, b}, 2, NULL); }
nb_node *nb_div(nb_graph *g, nb_node *a, nb_node *b) { return nb_node_new_op(g, &div_def, (nb_node *[]){a, b}, 2, NULL); }
