/* test_batchnorm.c — batchnorm2d and batchnorm1d: gradient checks for x,
 * weight and bias in train mode, the same bits at 1 and 2 threads, shape and
 * mode errors, and values, gradients, running statistics and eval mode
 * against torch.nn.BatchNorm2d/1d (tests/torch_batchnorm_check.py, run now
 * with /usr/bin/python3; without PyTorch the test fails unless
 * NB_SKIP_TORCH=1). */
#include "support.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    nb_graph *g;
    nb_node *x, *weight, *bias, *mean, *var, *y, *loss;
} bn_net;

/* y = batchnorm(x), loss = sum(y * R); weight and bias random, running
 * statistics 0 and 1 as PyTorch starts them. */
static bn_net make_net(int ndim, const int *shape, nb_rng *rng) {
    bn_net b;
    b.g = nb_graph_new();
    const int c = shape[1];
    b.x = random_input(b.g, "x", ndim, shape, -1.5f, 2.5f, rng);
    nb_requires_grad(b.x, 1);
    b.weight = random_param(b.g, "bn.weight", 1, &c, 0.5f, 1.5f, rng);
    b.bias = random_param(b.g, "bn.bias", 1, &c, -0.5f, 0.5f, rng);
    float *ones = malloc((size_t)c * sizeof(float));
    for (int i = 0; i < c; i++) ones[i] = 1.0f;
    b.mean = nb_buffer(b.g, "bn.running_mean", 1, &c, NULL);
    b.var = nb_buffer(b.g, "bn.running_var", 1, &c, ones);
    free(ones);
    b.y = (ndim == 4 ? nb_batchnorm2d : nb_batchnorm1d)(b.g, b.x, b.weight, b.bias, b.mean, b.var,
                                                        0.1f, 1e-5f);
    b.loss = random_projection_loss(b.g, b.y, rng);
    if (!b.loss) print_error("%s\n", nb_last_error());
    assert_non_null(b.loss);
    return b;
}

static void test_gradcheck(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    const int shapes[3][4] = {{3, 4, 5, 6}, {6, 5}, {4, 3, 7}};
    const int ndims[3] = {4, 2, 3};
    for (int k = 0; k < 3; k++) {
        bn_net b = make_net(ndims[k], shapes[k], &rng);
        assert_ok(nb_forward(b.g, b.loss));
        assert_ok(nb_backward(b.g, b.loss));
        /* Checks x, weight and bias, and that their gradient is not zero. */
        assert_gradcheck(b.g, b.loss, 1e-2, 2e-2);
        nb_graph_free(b.g);
    }
}

/* Large enough for the channel loop to run in parallel. */
static void test_threads_give_the_same_bits(void **s) {
    (void)s;
    const int shape[4] = {8, 16, 24, 24};
    float *y[2], *dx[2], *rv[2], dw[2][16];
    int saved = nb_get_threads();
    for (int t = 0; t < 2; t++) {
        nb_set_threads(t + 1);
        nb_rng rng;
        nb_rng_seed(&rng, 3);
        bn_net b = make_net(4, shape, &rng);
        assert_ok(nb_forward(b.g, b.loss));
        assert_ok(nb_backward(b.g, b.loss));
        size_t n = nb_tensor_numel(nb_value(b.y));
        y[t] = malloc(n * sizeof(float));
        dx[t] = malloc(n * sizeof(float));
        rv[t] = malloc(16 * sizeof(float));
        memcpy(y[t], nb_value(b.y)->data, n * sizeof(float));
        memcpy(dx[t], nb_grad(b.x)->data, n * sizeof(float));
        memcpy(rv[t], nb_value(b.var)->data, 16 * sizeof(float));
        memcpy(dw[t], nb_grad(b.weight)->data, sizeof dw[t]);
        if (t == 1) {
            assert_memory_equal(y[0], y[1], n * sizeof(float));
            assert_memory_equal(dx[0], dx[1], n * sizeof(float));
            assert_memory_equal(rv[0], rv[1], 16 * sizeof(float));
            assert_memory_equal(dw[0], dw[1], sizeof dw[0]);
        }
        nb_graph_free(b.g);
    }
    nb_set_threads(saved);
    for (int t = 0; t < 2; t++) free(y[t]), free(dx[t]), free(rv[t]);
}

static void test_errors(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 2, (int[]){4, 3});
    nb_node *w = nb_param(g, "w", 1, (int[]){3}), *b = nb_param(g, "b", 1, (int[]){3});
    nb_node *m = nb_buffer(g, "m", 1, (int[]){3}, NULL), *v = nb_buffer(g, "v", 1, (int[]){3}, NULL);
    assert_null(nb_batchnorm2d(g, x, w, b, m, v, 0.1f, 1e-5f));
    assert_non_null(strstr(nb_last_error(), "batchnorm2d: expected x [N, C, H, W], got [4, 3]"));
    nb_graph_free(g);

    g = nb_graph_new();
    x = nb_input(g, "x", 2, (int[]){4, 3});
    w = nb_param(g, "w", 1, (int[]){4}), b = nb_param(g, "b", 1, (int[]){3});
    m = nb_buffer(g, "m", 1, (int[]){3}, NULL), v = nb_buffer(g, "v", 1, (int[]){3}, NULL);
    assert_null(nb_batchnorm1d(g, x, w, b, m, v, 0.1f, 1e-5f));
    assert_non_null(strstr(nb_last_error(), "weight is [4], expected [3] for x [4, 3]"));
    nb_graph_free(g);

    /* A running statistic must be a buffer, or the optimizer would move it. */
    g = nb_graph_new();
    x = nb_input(g, "x", 2, (int[]){4, 3});
    w = nb_param(g, "w", 1, (int[]){3}), b = nb_param(g, "b", 1, (int[]){3});
    m = nb_param(g, "m", 1, (int[]){3}), v = nb_buffer(g, "v", 1, (int[]){3}, NULL);
    assert_null(nb_batchnorm1d(g, x, w, b, m, v, 0.1f, 1e-5f));
    assert_non_null(strstr(nb_last_error(), "running_mean 'm' is a param, expected a buffer"));
    nb_graph_free(g);

    /* One value per channel in train mode: refused as PyTorch does; eval
     * mode takes it. */
    g = nb_graph_new();
    x = nb_input(g, "x", 2, (int[]){1, 3});
    w = nb_param(g, "w", 1, (int[]){3}), b = nb_param(g, "b", 1, (int[]){3});
    m = nb_buffer(g, "m", 1, (int[]){3}, NULL), v = nb_buffer(g, "v", 1, (int[]){3}, NULL);
    nb_node *y = nb_batchnorm1d(g, x, w, b, m, v, 0.1f, 1e-5f);
    assert_non_null(y);
    assert_int_equal(nb_forward(g, y), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_last_error(), "expected more than 1 value per channel"));
    nb_set_training(g, 0);
    assert_ok(nb_forward(g, y));
    nb_graph_free(g);
}

/* ---- against PyTorch --------------------------------------------------------- */

static bool have_torch(void) {
    return system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
}

/* Reads "prefix.name" of the given shape from the fixture. */
static float *fixture(const char *prefix, const char *name, int ndim, const int *shape) {
    char path[160], full[64];
    snprintf(path, sizeof path, "%s/bn.safetensors", tmpdir);
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    nb_named_tensor t = {full, {ndim, {0}, NULL}, NULL};
    memcpy(t.tensor.shape, shape, (size_t)ndim * sizeof(int));
    t.tensor.data = malloc(nb_tensor_numel(&t.tensor) * sizeof(float));
    assert_ok(nb_safetensors_load(path, &t, 1, 1, NULL, 0, NULL));
    return t.tensor.data;
}

static void assert_close(const char *what, const float *got, const float *want, size_t n, double tol) {
    double worst = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)got[i] - want[i]));
        ref = fmax(ref, fabs((double)want[i]));
    }
    if (worst > tol * fmax(ref, 1.0))
        print_error("%s: differs by %.3g (largest %.3g)\n", what, worst, ref);
    assert_true(ref > 0);
    assert_true(worst <= tol * fmax(ref, 1.0));
}

static size_t numel_of(int ndim, const int *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

/* Three train-mode steps with PyTorch's batches and loss weights R; the
 * first step's output and gradients, the buffers after the third, and eval
 * mode on the first batch after that. */
static void check_case(const char *prefix, int ndim, const int *shape) {
    const int c = shape[1];
    const size_t n = numel_of(ndim, shape);
    float *weight = fixture(prefix, "weight", 1, &c), *bias = fixture(prefix, "bias", 1, &c);
    float *r = fixture(prefix, "r", ndim, shape);
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", ndim, shape);
    nb_requires_grad(x, 1);
    nb_node *w = nb_param(g, "bn.weight", 1, &c), *b = nb_param(g, "bn.bias", 1, &c);
    memcpy(nb_value(w)->data, weight, (size_t)c * sizeof(float));
    memcpy(nb_value(b)->data, bias, (size_t)c * sizeof(float));
    float *ones = malloc((size_t)c * sizeof(float));
    for (int i = 0; i < c; i++) ones[i] = 1.0f;
    nb_node *rm = nb_buffer(g, "bn.running_mean", 1, &c, NULL);
    nb_node *rv = nb_buffer(g, "bn.running_var", 1, &c, ones);
    nb_node *y = (ndim == 4 ? nb_batchnorm2d : nb_batchnorm1d)(g, x, w, b, rm, rv, 0.1f, 1e-5f);
    nb_node *loss = nb_sum_all(g, nb_mul(g, y, nb_const(g, "r", ndim, shape, r)));
    assert_non_null(loss);
    float *x0 = NULL;
    for (int step = 0; step < 3; step++) {
        char name[8];
        snprintf(name, sizeof name, "x%d", step);
        float *xs = fixture(prefix, name, ndim, shape);
        assert_ok(nb_feed(x, xs, shape[0]));
        assert_ok(nb_forward(g, loss));
        assert_ok(nb_backward(g, loss));
        if (step == 0) {
            float *want = fixture(prefix, "y0", ndim, shape);
            assert_close("y", nb_value(y)->data, want, n, 1e-5);
            free(want);
            want = fixture(prefix, "dx0", ndim, shape);
            assert_close("dx", nb_grad(x)->data, want, n, 1e-5);
            free(want);
            want = fixture(prefix, "dweight0", 1, &c);
            assert_close("dweight", nb_grad(w)->data, want, (size_t)c, 1e-5);
            free(want);
            want = fixture(prefix, "dbias0", 1, &c);
            assert_close("dbias", nb_grad(b)->data, want, (size_t)c, 1e-5);
            free(want);
            x0 = xs;
        } else {
            free(xs);
        }
    }
    assert_int_equal(nb_batchnorm_batches(y), 3);
    float *want = fixture(prefix, "running_mean", 1, &c);
    assert_close("running_mean", nb_value(rm)->data, want, (size_t)c, 1e-6);
    free(want);
    want = fixture(prefix, "running_var", 1, &c);
    assert_close("running_var", nb_value(rv)->data, want, (size_t)c, 1e-6);
    free(want);
    /* Eval mode reads the running statistics and leaves them (and the
     * count) alone. */
    nb_set_training(g, 0);
    assert_ok(nb_feed(x, x0, shape[0]));
    assert_ok(nb_forward(g, y));
    want = fixture(prefix, "eval_y", ndim, shape);
    assert_close("eval y", nb_value(y)->data, want, n, 1e-5);
    assert_int_equal(nb_batchnorm_batches(y), 3);
    free(want);
    free(x0), free(r), free(weight), free(bias), free(ones);
    nb_graph_free(g);
}

static void test_matches_torch(void **s) {
    (void)s;
    if (!have_torch()) {
        if (getenv("NB_SKIP_TORCH")) skip();
        fail_msg("/usr/bin/python3 cannot import torch: install python3-torch "
                 "(scripts/install-deps.sh), or set NB_SKIP_TORCH=1 to skip this test locally");
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/torch_batchnorm_check.py %s", tmpdir);
    assert_int_equal(system(cmd), 0);
    check_case("bn2d", 4, (int[]){4, 3, 5, 6});
    check_case("bn1d", 2, (int[]){8, 5});
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_threads_give_the_same_bits),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_matches_torch),
    };
    return cmocka_run_group_tests_name("batchnorm", tests, tmpdir_setup, tmpdir_teardown);
}
