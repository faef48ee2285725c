/* test_fast_paths.c — the speed-ups of issue 4 held against their plain
 * versions: the direct, channel-vectorised and Winograd convolution kernels
 * against the one-sample reference loops, the max-pooling kernels against theirs
 * (ties and NaN included), the batch-norm kernels against theirs, the
 * few-rows GEMM against the triple loop; every
 * conv2d path through the operator against its neighbours; gradients that
 * the first contribution writes instead of adding; bit-identical LeNet-5
 * training with 1 and 2 threads; no allocation in a steady-state training
 * step; and the per-node profile. */
#include "support.h"

#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nb_conv_geom geom(int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw) {
    nb_conv_geom g = {c, h, w, kh, kw, sh, sw, ph, pw, 0, 0};
    g.out_h = (h + 2 * ph - kh) / sh + 1;
    g.out_w = (w + 2 * pw - kw) / sw + 1;
    return g;
}

static void assert_close(const float *got, const float *want, size_t n, double tol) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= tol * (1.0 + fabs((double)want[i])))) {
            print_error("element %zu: got %.8g, want %.8g\n", i, (double)got[i], (double)want[i]);
            fail();
        }
    }
}

static float *rnd(size_t n, nb_rng *rng) {
    float *p = malloc(n * sizeof(float));
    fill_uniform(p, n, -1, 1, rng);
    return p;
}

/* ---- kernels against the reference loops ------------------------------------------ */

static void test_conv_direct_kernel(void **s) {
    (void)s;
    const struct { int c, h, w, kh, kw, ph, pw, o; } cases[] = {
        {1, 28, 28, 5, 5, 2, 2, 6}, /* LeNet-5's conv1 */
        {1, 20, 17, 3, 3, 0, 0, 1}, {2, 9, 40, 3, 5, 1, 2, 7}, {3, 16, 16, 7, 7, 3, 3, 13},
        {4, 5, 33, 1, 1, 0, 0, 12}, {1, 6, 31, 2, 4, 1, 1, 5},
    };
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_conv_geom g = geom(cases[i].c, cases[i].h, cases[i].w, cases[i].kh, cases[i].kw, 1, 1,
                              cases[i].ph, cases[i].pw);
        const int o = cases[i].o;
        if (!nb_conv_direct_fits(&g)) {
            print_message("direct kernel does not take case %zu here\n", i);
            continue;
        }
        size_t nx = (size_t)g.channels * g.height * g.width, nw = (size_t)o * g.channels * g.kernel_h * g.kernel_w;
        size_t ny = (size_t)o * g.out_h * g.out_w;
        float *x = rnd(nx, &rng), *w = rnd(nw, &rng), *b = rnd((size_t)o, &rng), *dy = rnd(ny, &rng);
        float *y = malloc(ny * sizeof(float)), *y0 = malloc(ny * sizeof(float));
        float *dw = malloc(nw * sizeof(float)), *dw0 = malloc(nw * sizeof(float));
        float *db = malloc((size_t)o * sizeof(float)), *db0 = malloc((size_t)o * sizeof(float));
        nb_conv_direct_forward(&g, o, x, w, b, y, 0);
        nb_conv_forward_reference(&g, o, x, w, b, y0);
        assert_close(y, y0, ny, 1e-5);
        nb_conv_direct_forward(&g, o, x, w, b, y, 1); /* with the consumer's relu */
        nb_relu_inplace(y0, ny);
        assert_close(y, y0, ny, 1e-5);
        nb_conv_direct_backward(&g, o, x, dy, dw, db);
        nb_conv_weight_grad_reference(&g, o, x, dy, dw0, db0);
        assert_close(dw, dw0, nw, 1e-4);
        assert_close(db, db0, (size_t)o, 1e-4);
        free(x), free(w), free(b), free(dy), free(y), free(y0), free(dw), free(dw0), free(db), free(db0);
    }
}

static void test_conv_cv_kernel(void **s) {
    (void)s;
    const struct { int c, h, w, kh, kw, sh, sw, ph, pw, o; } cases[] = {
        {6, 14, 14, 5, 5, 1, 1, 0, 0, 16},  /* LeNet-5's conv2 */
        {5, 9, 11, 3, 3, 2, 2, 1, 1, 19},   /* stride 2, two channel blocks */
        {3, 12, 12, 3, 2, 1, 1, 1, 0, 12},  /* a partial block */
        {8, 7, 6, 1, 1, 1, 1, 0, 0, 33},    /* 1x1, a nearly empty third block */
        {2, 20, 13, 4, 4, 3, 2, 2, 1, 16},  /* wide padded rows: the general col2im */
        {3, 37, 35, 7, 7, 2, 2, 3, 3, 20},  /* ResNet-18 conv1's form: 7x7, stride 2, padding 3 */
        {3, 59, 59, 11, 11, 4, 4, 2, 2, 64}, /* AlexNet features.0's form: 11x11, stride 4 */
        {16, 10, 9, 3, 3, 1, 1, 1, 1, 20},  /* ResNet's 3x3 form: dx by the turned filters */
        {13, 8, 11, 3, 2, 1, 1, 0, 1, 12},  /* the same, partial blocks both ways, uneven padding */
    };
    nb_rng rng;
    nb_rng_seed(&rng, 2);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_conv_geom g = geom(cases[i].c, cases[i].h, cases[i].w, cases[i].kh, cases[i].kw, cases[i].sh,
                              cases[i].sw, cases[i].ph, cases[i].pw);
        const int o = cases[i].o;
        if (!nb_conv_cv_fits(&g, o, nb_conv_cv_max_weights())) {
            print_message("channel-vectorised kernel does not take case %zu here\n", i);
            continue;
        }
        size_t nx = (size_t)g.channels * g.height * g.width, nw = (size_t)o * g.channels * g.kernel_h * g.kernel_w;
        size_t ny = (size_t)o * g.out_h * g.out_w;
        /* Two samples side by side: x2 and dy2 follow x and dy. */
        float *x = rnd(2 * nx, &rng), *w = rnd(nw, &rng), *b = rnd((size_t)o, &rng), *dy = rnd(2 * ny, &rng);
        float *x2 = x + nx, *dy2 = dy + ny;
        float *wt = malloc(nb_conv_cv_packed_floats(&g, o) * sizeof(float));
        float *dwt = malloc(nb_conv_cv_packed_floats(&g, o) * sizeof(float));
        float *scratch = malloc(nb_conv_cv_scratch_floats(&g, o, 2) * sizeof(float));
        float *y = malloc(2 * ny * sizeof(float)), *y0 = malloc(ny * sizeof(float));
        float *dwt2 = malloc(nb_conv_cv_packed_floats(&g, o) * sizeof(float));
        float *dw = malloc(nw * sizeof(float)), *dw0 = malloc(nw * sizeof(float)), *dw1 = malloc(nw * sizeof(float));
        float *dx = calloc(nx, sizeof(float)), *dx0 = calloc(nx, sizeof(float));
        nb_conv_cv_pack_weights(&g, o, w, wt);
        nb_conv_cv_forward(&g, o, 1, x, wt, b, y, scratch, 0);
        nb_conv_forward_reference(&g, o, x, w, b, y0);
        assert_close(y, y0, ny, 1e-5);
        /* Two samples in one call: the first's bits as alone, the second's
         * as alone. */
        nb_conv_cv_forward(&g, o, 1, x2, wt, b, y + ny, scratch, 0);
        float *y2 = malloc(2 * ny * sizeof(float));
        nb_conv_cv_forward(&g, o, 2, x, wt, b, y2, scratch, 0);
        assert_memory_equal(y2, y, 2 * ny * sizeof(float));
        free(y2);
        nb_conv_cv_forward(&g, o, 1, x, wt, b, y, scratch, 1);
        nb_relu_inplace(y0, ny);
        assert_close(y, y0, ny, 1e-5);
        /* Two samples into one packed gradient: written, then added; and
         * both in one call, to the same bits. */
        nb_conv_cv_weight_grad(&g, o, 1, x, dy, dwt, 1, scratch);
        nb_conv_cv_weight_grad(&g, o, 1, x2, dy2, dwt, 0, scratch);
        nb_conv_cv_weight_grad(&g, o, 2, x, dy, dwt2, 1, scratch);
        assert_memory_equal(dwt2, dwt, nb_conv_cv_packed_floats(&g, o) * sizeof(float));
        nb_conv_cv_unpack_grad(&g, o, dwt, dw, 1);
        nb_conv_weight_grad_reference(&g, o, x, dy, dw0, NULL);
        nb_conv_weight_grad_reference(&g, o, x2, dy2, dw1, NULL);
        for (size_t k = 0; k < nw; k++) dw0[k] += dw1[k];
        assert_close(dw, dw0, nw, 1e-4);
        /* The whole batch at once, block by block: the same sum, the same
         * bits on one thread as on two, and added when not first. */
        {
            size_t stride = nb_conv_cv_batch_scratch_floats(&g, 2);
            float *images = malloc(nb_conv_cv_batch_floats(&g, 2) * sizeof(float));
            float *sc2 = malloc(2 * stride * sizeof(float));
            float *dwb = malloc(nw * sizeof(float)), *dwb2 = malloc(nw * sizeof(float));
            nb_conv_cv_weight_grad_batch(&g, o, 2, x, dy, dwb, 1, images, sc2, stride, 1);
            assert_close(dwb, dw0, nw, 1e-4);
            nb_conv_cv_weight_grad_batch(&g, o, 2, x, dy, dwb2, 1, images, sc2, stride, test_threads(2));
            assert_memory_equal(dwb2, dwb, nw * sizeof(float));
            nb_conv_cv_weight_grad_batch(&g, o, 2, x, dy, dwb2, 0, images, sc2, stride, test_threads(2));
            for (size_t k = 0; k < nw; k++) dwb[k] *= 2.0f;
            assert_close(dwb2, dwb, nw, 1e-6);
            free(images), free(sc2), free(dwb), free(dwb2);
        }
        /* The input gradient adds onto what dx holds. */
        for (size_t k = 0; k < nx; k++) dx[k] = dx0[k] = 0.5f;
        nb_conv_cv_input_grad(&g, o, w, dy, dx, scratch);
        nb_conv_input_grad_reference(&g, o, w, dy, dx0);
        assert_close(dx, dx0, nx, 1e-4);
        /* Stride 1: the same gradient as a forward convolution of dy by the
         * turned filters (what conv2d's backward runs where it fits),
         * added, then written. */
        nb_conv_geom a = geom(o, g.out_h, g.out_w, g.kernel_h, g.kernel_w, 1, 1, g.kernel_h - 1 - g.pad_h,
                              g.kernel_w - 1 - g.pad_w);
        if (g.stride_h == 1 && g.stride_w == 1 && nb_conv_cv_fits(&a, g.channels, nb_conv_cv_max_weights())) {
            assert_int_equal(a.out_h, g.height);
            assert_int_equal(a.out_w, g.width);
            float *wa = malloc(nb_conv_cv_packed_floats(&a, g.channels) * sizeof(float));
            float *sa = malloc(nb_conv_cv_scratch_floats(&a, g.channels, 1) * sizeof(float));
            nb_conv_cv_pack_turned(&g, o, w, wa);
            for (size_t k = 0; k < nx; k++) dx[k] = 0.5f;
            nb_conv_cv_forward(&a, g.channels, 1, dy, wa, NULL, dx, sa, NB_CV_ADD);
            assert_close(dx, dx0, nx, 1e-4);
            for (size_t k = 0; k < nx; k++) dx0[k] -= 0.5f;
            nb_conv_cv_forward(&a, g.channels, 1, dy, wa, NULL, dx, sa, NB_CV_WRITE);
            assert_close(dx, dx0, nx, 1e-4);
            free(wa), free(sa);
        } else if (i >= 7) {
            fail_msg("case %zu should take the turned-filter input gradient", i);
        }
        free(x), free(w), free(b), free(dy), free(wt), free(dwt), free(dwt2), free(scratch);
        free(y), free(y0), free(dw), free(dw0), free(dw1), free(dx), free(dx0);
    }
}

/* Ties keep the first maximum in row-major order; a NaN wins. */
static void fill_pool_input(float *x, size_t n, nb_rng *rng) {
    for (size_t i = 0; i < n; i++) {
        uint32_t r = nb_rng_below(rng, 10);
        x[i] = r < 3 ? 1.0f : r == 3 ? NAN : nb_rng_uniform(rng);
    }
}

/* Winograd F(2x2, 3x3) and F(2x2, 5x5): weights, input and output
 * transforms with the 16 or 36 products between them, against the
 * reference convolution, for even and odd outputs, padding 0 to 2, with
 * and without bias and relu; and the weight gradient by the same
 * transforms against the reference weight gradient. */
static void test_winograd_kernel(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 17);
    const struct { int n, c, h, w, o, k, pad; } cases[] = {
        {2, 3, 8, 8, 5, 3, 1},  {3, 4, 13, 13, 7, 3, 1}, {1, 5, 7, 10, 3, 3, 0}, {2, 2, 6, 5, 4, 3, 2},
        {1, 1, 4, 4, 1, 3, 0},  {2, 6, 27, 27, 5, 5, 2}, {1, 3, 9, 12, 4, 5, 0}, {2, 2, 6, 7, 3, 5, 1},
        {1, 1, 6, 6, 1, 5, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int n = cases[i].n, c = cases[i].c, o = cases[i].o, k = cases[i].k;
        nb_conv_geom g = geom(c, cases[i].h, cases[i].w, k, k, 1, 1, cases[i].pad, cases[i].pad);
        assert_true(nb_winograd_fits(&g));
        const int total = n * nb_winograd_tiles(&g), planes = nb_winograd_planes(&g);
        assert_int_equal(planes, (k + 1) * (k + 1));
        const size_t xs = (size_t)c * g.height * g.width, ys = (size_t)o * g.out_h * g.out_w;
        float *x = rnd(n * xs, &rng), *w = rnd((size_t)o * c * k * k, &rng), *b = rnd((size_t)o, &rng);
        float *u = malloc(planes * (size_t)o * c * sizeof(float));
        float *v = malloc(planes * (size_t)c * total * sizeof(float));
        float *m = malloc(planes * (size_t)o * total * sizeof(float));
        float *y = malloc(n * ys * sizeof(float)), *y0 = malloc(n * ys * sizeof(float));
        nb_winograd_weights(k, o, c, w, u, 0);
        nb_winograd_input(&g, x, n, v);
        for (int xi = 0; xi < planes; xi++)
            nb_sgemm(0, 0, o, total, c, 1.0f, u + (size_t)xi * o * c, c, v + (size_t)xi * total, planes * total,
                     0.0f, m + (size_t)xi * total, planes * total);
        for (int relu = 0; relu < 2; relu++) {
            const float *bias = relu ? b : NULL;
            nb_winograd_output(&g, o, m, n, bias, y, relu, 0);
            for (int e = 0; e < n; e++) nb_conv_forward_reference(&g, o, x + e * xs, w, bias, y0 + e * ys);
            if (relu)
                for (size_t e = 0; e < n * ys; e++) y0[e] = y0[e] > 0 ? y0[e] : 0.0f;
            /* 5x5's larger transform entries cost some tens of ulps. */
            assert_close(y, y0, n * ys, k == 3 ? 1e-5 : 1e-4);
        }
        /* The weight gradient: dy's transform, the products e v^T, the
         * filters' transform; written, then added onto what dw holds. */
        const size_t nw = (size_t)o * c * k * k;
        float *dy = rnd(n * ys, &rng), *e = malloc(planes * (size_t)o * total * sizeof(float));
        float *dw = malloc(nw * sizeof(float)), *dw0 = calloc(nw, sizeof(float)), *dws = malloc(nw * sizeof(float));
        nb_winograd_grad_output(&g, o, dy, n, e);
        for (int xi = 0; xi < planes; xi++)
            nb_sgemm(0, 1, o, c, total, 1.0f, e + (size_t)xi * total, planes * total, v + (size_t)xi * total,
                     planes * total, 0.0f, u + (size_t)xi * o * c, c);
        for (int e2 = 0; e2 < n; e2++) {
            nb_conv_weight_grad_reference(&g, o, x + e2 * xs, dy + e2 * ys, dws, NULL);
            for (size_t q = 0; q < nw; q++) dw0[q] += dws[q];
        }
        nb_winograd_weight_grad(k, o, c, u, dw, 0);
        assert_close(dw, dw0, nw, k == 3 ? 1e-4 : 5e-4);
        size_t nonzero = 0;
        for (size_t q = 0; q < nw; q++) nonzero += dw[q] != 0.0f;
        assert_true(nonzero > 0);
        for (size_t q = 0; q < nw; q++) dw[q] = 0.5f, dw0[q] += 0.5f;
        nb_winograd_weight_grad(k, o, c, u, dw, 1);
        assert_close(dw, dw0, nw, k == 3 ? 1e-4 : 5e-4);
        free(dy), free(e), free(dw), free(dw0), free(dws);
        free(x), free(w), free(b), free(u), free(v), free(m), free(y), free(y0);
    }
    nb_conv_geom strided = geom(4, 9, 9, 3, 3, 2, 2, 1, 1), seven = geom(4, 9, 9, 7, 7, 1, 1, 3, 3);
    nb_conv_geom oblong = geom(4, 9, 9, 3, 5, 1, 1, 1, 2);
    assert_false(nb_winograd_fits(&strided));
    assert_false(nb_winograd_fits(&seven));
    assert_false(nb_winograd_fits(&oblong));
}

static void test_maxpool_kernels(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    const int sizes[][2] = {{28, 28}, {10, 10}, {2, 2}, {6, 40}, {14, 34}, {4, 66}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        const int h = sizes[i][0], w = sizes[i][1], oh = h / 2, ow = w / 2;
        float *x = malloc((size_t)h * w * sizeof(float)), *y = malloc((size_t)oh * ow * sizeof(float));
        float *y0 = malloc((size_t)oh * ow * sizeof(float)), *dy = rnd((size_t)oh * ow, &rng);
        float *dx = malloc((size_t)h * w * sizeof(float)), *dx0 = malloc((size_t)h * w * sizeof(float));
        int32_t *a = malloc((size_t)oh * ow * sizeof(int32_t)), *a0 = malloc((size_t)oh * ow * sizeof(int32_t));
        fill_pool_input(x, (size_t)h * w, &rng);
        nb_maxpool2x2_forward(x, h, w, y, a);
        nb_maxpool2x2_forward_reference(x, h, w, y0, a0);
        assert_memory_equal(a, a0, (size_t)oh * ow * sizeof(int32_t));
        for (int k = 0; k < oh * ow; k++)
            assert_true(isnan(y[k]) ? isnan(y0[k]) : y[k] == y0[k]);
        /* Without indices (eval mode): the same maxima. */
        nb_maxpool2x2_forward(x, h, w, y0, NULL);
        for (int k = 0; k < oh * ow; k++)
            assert_true(isnan(y[k]) ? isnan(y0[k]) : y[k] == y0[k]);
        /* The general kernel with a 2x2 window agrees with the 2x2 one. */
        nb_maxpool_forward(x, h, w, 2, 2, 2, 2, y0, a0);
        assert_memory_equal(a, a0, (size_t)oh * ow * sizeof(int32_t));
        for (size_t k = 0; k < (size_t)h * w; k++) dx[k] = dx0[k] = 7.0f; /* overwritten */
        nb_maxpool2x2_backward(dy, a, h, w, dx);
        nb_maxpool2x2_backward_reference(dy, a, h, w, dx0);
        assert_memory_equal(dx, dx0, (size_t)h * w * sizeof(float));
        free(x), free(y), free(y0), free(dy), free(dx), free(dx0), free(a), free(a0);
    }
    /* Overlapping windows and odd strides, against the reference. */
    const int win[][6] = {{27, 27, 3, 3, 2, 2}, {13, 13, 3, 3, 2, 2}, {9, 40, 2, 3, 1, 3}, {5, 5, 5, 5, 1, 1},
                         {11, 41, 4, 4, 2, 2}, {9, 37, 2, 5, 2, 2}};
    for (size_t i = 0; i < sizeof win / sizeof *win; i++) {
        const int h = win[i][0], w = win[i][1], kh = win[i][2], kw = win[i][3], sh = win[i][4], sw = win[i][5];
        const int n_out = ((h - kh) / sh + 1) * ((w - kw) / sw + 1);
        float *x = malloc((size_t)h * w * sizeof(float)), *y = malloc((size_t)n_out * sizeof(float));
        float *y0 = malloc((size_t)n_out * sizeof(float));
        int32_t *a = malloc((size_t)n_out * sizeof(int32_t)), *a0 = malloc((size_t)n_out * sizeof(int32_t));
        fill_pool_input(x, (size_t)h * w, &rng);
        nb_maxpool_forward(x, h, w, kh, kw, sh, sw, y, a);
        nb_maxpool_forward_reference(x, h, w, kh, kw, sh, sw, y0, a0);
        assert_memory_equal(a, a0, (size_t)n_out * sizeof(int32_t));
        for (int k = 0; k < n_out; k++) assert_true(isnan(y[k]) ? isnan(y0[k]) : y[k] == y0[k]);
        free(x), free(y), free(y0), free(a), free(a0);
    }
    /* Padded windows (ResNet's 3x3, stride 2, padding 1), clipped to the image. */
    const int pad[][8] = {{112, 112, 3, 3, 2, 2, 1, 1}, {13, 13, 3, 3, 2, 2, 1, 1}, {9, 40, 2, 3, 1, 3, 1, 1},
                          {5, 5, 5, 5, 1, 1, 2, 2}, {7, 8, 3, 3, 2, 2, 0, 1}, {6, 70, 3, 3, 2, 2, 1, 1},
                          {15, 45, 5, 4, 2, 2, 2, 1}};
    for (size_t i = 0; i < sizeof pad / sizeof *pad; i++) {
        const int *p = pad[i];
        const nb_conv_geom g = geom(1, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
        const size_t n_out = (size_t)g.out_h * g.out_w;
        float *x = malloc((size_t)p[0] * p[1] * sizeof(float)), *y = malloc(n_out * sizeof(float));
        float *y0 = malloc(n_out * sizeof(float));
        int32_t *a = malloc(n_out * sizeof(int32_t)), *a0 = malloc(n_out * sizeof(int32_t));
        fill_pool_input(x, (size_t)p[0] * p[1], &rng);
        nb_maxpool_forward_padded(&g, x, y, a);
        nb_maxpool_forward_padded_reference(&g, x, y0, a0);
        assert_memory_equal(a, a0, n_out * sizeof(int32_t));
        for (size_t k = 0; k < n_out; k++) assert_true(isnan(y[k]) ? isnan(y0[k]) : y[k] == y0[k]);
        free(x), free(y), free(y0), free(a), free(a0);
    }
}

/* The batch-norm kernels, one channel at a time, against the plain loops:
 * runs longer than a block and with tails, batchnorm1d's runs of 1, a
 * mean far from 0, both relu settings and both write modes. */
static void test_batchnorm_kernels(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 14);
    const size_t cases[][3] = {{3, 5, 49}, {2, 3, 1100}, {16, 4, 1}, {4, 2, 17}, {2, 2, 3136}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const size_t batch = cases[i][0], channels = cases[i][1], inner = cases[i][2];
        const size_t n = batch * channels * inner, stride = channels * inner;
        float *x = rnd(n, &rng), *dy = rnd(n, &rng);
        float *y = malloc(n * sizeof(float)), *y0 = malloc(n * sizeof(float));
        float *dx = rnd(n, &rng), *dx0 = malloc(n * sizeof(float));
        for (size_t e = 0; e < n; e++) x[e] = 3.0f + 2.0f * x[e];
        memcpy(dx0, dx, n * sizeof(float));
        for (size_t c = 0; c < channels; c++) {
            const float *xc = x + c * inner, *dyc = dy + c * inner;
            double mean, sq, mean0, sq0, sd, sdx, sd0, sdx0;
            nb_bn_stats(xc, batch, stride, inner, &mean, &sq);
            nb_bn_stats_reference(xc, batch, stride, inner, &mean0, &sq0);
            assert_true(fabs(mean - mean0) <= 1e-6 * fabs(mean0));
            assert_true(fabs(sq - sq0) <= 1e-5 * sq0);
            const int relu = (int)(c % 2);
            nb_bn_apply(xc, y + c * inner, batch, stride, inner, 0.7f, -2.0f, relu);
            nb_bn_apply_reference(xc, y0 + c * inner, batch, stride, inner, 0.7f, -2.0f, relu);
            nb_bn_grad_sums(xc, dyc, batch, stride, inner, (float)mean0, &sd, &sdx);
            nb_bn_grad_sums_reference(xc, dyc, batch, stride, inner, (float)mean0, &sd0, &sdx0);
            const double scale = (double)batch * inner; /* the terms are at most about 1 */
            assert_true(fabs(sd - sd0) <= 1e-6 * scale);
            assert_true(fabs(sdx - sdx0) <= 1e-6 * scale);
            const int accumulate = (int)(c % 2);
            nb_bn_grad_input(xc, dyc, dx + c * inner, batch, stride, inner, (float)mean0, 0.9f, -0.1f, 0.3f,
                             accumulate);
            nb_bn_grad_input_reference(xc, dyc, dx0 + c * inner, batch, stride, inner, (float)mean0, 0.9f, -0.1f,
                                       0.3f, accumulate);
        }
        assert_close(y, y0, n, 1e-6);
        assert_close(dx, dx0, n, 1e-6);
        free(x), free(dy), free(y), free(y0), free(dx), free(dx0);
    }
}

/* The stride-2 rows of im2col and col2im against plain loops, every
 * length up to a few vectors, touching nothing past element 2n - 2. */
static void test_stride2_rows(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 15);
    enum { MAX = 70 };
    for (int n = 0; n <= MAX; n++) {
        float src[2 * MAX + 2], dst[MAX + 1], want[MAX + 1], img[2 * MAX + 2], img0[2 * MAX + 2];
        fill_uniform(src, 2 * MAX + 2, -1, 1, &rng);
        fill_uniform(img, 2 * MAX + 2, -1, 1, &rng);
        memcpy(img0, img, sizeof img);
        for (int i = 0; i <= MAX; i++) dst[i] = want[i] = 7.0f;
        for (int i = 0; i < n; i++) want[i] = src[2 * i];
        for (int i = 0; i < n; i++) img0[2 * i] += src[i];
        nb_copy_stride2(dst, src, n);
        assert_memory_equal(dst, want, sizeof dst);
        nb_add_stride2(img, src, n);
        assert_memory_equal(img, img0, sizeof img);
    }
}

/* A fully-connected layer on a small batch: both few-rows kernels, with
 * alpha and beta, against the triple loop; 1 and 2 threads give the same bits. */
static void test_gemm_few_rows(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 4);
    const int shapes[][3] = {{8, 700, 1030}, {1, 257, 300}, {5, 100, 2049}, {3, 33, 4000}};
    int saved = nb_get_threads();
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int tb = 0; tb < 2; tb++) {
            const int M = shapes[i][0], N = shapes[i][1], K = shapes[i][2];
            float *a = rnd((size_t)M * K, &rng), *b = rnd((size_t)K * N, &rng), *c0 = rnd((size_t)M * N, &rng);
            float *want = malloc((size_t)M * N * sizeof(float)), *got[2];
            memcpy(want, c0, (size_t)M * N * sizeof(float));
            nb_sgemm_reference(0, tb, M, N, K, 0.5f, a, K, b, tb ? K : N, -1.0f, want, N);
            for (int t = 0; t < 2; t++) {
                nb_set_threads(test_threads(t + 1));
                got[t] = malloc((size_t)M * N * sizeof(float));
                memcpy(got[t], c0, (size_t)M * N * sizeof(float));
                nb_sgemm(0, tb, M, N, K, 0.5f, a, K, b, tb ? K : N, -1.0f, got[t], N);
            }
            assert_close(got[0], want, (size_t)M * N, 1e-3);
            assert_memory_equal(got[0], got[1], (size_t)M * N * sizeof(float));
            free(a), free(b), free(c0), free(want), free(got[0]), free(got[1]);
        }
    nb_set_threads(saved);
}

/* ---- the operator's paths ------------------------------------------------------------ */

/* conv2d through the graph, for shapes that take each path on this CPU
 * (direct, channel-vectorised, parallel groups, serial groups), against
 * the reference loops sample by sample, with 1 and 2 threads bit-identical. */
static void check_conv_op(int n, int c, int h, int w, int o, int k, int stride, int pad, nb_rng *rng) {
    nb_conv_geom g = geom(c, h, w, k, k, stride, stride, pad, pad);
    size_t nx = (size_t)n * c * h * w, nw = (size_t)o * c * k * k, ny = (size_t)n * o * g.out_h * g.out_w;
    float *xv = rnd(nx, rng), *wv = rnd(nw, rng), *bv = rnd((size_t)o, rng), *r = rnd(ny, rng);
    float *out[2][4];
    int saved = nb_get_threads();
    for (int t = 0; t < 2; t++) {
        nb_set_threads(test_threads(t + 1));
        nb_graph *gr = nb_graph_new();
        nb_node *x = nb_input(gr, "x", 4, (int[]){n, c, h, w});
        nb_node *wn = nb_param(gr, "w", 4, (int[]){o, c, k, k});
        nb_node *b = nb_param(gr, "b", 1, (int[]){o});
        nb_node *y = nb_conv2d(gr, x, wn, b, stride, stride, pad, pad);
        nb_node *rc = nb_const(gr, "r", 4, nb_value(y)->shape, r);
        nb_node *loss = nb_sum_all(gr, nb_mul(gr, y, rc));
        assert_non_null(loss);
        nb_requires_grad(x, 1);
        memcpy(nb_value(wn)->data, wv, nw * sizeof(float));
        memcpy(nb_value(b)->data, bv, (size_t)o * sizeof(float));
        assert_ok(nb_feed(x, xv, n));
        /* Twice: the second backward must overwrite, not add to, the first. */
        for (int rep = 0; rep < 2; rep++) {
            assert_ok(nb_forward(gr, loss));
            assert_ok(nb_backward(gr, loss));
        }
        const nb_tensor *ts[4] = {nb_value(y), nb_grad(x), nb_grad(wn), nb_grad(b)};
        for (int i = 0; i < 4; i++) {
            size_t len = nb_tensor_numel(ts[i]);
            out[t][i] = malloc(len * sizeof(float));
            memcpy(out[t][i], ts[i]->data, len * sizeof(float));
        }
        nb_graph_free(gr);
    }
    nb_set_threads(saved);
    size_t lens[4] = {ny, nx, nw, (size_t)o};
    for (int i = 0; i < 4; i++) assert_memory_equal(out[0][i], out[1][i], lens[i] * sizeof(float));
    /* Reference, sample by sample. */
    size_t xs = (size_t)c * h * w, ys = (size_t)o * g.out_h * g.out_w;
    float *y0 = malloc(ny * sizeof(float)), *dx0 = calloc(nx, sizeof(float));
    float *dw0 = calloc(nw, sizeof(float)), *db0 = calloc((size_t)o, sizeof(float));
    float *dws = malloc(nw * sizeof(float)), *dbs = malloc((size_t)o * sizeof(float));
    for (int i = 0; i < n; i++) {
        nb_conv_forward_reference(&g, o, xv + i * xs, wv, bv, y0 + i * ys);
        nb_conv_weight_grad_reference(&g, o, xv + i * xs, r + i * ys, dws, dbs);
        for (size_t e = 0; e < nw; e++) dw0[e] += dws[e];
        for (int e = 0; e < o; e++) db0[e] += dbs[e];
        nb_conv_input_grad_reference(&g, o, wv, r + i * ys, dx0 + i * xs);
    }
    assert_close(out[0][0], y0, ny, 1e-4);
    assert_close(out[0][1], dx0, nx, 1e-4);
    assert_close(out[0][2], dw0, nw, 1e-3);
    assert_close(out[0][3], db0, (size_t)o, 1e-3);
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 4; i++) free(out[t][i]);
    free(xv), free(wv), free(bv), free(r), free(y0), free(dx0), free(dw0), free(db0), free(dws), free(dbs);
}

static void test_conv_op_paths(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    check_conv_op(9, 1, 28, 28, 6, 5, 1, 2, &rng);   /* direct: LeNet-5's conv1 */
    check_conv_op(13, 6, 14, 14, 16, 5, 1, 0, &rng); /* channel-vectorised: conv2 */
    check_conv_op(7, 5, 11, 9, 19, 3, 2, 1, &rng);   /* channel-vectorised, stride 2 */
    check_conv_op(6, 5, 12, 12, 7, 3, 1, 1, &rng);   /* parallel groups (7 channels) */
    check_conv_op(2, 24, 30, 30, 64, 3, 1, 1, &rng); /* serial groups, Winograd forward */
    check_conv_op(3, 64, 13, 13, 64, 3, 1, 1, &rng); /* Winograd, odd output (AlexNet's 13x13) */
    check_conv_op(2, 64, 14, 15, 64, 3, 1, 0, &rng); /* Winograd, no padding, 12x13 output */
    check_conv_op(2, 24, 29, 29, 64, 5, 1, 2, &rng); /* Winograd F(2x2, 5x5), AlexNet's padding */
    check_conv_op(2, 24, 20, 21, 64, 5, 1, 0, &rng); /* Winograd 5x5, no padding, 16x17 output */
    check_conv_op(2, 24, 57, 57, 64, 5, 2, 2, &rng); /* serial groups, im2col (stride 2) */
    /* ResNet's shapes: 1x1 stride 1 (a product per sample on x itself, in
     * serial and in parallel groups), 1x1 stride 2 (downsample.0), 3x3
     * stride 2 and 7x7 stride 2 (conv1): the stride-2 im2col and col2im. */
    check_conv_op(2, 64, 24, 24, 128, 1, 1, 0, &rng);
    check_conv_op(5, 8, 24, 24, 7, 1, 1, 0, &rng);
    check_conv_op(3, 64, 13, 13, 64, 1, 1, 0, &rng); /* 1x1 on small planes: im2col batches samples */
    check_conv_op(2, 128, 56, 56, 128, 1, 2, 0, &rng);
    check_conv_op(3, 16, 27, 27, 7, 1, 2, 0, &rng);
    check_conv_op(2, 32, 30, 30, 64, 3, 2, 1, &rng);
    check_conv_op(2, 3, 64, 63, 16, 7, 2, 3, &rng);
}

/* ---- gradients written first ------------------------------------------------------------ */

/* A node used twice gets both contributions, a parameter outside the loss's
 * ancestry reads zero, and repeated passes give the same gradients. */
static void test_gradients_written_first(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 6);
    nb_graph *g = nb_graph_new();
    nb_node *x = random_input(g, "x", 2, (int[]){3, 4}, -1, 1, &rng);
    nb_node *w = random_param(g, "w", 2, (int[]){5, 4}, -1, 1, &rng);
    nb_node *unused = random_param(g, "unused", 1, (int[]){3}, -1, 1, &rng);
    nb_node *h = nb_relu(g, nb_linear(g, x, w, NULL));
    /* h feeds two branches, and w a second product too. */
    nb_node *a = nb_relu(g, h), *b = nb_sigmoid(g, h);
    nb_node *loss = random_projection_loss(g, nb_add(g, nb_add(g, a, b), nb_linear(g, x, w, NULL)), &rng);
    assert_non_null(loss);
    nb_requires_grad(x, 1);
    float *p, *gr;
    size_t np = nb_graph_params(g, &p, &gr);
    for (size_t i = 0; i < np; i++) gr[i] = 99.0f; /* stale values must not survive */
    assert_gradcheck(g, loss, 1e-3, 1e-2);
    float first[20];
    memcpy(first, nb_grad(w)->data, sizeof first);
    for (int i = 0; i < 3; i++) assert_float_equal(nb_grad(unused)->data[i], 0.0f, 0.0f);
    assert_ok(nb_forward(g, loss));
    assert_ok(nb_backward(g, loss));
    assert_memory_equal(first, nb_grad(w)->data, sizeof first);
    nb_graph_free(g);
}

/* ---- in-place relu ----------------------------------------------------------------------------- */

typedef struct {
    nb_graph *g;
    nb_node *x, *w, *b, *conv, *relu, *other, *loss;
} relu_graph;

/* conv -> relu -> loss; with `producer` BATCHNORM, conv -> batchnorm2d ->
 * relu, with RESIDUAL, (conv + a second input) -> relu (r.conv is then the
 * relu's producer); with `peek`, the producer's value also feeds a second
 * op, so the relu cannot run in place. */
enum { CONV, BATCHNORM, RESIDUAL };
static relu_graph relu_net(int peek, int producer, nb_rng *rng) {
    relu_graph r;
    r.g = nb_graph_new();
    r.x = random_input(r.g, "x", 4, (int[]){3, 6, 14, 14}, -1, 1, rng);
    r.w = random_param(r.g, "w", 4, (int[]){16, 6, 5, 5}, -0.3f, 0.3f, rng);
    r.b = random_param(r.g, "b", 1, (int[]){16}, -0.3f, 0.3f, rng);
    r.conv = nb_conv2d(r.g, r.x, r.w, r.b, 1, 1, 0, 0);
    if (producer == RESIDUAL) {
        nb_node *skip = random_input(r.g, "skip", 4, (int[]){3, 16, 10, 10}, -1, 1, rng);
        nb_requires_grad(skip, 1);
        r.conv = nb_add(r.g, r.conv, skip);
    }
    if (producer == BATCHNORM) {
        nb_node *gamma = random_param(r.g, "bn.weight", 1, (int[]){16}, 0.5f, 1.5f, rng);
        nb_node *beta = random_param(r.g, "bn.bias", 1, (int[]){16}, -0.3f, 0.3f, rng);
        nb_node *mean = nb_buffer(r.g, "bn.running_mean", 1, (int[]){16}, NULL);
        nb_node *var = nb_buffer(r.g, "bn.running_var", 1, (int[]){16}, NULL);
        r.conv = nb_batchnorm2d(r.g, r.conv, gamma, beta, mean, var, 0.1f, 1e-5f);
    }
    r.relu = nb_relu(r.g, r.conv);
    r.other = peek ? nb_scale(r.g, r.conv, 0.0f) : NULL;
    nb_node *y = peek ? nb_add(r.g, r.relu, r.other) : r.relu;
    r.loss = random_projection_loss(r.g, y, rng);
    assert_non_null(r.loss);
    nb_requires_grad(r.x, 1);
    return r;
}

/* Run in place or not, the relu's values and every gradient are the same
 * bits; the conv keeps its own values when someone else reads them (a
 * second consumer, or the conv as the target). */
static void check_relu_in_place(int producer) {
    nb_rng r0, r1;
    nb_rng_seed(&r0, 12);
    nb_rng_seed(&r1, 12);
    relu_graph a = relu_net(0, producer, &r0), b = relu_net(1, producer, &r1);
    for (int rep = 0; rep < 2; rep++) {
        assert_ok(nb_forward(a.g, a.loss));
        assert_ok(nb_backward(a.g, a.loss));
        assert_ok(nb_forward(b.g, b.loss));
        assert_ok(nb_backward(b.g, b.loss));
        size_t ny = nb_tensor_numel(nb_value(a.relu));
        assert_memory_equal(nb_value(a.relu)->data, nb_value(b.relu)->data, ny * sizeof(float));
        assert_memory_equal(nb_grad(a.x)->data, nb_grad(b.x)->data, 3 * 6 * 14 * 14 * sizeof(float));
        assert_memory_equal(nb_grad(a.w)->data, nb_grad(b.w)->data, 16 * 150 * sizeof(float));
        assert_memory_equal(nb_grad(a.b)->data, nb_grad(b.b)->data, 16 * sizeof(float));
        /* b's conv was read by a second op: it kept its negative values. */
        size_t negative = 0;
        for (size_t i = 0; i < ny; i++) negative += nb_value(b.conv)->data[i] < 0;
        assert_true(negative > 0);
        assert_true(nb_value(a.relu)->data == nb_value(a.conv)->data);
        assert_true(nb_value(b.relu)->data != nb_value(b.conv)->data);
    }
    /* The conv as the target keeps its own value; back to the loss, the
     * relu runs in place again. */
    assert_ok(nb_forward(a.g, a.conv));
    size_t ny = nb_tensor_numel(nb_value(a.conv)), negative = 0;
    for (size_t i = 0; i < ny; i++) negative += nb_value(a.conv)->data[i] < 0;
    assert_true(negative > 0);
    assert_ok(nb_forward(a.g, a.loss));
    assert_ok(nb_backward(a.g, a.loss));
    assert_memory_equal(nb_value(a.relu)->data, nb_value(b.relu)->data, ny * sizeof(float));
    assert_memory_equal(nb_grad(a.w)->data, nb_grad(b.w)->data, 16 * 150 * sizeof(float));
    nb_graph_free(a.g);
    nb_graph_free(b.g);
}

static void test_relu_in_place(void **s) {
    (void)s;
    check_relu_in_place(CONV);
}

/* A relu after a batch norm (ResNet's bn1 -> relu) or a residual add
 * (a block's output) runs in place too. */
static void test_relu_in_place_after_batchnorm_and_add(void **s) {
    (void)s;
    check_relu_in_place(BATCHNORM);
    check_relu_in_place(RESIDUAL);
}

/* ---- whole training steps ------------------------------------------------------------------ */

static nb_model *lenet(void) {
    nb_model_config cfg = {.seed = 3};
    nb_model *m = nb_model_create("lenet5", &cfg);
    assert_non_null(m);
    return m;
}

static void fill_batch(float *x, float *y, int batch, nb_rng *rng) {
    fill_uniform(x, (size_t)batch * 784, 0, 1, rng);
    for (int i = 0; i < batch; i++) y[i] = (float)nb_rng_below(rng, 10);
}

/* Three SGD steps of LeNet-5 (batch 64, then a last batch of 37), every
 * fast path on the way, give the same bits with 1 and 2 threads. */
static void test_lenet_steps_threads_bit_identical(void **s) {
    (void)s;
    int saved = nb_get_threads();
    float *params[2];
    size_t n = 0;
    float *x = malloc(64 * 784 * sizeof(float)), *y = malloc(64 * sizeof(float));
    for (int t = 0; t < 2; t++) {
        nb_set_threads(test_threads(t + 1));
        nb_model *m = lenet();
        float *p;
        n = nb_graph_params(nb_model_graph(m), &p, NULL);
        nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_SGD);
        o.lr = 0.05f;
        o.momentum = 0.9f;
        nb_optimizer *opt = nb_optimizer_new(&o, n);
        nb_rng rng;
        nb_rng_seed(&rng, 9);
        for (int step = 0; step < 3; step++) {
            int batch = step == 2 ? 37 : 64;
            fill_batch(x, y, batch, &rng);
            assert_ok(nb_model_train_step(m, opt, x, y, batch, NULL));
        }
        params[t] = malloc(n * sizeof(float));
        memcpy(params[t], p, n * sizeof(float));
        nb_optimizer_free(opt);
        nb_model_free(m);
    }
    assert_memory_equal(params[0], params[1], n * sizeof(float));
    free(params[0]), free(params[1]), free(x), free(y);
    nb_set_threads(saved);
}

static long allocations;
static void *count_malloc(size_t n) { allocations++; return malloc(n); }
static void *count_realloc(void *q, size_t n) { allocations++; return realloc(q, n); }
static void count_free(void *q) { free(q); }

/* Once a step has sized every buffer, training steps allocate nothing
 * through nb_alloc: planning only ever grows buffers, and nothing shrinks. */
static void test_steady_state_step_allocates_nothing(void **s) {
    (void)s;
    int saved = nb_get_threads();
    for (int t = 1; t <= 2; t++) {
        nb_set_threads(test_threads(t));
        nb_model *m = lenet();
        size_t n = nb_graph_params(nb_model_graph(m), NULL, NULL);
        nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_SGD);
        o.momentum = 0.9f;
        nb_optimizer *opt = nb_optimizer_new(&o, n);
        float *x = malloc(64 * 784 * sizeof(float)), *y = malloc(64 * sizeof(float));
        nb_rng rng;
        nb_rng_seed(&rng, 10);
        fill_batch(x, y, 64, &rng);
        assert_ok(nb_model_train_step(m, opt, x, y, 64, NULL)); /* sizes everything */
        assert_ok(nb_model_eval_batch(m, x, NULL, 64, NULL));
        nb_set_allocator(count_malloc, count_realloc, count_free);
        allocations = 0;
        for (int step = 0; step < 5; step++) {
            fill_batch(x, y, 64, &rng);
            nb_status st = nb_model_train_step(m, opt, x, y, 64, NULL);
            if (st) break;
        }
        long train = allocations;
        allocations = 0;
        for (int step = 0; step < 3; step++) nb_model_eval_batch(m, x, NULL, 64, NULL);
        long eval = allocations;
        nb_set_allocator(NULL, NULL, NULL);
        assert_int_equal(train, 0);
        assert_int_equal(eval, 0);
        free(x), free(y);
        nb_optimizer_free(opt);
        nb_model_free(m);
    }
    nb_set_threads(saved);
}

/* ---- the profile ------------------------------------------------------------------------- */

static void test_profile_counts_calls(void **s) {
    (void)s;
    nb_model *m = lenet();
    nb_graph *g = nb_model_graph(m);
    float *x = calloc(8 * 784, sizeof(float)), y[8] = {0};
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_SGD);
    nb_optimizer *opt = nb_optimizer_new(&o, nb_graph_params(g, NULL, NULL));
    assert_ok(nb_model_train_step(m, opt, x, y, 8, NULL));
    /* Off by default: nothing counted. */
    for (int i = 0; i < nb_graph_node_count(g); i++)
        assert_int_equal(nb_node_profile_of(nb_graph_node(g, i)).forward_calls, 0);
    nb_graph_profile(g, 1);
    for (int k = 0; k < 2; k++) assert_ok(nb_model_train_step(m, opt, x, y, 8, NULL));
    nb_graph_profile(g, 0);
    assert_ok(nb_model_train_step(m, opt, x, y, 8, NULL)); /* not counted */
    int convs = 0;
    double total = 0.0;
    for (int i = 0; i < nb_graph_node_count(g); i++) {
        nb_node *n = nb_graph_node(g, i);
        nb_node_profile p = nb_node_profile_of(n);
        if (!strcmp(nb_node_op(n), "conv2d")) {
            convs++;
            assert_int_equal(p.forward_calls, 2);
            assert_int_equal(p.backward_calls, 2);
            assert_non_null(nb_node_input(n, 1));
            assert_string_equal(nb_node_op(nb_node_input(n, 1)), "param");
            assert_null(nb_node_input(n, 3));
        }
        if (!strcmp(nb_node_op(n), "param")) assert_int_equal(p.forward_calls, 0);
        total += p.forward_s + p.backward_s;
    }
    assert_int_equal(convs, 2);
    assert_true(total > 0.0);
    /* Turning it on again starts from zero. */
    nb_graph_profile(g, 1);
    for (int i = 0; i < nb_graph_node_count(g); i++)
        assert_int_equal(nb_node_profile_of(nb_graph_node(g, i)).forward_calls, 0);
    assert_null(nb_graph_node(g, nb_graph_node_count(g)));
    assert_null(nb_graph_node(g, -1));
    nb_optimizer_free(opt);
    nb_model_free(m);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_direct_kernel),
        cmocka_unit_test(test_conv_cv_kernel),
        cmocka_unit_test(test_winograd_kernel),
        cmocka_unit_test(test_maxpool_kernels),
        cmocka_unit_test(test_batchnorm_kernels),
        cmocka_unit_test(test_stride2_rows),
        cmocka_unit_test(test_gemm_few_rows),
        cmocka_unit_test(test_conv_op_paths),
        cmocka_unit_test(test_gradients_written_first),
        cmocka_unit_test(test_relu_in_place),
        cmocka_unit_test(test_relu_in_place_after_batchnorm_and_add),
        cmocka_unit_test(test_lenet_steps_threads_bit_identical),
        cmocka_unit_test(test_steady_state_step_allocates_nothing),
        cmocka_unit_test(test_profile_counts_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
