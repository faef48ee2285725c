/* matmul.c — the matrix product and the fully-connected layer.
 *
 * Both run on nb_sgemm. Backward is two more products into the gradient
 * buffers: beta = 0 writes the pass's first contribution (no zeroing, no
 * reading back), beta = 1 adds to an earlier one, so no scratch space is
 * needed.
 *
 * For C = op(A) op(B) with upstream gradient dC:
 *     d op(A) = dC op(B)^T        d op(B) = op(A)^T dC
 * and a transposed operand receives the transpose of those. */
#include "core/internal.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <string.h>

/* ---- matmul ---------------------------------------------------------------- */

typedef struct {
    int m, n, k;  /* op(A) is m x k, op(B) is k x n */
    int lda, ldb; /* row strides of A and B as stored */
} mm_dims;

static mm_dims mm_dims_of(const nb_node *n) {
    const nb_tensor *a = &n->in[0]->value, *b = &n->in[1]->value;
    int ta = n->attr.matmul.trans_a, tb = n->attr.matmul.trans_b;
    mm_dims d = {ta ? a->shape[1] : a->shape[0], tb ? b->shape[0] : b->shape[1],
                 ta ? a->shape[0] : a->shape[1], a->shape[1], b->shape[1]};
    return d;
}

static nb_status infer_matmul(nb_node *n) {
    const nb_tensor *a = &n->in[0]->value, *b = &n->in[1]->value;
    if (a->ndim != 2 || b->ndim != 2)
        return nb_fail_shapes(n, "expected two 2-D matrices", a, b);
    int ta = n->attr.matmul.trans_a, tb = n->attr.matmul.trans_b;
    int ka = ta ? a->shape[0] : a->shape[1], kb = tb ? b->shape[1] : b->shape[0];
    if (ka != kb) {
        char what[128];
        snprintf(what, sizeof what, "inner dimensions differ (%d vs %d, trans_a %d, trans_b %d)",
                 ka, kb, ta, tb);
        return nb_fail_shapes(n, what, a, b);
    }
    mm_dims d = mm_dims_of(n);
    n->value.ndim = 2;
    n->value.shape[0] = d.m;
    n->value.shape[1] = d.n;
    return NB_OK;
}

static void forward_matmul(nb_node *n) {
    mm_dims d = mm_dims_of(n);
    nb_sgemm(n->attr.matmul.trans_a, n->attr.matmul.trans_b, d.m, d.n, d.k, 1.0f,
             n->in[0]->value.data, d.lda, n->in[1]->value.data, d.ldb, 0.0f, n->value.data, d.n);
}

/* beta for a product into v's gradient: 0 writes the pass's first
 * contribution, 1 adds to what is there. */
static float grad_beta(nb_node *v) { return nb_grad_first(v) ? 0.0f : 1.0f; }

static void backward_matmul(nb_node *n) {
    mm_dims d = mm_dims_of(n);
    int ta = n->attr.matmul.trans_a, tb = n->attr.matmul.trans_b;
    const float *a = n->in[0]->value.data, *b = n->in[1]->value.data, *dc = n->grad.data;
    if (n->in[0]->needs_grad) {
        float *da = n->in[0]->grad.data, beta = grad_beta(n->in[0]);
        if (!ta) /* dA (m x k) = dC op(B)^T */
            nb_sgemm(0, !tb, d.m, d.k, d.n, 1.0f, dc, d.n, b, d.ldb, beta, da, d.lda);
        else /* dA (k x m) = op(B) dC^T */
            nb_sgemm(tb, 1, d.k, d.m, d.n, 1.0f, b, d.ldb, dc, d.n, beta, da, d.lda);
    }
    if (n->in[1]->needs_grad) {
        float *db = n->in[1]->grad.data, beta = grad_beta(n->in[1]);
        if (!tb) /* dB (k x n) = op(A)^T dC */
            nb_sgemm(!ta, 0, d.k, d.n, d.m, 1.0f, a, d.lda, dc, d.n, beta, db, d.ldb);
        else /* dB (n x k) = dC^T op(A) */
            nb_sgemm(1, ta, d.n, d.k, d.m, 1.0f, dc, d.n, a, d.lda, beta, db, d.ldb);
    }
}

static const nb_op_def matmul_def = {NB_OP_MATMUL, "matmul", false, infer_matmul, forward_matmul,
                                     backward_matmul, true, false};

nb_node *nb_matmul(nb_graph *g, nb_node *a, nb_node *b, int trans_a, int trans_b) {
    nb_op_attr attr = {.matmul = {trans_a != 0, trans_b != 0}};
    return nb_node_new_op(g, &matmul_def, (nb_node *[]){a, b}, 2, &attr);
}

/* ---- linear ----------------------------------------------------------------
 * y = x W^T + b with x read as [N, in]: a [N, C, H, W] activation feeds a
 * fully-connected layer without an explicit flatten. */

typedef struct {
    int batch, in, out;
} fc_dims;

static fc_dims fc_dims_of(const nb_node *n) {
    const nb_tensor *x = &n->in[0]->value, *w = &n->in[1]->value;
    fc_dims d = {x->shape[0], (int)nb_numel(x->ndim - 1, x->shape + 1), w->shape[0]};
    return d;
}

static nb_status infer_linear(nb_node *n) {
    const nb_tensor *x = &n->in[0]->value, *w = &n->in[1]->value;
    if (w->ndim != 2) return nb_fail_shapes(n, "w must be a 2-D [out, in] matrix (x, w)", x, w);
    fc_dims d = fc_dims_of(n);
    if (d.in != w->shape[1]) {
        char what[128];
        snprintf(what, sizeof what, "x has %d features per sample but w [out, in] expects %d (x, w)",
                 d.in, w->shape[1]);
        return nb_fail_shapes(n, what, x, w);
    }
    if (n->n_in == 3) {
        const nb_tensor *b = &n->in[2]->value;
        if (b->ndim != 1 || b->shape[0] != d.out)
            return nb_fail_shapes(n, "b must be a vector of w.shape[0] entries (w, b)", w, b);
    }
    n->value.ndim = 2;
    n->value.shape[0] = d.batch;
    n->value.shape[1] = d.out;
    return NB_OK;
}

static void forward_linear(nb_node *n) {
    fc_dims d = fc_dims_of(n);
    float *y = n->value.data, beta = 0.0f;
    if (n->n_in == 3) {
        /* Start every row at the bias and let gemm add x W^T to it. */
        for (int r = 0; r < d.batch; r++)
            memcpy(y + (size_t)r * d.out, n->in[2]->value.data, (size_t)d.out * sizeof(float));
        beta = 1.0f;
    }
    nb_sgemm(0, 1, d.batch, d.out, d.in, 1.0f, n->in[0]->value.data, d.in, n->in[1]->value.data,
             d.in, beta, y, d.out);
}

static void backward_linear(nb_node *n) {
    fc_dims d = fc_dims_of(n);
    const float *dy = n->grad.data;
    if (n->in[0]->needs_grad) /* dx (N x in) = dy W */
        nb_sgemm(0, 0, d.batch, d.in, d.out, 1.0f, dy, d.out, n->in[1]->value.data, d.in,
                 grad_beta(n->in[0]), n->in[0]->grad.data, d.in);
    if (n->in[1]->needs_grad) /* dW (out x in) = dy^T x */
        nb_sgemm(1, 0, d.out, d.in, d.batch, 1.0f, dy, d.out, n->in[0]->value.data, d.in,
                 grad_beta(n->in[1]), n->in[1]->grad.data, d.in);
    if (n->n_in == 3 && n->in[2]->needs_grad) {
        float *db = n->in[2]->grad.data;
        const bool first = nb_grad_first(n->in[2]);
        /* Rows in order, all outputs at once (a vector loop over o). */
        for (int o0 = 0; o0 < d.out; o0 += 256) {
            const int o1 = d.out - o0 < 256 ? d.out : o0 + 256;
            double acc[256] = {0};
            for (int r = 0; r < d.batch; r++) {
                const float *row = dy + (size_t)r * d.out;
NB_SIMD
                for (int o = o0; o < o1; o++) acc[o - o0] += row[o];
            }
            for (int o = o0; o < o1; o++) db[o] = first ? (float)acc[o - o0] : db[o] + (float)acc[o - o0];
        }
    }
}

static const nb_op_def linear_def = {NB_OP_LINEAR, "linear", false, infer_linear, forward_linear,
                                     backward_linear, true, false};

nb_node *nb_linear(nb_graph *g, nb_node *x, nb_node *w, nb_node *b) {
    return nb_node_new_op(g, &linear_def, (nb_node *[]){x, w, b}, b ? 3 : 2, NULL);
}
