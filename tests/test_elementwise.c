/* test_elementwise.c — gradient checks for the elementwise operators and the
 * reductions, on random shapes, plus their forward values on known inputs. */
#include "support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef nb_node *(*unary_builder)(nb_graph *, nb_node *);

static nb_node *scale_by_3(nb_graph *g, nb_node *a) { return nb_scale(g, a, 3.0f); }
static nb_node *add_2(nb_graph *g, nb_node *a) { return nb_add_scalar(g, a, 2.0f); }
static nb_node *pow_2_5(nb_graph *g, nb_node *a) { return nb_pow(g, a, 2.5f); }

/* Check one unary op on a random 1..4-D shape with inputs in [lo, hi). */
static void check_unary(unary_builder build, float lo, float hi, int away_from_zero, uint64_t seed) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    for (int ndim = 1; ndim <= 4; ndim++) {
        nb_graph *g = nb_graph_new();
        int shape[4];
        random_shape(shape, ndim, 1, 4, &rng);
        nb_node *x = random_input(g, "x", ndim, shape, lo, hi, &rng);
        if (away_from_zero) {
            float *v = nb_value(x)->data;
            fill_away_from_zero(v, nb_tensor_numel(nb_value(x)), &rng);
            v[0] = fabsf(v[0]); /* at least one element on the live side */
        }
        nb_requires_grad(x, 1);
        nb_node *loss = random_projection_loss(g, build(g, x), &rng);
        assert_gradcheck(g, loss, 1e-2, 1e-2);
        nb_graph_free(g);
    }
}

static void test_neg(void **s) { (void)s; check_unary(nb_neg, -2, 2, 0, 1); }
static void test_scale(void **s) { (void)s; check_unary(scale_by_3, -2, 2, 0, 2); }
static void test_add_scalar(void **s) { (void)s; check_unary(add_2, -2, 2, 0, 3); }
static void test_square(void **s) { (void)s; check_unary(nb_square, -2, 2, 0, 4); }
static void test_pow(void **s) { (void)s; check_unary(pow_2_5, 0.5f, 2, 0, 5); }
static void test_exp(void **s) { (void)s; check_unary(nb_exp, -2, 2, 0, 6); }
static void test_log(void **s) { (void)s; check_unary(nb_log, 0.5f, 3, 0, 7); }
static void test_sqrt(void **s) { (void)s; check_unary(nb_sqrt, 0.5f, 3, 0, 8); }
static void test_sin(void **s) { (void)s; check_unary(nb_sin, -3, 3, 0, 9); }
static void test_cos(void **s) { (void)s; check_unary(nb_cos, -3, 3, 0, 10); }
static void test_tanh(void **s) { (void)s; check_unary(nb_tanh, -2, 2, 0, 11); }
static void test_sigmoid(void **s) { (void)s; check_unary(nb_sigmoid, -4, 4, 0, 12); }
static void test_relu(void **s) { (void)s; check_unary(nb_relu, -1, 1, 1, 13); }

typedef nb_node *(*binary_builder)(nb_graph *, nb_node *, nb_node *);

/* Both operands need gradients; b is full-shape or a per-channel vector. */
static void check_binary(binary_builder build, int broadcast, uint64_t seed) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    for (int ndim = broadcast ? 2 : 1; ndim <= 4; ndim++) {
        nb_graph *g = nb_graph_new();
        int shape[4];
        random_shape(shape, ndim, 1, 4, &rng);
        nb_node *a = random_input(g, "a", ndim, shape, 0.5f, 2.0f, &rng);
        nb_node *b = broadcast ? random_param(g, "b", 1, &shape[1], 0.5f, 2.0f, &rng)
                               : random_input(g, "b", ndim, shape, 0.5f, 2.0f, &rng);
        nb_requires_grad(a, 1);
        nb_requires_grad(b, 1);
        nb_node *loss = random_projection_loss(g, build(g, a, b), &rng);
        assert_gradcheck(g, loss, 1e-2, 1e-2);
        nb_graph_free(g);
    }
}

static void test_add(void **s) { (void)s; check_binary(nb_add, 0, 21); check_binary(nb_add, 1, 22); }
static void test_sub(void **s) { (void)s; check_binary(nb_sub, 0, 23); check_binary(nb_sub, 1, 24); }
static void test_mul(void **s) { (void)s; check_binary(nb_mul, 0, 25); check_binary(nb_mul, 1, 26); }
static void test_div(void **s) { (void)s; check_binary(nb_div, 0, 27); check_binary(nb_div, 1, 28); }

static void test_bias_broadcast_values(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 4, (int[]){2, 3, 1, 2});
    nb_node *b = nb_const(g, "b", 1, (int[]){3}, (float[]){10, 20, 30});
    nb_node *y = nb_add(g, x, b);
    float data[12] = {0};
    assert_ok(nb_feed(x, data, 2));
    assert_ok(nb_forward(g, y));
    const float want[12] = {10, 10, 20, 20, 30, 30, 10, 10, 20, 20, 30, 30};
    for (int i = 0; i < 12; i++) assert_float_equal(nb_value(y)->data[i], want[i], 0);
    nb_graph_free(g);
}

static void check_reduce(nb_node *(*build)(nb_graph *, nb_node *, int), uint64_t seed) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    for (int ndim = 1; ndim <= 4; ndim++)
        for (int axis = 0; axis < ndim; axis++) {
            nb_graph *g = nb_graph_new();
            int shape[4];
            random_shape(shape, ndim, 1, 4, &rng);
            nb_node *x = random_input(g, "x", ndim, shape, -1, 1, &rng);
            nb_requires_grad(x, 1);
            assert_gradcheck(g, random_projection_loss(g, build(g, x, axis), &rng), 1e-2, 1e-2);
            nb_graph_free(g);
        }
}

static void test_sum_axis(void **s) { (void)s; check_reduce(nb_sum, 31); }
static void test_mean_axis(void **s) { (void)s; check_reduce(nb_mean, 32); }

static void test_sum_mean_all(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 33);
    nb_graph *g = nb_graph_new();
    nb_node *x = random_input(g, "x", 3, (int[]){2, 3, 4}, -1, 1, &rng);
    nb_requires_grad(x, 1);
    assert_gradcheck(g, nb_sum_all(g, nb_square(g, x)), 1e-2, 1e-2);
    assert_gradcheck(g, nb_mean_all(g, nb_square(g, x)), 1e-2, 1e-2);
    nb_graph_free(g);
}

static void test_axis_values(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 2, (int[]){2, 3});
    nb_node *rows = nb_sum(g, x, 1), *cols = nb_mean(g, x, 0);
    assert_ok(nb_feed(x, (float[]){1, 2, 3, 4, 5, 6}, 2));
    assert_ok(nb_forward(g, rows));
    assert_ok(nb_forward(g, cols));
    assert_int_equal(nb_value(rows)->shape[0], 2);
    assert_float_equal(nb_value(rows)->data[1], 15, 0);
    assert_int_equal(nb_value(cols)->shape[0], 3);
    assert_float_equal(nb_value(cols)->data[2], 4.5f, 0);
    nb_graph_free(g);
}

static void test_shape_mismatch_names_both(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *a = nb_input(g, "a", 2, (int[]){2, 3});
    nb_node *b = nb_input(g, "b", 2, (int[]){3, 2});
    assert_null(nb_add(g, a, b));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_last_error(), "add"));
    assert_non_null(strstr(nb_last_error(), "[2, 3]"));
    assert_non_null(strstr(nb_last_error(), "[3, 2]"));
    /* The error propagates through a chain without a crash. */
    assert_null(nb_relu(g, nb_add(g, a, b)));
    nb_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_neg), cmocka_unit_test(test_scale), cmocka_unit_test(test_add_scalar),
        cmocka_unit_test(test_square), cmocka_unit_test(test_pow), cmocka_unit_test(test_exp),
        cmocka_unit_test(test_log), cmocka_unit_test(test_sqrt), cmocka_unit_test(test_sin),
        cmocka_unit_test(test_cos), cmocka_unit_test(test_tanh), cmocka_unit_test(test_sigmoid),
        cmocka_unit_test(test_relu), cmocka_unit_test(test_add), cmocka_unit_test(test_sub),
        cmocka_unit_test(test_mul), cmocka_unit_test(test_div),
        cmocka_unit_test(test_bias_broadcast_values), cmocka_unit_test(test_sum_axis),
        cmocka_unit_test(test_mean_axis), cmocka_unit_test(test_sum_mean_all),
        cmocka_unit_test(test_axis_values), cmocka_unit_test(test_shape_mismatch_names_both),
    };
    return cmocka_run_group_tests_name("elementwise", tests, NULL, NULL);
}
