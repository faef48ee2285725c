/* gradcheck.c — analytic gradients against central finite differences.
 *
 * For each element v of every parameter and every input marked
 * nb_requires_grad: numeric = (J(v + eps) - J(v - eps)) / (2 eps), compared
 * with the gradient that nb_backward left there. The relative error's
 * denominator has a floor so that gradients near zero are judged by their
 * absolute error: float32 forward passes cannot resolve tiny differences. */
#include "core/internal.h"

#include <math.h>
#include <string.h>

#define GRADCHECK_FLOOR 1e-2

static nb_status loss_at(nb_graph *g, nb_node *loss, double *out) {
    nb_status s = nb_forward(g, loss);
    if (s) return s;
    *out = loss->value.data[0];
    return NB_OK;
}

nb_status nb_gradcheck(nb_graph *g, nb_node *loss, double eps, nb_gradcheck_result *result) {
    if (!result) return nb_fail(NB_ERR_ARG, "nb_gradcheck: NULL result");
    if (!(eps > 0)) return nb_fail(NB_ERR_ARG, "nb_gradcheck: eps %g, expected > 0", eps);
    memset(result, 0, sizeof *result);
    /* Hold the step still so dropout keeps one mask through every forward. */
    uint64_t step = g->step;
    nb_status s = nb_forward(g, loss);
    if (s || (s = nb_backward(g, loss))) return s;
    g->step = step;

    /* Keep the analytic gradients: the forwards below reuse the buffers. */
    size_t total = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        nb_node *n = g->nodes[i];
        if (n->kind != NB_NODE_OP && n->needs_grad && g->reach[i]) total += nb_tensor_numel(&n->value);
    }
    float *analytic = nb_alloc(total * sizeof(float), "gradient check copy");
    if (!analytic) return NB_ERR_NOMEM;
    size_t at = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        nb_node *n = g->nodes[i];
        if (n->kind == NB_NODE_OP || !n->needs_grad || !g->reach[i]) continue;
        size_t count = nb_tensor_numel(&n->value);
        memcpy(analytic + at, n->grad.data, count * sizeof(float));
        at += count;
    }

    at = 0;
    for (int i = 0; i < g->n_nodes && s == NB_OK; i++) {
        nb_node *n = g->nodes[i];
        if (n->kind == NB_NODE_OP || !n->needs_grad || !g->reach[i]) continue;
        size_t count = nb_tensor_numel(&n->value);
        for (size_t k = 0; k < count && s == NB_OK; k++, at++) {
            float *v = &n->value.data[k], saved = *v;
            double plus, minus;
            *v = (float)(saved + eps);
            double step_up = (double)*v - saved;
            s = loss_at(g, loss, &plus);
            *v = (float)(saved - eps);
            double step_down = saved - (double)*v;
            if (!s) s = loss_at(g, loss, &minus);
            *v = saved;
            if (s) break;
            /* Divide by the steps float rounding actually took. */
            double numeric = (plus - minus) / (step_up + step_down);
            double a = analytic[at];
            double denom = fmax(GRADCHECK_FLOOR, fmax(fabs(a), fabs(numeric)));
            double rel = fabs(a - numeric) / denom;
            result->checked++;
            if (fabs(a) > result->max_abs_grad) result->max_abs_grad = fabs(a);
            if (rel > result->max_rel_error || !result->worst_node) {
                result->max_rel_error = rel;
                result->worst_node = n;
                result->worst_index = k;
                result->worst_analytic = a;
                result->worst_numeric = numeric;
            }
        }
    }
    nb_free(analytic);
    if (s) return s;
    /* Leave the graph as it was found: values and gradients at the point. */
    if ((s = nb_forward(g, loss)) || (s = nb_backward(g, loss))) return s;
    g->step = step;
    return NB_OK;
}
