/* test_views.c — reshape and flatten: they alias the input's memory, follow
 * batch changes, pass gradients through (adding to the input's own), and
 * report mismatched element counts naming both shapes. */
#include "support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_reshape_gradcheck(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 301);
    const int from[][4] = {{2, 3, 4, 1}, {1, 1, 1, 1}, {3, 5, 1, 7}};
    const int to[][3] = {{-1, 12, 1}, {1, 1, 1}, {-1, 7, 5}};
    for (int i = 0; i < 3; i++) {
        nb_graph *g = nb_graph_new();
        nb_node *x = random_input(g, "x", 4, from[i], -1, 1, &rng);
        nb_requires_grad(x, 1);
        /* A nonlinear op after the view, so the gradient depends on x. */
        nb_node *y = nb_square(g, nb_reshape(g, x, 3, to[i]));
        assert_gradcheck(g, random_projection_loss(g, y, &rng), 1e-2, 5e-3);
        nb_graph_free(g);
    }
}

/* The input feeds both the view and another op: the two gradient
 * contributions land in one buffer and must add. */
static void test_view_and_input_both_used(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 302);
    nb_graph *g = nb_graph_new();
    nb_node *x = random_input(g, "x", 3, (int[]){2, 3, 2}, -1, 1, &rng);
    nb_requires_grad(x, 1);
    nb_node *direct = random_projection_loss(g, nb_tanh(g, x), &rng);
    nb_node *viewed = random_projection_loss(g, nb_square(g, nb_flatten(g, x)), &rng);
    assert_gradcheck(g, nb_add(g, direct, viewed), 1e-2, 5e-3);
    nb_graph_free(g);
}

/* Flatten feeding a linear layer (the usual conv -> fc joint), and a view of
 * a view of a parameter. */
static void test_flatten_gradcheck(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 303);
    nb_graph *g = nb_graph_new();
    nb_node *x = random_input(g, "x", 4, (int[]){3, 2, 3, 3}, -1, 1, &rng);
    nb_node *w = random_param(g, "w", 1, (int[]){4 * 18}, -1, 1, &rng);
    nb_requires_grad(x, 1);
    nb_node *w2 = nb_reshape(g, nb_reshape(g, w, 2, (int[]){18, 4}), 2, (int[]){4, 18});
    nb_node *y = nb_tanh(g, nb_linear(g, nb_flatten(g, x), w2, NULL));
    assert_gradcheck(g, random_projection_loss(g, y, &rng), 1e-2, 5e-3);
    nb_graph_free(g);
}

static void test_views_alias_and_follow_batch(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 3, (int[]){2, 2, 3});
    nb_node *r = nb_reshape(g, x, 2, (int[]){-1, 6});
    nb_node *f = nb_flatten(g, x);
    nb_node *fixed = nb_reshape(g, x, 2, (int[]){3, 4});
    assert_int_equal(nb_value(r)->shape[0], 2);
    assert_int_equal(nb_value(fixed)->shape[1], 4);
    float data[5 * 6];
    for (int i = 0; i < 30; i++) data[i] = (float)i;
    assert_ok(nb_feed(x, data, 5));
    assert_ok(nb_forward(g, r));
    assert_ok(nb_forward(g, f));
    assert_ptr_equal(nb_value(r)->data, nb_value(x)->data);
    assert_ptr_equal(nb_value(f)->data, nb_value(x)->data);
    assert_int_equal(nb_value(r)->shape[0], 5);
    assert_int_equal(nb_value(r)->shape[1], 6);
    assert_int_equal(nb_value(f)->ndim, 2);
    assert_int_equal(nb_value(f)->shape[0], 5);
    assert_int_equal(nb_value(f)->shape[1], 6);
    assert_float_equal(nb_value(r)->data[4 * 6 + 5], 29, 0);
    /* A fixed shape stops fitting once the batch changes. */
    assert_int_equal(nb_forward(g, fixed), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_last_error(), "reshape"));
    assert_non_null(strstr(nb_last_error(), "[5, 2, 3]"));
    assert_non_null(strstr(nb_last_error(), "[3, 4]"));
    nb_graph_free(g);
}

/* The view's gradient is the input's gradient buffer. */
static void test_view_shares_gradient(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *w = nb_param(g, "w", 2, (int[]){2, 3});
    nb_node *v = nb_reshape(g, w, 1, (int[]){6});
    nb_node *J = nb_sum_all(g, nb_scale(g, v, 2.0f));
    assert_ok(nb_forward(g, J));
    assert_ok(nb_backward(g, J));
    assert_ptr_equal(nb_grad(v)->data, nb_grad(w)->data);
    for (int i = 0; i < 6; i++) assert_float_equal(nb_grad(w)->data[i], 2, 0);
    nb_graph_free(g);
}

static void test_flatten_1d(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *f = nb_flatten(g, nb_input(g, "x", 1, (int[]){7}));
    assert_int_equal(nb_value(f)->ndim, 2);
    assert_int_equal(nb_value(f)->shape[0], 7);
    assert_int_equal(nb_value(f)->shape[1], 1);
    nb_graph_free(g);
}

static void test_reshape_errors(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 3, (int[]){2, 3, 4});
    assert_null(nb_reshape(g, x, 2, (int[]){5, 5}));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_last_error(), "reshape"));
    assert_non_null(strstr(nb_last_error(), "[2, 3, 4]"));
    assert_non_null(strstr(nb_last_error(), "[5, 5]"));
    nb_graph_free(g);

    /* Only the batch dimension may be -1. */
    g = nb_graph_new();
    x = nb_input(g, "x", 3, (int[]){2, 3, 4});
    assert_null(nb_reshape(g, x, 2, (int[]){2, -1}));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_last_error(), "dimension 1"));
    nb_graph_free(g);

    g = nb_graph_new();
    x = nb_input(g, "x", 3, (int[]){2, 3, 4});
    assert_null(nb_reshape(g, x, 5, (int[]){1, 2, 3, 4, 1}));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    nb_graph_free(g);

    g = nb_graph_new();
    x = nb_input(g, "x", 3, (int[]){2, 3, 4});
    assert_null(nb_reshape(g, x, 2, NULL));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_last_error(), "NULL"));
    nb_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reshape_gradcheck),          cmocka_unit_test(test_view_and_input_both_used),
        cmocka_unit_test(test_flatten_gradcheck),          cmocka_unit_test(test_views_alias_and_follow_batch),
        cmocka_unit_test(test_view_shares_gradient),       cmocka_unit_test(test_flatten_1d),
        cmocka_unit_test(test_reshape_errors),
    };
    return cmocka_run_group_tests_name("views", tests, NULL, NULL);
}
