/* unary.c — elementwise functions of one tensor.
 *
 * Each operator is a pair of small inline functions: the value y = f(x) and
 * the local derivative dy/dx, written in terms of x and y (whichever is
 * cheaper; sigmoid and tanh reuse y). One macro turns a pair into the
 * forward and backward loops and the op's definition, so the rule for each
 * function sits on two adjacent lines. */
#include "core/internal.h"

#include <math.h>
#include <string.h>

static nb_status infer_same_shape(nb_node *n) {
    n->value.ndim = n->in[0]->value.ndim;
    memcpy(n->value.shape, n->in[0]->value.shape, sizeof n->value.shape);
    return NB_OK;
}

/* c is the op's scalar attribute (scale, add_scalar, pow); others ignore it. */
#define UNARY_OP(NAME, KIND, VALUE, DERIV)                                                       \
    static inline float NAME##_value(float x, float c) { (void)c; return VALUE; }                 \
    static inline float NAME##_deriv(float x, float y, float c) { (void)x; (void)y; (void)c; return DERIV; } \
    static void forward_##NAME(nb_node *n) {                                                     \
        const float *x = n->in[0]->value.data;                                                   \
        float *y = n->value.data, c = n->attr.scalar;                                            \
        size_t count = nb_tensor_numel(&n->value);                                               \
        for (size_t i = 0; i < count; i++) y[i] = NAME##_value(x[i], c);                         \
    }                                                                                            \
    static void backward_##NAME(nb_node *n) {                                                    \
        if (!n->in[0]->needs_grad) return;                                                       \
        const float *x = n->in[0]->value.data, *y = n->value.data, *dy = n->grad.data;           \
        float *dx = n->in[0]->grad.data, c = n->attr.scalar;                                     \
        size_t count = nb_tensor_numel(&n->value);                                               \
        for (size_t i = 0; i < count; i++) dx[i] += dy[i] * NAME##_deriv(x[i], y[i], c);         \
    }                                                                                            \
    static const nb_op_def NAME##_def = {KIND, #NAME, false, infer_same_shape, forward_##NAME, backward_##NAME};

static inline float sigmoidf(float x) {
    /* Split by sign so exp never overflows. */
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

/*       name        kind               y = f(x)                 dy/dx                              */
UNARY_OP(neg,        NB_OP_NEG,         -x,                      -1.0f)
UNARY_OP(scale,      NB_OP_SCALE,       c * x,                   c)
UNARY_OP(add_scalar, NB_OP_ADD_SCALAR,  x + c,                   1.0f)
UNARY_OP(square,     NB_OP_SQUARE,      x * x,                   2.0f * x)
UNARY_OP(pow,        NB_OP_POW,         powf(x, c),              c * powf(x, c - 1.0f))
UNARY_OP(exp,        NB_OP_EXP,         expf(x),                 y)
UNARY_OP(log,        NB_OP_LOG,         logf(x),                 1.0f / x)
UNARY_OP(sqrt,       NB_OP_SQRT,        sqrtf(x),                0.5f / y)
UNARY_OP(sin,        NB_OP_SIN,         sinf(x),                 cosf(x))
UNARY_OP(cos,        NB_OP_COS,         cosf(x),                 -sinf(x))
UNARY_OP(tanh,       NB_OP_TANH,        tanhf(x),                1.0f - y * y)
UNARY_OP(sigmoid,    NB_OP_SIGMOID,     sigmoidf(x),             y * (1.0f - y))
UNARY_OP(relu,       NB_OP_RELU,        x > 0 ? x : 0.0f,        x > 0 ? 1.0f : 0.0f)

static nb_node *unary(nb_graph *g, const nb_op_def *def, nb_node *a, float c) {
    nb_op_attr attr = {.scalar = c};
    return nb_node_new_op(g, def, &a, 1, &attr);
}

nb_node *nb_neg(nb_graph *g, nb_node *a) { return unary(g, &neg_def, a, 0); }
nb_node *nb_scale(nb_graph *g, nb_node *a, float c) { return unary(g, &scale_def, a, c); }
nb_node *nb_add_scalar(nb_graph *g, nb_node *a, float c) { return unary(g, &add_scalar_def, a, c); }
nb_node *nb_square(nb_graph *g, nb_node *a) { return unary(g, &square_def, a, 0); }
nb_node *nb_pow(nb_graph *g, nb_node *a, float p) { return unary(g, &pow_def, a, p); }
nb_node *nb_exp(nb_graph *g, nb_node *a) { return unary(g, &exp_def, a, 0); }
nb_node *nb_log(nb_graph *g, nb_node *a) { return unary(g, &log_def, a, 0); }
nb_node *nb_sqrt(nb_graph *g, nb_node *a) { return unary(g, &sqrt_def, a, 0); }
nb_node *nb_sin(nb_graph *g, nb_node *a) { return unary(g, &sin_def, a, 0); }
nb_node *nb_cos(nb_graph *g, nb_node *a) { return unary(g, &cos_def, a, 0); }
nb_node *nb_tanh(nb_graph *g, nb_node *a) { return unary(g, &tanh_def, a, 0); }
nb_node *nb_sigmoid(nb_graph *g, nb_node *a) { return unary(g, &sigmoid_def, a, 0); }
nb_node *nb_relu(nb_graph *g, nb_node *a) { return unary(g, &relu_def, a, 0); }
