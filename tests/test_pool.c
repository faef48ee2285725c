/* test_pool.c — max, average and adaptive average pooling: forward values
 * against loops written out here, gradient checks, max pooling's tie rule
 * (the first maximum gets the gradient) and padding as -infinity, PyTorch's
 * adaptive bins, 1 vs 2 threads, and the argument checks. */
#include "support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int n, c, h, w, kh, kw, sh, sw, ph, pw;
} pool_case;

static int pool_out(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

/* Distinct values at least 0.05 apart, shuffled: max pooling's choice is
 * then stable under the gradient check's 1e-2 steps. */
static nb_node *spaced_input(nb_graph *g, int n, int c, int h, int w, nb_rng *rng) {
    size_t count = (size_t)n * c * h * w;
    float *v = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++) v[i] = 0.05f * (float)i - 0.025f * (float)count;
    for (size_t i = count - 1; i > 0; i--) {
        size_t j = nb_rng_below(rng, (uint32_t)(i + 1));
        float t = v[i];
        v[i] = v[j], v[j] = t;
    }
    nb_node *x = nb_input(g, "x", 4, (int[]){n, c, h, w});
    assert_ok(nb_feed(x, v, n));
    free(v);
    nb_requires_grad(x, 1);
    return x;
}

/* Max or mean of each window straight from the definition; padding is
 * skipped by max and counts as a zero for the mean. */
static double window_value(const pool_case *k, const float *img, int oy, int ox, int is_max) {
    double best = -INFINITY, sum = 0;
    for (int i = 0; i < k->kh; i++)
        for (int j = 0; j < k->kw; j++) {
            int iy = oy * k->sh - k->ph + i, ix = ox * k->sw - k->pw + j;
            if (iy < 0 || iy >= k->h || ix < 0 || ix >= k->w) continue;
            double v = img[iy * k->w + ix];
            if (v > best) best = v;
            sum += v;
        }
    return is_max ? best : sum / (k->kh * k->kw);
}

static const pool_case cases[] = {
    /* n  c  h  w kh kw sh sw ph pw */
    {1, 3, 4, 4, 2, 2, 2, 2, 0, 0},
    {3, 2, 5, 5, 3, 3, 2, 2, 1, 1},
    {1, 5, 6, 5, 3, 2, 1, 2, 1, 0},
    {3, 1, 7, 6, 2, 3, 3, 1, 0, 1},
    {1, 3, 5, 7, 3, 3, 1, 1, 1, 1},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static void check_window_pool(int is_max) {
    nb_rng rng;
    nb_rng_seed(&rng, is_max ? 11 : 12);
    for (int ci = 0; ci < N_CASES; ci++) {
        const pool_case *k = &cases[ci];
        nb_graph *g = nb_graph_new();
        nb_node *x = spaced_input(g, k->n, k->c, k->h, k->w, &rng);
        nb_node *y = (is_max ? nb_maxpool2d : nb_avgpool2d)(g, x, k->kh, k->kw, k->sh, k->sw, k->ph, k->pw);
        nb_node *loss = random_projection_loss(g, y, &rng);
        assert_ok(nb_forward(g, loss));
        int oh = pool_out(k->h, k->kh, k->sh, k->ph), ow = pool_out(k->w, k->kw, k->sw, k->pw);
        assert_int_equal(nb_value(y)->shape[2], oh);
        assert_int_equal(nb_value(y)->shape[3], ow);
        for (int im = 0; im < k->n * k->c; im++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double want = window_value(k, nb_value(x)->data + (size_t)im * k->h * k->w, oy, ox, is_max);
                    assert_float_equal(nb_value(y)->data[((size_t)im * oh + oy) * ow + ox], want, 1e-5);
                }
        assert_gradcheck(g, loss, 1e-2, 1e-2);
        nb_graph_free(g);
    }
}

static void test_maxpool(void **s) { (void)s; check_window_pool(1); }
static void test_avgpool(void **s) { (void)s; check_window_pool(0); }

/* Run forward and backward of sum(pool(x) * r) on fixed values. */
static void run_max(const float *x, int h, int w, int k, int stride, int pad, float *y, float *dx) {
    nb_graph *g = nb_graph_new();
    nb_node *xn = nb_input(g, "x", 4, (int[]){1, 1, h, w});
    nb_requires_grad(xn, 1);
    nb_node *y_node = nb_maxpool2d(g, xn, k, k, stride, stride, pad, pad);
    nb_node *loss = nb_sum_all(g, y_node);
    assert_ok(nb_feed(xn, x, 1));
    assert_ok(nb_forward(g, loss));
    assert_ok(nb_backward(g, loss));
    memcpy(y, nb_value(y_node)->data, nb_tensor_numel(nb_value(y_node)) * sizeof(float));
    memcpy(dx, nb_grad(xn)->data, (size_t)h * w * sizeof(float));
    nb_graph_free(g);
}

static void test_maxpool_ties_first_wins(void **s) {
    (void)s;
    float y[4], dx[9];
    /* One window of equal values: all the gradient goes to the first. */
    run_max((float[]){1, 1, 1, 1}, 2, 2, 2, 2, 0, y, dx);
    assert_float_equal(y[0], 1, 0);
    const float want1[4] = {1, 0, 0, 0};
    for (int i = 0; i < 4; i++) assert_float_equal(dx[i], want1[i], 0);
    /* Overlapping 2x2 windows, stride 1, ties everywhere: each window's
     * first maximum in row-major order. */
    run_max((float[]){5, 5, 1, 5, 5, 1, 1, 1, 1}, 3, 3, 2, 1, 0, y, dx);
    const float want2[9] = {1, 1, 0, 1, 1, 0, 0, 0, 0};
    for (int i = 0; i < 4; i++) assert_float_equal(y[i], 5, 0);
    for (int i = 0; i < 9; i++) assert_float_equal(dx[i], want2[i], 0);
    /* A repeated maximum shared by two windows gets both gradients. */
    run_max((float[]){0, 9, 0, 0, 0, 0, 0, 0, 0}, 3, 3, 2, 1, 0, y, dx);
    assert_float_equal(dx[1], 2, 0);
}

static void test_maxpool_padding_is_never_chosen(void **s) {
    (void)s;
    float x[9], y[9], dx[9];
    for (int i = 0; i < 9; i++) x[i] = -1.0f - (float)i;
    run_max(x, 3, 3, 3, 1, 1, y, dx);
    /* Zero padding would win everywhere; -infinity padding never does. */
    assert_float_equal(y[0], -1, 0);
    assert_float_equal(y[8], -5, 0);
    float total = 0;
    for (int i = 0; i < 9; i++) total += dx[i];
    assert_float_equal(total, 9, 0);
}

static void test_avgpool_padding_counts_in_divisor(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 4, (int[]){1, 1, 2, 2});
    nb_node *y = nb_avgpool2d(g, x, 3, 3, 1, 1, 1, 1);
    assert_ok(nb_feed(x, (float[]){1, 2, 3, 4}, 1));
    assert_ok(nb_forward(g, y));
    /* Every 3x3 window holds the whole image plus five padding zeros. */
    for (int i = 0; i < 4; i++) assert_float_equal(nb_value(y)->data[i], 10.0f / 9.0f, 1e-6);
    nb_graph_free(g);
}

/* PyTorch's adaptive bins, computed here in floating point. */
static void check_adaptive(int n, int c, int h, int w, int oh, int ow, nb_rng *rng) {
    nb_graph *g = nb_graph_new();
    nb_node *x = random_input(g, "x", 4, (int[]){n, c, h, w}, -1, 1, rng);
    nb_requires_grad(x, 1);
    nb_node *y = nb_adaptive_avgpool2d(g, x, oh, ow);
    nb_node *loss = random_projection_loss(g, y, rng);
    assert_ok(nb_forward(g, loss));
    assert_int_equal(nb_value(y)->shape[2], oh);
    assert_int_equal(nb_value(y)->shape[3], ow);
    for (int im = 0; im < n * c; im++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                int y0 = (int)floor((double)i * h / oh), y1 = (int)ceil((double)(i + 1) * h / oh);
                int x0 = (int)floor((double)j * w / ow), x1 = (int)ceil((double)(j + 1) * w / ow);
                double sum = 0;
                for (int a = y0; a < y1; a++)
                    for (int b = x0; b < x1; b++) sum += nb_value(x)->data[((size_t)im * h + a) * w + b];
                double want = sum / ((y1 - y0) * (x1 - x0));
                assert_float_equal(nb_value(y)->data[((size_t)im * oh + i) * ow + j], want, 1e-5);
            }
    assert_gradcheck(g, loss, 1e-2, 1e-2);
    nb_graph_free(g);
}

static void test_adaptive_avgpool(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 13);
    check_adaptive(1, 3, 7, 5, 3, 2, &rng);  /* overlapping bins */
    check_adaptive(3, 2, 6, 6, 3, 3, &rng);  /* exact division */
    check_adaptive(2, 1, 4, 3, 6, 5, &rng);  /* upsampling: bins repeat */
    check_adaptive(1, 5, 5, 4, 1, 1, &rng);  /* global average */
}

static void test_adaptive_known_bins(void **s) {
    (void)s;
    /* 5 -> 3: bins [0, 2), [1, 4), [3, 5) along each axis. */
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 4, (int[]){1, 1, 1, 5});
    nb_node *y = nb_adaptive_avgpool2d(g, x, 1, 3);
    assert_ok(nb_feed(x, (float[]){1, 2, 3, 4, 5}, 1));
    assert_ok(nb_forward(g, y));
    assert_float_equal(nb_value(y)->data[0], 1.5f, 1e-6);
    assert_float_equal(nb_value(y)->data[1], 3.0f, 1e-6);
    assert_float_equal(nb_value(y)->data[2], 4.5f, 1e-6);
    nb_graph_free(g);
}

static void test_pool_threads_bit_identical(void **s) {
    (void)s;
    int saved = nb_get_threads();
    float *results[2][3];
    size_t len[3];
    for (int t = 0; t < 2; t++) {
        nb_set_threads(test_threads(t + 1));
        nb_rng rng;
        nb_rng_seed(&rng, 14);
        nb_graph *g = nb_graph_new();
        nb_node *x = random_input(g, "x", 4, (int[]){4, 6, 33, 31}, -1, 1, &rng);
        nb_requires_grad(x, 1);
        nb_node *a = nb_maxpool2d(g, x, 3, 3, 2, 2, 1, 1);
        nb_node *b = nb_avgpool2d(g, x, 3, 2, 1, 2, 1, 1);
        nb_node *c = nb_adaptive_avgpool2d(g, x, 5, 7);
        nb_node *loss = nb_add(g, nb_add(g, random_projection_loss(g, a, &rng),
                                         random_projection_loss(g, b, &rng)),
                               random_projection_loss(g, c, &rng));
        assert_ok(nb_forward(g, loss));
        assert_ok(nb_backward(g, loss));
        const nb_tensor *ts[3] = {nb_value(a), nb_value(b), nb_grad(x)};
        for (int i = 0; i < 3; i++) {
            len[i] = nb_tensor_numel(ts[i]) * sizeof(float);
            results[t][i] = malloc(len[i]);
            memcpy(results[t][i], ts[i]->data, len[i]);
        }
        nb_graph_free(g);
    }
    for (int i = 0; i < 3; i++) {
        assert_memory_equal(results[0][i], results[1][i], len[i]);
        free(results[0][i]), free(results[1][i]);
    }
    nb_set_threads(saved);
}

static void expect_pool_error(nb_status want, const char *op, const char *needle, int h, int k,
                              int stride, int pad) {
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 4, (int[]){2, 3, h, h});
    nb_node *y = strcmp(op, "maxpool2d") == 0 ? nb_maxpool2d(g, x, k, k, stride, stride, pad, pad)
                                              : nb_avgpool2d(g, x, k, k, stride, stride, pad, pad);
    assert_null(y);
    assert_int_equal(nb_graph_status(g), want);
    if (!strstr(nb_last_error(), op) || !strstr(nb_last_error(), needle))
        print_error("message: %s\n", nb_last_error());
    assert_non_null(strstr(nb_last_error(), op));
    assert_non_null(strstr(nb_last_error(), needle));
    nb_graph_free(g);
}

static void test_pool_errors(void **s) {
    (void)s;
    expect_pool_error(NB_ERR_ARG, "maxpool2d", "kernel 0x0", 8, 0, 1, 0);
    expect_pool_error(NB_ERR_ARG, "avgpool2d", "stride 0x0", 8, 2, 0, 0);
    expect_pool_error(NB_ERR_ARG, "maxpool2d", "padding 2x2", 8, 3, 1, 2);
    expect_pool_error(NB_ERR_ARG, "avgpool2d", "padding -1x-1", 8, 3, 1, -1);
    expect_pool_error(NB_ERR_SHAPE, "maxpool2d", "[2, 3, 2, 2]", 2, 5, 1, 1);
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 2, (int[]){4, 5});
    assert_null(nb_maxpool2d(g, x, 2, 2, 2, 2, 0, 0));
    assert_non_null(strstr(nb_last_error(), "[4, 5]"));
    nb_graph_free(g);
    g = nb_graph_new();
    x = nb_input(g, "x", 4, (int[]){1, 1, 4, 4});
    assert_null(nb_adaptive_avgpool2d(g, x, 0, 2));
    assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
    assert_non_null(strstr(nb_last_error(), "adaptive_avgpool2d"));
    nb_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_maxpool_ties_first_wins),
        cmocka_unit_test(test_maxpool_padding_is_never_chosen),
        cmocka_unit_test(test_avgpool_padding_counts_in_divisor),
        cmocka_unit_test(test_adaptive_avgpool),
        cmocka_unit_test(test_adaptive_known_bins),
        cmocka_unit_test(test_pool_threads_bit_identical),
        cmocka_unit_test(test_pool_errors),
    };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
