/* unary.c — elementwise functions of one tensor.
 *
 * Each operator is a pair of small inline functions: the value y = f(x) and
 * its gradient rule, written in terms of x and y (whichever is cheaper;
 * sigmoid and tanh reuse y). One macro turns a pair into the
 * forward and backward loops and the op's definition, so the rule for each
 * function sits on two adjacent lines. */
#include "core/internal.h"
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

static nb_status infer_same_shape(nb_node *n) {
    n->value.ndim = n->in[0]->value.ndim;
    memcpy(n->value.shape, n->in[0]->value.shape, sizeof n->value.shape);
    return NB_OK;
}

/* Below this many elements a parallel region costs more than it saves. */
#define PARALLEL_MIN 32768

/* c is the op's scalar attribute (scale, add_scalar, pow); others ignore it.
 *
 * Elementwise work splits over threads in any way without changing a bit.
 * The loops of plain-arithmetic rules are also `omp simd` (NB_SIMD_CLAUSE,
 * kernels.h): GCC's -O2 vectorises only loops that need no runtime alias
 * check, and these would (y may be x), so the clause asserts what holds
 * (each element is read before it is written). Rules that call libm, which
 * no compiler here vectorises, leave it out. Backward writes dx when it is
 * the first gradient this pass gives x (nb_grad_first: no buffer to zero
 * and read back) and adds otherwise. */
#define NB_PRAGMA(x) _Pragma(#x)
#define vec NB_SIMD_CLAUSE
/* `if (parallel: ...)`: a bare `if` on a combined `parallel for simd` also
 * turns the simd off when false, which left every small tensor (LeNet-5's
 * fully-connected relus) on a branchy scalar loop. */
#define UNARY_LOOP(VEC) NB_PRAGMA(omp parallel for VEC schedule(static) if (parallel: count >= PARALLEL_MIN))
#define UNARY_OP(NAME, KIND, VEC, VALUE, GRAD)                                                   \
    static inline float NAME##_value(float x, float c) { (void)c; return VALUE; }                 \
    static inline float NAME##_grad(float g, float x, float y, float c) {                        \
        (void)x; (void)y; (void)c; return GRAD;                                                  \
    }                                                                                            \
    static void forward_##NAME(nb_node *n) {                                                     \
        const float *x = n->in[0]->value.data;                                                   \
        float *y = n->value.data, c = n->attr.scalar;                                            \
        long count = (long)nb_tensor_numel(&n->value);                                           \
        UNARY_LOOP(VEC)                                                                          \
        for (long i = 0; i < count; i++) y[i] = NAME##_value(x[i], c);                           \
    }                                                                                            \
    static void backward_##NAME(nb_node *n) {                                                    \
        if (!n->in[0]->needs_grad) return;                                                       \
        const float *x = n->in[0]->value.data, *y = n->value.data, *dy = n->grad.data;           \
        float *dx = n->in[0]->grad.data, c = n->attr.scalar;                                     \
        long count = (long)nb_tensor_numel(&n->value);                                           \
        if (nb_grad_first(n->in[0])) {                                                           \
            UNARY_LOOP(VEC)                                                                      \
            for (long i = 0; i < count; i++) dx[i] = NAME##_grad(dy[i], x[i], y[i], c);          \
        } else {                                                                                 \
            UNARY_LOOP(VEC)                                                                      \
            for (long i = 0; i < count; i++) dx[i] += NAME##_grad(dy[i], x[i], y[i], c);         \
        }                                                                                        \
    }                                                                                            \
    static const nb_op_def NAME##_def = {KIND, #NAME, false, infer_same_shape, forward_##NAME,   \
                                         backward_##NAME, true, false};

static inline float sigmoidf(float x) {
    /* Split by sign so exp never overflows. */
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

/* The last column is what backward adds to dJ/dx given g = dJ/dy: g times
 * dy/dx, except relu, which passes g where x > 0 and 0 elsewhere, as
 * PyTorch does (a NaN or infinite g where x <= 0 gives 0, not NaN). Written
 * as a select, the loop has no multiply to skip and vectorises. */
/*       name        kind               vec  y = f(x)                 dJ/dx from g = dJ/dy               */
UNARY_OP(neg,        NB_OP_NEG,         vec, -x,                      -g)
UNARY_OP(scale,      NB_OP_SCALE,       vec, c * x,                   g * c)
UNARY_OP(add_scalar, NB_OP_ADD_SCALAR,  vec, x + c,                   g)
UNARY_OP(square,     NB_OP_SQUARE,      vec, x * x,                   g * (2.0f * x))
UNARY_OP(pow,        NB_OP_POW,            , powf(x, c),              g * (c * powf(x, c - 1.0f)))
UNARY_OP(exp,        NB_OP_EXP,            , expf(x),                 g * y)
UNARY_OP(log,        NB_OP_LOG,            , logf(x),                 g * (1.0f / x))
UNARY_OP(sqrt,       NB_OP_SQRT,           , sqrtf(x),                g * (0.5f / y))
UNARY_OP(sin,        NB_OP_SIN,            , sinf(x),                 g * cosf(x))
UNARY_OP(cos,        NB_OP_COS,            , cosf(x),                 g * -sinf(x))
UNARY_OP(tanh,       NB_OP_TANH,           , tanhf(x),                g * (1.0f - y * y))
UNARY_OP(sigmoid,    NB_OP_SIGMOID,        , sigmoidf(x),             g * (y * (1.0f - y)))
UNARY_OP(relu,       NB_OP_RELU,        vec, x > 0 ? x : 0.0f,        x > 0 ? g : 0.0f)

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
