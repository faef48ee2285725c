/* test_matmul.c — matmul and linear: gradient checks over every transpose
 * combination and awkward shapes, forward values against known products and
 * a plain triple loop, and shape errors that name both shapes. */
#include "support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* m, k, n of op(A) [m, k] times op(B) [k, n]: ones, primes, non-multiples of 8. */
static const int mm_shapes[][3] = {{1, 1, 1}, {1, 7, 1}, {9, 1, 13}, {3, 5, 2}, {8, 8, 8}, {11, 17, 3}};
#define N_MM_SHAPES (int)(sizeof mm_shapes / sizeof mm_shapes[0])

/* Stored shape of an operand that is used as rows x cols after op(). */
static void stored(int *shape, int rows, int cols, int trans) {
    shape[0] = trans ? cols : rows;
    shape[1] = trans ? rows : cols;
}

static void test_matmul_gradcheck(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 101);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < N_MM_SHAPES; i++) {
            int ta = t & 1, tb = t >> 1, m = mm_shapes[i][0], k = mm_shapes[i][1], n = mm_shapes[i][2];
            int sa[2], sb[2];
            stored(sa, m, k, ta);
            stored(sb, k, n, tb);
            nb_graph *g = nb_graph_new();
            nb_node *a = random_input(g, "a", 2, sa, -1, 1, &rng);
            nb_node *b = random_param(g, "b", 2, sb, -1, 1, &rng);
            nb_requires_grad(a, 1);
            assert_gradcheck(g, random_projection_loss(g, nb_matmul(g, a, b, ta, tb), &rng), 1e-2, 5e-3);
            nb_graph_free(g);
        }
}

/* The same operand on both sides: both gradient contributions must add. */
static void test_matmul_gram_gradcheck(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 102);
    nb_graph *g = nb_graph_new();
    nb_node *a = random_param(g, "a", 2, (int[]){5, 3}, -1, 1, &rng);
    assert_gradcheck(g, random_projection_loss(g, nb_matmul(g, a, a, 1, 0), &rng), 1e-2, 5e-3);
    nb_graph_free(g);
}

static void test_matmul_values(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    const float a[6] = {1, 2, 3, 4, 5, 6};       /* [2, 3] */
    const float b[6] = {7, 8, 9, 10, 11, 12};    /* [3, 2] */
    nb_node *A = nb_const(g, "A", 2, (int[]){2, 3}, a);
    nb_node *B = nb_const(g, "B", 2, (int[]){3, 2}, b);
    nb_node *ab = nb_matmul(g, A, B, 0, 0);    /* [2, 2] */
    nb_node *atbt = nb_matmul(g, A, B, 1, 1);  /* A^T B^T: [3, 3] */
    assert_ok(nb_forward(g, ab));
    assert_ok(nb_forward(g, atbt));
    const float want_ab[4] = {58, 64, 139, 154};
    assert_int_equal(nb_value(ab)->shape[0], 2);
    assert_int_equal(nb_value(ab)->shape[1], 2);
    for (int i = 0; i < 4; i++) assert_float_equal(nb_value(ab)->data[i], want_ab[i], 0);
    /* (A^T B^T)[i][j] = sum_k A[k][i] B[j][k] */
    const float want_atbt[9] = {39, 49, 59, 54, 68, 82, 69, 87, 105};
    assert_int_equal(nb_value(atbt)->shape[0], 3);
    for (int i = 0; i < 9; i++) assert_float_equal(nb_value(atbt)->data[i], want_atbt[i], 0);
    nb_graph_free(g);
}

/* Every transpose combination against a plain loop, on sizes that cross any
 * blocking the gemm kernel might use. */
static void test_matmul_matches_loop(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 103);
    const int m = 37, k = 70, n = 19;
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1, sa[2], sb[2];
        stored(sa, m, k, ta);
        stored(sb, k, n, tb);
        nb_graph *g = nb_graph_new();
        nb_node *a = random_input(g, "a", 2, sa, -1, 1, &rng);
        nb_node *b = random_input(g, "b", 2, sb, -1, 1, &rng);
        nb_node *c = nb_matmul(g, a, b, ta, tb);
        assert_ok(nb_forward(g, c));
        const float *A = nb_value(a)->data, *B = nb_value(b)->data, *C = nb_value(c)->data;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int q = 0; q < k; q++)
                    acc += (double)(ta ? A[q * m + i] : A[i * k + q]) * (tb ? B[j * k + q] : B[q * n + j]);
                assert_float_equal(C[i * n + j], acc, 1e-4);
            }
        nb_graph_free(g);
    }
}

static void test_linear_gradcheck(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 104);
    /* x shapes: 2-D, and 4-D read as [N, C*H*W]; with and without a bias. */
    const int xs[][4] = {{1, 1, 0, 0}, {3, 5, 0, 0}, {4, 2, 3, 3}, {2, 1, 1, 9}};
    const int outs[] = {1, 4, 3, 10};
    for (int i = 0; i < 4; i++)
        for (int bias = 0; bias <= 1; bias++) {
            int ndim = xs[i][2] ? 4 : 2, in = 1;
            for (int d = 1; d < ndim; d++) in *= xs[i][d];
            nb_graph *g = nb_graph_new();
            nb_node *x = random_input(g, "x", ndim, xs[i], -1, 1, &rng);
            nb_node *w = random_param(g, "w", 2, (int[]){outs[i], in}, -1, 1, &rng);
            nb_node *b = bias ? random_param(g, "b", 1, &outs[i], -1, 1, &rng) : NULL;
            nb_requires_grad(x, 1);
            nb_node *y = nb_linear(g, x, w, b);
            assert_int_equal(nb_value(y)->shape[0], xs[i][0]);
            assert_int_equal(nb_value(y)->shape[1], outs[i]);
            assert_gradcheck(g, random_projection_loss(g, y, &rng), 1e-2, 5e-3);
            nb_graph_free(g);
        }
}

static void test_linear_values(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 2, (int[]){2, 3});
    nb_node *w = nb_const(g, "w", 2, (int[]){2, 3}, (float[]){1, 0, -1, 2, 1, 0});
    nb_node *b = nb_const(g, "b", 1, (int[]){2}, (float[]){0.5f, -1});
    nb_node *y = nb_linear(g, x, w, b);
    assert_ok(nb_feed(x, (float[]){1, 2, 3, 4, 5, 6}, 2));
    assert_ok(nb_forward(g, y));
    /* row 1: (1 - 3 + 0.5, 2 + 2 - 1); row 2: (4 - 6 + 0.5, 8 + 5 - 1) */
    const float want[4] = {-1.5f, 3, -1.5f, 12};
    for (int i = 0; i < 4; i++) assert_float_equal(nb_value(y)->data[i], want[i], 0);
    nb_graph_free(g);
}

/* The bias gradient is the column sum of dy; W's is dy^T x. */
static void test_linear_gradient_values(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 2, (int[]){3, 1});
    nb_node *w = nb_param(g, "w", 2, (int[]){2, 1});
    nb_node *b = nb_param(g, "b", 1, (int[]){2});
    nb_node *J = nb_sum_all(g, nb_linear(g, x, w, b));
    assert_ok(nb_feed(x, (float[]){1, 2, 3}, 3));
    assert_ok(nb_forward(g, J));
    assert_ok(nb_backward(g, J));
    assert_float_equal(nb_grad(b)->data[0], 3, 0);
    assert_float_equal(nb_grad(b)->data[1], 3, 0);
    assert_float_equal(nb_grad(w)->data[0], 6, 0);
    assert_float_equal(nb_grad(w)->data[1], 6, 0);
    nb_graph_free(g);
}

static void assert_error_names(const char *op, const char *shape_a, const char *shape_b) {
    const char *msg = nb_last_error();
    if (!strstr(msg, op) || !strstr(msg, shape_a) || !strstr(msg, shape_b))
        print_error("message \"%s\" should name %s, %s and %s\n", msg, op, shape_a, shape_b);
    assert_non_null(strstr(msg, op));
    assert_non_null(strstr(msg, shape_a));
    assert_non_null(strstr(msg, shape_b));
}

static void test_matmul_shape_errors(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *a = nb_input(g, "a", 2, (int[]){2, 3});
    nb_node *b = nb_input(g, "b", 2, (int[]){2, 4});
    assert_null(nb_matmul(g, a, b, 0, 0));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_error_names("matmul", "[2, 3]", "[2, 4]");
    nb_graph_free(g);

    /* Transposing a makes the same pair fit. */
    g = nb_graph_new();
    a = nb_input(g, "a", 2, (int[]){2, 3});
    b = nb_input(g, "b", 2, (int[]){2, 4});
    nb_node *c = nb_matmul(g, a, b, 1, 0);
    assert_non_null(c);
    assert_int_equal(nb_value(c)->shape[0], 3);
    assert_int_equal(nb_value(c)->shape[1], 4);
    nb_node *v = nb_input(g, "v", 3, (int[]){2, 3, 1});
    assert_null(nb_matmul(g, v, b, 0, 0));
    assert_error_names("matmul", "[2, 3, 1]", "[2, 4]");
    nb_graph_free(g);
}

static void test_linear_shape_errors(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 4, (int[]){5, 2, 2, 3});
    nb_node *w = nb_param(g, "w", 2, (int[]){4, 10});
    assert_null(nb_linear(g, x, w, NULL));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_error_names("linear", "[5, 2, 2, 3]", "[4, 10]");
    nb_graph_free(g);

    g = nb_graph_new();
    x = nb_input(g, "x", 2, (int[]){5, 10});
    w = nb_param(g, "w", 2, (int[]){4, 10});
    nb_node *b = nb_param(g, "b", 1, (int[]){5});
    assert_null(nb_linear(g, x, w, b));
    assert_error_names("linear", "[4, 10]", "[5]");
    nb_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_gradcheck),     cmocka_unit_test(test_matmul_gram_gradcheck),
        cmocka_unit_test(test_matmul_values),        cmocka_unit_test(test_matmul_matches_loop),
        cmocka_unit_test(test_linear_gradcheck),     cmocka_unit_test(test_linear_values),
        cmocka_unit_test(test_linear_gradient_values), cmocka_unit_test(test_matmul_shape_errors),
        cmocka_unit_test(test_linear_shape_errors),
    };
    return cmocka_run_group_tests_name("matmul", tests, NULL, NULL);
}
