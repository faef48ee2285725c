/* internal.h — what the library's own files share and users never see: the
 * node and graph structs, the operator contract, errors and allocation. */
#ifndef NB_INTERNAL_H
#define NB_INTERNAL_H

#include "nabla.h"

#include <stdarg.h>
#include <stdbool.h>

/* ---- errors ---------------------------------------------------------------
 * nb_fail formats the thread's error message and returns `status`, so a
 * failing path reads `return nb_fail(NB_ERR_SHAPE, "...", ...);`. */
#if defined(__GNUC__)
#define NB_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define NB_PRINTF(f, a)
#endif
nb_status nb_fail(nb_status status, const char *fmt, ...) NB_PRINTF(2, 3);
/* Prefix the current message with more context: "file.idx: " + message. */
nb_status nb_fail_prefix(nb_status status, const char *fmt, ...) NB_PRINTF(2, 3);

/* ---- allocation -----------------------------------------------------------
 * Every allocation goes through these so nb_set_allocator can redirect them.
 * On failure they set the error message ("out of memory: N bytes for WHAT")
 * and return NULL. */
void *nb_alloc(size_t bytes, const char *what);
void *nb_zalloc(size_t bytes, const char *what);
void *nb_realloc(void *ptr, size_t bytes, const char *what);
void nb_free(void *ptr);
char *nb_strdup(const char *s, const char *what);
/* a*b with overflow detection: false when the product overflows size_t. */
bool nb_mul_size(size_t a, size_t b, size_t *out);

/* ---- the operator contract ------------------------------------------------
 * Each operator is one nb_op_def in src/ops/, with its shape rule, forward
 * and backward side by side. The kind is a stable id (what a saved graph
 * would store); nodes point at their def directly. */
typedef enum nb_op_kind {
    NB_OP_ADD, NB_OP_SUB, NB_OP_MUL, NB_OP_DIV,
    NB_OP_NEG, NB_OP_SCALE, NB_OP_ADD_SCALAR, NB_OP_SQUARE, NB_OP_POW,
    NB_OP_EXP, NB_OP_LOG, NB_OP_SQRT, NB_OP_SIN, NB_OP_COS,
    NB_OP_TANH, NB_OP_SIGMOID, NB_OP_RELU,
    NB_OP_MATMUL, NB_OP_LINEAR,
    NB_OP_SUM_ALL, NB_OP_MEAN_ALL, NB_OP_SUM, NB_OP_MEAN,
    NB_OP_RESHAPE, NB_OP_FLATTEN,
    NB_OP_SOFTMAX, NB_OP_LOG_SOFTMAX,
    NB_OP_SOFTMAX_CE, NB_OP_BCE, NB_OP_BCE_LOGITS, NB_OP_SQUARED_ERROR,
    NB_OP_CONV2D, NB_OP_MAXPOOL2D, NB_OP_AVGPOOL2D, NB_OP_ADAPTIVE_AVGPOOL2D,
    NB_OP_DROPOUT,
    NB_OP_BATCHNORM,
    NB_OP_COUNT
} nb_op_kind;

typedef struct nb_op_def {
    nb_op_kind kind;
    const char *name;
    /* Views (reshape, flatten) alias their input's value and gradient. */
    bool is_view;
    /* Set n->value's ndim and shape from the inputs' current shapes, and
     * n->aux_bytes / n->workspace_bytes; report a mismatch naming the
     * operator and both shapes. Runs at creation and again before each
     * forward, so batch changes flow through. */
    nb_status (*infer)(nb_node *n);
    /* Compute n->value from the inputs. Never allocates: buffers and the
     * shared workspace (n->graph->workspace) are sized beforehand. */
    void (*forward)(nb_node *n);
    /* ADD (dJ/dn)(dn/dv) into in[i]->grad.data for each input with
     * needs_grad; never overwrite. */
    void (*backward)(nb_node *n);
    /* false: the graph zeroes each input's gradient before its first
     * contribution of the pass, and backward adds into it. true: backward
     * asks nb_grad_first(v) (or calls nb_grad_begin_add(v)) for each input
     * it touches, and writes rather than adds the first contribution, which
     * spares zeroing a buffer and reading the zeros back. */
    bool grad_write_first;
    /* The op can apply a relu to its own output as it writes it (see
     * in_place in nb_node). */
    bool fuses_relu;
} nb_op_def;

/* A buffer is state an operator keeps and updates itself in train mode
 * (batch norm's running statistics): no gradient, never optimised, saved
 * with the weights. */
typedef enum nb_node_kind { NB_NODE_INPUT, NB_NODE_CONST, NB_NODE_PARAM, NB_NODE_OP, NB_NODE_BUFFER } nb_node_kind;

/* Channels a normalisation can describe (a model's, a loader's): images
 * are 1 or 3; 8 keeps the saved list within one metadata value. */
#define NB_MAX_CHANNELS 8

#define NB_MAX_INPUTS 5 /* batch norm: x, weight, bias, running mean, running var */

/* Per-operator settings, fixed at creation. */
typedef union nb_op_attr {
    float scalar;                                   /* scale, add_scalar, pow */
    int axis;                                       /* sum, mean */
    struct { int trans_a, trans_b; } matmul;
    struct { int ndim, shape[NB_MAX_DIMS]; } reshape;
    /* cv_max_weights: the active target's channel-vectorised limit, taken
     * when the node is planned, so its forward and backward plan alike. */
    struct { int stride_h, stride_w, pad_h, pad_w; size_t cv_max_weights; } conv;
    struct { int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w; } pool;
    struct { int out_h, out_w; } adaptive;
    struct { float p; uint64_t seed; } dropout;
    nb_reduction reduction;                         /* squared_error */
    /* batchnorm; batches counts train-mode forwards (num_batches_tracked) */
    struct { float momentum, eps; int64_t batches; int spatial; } batchnorm;
} nb_op_attr;

struct nb_node {
    nb_graph *graph;
    int id;                      /* index in creation (= topological) order */
    nb_node_kind kind;
    const nb_op_def *op;         /* NULL for leaves */
    nb_node *in[NB_MAX_INPUTS];
    int n_in;
    nb_op_attr attr;
    char name[64];

    nb_tensor value;             /* shape is current; data owned unless view/param */
    nb_tensor grad;              /* same shape; data NULL when !needs_grad */
    size_t value_cap, grad_cap;  /* floats allocated (0 for views and params) */
    bool requires_grad;          /* user asked for it (inputs, constants) */
    bool needs_grad;             /* derived before each forward */
    bool batch_follows;          /* input: dim 0 is the batch */

    /* What forward saves for backward (argmax indices, dropout mask, saved
     * probabilities): aux_bytes wanted (set by infer), aux_cap held. */
    void *aux;
    size_t aux_bytes, aux_cap;
    /* Scratch needed only during this node's forward or backward (im2col
     * columns); the graph keeps one shared buffer of the largest size. */
    size_t workspace_bytes;

    size_t param_offset;         /* params: position in the parameter block */

    /* Set at the start of each backward pass for every gradient it will
     * produce; cleared by the first contribution (nb_grad_first). */
    bool grad_pending;

    /* In-place relu, decided by each plan (as PyTorch's ReLU(inplace=True)):
     * a relu whose input is a fuses_relu op with no other consumer shares
     * that op's value buffer (in_place) and does no forward work, and the
     * op applies the relu as it writes its output (fused_relu). The relu's
     * backward is unchanged: relu(x) > 0 exactly where x > 0. Gradients are
     * never shared. */
    bool in_place, fused_relu;
    int consumers;               /* nodes that take this one as an input */

    /* Profiling (nb_graph_profile): seconds and calls, accumulated. */
    double prof_fwd_s, prof_bwd_s;
    long prof_fwd_calls, prof_bwd_calls;
};

struct nb_graph {
    nb_node **nodes;
    int n_nodes, nodes_cap;
    float *param_data, *param_grad;  /* the one parameter block and its gradient */
    size_t n_param_floats, param_cap;
    void *workspace;
    size_t workspace_cap;
    unsigned char *reach;            /* per node: needed by the current target */
    size_t reach_cap;
    nb_status status;                /* first error met while building */
    bool training;
    /* Counts completed backward passes: dropout draws its mask from (seed,
     * step), so a forward and its backward agree and a resumed run repeats. */
    uint64_t step;
    bool forward_done;               /* backward needs a forward first */
    const nb_node *forward_target;
    bool profile;                    /* time each node's forward and backward */
    bool planning;                   /* infer runs for a forward, not at creation */
    /* Called by nb_backward after each node's backward with that node's id,
     * and once more with -1 when every gradient is final: data-parallel
     * training (src/nn/distributed.c) starts reducing a parameter's gradient
     * as soon as the last contribution to it is in. NULL: none. */
    void (*after_backward)(void *user, int node_id);
    void *after_backward_user;
};

/* Create an operator node: checks inputs (NULL → propagate), runs infer,
 * records the first error in the graph. Used by every op constructor. */
nb_node *nb_node_new_op(nb_graph *g, const nb_op_def *op, nb_node *const *inputs, int n_in,
                        const nb_op_attr *attr);

/* Gradients within a backward pass, for ops with grad_write_first. A view
 * shares its input's buffer, so both answer for the node that owns it.
 * nb_grad_first: true when nothing has been written to v's gradient yet
 * this pass, and marks it written: the caller must then write all of it
 * (=), not add (+=). nb_grad_begin_add: for a backward that adds into v's
 * gradient (or part of it): zeroes it when it is still unwritten. */
bool nb_grad_first(nb_node *v);
/* The node whose buffer holds n's gradient: views lead back to their input. */
nb_node *nb_grad_owner(nb_node *n);
void nb_grad_begin_add(nb_node *v);

/* Shape helpers for infer functions. */
size_t nb_numel(int ndim, const int *shape);
bool nb_same_shape(const nb_tensor *a, const nb_tensor *b);
/* "add: shapes [2, 3] and [3, 2] do not match" style message. */
nb_status nb_fail_shapes(const nb_node *n, const char *what, const nb_tensor *a, const nb_tensor *b);

#endif
