/* test_softmax_loss.c — softmax, log-softmax and the losses: gradient
 * checks on awkward shapes (targets included where they are
 * differentiable), values against hand-computed numbers, stability for
 * large logits, invalid labels, a batch change between forwards, and shape
 * errors that name the op and both shapes. */
#include "support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* [N, C] shapes: a single row, two classes, odd sizes, one a bit larger. */
static const int row_shapes[][2] = {{1, 2}, {1, 9}, {5, 2}, {3, 7}, {7, 13}, {2, 33}};
#define N_ROW_SHAPES (int)(sizeof row_shapes / sizeof row_shapes[0])

static void check_rows(nb_node *(*build)(nb_graph *, nb_node *), uint64_t seed) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    for (int i = 0; i < N_ROW_SHAPES; i++) {
        nb_graph *g = nb_graph_new();
        nb_node *x = random_input(g, "x", 2, row_shapes[i], -3, 3, &rng);
        nb_requires_grad(x, 1);
        assert_gradcheck(g, random_projection_loss(g, build(g, x), &rng), 1e-2, 1e-2);
        nb_graph_free(g);
    }
}

static void test_softmax_gradcheck(void **s) { (void)s; check_rows(nb_softmax, 201); }
static void test_log_softmax_gradcheck(void **s) { (void)s; check_rows(nb_log_softmax, 202); }

static void test_softmax_values(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 2, (int[]){3, 2});
    nb_node *p = nb_softmax(g, x), *lp = nb_log_softmax(g, x);
    /* Large, very negative and ordinary logits: the row shift keeps them finite. */
    assert_ok(nb_feed(x, (float[]){1000, 1001, -1000, -1001, 0, 0}, 3));
    assert_ok(nb_forward(g, p));
    assert_ok(nb_forward(g, lp));
    const double e = exp(1.0);
    const double want_p[6] = {1 / (1 + e), e / (1 + e), e / (1 + e), 1 / (1 + e), 0.5, 0.5};
    const double want_lp[6] = {-log(1 + e), 1 - log(1 + e), 1 - log(1 + e), -log(1 + e), -log(2.0), -log(2.0)};
    for (int i = 0; i < 6; i++) {
        assert_float_equal(nb_value(p)->data[i], want_p[i], 1e-6);
        assert_float_equal(nb_value(lp)->data[i], want_lp[i], 1e-5);
    }
    nb_graph_free(g);
}

/* ---- softmax cross-entropy -------------------------------------------------- */

static nb_node *labels_input(nb_graph *g, int n, int c, nb_rng *rng) {
    nb_node *labels = nb_input(g, "labels", 1, &n);
    float *v = malloc((size_t)n * sizeof(float));
    for (int i = 0; i < n; i++) v[i] = (float)nb_rng_below(rng, (uint32_t)c);
    assert_ok(nb_feed(labels, v, n));
    free(v);
    return labels;
}

static void test_softmax_ce_gradcheck(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 203);
    for (int i = 0; i < N_ROW_SHAPES; i++) {
        int n = row_shapes[i][0], c = row_shapes[i][1];
        nb_graph *g = nb_graph_new();
        nb_node *x = random_input(g, "logits", 2, row_shapes[i], -3, 3, &rng);
        nb_requires_grad(x, 1);
        assert_gradcheck(g, nb_softmax_cross_entropy(g, x, labels_input(g, n, c, &rng)), 1e-2, 5e-3);
        nb_graph_free(g);
    }
}

/* The fused loss against -mean(log_softmax[label]) by hand, and its
 * gradient (p - onehot) / N. */
static void test_softmax_ce_values(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "logits", 2, (int[]){2, 3});
    nb_node *labels = nb_input(g, "labels", 1, (int[]){2});
    nb_node *J = nb_softmax_cross_entropy(g, x, labels);
    nb_requires_grad(x, 1);
    assert_ok(nb_feed(x, (float[]){1, 2, 3, 1000, 0, -1000}, 2));
    assert_ok(nb_feed(labels, (float[]){2, 1}, 2));
    assert_ok(nb_forward(g, J));
    assert_ok(nb_backward(g, J));
    const double lse0 = log(exp(1.0) + exp(2.0) + exp(3.0));
    /* row 0: lse - 3; row 1: log-sum-exp is 1000 (to float precision), minus 0 */
    assert_float_equal(nb_value(J)->data[0], ((lse0 - 3) + 1000) / 2, 1e-3);
    const float *dx = nb_grad(x)->data;
    for (int j = 0; j < 3; j++) assert_float_equal(dx[j], (exp(j + 1.0 - lse0) - (j == 2)) / 2, 1e-6);
    assert_float_equal(dx[3], 0.5, 1e-6);
    assert_float_equal(dx[4], -0.5, 1e-6);
    assert_float_equal(dx[5], 0, 1e-6);
    nb_graph_free(g);
}

/* A label that is not an integer in [0, C) makes the loss NaN, never a
 * crash or an out-of-bounds read. */
static void test_softmax_ce_invalid_label(void **s) {
    (void)s;
    const float bad[] = {3, -1, 1.5f, NAN, 1e30f};
    for (int i = 0; i < 5; i++) {
        nb_graph *g = nb_graph_new();
        nb_node *x = nb_input(g, "logits", 2, (int[]){2, 3});
        nb_node *labels = nb_input(g, "labels", 1, (int[]){2});
        nb_node *J = nb_softmax_cross_entropy(g, x, labels);
        nb_requires_grad(x, 1);
        assert_ok(nb_feed(x, (float[]){1, 2, 3, 4, 5, 6}, 2));
        assert_ok(nb_feed(labels, (float[]){0, bad[i]}, 2));
        assert_ok(nb_forward(g, J));
        assert_true(isnan(nb_value(J)->data[0]));
        assert_ok(nb_backward(g, J));
        assert_false(isnan(nb_grad(x)->data[0])); /* the valid row keeps its gradient */
        assert_true(isnan(nb_grad(x)->data[3]));
        nb_graph_free(g);
    }
}

/* Linear + cross-entropy fed batch 4 then batch 3 without rebuilding: the
 * second pass matches a graph built for batch 3, values and gradients. */
static void test_batch_change(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 204);
    float x4[4 * 5], w[3 * 5], b[3];
    fill_uniform(x4, 20, -1, 1, &rng);
    fill_uniform(w, 15, -1, 1, &rng);
    fill_uniform(b, 3, -1, 1, &rng);
    const float labels4[4] = {0, 2, 1, 2};
    nb_node *J[2], *W[2], *B[2];
    nb_graph *g[2];
    for (int k = 0; k < 2; k++) {
        g[k] = nb_graph_new();
        nb_node *x = nb_input(g[k], "x", 2, (int[]){k ? 3 : 4, 5});
        nb_node *labels = nb_input(g[k], "labels", 1, (int[]){k ? 3 : 4});
        W[k] = nb_param(g[k], "w", 2, (int[]){3, 5});
        B[k] = nb_param(g[k], "b", 1, (int[]){3});
        memcpy(nb_value(W[k])->data, w, sizeof w);
        memcpy(nb_value(B[k])->data, b, sizeof b);
        J[k] = nb_softmax_cross_entropy(g[k], nb_linear(g[k], x, W[k], B[k]), labels);
        if (k == 0) { /* batch 4 first, then the last 3 samples */
            assert_ok(nb_feed(x, x4, 4));
            assert_ok(nb_feed(labels, labels4, 4));
            assert_ok(nb_forward(g[k], J[k]));
            assert_ok(nb_backward(g[k], J[k]));
        }
        assert_ok(nb_feed(x, x4 + 5, 3));
        assert_ok(nb_feed(labels, labels4 + 1, 3));
        assert_ok(nb_forward(g[k], J[k]));
        assert_ok(nb_backward(g[k], J[k]));
    }
    assert_float_equal(nb_value(J[0])->data[0], nb_value(J[1])->data[0], 1e-6);
    for (int i = 0; i < 15; i++) assert_float_equal(nb_grad(W[0])->data[i], nb_grad(W[1])->data[i], 1e-6);
    for (int i = 0; i < 3; i++) assert_float_equal(nb_grad(B[0])->data[i], nb_grad(B[1])->data[i], 1e-6);
    assert_gradcheck(g[0], J[0], 1e-2, 5e-3);
    for (int k = 0; k < 2; k++) nb_graph_free(g[k]);
}

/* ---- binary cross-entropy and squared error ------------------------------------ */

typedef nb_node *(*pair_loss)(nb_graph *, nb_node *, nb_node *);

static nb_node *se_sum(nb_graph *g, nb_node *y, nb_node *t) { return nb_squared_error(g, y, t, NB_REDUCE_SUM); }
static nb_node *se_mean(nb_graph *g, nb_node *y, nb_node *t) { return nb_squared_error(g, y, t, NB_REDUCE_MEAN); }

/* Predictions in [lo, hi); targets in [0, 1], and they need gradients too.
 * Dimensions are 1..max_dim: a summed loss is a float32 of the order of its
 * element count, so large ones leave finite differences too little
 * precision. */
static void check_pair(pair_loss build, float lo, float hi, int max_dim, uint64_t seed) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    for (int ndim = 1; ndim <= 4; ndim++) {
        int shape[4];
        random_shape(shape, ndim, 1, max_dim, &rng);
        nb_graph *g = nb_graph_new();
        nb_node *y = random_input(g, "y", ndim, shape, lo, hi, &rng);
        nb_node *t = random_input(g, "t", ndim, shape, 0, 1, &rng);
        nb_requires_grad(y, 1);
        nb_requires_grad(t, 1);
        assert_gradcheck(g, build(g, y, t), 1e-2, 1e-2);
        nb_graph_free(g);
    }
}

static void test_bce_gradcheck(void **s) { (void)s; check_pair(nb_bce, 0.1f, 0.9f, 5, 205); }
static void test_bce_logits_gradcheck(void **s) { (void)s; check_pair(nb_bce_with_logits, -4, 4, 5, 206); }
static void test_squared_error_gradcheck(void **s) {
    (void)s;
    check_pair(se_sum, -1, 2, 3, 207);
    check_pair(se_mean, -2, 2, 5, 208);
}

static float loss_of(pair_loss build, int n, const float *y, const float *t) {
    nb_graph *g = nb_graph_new();
    nb_node *J = build(g, nb_const(g, "y", 1, &n, y), nb_const(g, "t", 1, &n, t));
    assert_ok(nb_forward(g, J));
    float v = nb_value(J)->data[0];
    nb_graph_free(g);
    return v;
}

static void test_pair_values(void **s) {
    (void)s;
    /* -mean(log 0.8, log 0.7); p = 0 with t = 1 clamps at 100; p = 1, t = 1 is 0. */
    assert_float_equal(loss_of(nb_bce, 2, (float[]){0.8f, 0.3f}, (float[]){1, 0}), -(log(0.8) + log(0.7)) / 2, 1e-6);
    assert_float_equal(loss_of(nb_bce, 2, (float[]){0, 1}, (float[]){1, 1}), 50, 1e-4);
    /* log 2 at x = 0; x = 100, t = 0 costs 100; x = -100, t = 0 costs ~0. */
    assert_float_equal(loss_of(nb_bce_with_logits, 1, (float[]){0}, (float[]){1}), log(2.0), 1e-6);
    assert_float_equal(loss_of(nb_bce_with_logits, 2, (float[]){100, -100}, (float[]){0, 0}), 50, 1e-4);
    /* Same as bce on sigmoid(x) where that is accurate. */
    const float x[3] = {-2, 0.5f, 3}, t[3] = {0.25f, 1, 0};
    float p[3];
    for (int i = 0; i < 3; i++) p[i] = 1 / (1 + expf(-x[i]));
    assert_float_equal(loss_of(nb_bce_with_logits, 3, x, t), loss_of(nb_bce, 3, p, t), 1e-6);
    /* 1/2 (1 + 0 + 4), and that over 3 elements */
    assert_float_equal(loss_of(se_sum, 3, (float[]){1, 2, 3}, (float[]){0, 2, 5}), 2.5, 0);
    assert_float_equal(loss_of(se_mean, 3, (float[]){1, 2, 3}, (float[]){0, 2, 5}), 2.5 / 3, 1e-7);
}

/* Probabilities at exactly 0 and 1 give a finite gradient. */
static void test_bce_saturated_gradient(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *p = nb_input(g, "p", 1, (int[]){4});
    nb_node *t = nb_const(g, "t", 1, (int[]){4}, (float[]){1, 0, 0, 1});
    nb_node *J = nb_bce(g, p, t);
    nb_requires_grad(p, 1);
    assert_ok(nb_feed(p, (float[]){0, 1, 0, 1}, 4));
    assert_ok(nb_forward(g, J));
    assert_true(isfinite(nb_value(J)->data[0]));
    assert_ok(nb_backward(g, J));
    for (int i = 0; i < 4; i++) assert_true(isfinite(nb_grad(p)->data[i]));
    assert_float_equal(nb_grad(p)->data[2], 0.25, 1e-6); /* d/dp -log(1-p) / 4 at p = 0 */
    nb_graph_free(g);
}

/* ---- shape errors ------------------------------------------------------------- */

static void expect_shape_error(nb_graph *g, nb_node *made, const char *op, const char *a, const char *b) {
    const char *msg = nb_last_error();
    assert_null(made);
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    if (!strstr(msg, op) || !strstr(msg, a) || (b && !strstr(msg, b)))
        print_error("message \"%s\" should name %s, %s and %s\n", msg, op, a, b ? b : "");
    assert_non_null(strstr(msg, op));
    assert_non_null(strstr(msg, a));
    if (b) assert_non_null(strstr(msg, b));
    nb_graph_free(g);
}

static void test_shape_errors(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x3 = nb_input(g, "x", 3, (int[]){2, 3, 4});
    expect_shape_error(g, nb_softmax(g, x3), "softmax", "[2, 3, 4]", NULL);

    g = nb_graph_new();
    nb_node *v = nb_input(g, "x", 1, (int[]){5});
    expect_shape_error(g, nb_log_softmax(g, v), "log_softmax", "[5]", NULL);

    g = nb_graph_new();
    nb_node *logits = nb_input(g, "logits", 2, (int[]){4, 3});
    nb_node *labels = nb_input(g, "labels", 1, (int[]){5});
    expect_shape_error(g, nb_softmax_cross_entropy(g, logits, labels), "softmax_cross_entropy", "[4, 3]", "[5]");

    g = nb_graph_new();
    nb_node *p = nb_input(g, "p", 2, (int[]){2, 3});
    nb_node *t = nb_input(g, "t", 2, (int[]){3, 2});
    expect_shape_error(g, nb_bce(g, p, t), "bce", "[2, 3]", "[3, 2]");

    g = nb_graph_new();
    p = nb_input(g, "p", 2, (int[]){2, 3});
    t = nb_input(g, "t", 1, (int[]){6});
    expect_shape_error(g, nb_bce_with_logits(g, p, t), "bce_with_logits", "[2, 3]", "[6]");

    g = nb_graph_new();
    p = nb_input(g, "y", 2, (int[]){4, 1});
    t = nb_input(g, "t", 1, (int[]){4});
    expect_shape_error(g, nb_squared_error(g, p, t, NB_REDUCE_MEAN), "squared_error", "[4, 1]", "[4]");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_gradcheck),       cmocka_unit_test(test_log_softmax_gradcheck),
        cmocka_unit_test(test_softmax_values),          cmocka_unit_test(test_softmax_ce_gradcheck),
        cmocka_unit_test(test_softmax_ce_values),       cmocka_unit_test(test_softmax_ce_invalid_label),
        cmocka_unit_test(test_batch_change),            cmocka_unit_test(test_bce_gradcheck),
        cmocka_unit_test(test_bce_logits_gradcheck),    cmocka_unit_test(test_squared_error_gradcheck),
        cmocka_unit_test(test_pair_values),             cmocka_unit_test(test_bce_saturated_gradient),
        cmocka_unit_test(test_shape_errors),
    };
    return cmocka_run_group_tests_name("softmax_loss", tests, NULL, NULL);
}
