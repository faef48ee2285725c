/* test_graph.c — the graph itself: topological evaluation, gradient
 * accumulation into shared inputs, batch changes, the parameter block,
 * errors for calls out of order, and allocation failures. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A node used twice gets both contributions: d(x*x)/dx = 2x. */
static void test_gradient_accumulates_over_uses(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 1, (int[]){3});
    nb_requires_grad(x, 1);
    nb_node *J = nb_sum_all(g, nb_mul(g, x, x));
    assert_ok(nb_feed(x, (float[]){1, -2, 3}, 3));
    assert_ok(nb_forward(g, J));
    assert_ok(nb_backward(g, J));
    assert_float_equal(nb_value(J)->data[0], 14, 0);
    assert_float_equal(nb_grad(x)->data[0], 2, 0);
    assert_float_equal(nb_grad(x)->data[1], -4, 0);
    assert_float_equal(nb_grad(x)->data[2], 6, 0);
    /* A second backward starts from zero again rather than accumulating. */
    assert_ok(nb_forward(g, J));
    assert_ok(nb_backward(g, J));
    assert_float_equal(nb_grad(x)->data[2], 6, 0);
    nb_graph_free(g);
}

static void test_batch_changes_without_rebuilding(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 2, (int[]){4, 2});
    nb_node *w = nb_param(g, "w", 1, (int[]){2});
    nb_value(w)->data[0] = 1, nb_value(w)->data[1] = 10;
    nb_node *J = nb_sum_all(g, nb_mul(g, x, w));
    assert_ok(nb_feed(x, (float[]){1, 1, 1, 1, 1, 1, 1, 1}, 4));
    assert_ok(nb_forward(g, J));
    assert_float_equal(nb_value(J)->data[0], 44, 0);
    assert_ok(nb_feed(x, (float[]){1, 2, 3, 4}, 2)); /* a last, smaller batch */
    assert_ok(nb_forward(g, J));
    assert_ok(nb_backward(g, J));
    assert_float_equal(nb_value(J)->data[0], 1 + 20 + 3 + 40, 0);
    assert_float_equal(nb_grad(w)->data[0], 4, 0);
    assert_float_equal(nb_grad(w)->data[1], 6, 0);
    nb_graph_free(g);
}

static void test_parameters_share_one_block(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *a = nb_param(g, "a", 2, (int[]){3, 4});
    nb_node *b = nb_param(g, "b", 1, (int[]){5});
    for (int i = 0; i < 2000; i++) assert_non_null(nb_param(g, "more", 1, (int[]){1})); /* forces growth */
    float *data, *grad;
    size_t n = nb_graph_params(g, &data, &grad);
    assert_int_equal(n, 12 + 5 + 2000);
    assert_ptr_equal(nb_value(a)->data, data);
    assert_ptr_equal(nb_value(b)->data, data + 12);
    assert_ptr_equal(nb_grad(b)->data, grad + 12);
    assert_int_equal(nb_graph_param_count(g), 2002);
    assert_ptr_equal(nb_graph_param(g, 1), b);
    nb_graph_free(g);
}

static void test_calls_out_of_order(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 1, (int[]){3});
    nb_requires_grad(x, 1);
    nb_node *y = nb_square(g, x);
    nb_node *J = nb_sum_all(g, y);
    assert_int_equal(nb_backward(g, J), NB_ERR_STATE);
    assert_non_null(strstr(nb_last_error(), "nb_forward"));
    assert_ok(nb_forward(g, y));
    assert_int_equal(nb_backward(g, y), NB_ERR_SHAPE); /* not a scalar */
    assert_non_null(strstr(nb_last_error(), "scalar"));
    assert_int_equal(nb_feed(y, (float[]){1}, 1), NB_ERR_ARG);
    assert_int_equal(nb_feed(x, (float[]){1}, 0), NB_ERR_SHAPE);
    assert_null(nb_input(g, "bad", 5, (int[]){1, 1, 1, 1, 1}));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_int_equal(nb_forward(g, J), NB_ERR_SHAPE); /* the build error sticks */
    nb_graph_free(g);
}

static void test_eval_mode_has_no_gradients(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *w = nb_param(g, "w", 1, (int[]){2});
    nb_node *x = nb_input(g, "x", 1, (int[]){2});
    nb_node *J = nb_sum_all(g, nb_mul(g, x, w));
    nb_set_training(g, 0);
    assert_ok(nb_forward(g, J));
    assert_int_equal(nb_backward(g, J), NB_ERR_STATE);
    assert_null(nb_grad(J)->data);
    nb_graph_free(g);
}

/* ---- allocation failures ----------------------------------------------------
 * Fail the k-th allocation for every k until a run completes: each failure
 * must come back as NB_ERR_NOMEM (ASan's leak check covers the cleanup). */
static nb_status build_and_run(void) {
    nb_graph *g = nb_graph_new();
    if (!g) return NB_ERR_NOMEM;
    nb_node *x = nb_input(g, "x", 2, (int[]){2, 3});
    nb_node *w = nb_param(g, "w", 1, (int[]){3});
    nb_node *J = nb_sum_all(g, nb_tanh(g, nb_add(g, nb_mul(g, x, w), x)));
    nb_status s = J ? NB_OK : nb_graph_status(g);
    if (!s) s = nb_feed(x, (float[]){1, 2, 3, 4, 5, 6}, 2);
    if (!s) s = nb_forward(g, J);
    if (!s) s = nb_backward(g, J);
    nb_graph_free(g);
    return s;
}

static void test_allocation_failures_are_reported(void **s) {
    (void)s;
    int failures = 0;
    for (int k = 0; k < 100; k++) {
        alloc_budget = k;
        nb_set_allocator(counting_malloc, counting_realloc, counting_free);
        nb_status st = build_and_run();
        nb_set_allocator(NULL, NULL, NULL);
        if (st == NB_OK) break;
        assert_int_equal(st, NB_ERR_NOMEM);
        assert_non_null(strstr(nb_last_error(), "out of memory"));
        failures++;
    }
    alloc_budget = -1;
    assert_true(failures > 5);
    assert_ok(build_and_run());
}

/* The example at the top of nabla.h, extracted and compiled by the
 * Makefile, runs and prints J and dJ/dx. */
static void test_header_example_runs(void **s) {
    (void)s;
    const char *build = getenv("BUILD");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/tests/header_example", build ? build : "build");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[256] = {0};
    assert_non_null(fgets(line, sizeof line, p));
    assert_int_equal(pclose(p), 0);
    float J, dJ;
    assert_int_equal(sscanf(line, "J = %f, dJ/dx = %f", &J, &dJ), 2);
    assert_float_equal(J, 0.5424850f, 1e-5); /* cos(sin(0.25) + 0.75) */
    assert_float_equal(dJ, -3.3341464f, 1e-4); /* -sin(u) (2x cos(x^2) + 6x) */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient_accumulates_over_uses),
        cmocka_unit_test(test_batch_changes_without_rebuilding),
        cmocka_unit_test(test_parameters_share_one_block),
        cmocka_unit_test(test_calls_out_of_order),
        cmocka_unit_test(test_eval_mode_has_no_gradients),
        cmocka_unit_test(test_allocation_failures_are_reported),
        cmocka_unit_test(test_header_example_runs),
    };
    return cmocka_run_group_tests_name("graph", tests, NULL, NULL);
}
