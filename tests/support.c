/* support.c — shared test helpers. */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void fill_uniform(float *x, size_t n, float lo, float hi, nb_rng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * nb_rng_uniform(rng);
}

void fill_away_from_zero(float *x, size_t n, nb_rng *rng) {
    for (size_t i = 0; i < n; i++) {
        float m = 0.1f + 0.9f * nb_rng_uniform(rng);
        x[i] = (nb_rng_u32(rng) & 1) ? m : -m;
    }
}

void random_shape(int *shape, int ndim, int lo, int hi, nb_rng *rng) {
    for (int i = 0; i < ndim; i++) shape[i] = lo + (int)nb_rng_below(rng, (uint32_t)(hi - lo + 1));
}

static size_t numel(int ndim, const int *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

nb_node *random_input(nb_graph *g, const char *name, int ndim, const int *shape, float lo, float hi,
                      nb_rng *rng) {
    nb_node *x = nb_input(g, name, ndim, shape);
    if (!x) return NULL;
    size_t n = numel(ndim, shape);
    float *data = malloc(n * sizeof(float));
    fill_uniform(data, n, lo, hi, rng);
    nb_status s = nb_feed(x, data, shape[0]);
    free(data);
    return s ? NULL : x;
}

nb_node *random_param(nb_graph *g, const char *name, int ndim, const int *shape, float lo, float hi,
                      nb_rng *rng) {
    nb_node *p = nb_param(g, name, ndim, shape);
    if (p) fill_uniform(nb_value(p)->data, numel(ndim, shape), lo, hi, rng);
    return p;
}

nb_node *random_projection_loss(nb_graph *g, nb_node *y, nb_rng *rng) {
    if (!y) return NULL;
    const nb_tensor *t = nb_value(y);
    size_t n = nb_tensor_numel(t);
    float *r = malloc(n * sizeof(float));
    fill_uniform(r, n, -1.0f, 1.0f, rng);
    nb_node *c = nb_const(g, "projection", t->ndim, t->shape, r);
    free(r);
    return nb_sum_all(g, nb_mul(g, y, c));
}

void assert_gradcheck(nb_graph *g, nb_node *loss, double eps, double tol) {
    if (!loss) print_error("graph build failed: %s\n", nb_last_error());
    assert_non_null(loss);
    nb_gradcheck_result r;
    nb_status s = nb_gradcheck(g, loss, eps, &r);
    if (s) print_error("gradcheck failed to run: %s\n", nb_last_error());
    assert_int_equal(s, NB_OK);
    if (r.max_rel_error > tol || r.max_abs_grad == 0.0)
        print_error("gradcheck: worst relative error %.3g at %s[%zu] (analytic %.6g, numeric %.6g), "
                    "%zu elements, max |grad| %.3g\n",
                    r.max_rel_error, r.worst_node ? nb_node_name(r.worst_node) : "?", r.worst_index,
                    r.worst_analytic, r.worst_numeric, r.checked, r.max_abs_grad);
    assert_true(r.checked > 0);
    assert_true(r.max_abs_grad > 0.0);
    assert_true(r.max_rel_error <= tol);
}
