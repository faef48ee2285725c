/* test_conv.c — conv2d against a direct convolution written out here
 * (forward values and, for loss = sum(y * R), every gradient), gradient
 * checks with respect to x, w and b over strides, padding, non-square
 * kernels and odd channel counts, bit-identical results for 1 and 2
 * threads, and the errors for shapes that do not fit. */
#include "support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int n, c, h, w, o, kh, kw, sh, sw, ph, pw, bias;
} conv_case;

static int out_h(const conv_case *k) { return (k->h + 2 * k->ph - k->kh) / k->sh + 1; }
static int out_w(const conv_case *k) { return (k->w + 2 * k->pw - k->kw) / k->sw + 1; }

/* The input pixel tap (kh, kw) of output (oy, ox) meets, or NULL in padding. */
static const float *tap(const conv_case *k, const float *x, int n, int c, int oy, int ox, int i, int j) {
    int iy = oy * k->sh - k->ph + i, ix = ox * k->sw - k->pw + j;
    if (iy < 0 || iy >= k->h || ix < 0 || ix >= k->w) return NULL;
    return &x[(((size_t)n * k->c + c) * k->h + iy) * k->w + ix];
}

/* y = conv(x, w) + b, straight from the definition, in double. */
static void direct_forward(const conv_case *k, const float *x, const float *w, const float *b, double *y) {
    int oh = out_h(k), ow = out_w(k);
    for (int n = 0; n < k->n; n++)
        for (int o = 0; o < k->o; o++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double acc = b ? b[o] : 0.0;
                    for (int c = 0; c < k->c; c++)
                        for (int i = 0; i < k->kh; i++)
                            for (int j = 0; j < k->kw; j++) {
                                const float *v = tap(k, x, n, c, oy, ox, i, j);
                                if (v) acc += (double)*v * w[(((size_t)o * k->c + c) * k->kh + i) * k->kw + j];
                            }
                    y[(((size_t)n * k->o + o) * oh + oy) * ow + ox] = acc;
                }
}

/* The gradients of sum(y * dy) by the chain rule, one tap at a time. */
static void direct_backward(const conv_case *k, const float *x, const float *w, const float *dy,
                            double *dx, double *dw, double *db) {
    int oh = out_h(k), ow = out_w(k);
    for (int n = 0; n < k->n; n++)
        for (int o = 0; o < k->o; o++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double g = dy[(((size_t)n * k->o + o) * oh + oy) * ow + ox];
                    db[o] += g;
                    for (int c = 0; c < k->c; c++)
                        for (int i = 0; i < k->kh; i++)
                            for (int j = 0; j < k->kw; j++) {
                                const float *v = tap(k, x, n, c, oy, ox, i, j);
                                if (!v) continue;
                                size_t wi = (((size_t)o * k->c + c) * k->kh + i) * k->kw + j;
                                dw[wi] += g * *v;
                                dx[v - x] += g * w[wi];
                            }
                }
}

typedef struct {
    nb_graph *g;
    nb_node *x, *w, *b, *y, *loss;
} conv_graph;

static conv_graph build(const conv_case *k, nb_rng *rng) {
    conv_graph cg;
    cg.g = nb_graph_new();
    cg.x = random_input(cg.g, "x", 4, (int[]){k->n, k->c, k->h, k->w}, -1, 1, rng);
    cg.w = random_param(cg.g, "w", 4, (int[]){k->o, k->c, k->kh, k->kw}, -0.5f, 0.5f, rng);
    cg.b = k->bias ? random_param(cg.g, "b", 1, (int[]){k->o}, -0.5f, 0.5f, rng) : NULL;
    nb_requires_grad(cg.x, 1);
    cg.y = nb_conv2d(cg.g, cg.x, cg.w, cg.b, k->sh, k->sw, k->ph, k->pw);
    cg.loss = random_projection_loss(cg.g, cg.y, rng);
    if (!cg.loss) print_error("build failed: %s\n", nb_last_error());
    assert_non_null(cg.loss);
    return cg;
}

/* x, w, b must all reach the gradient check. */
static const conv_case gradcheck_cases[] = {
    /* n  c  h  w  o kh kw sh sw ph pw bias */
    {1, 3, 5, 6, 2, 3, 3, 1, 1, 1, 1, 1},
    {3, 2, 7, 5, 3, 2, 3, 2, 1, 0, 1, 1},
    {2, 5, 6, 7, 4, 3, 2, 3, 2, 1, 0, 0},
    {1, 9, 4, 4, 10, 1, 1, 1, 1, 0, 0, 1},
    {3, 1, 8, 8, 2, 5, 5, 2, 2, 2, 2, 1},
    {1, 3, 6, 5, 5, 4, 2, 3, 3, 2, 1, 1},
};

static void test_conv_gradcheck(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 101);
    for (size_t i = 0; i < sizeof gradcheck_cases / sizeof gradcheck_cases[0]; i++) {
        conv_graph cg = build(&gradcheck_cases[i], &rng);
        assert_gradcheck(cg.g, cg.loss, 1e-2, 1e-2);
        nb_graph_free(cg.g);
    }
}

/* Gradients w.r.t. w alone and x alone, the other held constant. */
static void test_conv_gradcheck_one_input(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 102);
    const conv_case k = {2, 3, 6, 6, 2, 3, 3, 2, 2, 1, 1, 0};
    for (int which = 0; which < 2; which++) {
        nb_graph *g = nb_graph_new();
        nb_node *x = random_input(g, "x", 4, (int[]){k.n, k.c, k.h, k.w}, -1, 1, &rng);
        nb_node *w = random_input(g, "w", 4, (int[]){k.o, k.c, k.kh, k.kw}, -1, 1, &rng);
        nb_requires_grad(which ? x : w, 1);
        nb_node *loss = random_projection_loss(g, nb_conv2d(g, x, w, NULL, 2, 2, 1, 1), &rng);
        assert_gradcheck(g, loss, 1e-2, 1e-2);
        nb_graph_free(g);
    }
}

/* Forward and backward against the direct loops, including a batch large
 * enough to be processed in several groups. */
static void check_against_direct(const conv_case *k, uint64_t seed) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    conv_graph cg = build(k, &rng);
    assert_ok(nb_forward(cg.g, cg.loss));
    assert_ok(nb_backward(cg.g, cg.loss));
    const nb_tensor *y = nb_value(cg.y);
    assert_int_equal(y->shape[0], k->n);
    assert_int_equal(y->shape[1], k->o);
    assert_int_equal(y->shape[2], out_h(k));
    assert_int_equal(y->shape[3], out_w(k));
    size_t ny = nb_tensor_numel(y), nx = nb_tensor_numel(nb_value(cg.x));
    size_t nw = nb_tensor_numel(nb_value(cg.w));
    double *want = calloc(ny, sizeof(double)), *dx = calloc(nx, sizeof(double));
    double *dw = calloc(nw, sizeof(double)), *db = calloc((size_t)k->o, sizeof(double));
    const float *b = cg.b ? nb_value(cg.b)->data : NULL;
    direct_forward(k, nb_value(cg.x)->data, nb_value(cg.w)->data, b, want);
    for (size_t i = 0; i < ny; i++) assert_float_equal(y->data[i], want[i], 1e-4 * (1 + fabs(want[i])));
    /* loss = sum(y * R): dy is R, the projection constant. */
    const float *dy = nb_grad(cg.y)->data;
    direct_backward(k, nb_value(cg.x)->data, nb_value(cg.w)->data, dy, dx, dw, db);
    for (size_t i = 0; i < nx; i++)
        assert_float_equal(nb_grad(cg.x)->data[i], dx[i], 1e-4 * (1 + fabs(dx[i])));
    for (size_t i = 0; i < nw; i++)
        assert_float_equal(nb_grad(cg.w)->data[i], dw[i], 1e-4 * (1 + fabs(dw[i])));
    for (int i = 0; cg.b && i < k->o; i++)
        assert_float_equal(nb_grad(cg.b)->data[i], db[i], 1e-4 * (1 + fabs(db[i])));
    free(want), free(dx), free(dw), free(db);
    nb_graph_free(cg.g);
}

static void test_conv_matches_direct(void **s) {
    (void)s;
    for (size_t i = 0; i < sizeof gradcheck_cases / sizeof gradcheck_cases[0]; i++)
        check_against_direct(&gradcheck_cases[i], 200 + i);
    const conv_case more[] = {
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},    /* the smallest possible */
        {2, 3, 9, 11, 7, 1, 5, 1, 3, 0, 2, 1},   /* a 1 x 5 kernel */
        {1, 2, 3, 3, 3, 5, 5, 1, 1, 1, 1, 0},    /* kernel larger than the image, fits with padding */
        {3, 17, 13, 10, 19, 3, 3, 2, 2, 1, 1, 1}, /* channels not multiples of 8 */
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) check_against_direct(&more[i], 300 + i);
}

/* (C*KH*KW + O) * OH*OW floats a sample: 13 samples do not fit one group. */
static void test_conv_several_groups(void **s) {
    (void)s;
    const conv_case k = {13, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1};
    check_against_direct(&k, 400);
}

/* Forward and backward are bit-identical with 1 and 2 threads. */
static void test_conv_threads_bit_identical(void **s) {
    (void)s;
    const conv_case k = {4, 5, 20, 20, 7, 3, 3, 1, 1, 1, 1, 1};
    int saved = nb_get_threads();
    float *out[2][4];
    size_t len[4];
    for (int t = 0; t < 2; t++) {
        nb_rng rng;
        nb_rng_seed(&rng, 500);
        nb_set_threads(test_threads(t + 1));
        conv_graph cg = build(&k, &rng);
        assert_ok(nb_forward(cg.g, cg.loss));
        assert_ok(nb_backward(cg.g, cg.loss));
        const nb_tensor *ts[4] = {nb_value(cg.y), nb_grad(cg.x), nb_grad(cg.w), nb_grad(cg.b)};
        for (int i = 0; i < 4; i++) {
            len[i] = nb_tensor_numel(ts[i]) * sizeof(float);
            out[t][i] = malloc(len[i]);
            memcpy(out[t][i], ts[i]->data, len[i]);
        }
        nb_graph_free(cg.g);
    }
    for (int i = 0; i < 4; i++) {
        assert_memory_equal(out[0][i], out[1][i], len[i]);
        free(out[0][i]), free(out[1][i]);
    }
    nb_set_threads(saved);
}

/* The graph re-infers the batch: a smaller last batch just works. */
static void test_conv_batch_change(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 4, (int[]){3, 1, 3, 3});
    nb_node *w = nb_const(g, "w", 4, (int[]){1, 1, 2, 2}, (float[]){1, 2, 3, 4});
    nb_node *y = nb_conv2d(g, x, w, NULL, 1, 1, 0, 0);
    float data[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    assert_ok(nb_feed(x, data, 1));
    assert_ok(nb_forward(g, y));
    assert_int_equal(nb_value(y)->shape[0], 1);
    /* [1 2; 4 5] . [1 2; 3 4] = 1 + 4 + 12 + 20 */
    const float want[4] = {37, 47, 67, 77};
    for (int i = 0; i < 4; i++) assert_float_equal(nb_value(y)->data[i], want[i], 0);
    nb_graph_free(g);
}

static void expect_error(nb_status want, const char *needle1, const char *needle2, int n, int c,
                         int h, int w, int o, int wc, int kh, int kw, int stride, int pad, int bias_len) {
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 4, (int[]){n, c, h, w});
    nb_node *wt = nb_param(g, "w", 4, (int[]){o, wc, kh, kw});
    nb_node *b = bias_len ? nb_param(g, "b", 1, (int[]){bias_len}) : NULL;
    assert_null(nb_conv2d(g, x, wt, b, stride, stride, pad, pad));
    assert_int_equal(nb_graph_status(g), want);
    const char *msg = nb_last_error();
    if (!strstr(msg, "conv2d") || !strstr(msg, needle1) || !strstr(msg, needle2))
        print_error("message: %s\n", msg);
    assert_non_null(strstr(msg, "conv2d"));
    assert_non_null(strstr(msg, needle1));
    assert_non_null(strstr(msg, needle2));
    nb_graph_free(g);
}

static void test_conv_errors(void **s) {
    (void)s;
    /* channels differ: both shapes named */
    expect_error(NB_ERR_SHAPE, "[2, 3, 8, 8]", "[4, 5, 3, 3]", 2, 3, 8, 8, 4, 5, 3, 3, 1, 0, 0);
    /* the output would be empty */
    expect_error(NB_ERR_SHAPE, "[1, 1, 2, 2]", "[1, 1, 5, 5]", 1, 1, 2, 2, 1, 1, 5, 5, 1, 1, 0);
    /* a bias of the wrong length */
    expect_error(NB_ERR_SHAPE, "[4, 3, 3, 3]", "[5]", 2, 3, 8, 8, 4, 3, 3, 3, 1, 0, 5);
    /* bad stride, bad padding */
    expect_error(NB_ERR_ARG, "stride 0x0", "padding", 2, 3, 8, 8, 4, 3, 3, 3, 0, 0, 0);
    expect_error(NB_ERR_ARG, "padding -1x-1", "stride", 2, 3, 8, 8, 4, 3, 3, 3, 1, -1, 0);
    /* not 4-D */
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 2, (int[]){2, 3});
    nb_node *w = nb_param(g, "w", 4, (int[]){4, 3, 1, 1});
    assert_null(nb_conv2d(g, x, w, NULL, 1, 1, 0, 0));
    assert_non_null(strstr(nb_last_error(), "[2, 3]"));
    assert_non_null(strstr(nb_last_error(), "[4, 3, 1, 1]"));
    assert_null(nb_conv2d(g, NULL, w, NULL, 1, 1, 0, 0)); /* a NULL input propagates */
    nb_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_batch_change),
        cmocka_unit_test(test_conv_matches_direct),
        cmocka_unit_test(test_conv_several_groups),
        cmocka_unit_test(test_conv_gradcheck),
        cmocka_unit_test(test_conv_gradcheck_one_input),
        cmocka_unit_test(test_conv_threads_bit_identical),
        cmocka_unit_test(test_conv_errors),
    };
    return cmocka_run_group_tests_name("conv2d", tests, NULL, NULL);
}
