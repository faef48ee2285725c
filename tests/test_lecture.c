/* test_lecture.c — the lecture's worked examples (examples/lecture_*.c):
 * each builds the same graph as its example and holds what backward
 * computes against the formula derived by hand, written out here in double
 * precision. */
#include "support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double sigmoid(double z) { return 1 / (1 + exp(-z)); }

/* ---- J = cos(sin(x^2) + 3x^2) ----------------------------------------------------
 * With u = sin(x^2) + 3x^2: dJ/du = -sin(u), du/dx = 2x cos(x^2) + 6x. */

static void test_composite(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 1, (int[]){1});
    nb_node *x2 = nb_square(g, x);
    nb_node *J = nb_cos(g, nb_add(g, nb_sin(g, x2), nb_scale(g, x2, 3.0f)));
    nb_requires_grad(x, 1);
    const float points[] = {-1.5f, -1, -0.3f, 0, 0.25f, 0.5f, 1, 1.7f};
    for (int i = 0; i < 8; i++) {
        assert_ok(nb_feed(x, &points[i], 1));
        assert_ok(nb_forward(g, J));
        assert_ok(nb_backward(g, J));
        double v = points[i], u = sin(v * v) + 3 * v * v;
        double dJ = -sin(u) * (2 * v * cos(v * v) + 6 * v);
        /* float32 trig on arguments up to ~9: relative accuracy ~1e-6 */
        assert_float_equal(nb_value(J)->data[0], cos(u), 1e-5);
        assert_float_equal(nb_grad(x)->data[0], dJ, 1e-5 * fmax(1, fabs(dJ)));
    }
    nb_graph_free(g);
}

/* ---- logistic regression -----------------------------------------------------------
 * y = sigmoid(theta^T x), J = y* log y + (1 - y*) log(1 - y).
 * dJ/dy = y* / y - (1 - y*) / (1 - y) = (y* - y) / (y (1 - y)) and dy/dz = y (1 - y),
 * so dJ/dz = y* - y, dJ/dtheta = (y* - y) x and dJ/dx = (y* - y) theta. */

static nb_node *one_minus(nb_graph *g, nb_node *v) { return nb_add_scalar(g, nb_neg(g, v), 1.0f); }

static void check_logreg(int d, uint64_t seed) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    nb_graph *g = nb_graph_new();
    nb_node *x = random_input(g, "x", 2, (int[]){1, d}, -2, 2, &rng);
    nb_node *ystar = nb_input(g, "y*", 2, (int[]){1, 1});
    nb_node *theta = random_param(g, "theta", 2, (int[]){1, d}, -1, 1, &rng);
    nb_node *y = nb_sigmoid(g, nb_matmul(g, x, theta, 0, 1));
    nb_node *J = nb_add(g, nb_mul(g, ystar, nb_log(g, y)),
                        nb_mul(g, one_minus(g, ystar), nb_log(g, one_minus(g, y))));
    nb_requires_grad(x, 1);
    const float *xv = nb_value(x)->data, *th = nb_value(theta)->data;
    for (int label = 0; label <= 1; label++) {
        float ys = (float)label;
        assert_ok(nb_feed(ystar, &ys, 1));
        assert_ok(nb_forward(g, J));
        assert_ok(nb_backward(g, J));
        double z = 0;
        for (int i = 0; i < d; i++) z += (double)th[i] * xv[i];
        double yv = sigmoid(z);
        assert_float_equal(nb_value(J)->data[0], ys * log(yv) + (1 - ys) * log(1 - yv), 1e-5);
        for (int i = 0; i < d; i++) {
            assert_float_equal(nb_grad(theta)->data[i], (ys - yv) * xv[i], 1e-5);
            assert_float_equal(nb_grad(x)->data[i], (ys - yv) * th[i], 1e-5);
        }
        assert_gradcheck(g, J, 1e-2, 5e-3);
    }
    nb_graph_free(g);
}

static void test_logreg(void **s) {
    (void)s;
    check_logreg(3, 401);
    check_logreg(1, 402);
    check_logreg(10, 403);
}

/* ---- one hidden layer ---------------------------------------------------------------
 * Biasless, as in the lecture: h = sigmoid(alpha x), y = sigmoid(beta^T h).
 * With g_y = dJ/dy and b = beta^T h, g_b = g_y y (1 - y); then
 *     dJ/dbeta_j   = g_b h_j
 *     dJ/da_j      = g_b beta_j h_j (1 - h_j)        (a = alpha x)
 *     dJ/dalpha_jk = dJ/da_j x_k
 * Squared loss J = 1/2 (y - y*)^2:  g_y = y - y*.
 * Cross-entropy J = -(y* log y + (1 - y*) log(1 - y)):
 *     g_y = (y - y*) / (y (1 - y)), so g_b = y - y*. */

typedef enum { SQUARED, CROSS_ENTROPY } mlp_loss;

static void check_mlp(mlp_loss kind, int d, int hidden, uint64_t seed) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    nb_graph *g = nb_graph_new();
    nb_node *x = random_input(g, "x", 2, (int[]){1, d}, -2, 2, &rng);
    nb_node *ystar = nb_input(g, "y*", 2, (int[]){1, 1});
    nb_node *alpha = random_param(g, "alpha", 2, (int[]){hidden, d}, -1, 1, &rng);
    nb_node *beta = random_param(g, "beta", 2, (int[]){1, hidden}, -1, 1, &rng);
    nb_node *h = nb_sigmoid(g, nb_linear(g, x, alpha, NULL));
    nb_node *y = nb_sigmoid(g, nb_linear(g, h, beta, NULL));
    nb_node *J = kind == SQUARED ? nb_squared_error(g, y, ystar, NB_REDUCE_SUM) : nb_bce(g, y, ystar);
    const float *xv = nb_value(x)->data, *al = nb_value(alpha)->data, *be = nb_value(beta)->data;

    double *hv = malloc((size_t)hidden * sizeof(double));
    const float targets[] = {0, 1, 0.3f};
    for (int t = 0; t < 3; t++) {
        float ys = targets[t];
        assert_ok(nb_feed(ystar, &ys, 1));
        assert_ok(nb_forward(g, J));
        assert_ok(nb_backward(g, J));

        double b = 0;
        for (int j = 0; j < hidden; j++) {
            double a = 0;
            for (int k = 0; k < d; k++) a += (double)al[j * d + k] * xv[k];
            hv[j] = sigmoid(a);
            b += be[j] * hv[j];
        }
        double yv = sigmoid(b);
        double loss = kind == SQUARED ? 0.5 * (yv - ys) * (yv - ys) : -(ys * log(yv) + (1 - ys) * log(1 - yv));
        double g_y = kind == SQUARED ? yv - ys : (yv - ys) / (yv * (1 - yv));
        double g_b = g_y * yv * (1 - yv);
        assert_float_equal(nb_value(J)->data[0], loss, 1e-5);
        for (int j = 0; j < hidden; j++) {
            assert_float_equal(nb_grad(beta)->data[j], g_b * hv[j], 1e-5);
            double g_a = g_b * be[j] * hv[j] * (1 - hv[j]);
            for (int k = 0; k < d; k++) assert_float_equal(nb_grad(alpha)->data[j * d + k], g_a * xv[k], 1e-5);
        }
        assert_gradcheck(g, J, 1e-2, 5e-3);
    }
    free(hv);
    nb_graph_free(g);
}

static void test_mlp_squared(void **s) {
    (void)s;
    check_mlp(SQUARED, 3, 4, 411);
    check_mlp(SQUARED, 7, 5, 412);
    check_mlp(SQUARED, 1, 1, 413);
}

static void test_mlp_cross_entropy(void **s) {
    (void)s;
    check_mlp(CROSS_ENTROPY, 3, 4, 421);
    check_mlp(CROSS_ENTROPY, 7, 5, 422);
    check_mlp(CROSS_ENTROPY, 1, 1, 423);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_composite),
        cmocka_unit_test(test_logreg),
        cmocka_unit_test(test_mlp_squared),
        cmocka_unit_test(test_mlp_cross_entropy),
    };
    return cmocka_run_group_tests_name("lecture", tests, NULL, NULL);
}
