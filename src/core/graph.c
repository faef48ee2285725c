/* graph.c — building the DAG, planning its buffers, and the two passes of
 * reverse-mode autodiff.
 *
 * Nodes are appended as they are created, and a node's inputs always exist
 * before it, so creation order is a topological order: forward walks the
 * array front to back, backward walks it back to front. Before each forward
 * the graph re-infers every shape (the batch may have changed), derives which
 * nodes need a gradient, and grows buffers that are too small. Buffers only
 * ever grow, so a steady-state training step allocates nothing. */
#include "core/internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

nb_graph *nb_graph_new(void) {
    nb_graph *g = nb_zalloc(sizeof *g, "graph");
    if (g) g->training = true;
    return g;
}

void nb_graph_free(nb_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) {
        nb_node *n = g->nodes[i];
        if (n->kind != NB_NODE_PARAM && !(n->op && n->op->is_view)) {
            if (!n->in_place) nb_free(n->value.data); /* else the producer's */
            nb_free(n->grad.data);
        }
        nb_free(n->aux);
        nb_free(n);
    }
    nb_free(g->nodes);
    nb_free(g->param_data);
    nb_free(g->param_grad);
    nb_free(g->workspace);
    nb_free(g->reach);
    nb_free(g);
}

nb_status nb_graph_status(const nb_graph *g) { return g ? g->status : NB_ERR_ARG; }

void nb_set_training(nb_graph *g, int training) {
    if (!g || g->training == (training != 0)) return;
    g->training = training != 0;
    g->forward_done = false; /* what an eval forward saved is no basis for backward */
}

/* Remember the first error; later ones are consequences of it. */
static nb_node *graph_fail(nb_graph *g, nb_status status) {
    if (g && g->status == NB_OK) g->status = status;
    return NULL;
}

static nb_node *append_node(nb_graph *g, nb_node_kind kind, const char *name) {
    if (g->n_nodes == g->nodes_cap) {
        int cap = g->nodes_cap ? 2 * g->nodes_cap : 32;
        nb_node **nodes = nb_realloc(g->nodes, (size_t)cap * sizeof *nodes, "graph node list");
        if (!nodes) return graph_fail(g, NB_ERR_NOMEM);
        g->nodes = nodes;
        g->nodes_cap = cap;
    }
    nb_node *n = nb_zalloc(sizeof *n, "graph node");
    if (!n) return graph_fail(g, NB_ERR_NOMEM);
    n->graph = g;
    n->id = g->n_nodes;
    n->kind = kind;
    snprintf(n->name, sizeof n->name, "%s", name ? name : "");
    g->nodes[g->n_nodes++] = n;
    return n;
}

static nb_status check_leaf_shape(const char *what, const char *name, int ndim, const int *shape) {
    if (ndim < 1 || ndim > NB_MAX_DIMS || !shape)
        return nb_fail(NB_ERR_SHAPE, "%s '%s': %d dimensions given, expected 1 to %d", what,
                       name ? name : "", ndim, NB_MAX_DIMS);
    size_t count = sizeof(float);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return nb_fail(NB_ERR_SHAPE, "%s '%s': dimension %d is %d, expected > 0", what,
                           name ? name : "", i, shape[i]);
        if (!nb_mul_size(count, (size_t)shape[i], &count))
            return nb_fail(NB_ERR_SHAPE, "%s '%s': the shape's size in bytes overflows", what,
                           name ? name : "");
    }
    return NB_OK;
}

/* Grow a node's value buffer to hold its current shape. */
static nb_status ensure_value(nb_node *n) {
    size_t need = nb_tensor_numel(&n->value);
    if (need <= n->value_cap) return NB_OK;
    float *p = nb_realloc(n->value.data, need * sizeof(float), "node value");
    if (!p) return nb_fail_prefix(NB_ERR_NOMEM, "node '%s' (%s): ", n->name, nb_node_op(n));
    n->value.data = p;
    n->value_cap = need;
    return NB_OK;
}

static nb_status ensure_grad(nb_node *n) {
    size_t need = nb_tensor_numel(&n->value);
    n->grad.ndim = n->value.ndim;
    memcpy(n->grad.shape, n->value.shape, sizeof n->grad.shape);
    if (need <= n->grad_cap) return NB_OK;
    float *p = nb_realloc(n->grad.data, need * sizeof(float), "node gradient");
    if (!p) return nb_fail_prefix(NB_ERR_NOMEM, "node '%s' (%s): ", n->name, nb_node_op(n));
    n->grad.data = p;
    n->grad_cap = need;
    return NB_OK;
}

static nb_node *new_leaf(nb_graph *g, nb_node_kind kind, const char *what, const char *name,
                         int ndim, const int *shape) {
    if (!g) return NULL;
    if (g->status) return NULL;
    nb_status s = check_leaf_shape(what, name, ndim, shape);
    if (s) return graph_fail(g, s);
    nb_node *n = append_node(g, kind, name);
    if (!n) return NULL;
    n->value.ndim = ndim;
    memcpy(n->value.shape, shape, (size_t)ndim * sizeof(int));
    n->grad.ndim = ndim;
    memcpy(n->grad.shape, shape, (size_t)ndim * sizeof(int));
    return n;
}

nb_node *nb_input(nb_graph *g, const char *name, int ndim, const int *shape) {
    nb_node *n = new_leaf(g, NB_NODE_INPUT, "input", name, ndim, shape);
    if (!n) return NULL;
    n->batch_follows = true;
    if (ensure_value(n)) return graph_fail(g, NB_ERR_NOMEM);
    memset(n->value.data, 0, n->value_cap * sizeof(float));
    return n;
}

nb_node *nb_buffer(nb_graph *g, const char *name, int ndim, const int *shape, const float *values) {
    nb_node *n = new_leaf(g, NB_NODE_BUFFER, "buffer", name, ndim, shape);
    if (!n) return NULL;
    if (ensure_value(n)) return graph_fail(g, NB_ERR_NOMEM);
    if (values) memcpy(n->value.data, values, n->value_cap * sizeof(float));
    else memset(n->value.data, 0, n->value_cap * sizeof(float));
    return n;
}

nb_node *nb_const(nb_graph *g, const char *name, int ndim, const int *shape, const float *values) {
    nb_node *n = new_leaf(g, NB_NODE_CONST, "constant", name, ndim, shape);
    if (!n) return NULL;
    if (ensure_value(n)) return graph_fail(g, NB_ERR_NOMEM);
    if (values) memcpy(n->value.data, values, n->value_cap * sizeof(float));
    else memset(n->value.data, 0, n->value_cap * sizeof(float));
    return n;
}

/* Parameters are views into one block; growing the block moves it, so every
 * parameter's pointers are re-derived from its offset. */
static void repoint_params(nb_graph *g) {
    for (int i = 0; i < g->n_nodes; i++) {
        nb_node *n = g->nodes[i];
        if (n->kind != NB_NODE_PARAM) continue;
        n->value.data = g->param_data + n->param_offset;
        n->grad.data = g->param_grad + n->param_offset;
    }
}

nb_node *nb_param(nb_graph *g, const char *name, int ndim, const int *shape) {
    if (!g || g->status) return NULL;
    nb_status s = check_leaf_shape("parameter", name, ndim, shape);
    if (s) return graph_fail(g, s);
    size_t count = nb_numel(ndim, shape);
    size_t need = g->n_param_floats + count;
    if (need > g->param_cap) {
        size_t cap = g->param_cap ? g->param_cap : 1024;
        while (cap < need) cap *= 2;
        float *data = nb_realloc(g->param_data, cap * sizeof(float), "parameter block");
        if (!data) return graph_fail(g, NB_ERR_NOMEM);
        g->param_data = data;
        float *grad = nb_realloc(g->param_grad, cap * sizeof(float), "parameter gradient block");
        if (!grad) return graph_fail(g, NB_ERR_NOMEM);
        g->param_grad = grad;
        g->param_cap = cap;
    }
    nb_node *n = new_leaf(g, NB_NODE_PARAM, "parameter", name, ndim, shape);
    if (!n) return NULL;
    n->param_offset = g->n_param_floats;
    n->requires_grad = true;
    memset(g->param_data + n->param_offset, 0, count * sizeof(float));
    memset(g->param_grad + n->param_offset, 0, count * sizeof(float));
    g->n_param_floats = need;
    repoint_params(g);
    return n;
}

nb_status nb_feed(nb_node *input, const float *data, int batch) {
    if (!input || !data) return nb_fail(NB_ERR_ARG, "nb_feed: NULL %s", input ? "data" : "node");
    if (input->kind != NB_NODE_INPUT)
        return nb_fail(NB_ERR_ARG, "nb_feed: node '%s' is a %s, not an input", input->name,
                       nb_node_op(input));
    if (batch <= 0)
        return nb_fail(NB_ERR_SHAPE, "nb_feed: input '%s': batch %d, expected > 0", input->name, batch);
    input->value.shape[0] = batch;
    nb_status s = ensure_value(input);
    if (s) return s;
    memcpy(input->value.data, data, nb_tensor_numel(&input->value) * sizeof(float));
    input->graph->forward_done = false;
    return NB_OK;
}

void nb_requires_grad(nb_node *n, int on) {
    if (n && n->kind != NB_NODE_PARAM && n->kind != NB_NODE_BUFFER) n->requires_grad = on != 0;
}

const nb_tensor *nb_value(const nb_node *n) { return n ? &n->value : NULL; }
/* A node that needs no gradient may still hold a buffer from an earlier
 * training-mode plan; callers see data NULL all the same. */
const nb_tensor *nb_grad(const nb_node *n) {
    static const nb_tensor none = {0, {0}, NULL};
    if (!n) return NULL;
    return n->needs_grad || (n->kind == NB_NODE_PARAM) ? &n->grad : &none;
}
const char *nb_node_name(const nb_node *n) { return n ? n->name : ""; }

const char *nb_node_op(const nb_node *n) {
    if (!n) return "";
    switch (n->kind) {
    case NB_NODE_INPUT: return "input";
    case NB_NODE_CONST: return "const";
    case NB_NODE_PARAM: return "param";
    case NB_NODE_BUFFER: return "buffer";
    case NB_NODE_OP: return n->op->name;
    }
    return "";
}

size_t nb_graph_params(nb_graph *g, float **data, float **grad) {
    if (!g) return 0;
    if (data) *data = g->param_data;
    if (grad) *grad = g->param_grad;
    return g->n_param_floats;
}

int nb_graph_param_count(const nb_graph *g) {
    int count = 0;
    for (int i = 0; g && i < g->n_nodes; i++) count += g->nodes[i]->kind == NB_NODE_PARAM;
    return count;
}

nb_node *nb_graph_param(const nb_graph *g, int index) {
    for (int i = 0; g && i < g->n_nodes; i++)
        if (g->nodes[i]->kind == NB_NODE_PARAM && index-- == 0) return g->nodes[i];
    return NULL;
}

uint64_t nb_graph_step(const nb_graph *g) { return g ? g->step : 0; }
void nb_graph_set_step(nb_graph *g, uint64_t step) {
    if (g) g->step = step;
}

size_t nb_graph_memory(const nb_graph *g) {
    size_t bytes = 0;
    for (int i = 0; g && i < g->n_nodes; i++) {
        const nb_node *n = g->nodes[i];
        bytes += (n->value_cap + n->grad_cap) * sizeof(float) + n->aux_cap;
    }
    if (g) bytes += g->workspace_cap + 2 * g->param_cap * sizeof(float);
    return bytes;
}

int nb_graph_node_count(const nb_graph *g) { return g ? g->n_nodes : 0; }

nb_node *nb_graph_node(const nb_graph *g, int i) {
    return g && i >= 0 && i < g->n_nodes ? g->nodes[i] : NULL;
}

nb_node *nb_node_input(const nb_node *n, int i) {
    return n && i >= 0 && i < n->n_in ? n->in[i] : NULL;
}

/* ---- profiling -------------------------------------------------------------- */

void nb_graph_profile(nb_graph *g, int on) {
    if (!g) return;
    g->profile = on != 0;
    if (!on) return;
    for (int i = 0; i < g->n_nodes; i++) {
        nb_node *n = g->nodes[i];
        n->prof_fwd_s = n->prof_bwd_s = 0.0;
        n->prof_fwd_calls = n->prof_bwd_calls = 0;
    }
}

nb_node_profile nb_node_profile_of(const nb_node *n) {
    nb_node_profile p = {0, 0, 0, 0};
    if (n) {
        p.forward_s = n->prof_fwd_s, p.backward_s = n->prof_bwd_s;
        p.forward_calls = n->prof_fwd_calls, p.backward_calls = n->prof_bwd_calls;
    }
    return p;
}

static double profile_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The profiled twins of the two calls the passes make; kept out of line so
 * the unprofiled loop stays a branch and an indirect call. */
static void profiled_forward(nb_node *n) {
    double t0 = profile_clock();
    n->op->forward(n);
    n->prof_fwd_s += profile_clock() - t0;
    n->prof_fwd_calls++;
}

static void profiled_backward(nb_node *n) {
    double t0 = profile_clock();
    n->op->backward(n);
    n->prof_bwd_s += profile_clock() - t0;
    n->prof_bwd_calls++;
}

/* ---- operator nodes -------------------------------------------------------- */

nb_status nb_fail_shapes(const nb_node *n, const char *what, const nb_tensor *a, const nb_tensor *b) {
    char sa[64], sb[64];
    nb_shape_str(a, sa, sizeof sa);
    nb_shape_str(b, sb, sizeof sb);
    bool named = n->name[0] && strcmp(n->name, n->op->name) != 0;
    return nb_fail(NB_ERR_SHAPE, "%s%s%s: %s: got %s and %s", n->op->name, named ? " " : "",
                   named ? n->name : "", what, sa, sb);
}

nb_node *nb_node_new_op(nb_graph *g, const nb_op_def *op, nb_node *const *inputs, int n_in,
                        const nb_op_attr *attr) {
    if (!g) return NULL;
    if (g->status) return NULL;
    for (int i = 0; i < n_in; i++) {
        if (!inputs[i]) {
            nb_fail(NB_ERR_ARG, "%s: input %d is NULL", op->name, i);
            return graph_fail(g, NB_ERR_ARG);
        }
        if (inputs[i]->graph != g) {
            nb_fail(NB_ERR_ARG, "%s: input %d ('%s') belongs to another graph", op->name, i,
                    inputs[i]->name);
            return graph_fail(g, NB_ERR_ARG);
        }
    }
    nb_node *n = append_node(g, NB_NODE_OP, op->name);
    if (!n) return NULL;
    n->op = op;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) n->in[i] = inputs[i];
    if (attr) n->attr = *attr;
    nb_status s = op->infer(n);
    if (s) {
        /* Take the node back out so the graph stays consistent. */
        g->n_nodes--;
        nb_free(n);
        return graph_fail(g, s);
    }
    return n;
}

/* ---- forward and backward ------------------------------------------------ */

/* Mark `target` and its ancestors. Walking backwards through the
 * topological order visits each node after everything that consumes it. */
static nb_status mark_reach(nb_graph *g, const nb_node *target) {
    if ((size_t)g->n_nodes > g->reach_cap) {
        unsigned char *r = nb_realloc(g->reach, (size_t)g->n_nodes, "graph marks");
        if (!r) return NB_ERR_NOMEM;
        g->reach = r;
        g->reach_cap = (size_t)g->n_nodes;
    }
    memset(g->reach, 0, (size_t)g->n_nodes);
    g->reach[target->id] = 1;
    for (int i = target->id; i >= 0; i--) {
        if (!g->reach[i]) continue;
        const nb_node *n = g->nodes[i];
        for (int k = 0; k < n->n_in; k++) g->reach[n->in[k]->id] = 1;
    }
    return NB_OK;
}

/* Which relus run in place (see nb_node.in_place). A producer with another
 * consumer anywhere in the graph, or that is the target itself, keeps its
 * own value, since someone may read it. */
static void plan_in_place(nb_graph *g, const nb_node *target) {
    for (int i = 0; i < g->n_nodes; i++) g->nodes[i]->consumers = 0, g->nodes[i]->fused_relu = false;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i]->n_in; k++) g->nodes[i]->in[k]->consumers++;
    for (int i = 0; i < g->n_nodes; i++) {
        nb_node *n = g->nodes[i];
        nb_node *p = n->n_in ? n->in[0] : NULL;
        bool on = g->reach[i] && n->op && n->op->kind == NB_OP_RELU && p->op && p->op->fuses_relu &&
                  p->consumers == 1 && p != target;
        if (on != n->in_place && !on) {
            /* Back to a buffer of its own: the borrowed pointer is not ours. */
            n->value.data = NULL;
            n->value_cap = 0;
        } else if (on != n->in_place && n->value_cap) {
            nb_free(n->value.data);
            n->value.data = NULL;
            n->value_cap = 0;
        }
        n->in_place = on;
        if (on) p->fused_relu = true;
    }
}

/* Re-infer shapes, derive needs_grad, and size every buffer. */
static nb_status plan(nb_graph *g, const nb_node *target) {
    size_t workspace = 0;
    plan_in_place(g, target);
    for (int i = 0; i < g->n_nodes; i++) {
        if (!g->reach[i]) continue;
        nb_node *n = g->nodes[i];
        if (n->kind != NB_NODE_OP) {
            n->needs_grad = g->training && n->requires_grad;
            if (n->needs_grad && n->kind != NB_NODE_PARAM && ensure_grad(n)) return NB_ERR_NOMEM;
            continue;
        }
        nb_status s = n->op->infer(n);
        if (s) return nb_fail_prefix(s, "forward: ");
        n->needs_grad = false;
        for (int k = 0; k < n->n_in; k++) n->needs_grad |= n->in[k]->needs_grad;
        n->grad.ndim = n->value.ndim;
        memcpy(n->grad.shape, n->value.shape, sizeof n->grad.shape);
        if (n->in_place) {
            n->value.data = n->in[0]->value.data; /* planned first: final here */
            if (n->needs_grad && ensure_grad(n)) return NB_ERR_NOMEM;
        } else if (!n->op->is_view) {
            if (ensure_value(n)) return NB_ERR_NOMEM;
            if (n->needs_grad && ensure_grad(n)) return NB_ERR_NOMEM;
        } else {
            /* Inputs are planned first, so their buffers are final here. */
            n->value.data = n->in[0]->value.data;
            n->grad.data = n->in[0]->grad.data;
        }
        if (n->aux_bytes > n->aux_cap) {
            void *p = nb_realloc(n->aux, n->aux_bytes, "saved state for backward");
            if (!p) return nb_fail_prefix(NB_ERR_NOMEM, "node '%s' (%s): ", n->name, n->op->name);
            n->aux = p;
            n->aux_cap = n->aux_bytes;
        }
        if (n->workspace_bytes > workspace) workspace = n->workspace_bytes;
    }
    if (workspace > g->workspace_cap) {
        void *p = nb_realloc(g->workspace, workspace, "operator workspace");
        if (!p) return NB_ERR_NOMEM;
        g->workspace = p;
        g->workspace_cap = workspace;
    }
    return NB_OK;
}

static nb_status check_target(nb_graph *g, const nb_node *target, const char *who) {
    if (!g) return nb_fail(NB_ERR_ARG, "%s: NULL graph", who);
    if (g->status) return nb_fail_prefix(g->status, "%s: the graph has a build error: ", who);
    if (!target) return nb_fail(NB_ERR_ARG, "%s: NULL node", who);
    if (target->graph != g) return nb_fail(NB_ERR_ARG, "%s: node '%s' belongs to another graph", who, target->name);
    return NB_OK;
}

nb_status nb_forward(nb_graph *g, nb_node *target) {
    nb_status s = check_target(g, target, "nb_forward");
    if (s) return s;
    g->forward_done = false;
    if ((s = mark_reach(g, target))) return s;
    g->planning = true;
    s = plan(g, target);
    g->planning = false;
    if (s) return s;
    for (int i = 0; i <= target->id; i++) {
        nb_node *n = g->nodes[i];
        if (!g->reach[i] || n->kind != NB_NODE_OP || n->in_place) continue;
        if (g->profile) profiled_forward(n);
        else n->op->forward(n);
    }
    g->forward_done = true;
    g->forward_target = target;
    return NB_OK;
}

nb_status nb_backward(nb_graph *g, nb_node *loss) {
    nb_status s = check_target(g, loss, "nb_backward");
    if (s) return s;
    if (!g->forward_done || g->forward_target != loss)
        return nb_fail(NB_ERR_STATE, "nb_backward: call nb_forward on '%s' first", loss->name);
    if (!g->training)
        return nb_fail(NB_ERR_STATE, "nb_backward: the graph is in eval mode; call nb_set_training(g, 1)");
    if (nb_tensor_numel(&loss->value) != 1) {
        char sh[64];
        return nb_fail(NB_ERR_SHAPE, "nb_backward: '%s' has shape %s, expected a scalar", loss->name,
                       nb_shape_str(&loss->value, sh, sizeof sh));
    }
    if (!loss->needs_grad)
        return nb_fail(NB_ERR_ARG, "nb_backward: '%s' depends on no parameter and no input marked "
                       "with nb_requires_grad", loss->name);
    /* No gradient is zeroed up front: each is marked pending, its first
     * contribution writes it (or zeroes it, for an op that only adds), and
     * what no contribution reached is zeroed at the end. The result is that
     * of zeroing everything first; the memory traffic is not. Views share
     * their input's buffer, and the input answers for it. */
    for (int i = 0; i <= loss->id; i++) {
        nb_node *n = g->nodes[i];
        n->grad_pending = g->reach[i] && n->needs_grad && !(n->op && n->op->is_view);
    }
    nb_grad_first(loss);
    loss->grad.data[0] = 1.0f;
    for (int i = loss->id; i >= 0; i--) {
        nb_node *n = g->nodes[i];
        if (!g->reach[i] || n->kind != NB_NODE_OP || !n->needs_grad || n->op->is_view) continue;
        if (!n->op->grad_write_first)
            for (int k = 0; k < n->n_in; k++)
                if (n->in[k]->needs_grad) nb_grad_begin_add(n->in[k]);
        if (g->profile) profiled_backward(n);
        else n->op->backward(n);
        if (g->after_backward) g->after_backward(g->after_backward_user, i);
    }
    /* What no contribution reached is zero: every parameter outside the
     * target's ancestors, and any gradient no op wrote. */
    for (int i = 0; i < g->n_nodes; i++) {
        nb_node *n = g->nodes[i];
        bool unreached_param = n->kind == NB_NODE_PARAM && (i > loss->id || !g->reach[i]);
        if (unreached_param || (i <= loss->id && n->grad_pending)) {
            memset(n->grad.data, 0, nb_tensor_numel(&n->value) * sizeof(float));
            n->grad_pending = false;
        }
    }
    g->step++;
    if (g->after_backward) g->after_backward(g->after_backward_user, -1);
    return NB_OK;
}

nb_node *nb_grad_owner(nb_node *n) {
    while (n->op && n->op->is_view) n = n->in[0];
    return n;
}

bool nb_grad_first(nb_node *v) {
    v = nb_grad_owner(v);
    bool first = v->grad_pending;
    v->grad_pending = false;
    return first;
}

void nb_grad_begin_add(nb_node *v) {
    v = nb_grad_owner(v);
    if (!v->grad_pending) return;
    memset(v->grad.data, 0, nb_tensor_numel(&v->value) * sizeof(float));
    v->grad_pending = false;
}
