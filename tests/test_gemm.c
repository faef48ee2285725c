/* test_gemm.c — nb_sgemm against a double-precision triple loop on awkward
 * shapes, every transpose combination, alpha/beta values, padded leading
 * dimensions and garbage in C; each SIMD micro-kernel the CPU has against
 * the portable one; and bit-identical results for 1 and 2 threads. */
#include "support.h"

#include "kernels/kernels.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int ta, tb, m, n, k, lda, ldb, ldc;
    float alpha, beta;
} gemm_case;

/* Stored shapes: A is m x k (k x m when transposed), B is k x n (n x k). */
static size_t a_size(const gemm_case *c) { return (size_t)(c->ta ? c->k : c->m) * c->lda; }
static size_t b_size(const gemm_case *c) { return (size_t)(c->tb ? c->n : c->k) * c->ldb; }
static size_t c_size(const gemm_case *c) { return (size_t)c->m * c->ldc; }

static gemm_case make_case(int ta, int tb, int m, int n, int k, int pad, float alpha, float beta) {
    gemm_case c = {ta, tb, m, n, k, 0, 0, 0, alpha, beta};
    c.lda = (ta ? m : k) + pad;
    c.ldb = (tb ? k : n) + pad;
    c.ldc = n + pad;
    return c;
}

static void run(const gemm_case *c, const float *a, const float *b, float *out) {
    nb_sgemm(c->ta, c->tb, c->m, c->n, c->k, c->alpha, a, c->lda, b, c->ldb, c->beta, out, c->ldc);
}

/* Every element within the standard floating-point bound of its dot
 * product, with the reference in double; padding columns of C untouched. */
static void check_case(const gemm_case *c, nb_rng *rng) {
    float *a = malloc(a_size(c) * sizeof(float)), *b = malloc(b_size(c) * sizeof(float));
    float *c0 = malloc(c_size(c) * sizeof(float)), *out = malloc(c_size(c) * sizeof(float));
    fill_uniform(a, a_size(c), -1, 1, rng);
    fill_uniform(b, b_size(c), -1, 1, rng);
    fill_uniform(c0, c_size(c), -1, 1, rng);
    if (c->beta == 0.0f) /* C must not be read: NaN would poison the result */
        for (size_t i = 0; i < c_size(c); i++) c0[i] = (i % 3) ? NAN : INFINITY;
    memcpy(out, c0, c_size(c) * sizeof(float));
    run(c, a, b, out);
    for (int i = 0; i < c->m; i++) {
        for (int j = 0; j < c->n; j++) {
            double acc = 0, bound = 0;
            for (int p = 0; p < c->k; p++) {
                double x = c->ta ? a[(size_t)p * c->lda + i] : a[(size_t)i * c->lda + p];
                double y = c->tb ? b[(size_t)j * c->ldb + p] : b[(size_t)p * c->ldb + j];
                acc += x * y;
                bound += fabs(x * y);
            }
            double cij = c0[(size_t)i * c->ldc + j];
            double want = c->alpha * acc + (c->beta == 0.0f ? 0.0 : c->beta * cij);
            bound = fabs(c->alpha) * bound + (c->beta == 0.0f ? 0.0 : fabs(c->beta * cij));
            double tol = 2.0 * (c->k + 3) * FLT_EPSILON * bound + 1e-30;
            double got = out[(size_t)i * c->ldc + j];
            if (!(fabs(got - want) <= tol)) {
                print_error("ta %d tb %d m %d n %d k %d alpha %g beta %g: C[%d][%d] = %.9g, want %.9g\n",
                            c->ta, c->tb, c->m, c->n, c->k, c->alpha, c->beta, i, j, got, want);
                fail();
            }
        }
        for (int j = c->n; j < c->ldc; j++) {
            size_t at = (size_t)i * c->ldc + j;
            assert_memory_equal(&out[at], &c0[at], sizeof(float));
        }
    }
    free(a), free(b), free(c0), free(out);
}

static const int sizes[] = {1, 7, 17, 63, 65, 257};
enum { N_SIZES = sizeof sizes / sizeof sizes[0] };
static const float alphas[] = {1.0f, -0.5f, 2.0f};
static const float betas[] = {0.0f, 1.0f, 0.3f, -1.5f};

/* All shape triples and transposes, cycling alpha, beta and padding. */
static void check_all_shapes(int thorough) {
    nb_rng rng;
    nb_rng_seed(&rng, 42);
    int count = 0;
    for (int t = 0; t < 4; t++)
        for (int mi = 0; mi < N_SIZES; mi++)
            for (int ni = 0; ni < N_SIZES; ni++)
                for (int ki = 0; ki < N_SIZES; ki++, count++) {
                    /* The SIMD paths skip the largest cubes to keep the test short. */
                    if (!thorough && sizes[mi] * sizes[ni] * sizes[ki] > 65 * 65 * 257) continue;
                    gemm_case c = make_case(t & 1, t >> 1, sizes[mi], sizes[ni], sizes[ki],
                                            (count % 3) * 3, alphas[count % 3], betas[count % 4]);
                    check_case(&c, &rng);
                }
}

/* Every SIMD target a build can have; the ones this CPU cannot run are
 * skipped, and each test puts back the target it found (the suite may run
 * forced to one with NABLA_ISA). */
static const char *const targets[] = {"generic", "avx2", "avx512", "neon"};
#define TARGETS 4

static void test_awkward_shapes_active(void **s) {
    (void)s;
    print_message("SIMD target: %s\n", nb_isa_name());
    check_all_shapes(1);
}

static void test_awkward_shapes_each_target(void **s) {
    (void)s;
    const char *was = nb_isa_name();
    for (int p = 0; p < TARGETS; p++) {
        if (nb_isa_set(targets[p]) != NB_OK) {
            print_message("SIMD target %s not available here, skipped\n", targets[p]);
            continue;
        }
        check_all_shapes(0);
    }
    assert_int_equal(nb_isa_set(was), NB_OK);
}

/* K longer than any kernel's KC block (AVX-512 takes 1024 at a time), so
 * later blocks add onto what the first left in C, for every kernel. */
static void test_long_k_spans_blocks(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 11);
    const char *was = nb_isa_name();
    for (int p = 0; p < TARGETS; p++) {
        if (nb_isa_set(targets[p]) != NB_OK) continue;
        for (int t = 0; t < 4; t++) {
            gemm_case c = make_case(t & 1, t >> 1, 13, 37, 2500, t, 1.0f, t % 2 ? 0.5f : 0.0f);
            check_case(&c, &rng);
        }
    }
    assert_int_equal(nb_isa_set(was), NB_OK);
}

/* Each SIMD target agrees with the portable one to rounding. */
static void test_targets_agree_with_generic(void **s) {
    (void)s;
    const char *was = nb_isa_name();
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    for (int t = 0; t < 4; t++) {
        gemm_case c = make_case(t & 1, t >> 1, 131, 203, 517, 5, 0.75f, 0.5f);
        float *a = malloc(a_size(&c) * sizeof(float)), *b = malloc(b_size(&c) * sizeof(float));
        float *c0 = malloc(c_size(&c) * sizeof(float)), *want = malloc(c_size(&c) * sizeof(float));
        float *got = malloc(c_size(&c) * sizeof(float));
        fill_uniform(a, a_size(&c), -1, 1, &rng);
        fill_uniform(b, b_size(&c), -1, 1, &rng);
        fill_uniform(c0, c_size(&c), -1, 1, &rng);
        memcpy(want, c0, c_size(&c) * sizeof(float));
        assert_int_equal(nb_isa_set("generic"), NB_OK);
        run(&c, a, b, want);
        for (int p = 1; p < TARGETS; p++) {
            if (nb_isa_set(targets[p]) != NB_OK) continue;
            memcpy(got, c0, c_size(&c) * sizeof(float));
            run(&c, a, b, got);
            for (size_t i = 0; i < c_size(&c); i++) assert_float_equal(got[i], want[i], 2e-4);
        }
        assert_int_equal(nb_isa_set(was), NB_OK);
        free(a), free(b), free(c0), free(want), free(got);
    }
}

/* A weight gradient on a small batch (K <= 16, a million elements of C or
 * more) takes the streaming-store path: written and accumulated, A stored
 * either way, rows that start on and off a cache line. */
static void test_short_k_products(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    const int ks[] = {1, 8, 16};
    for (int i = 0; i < 3; i++)
        for (int ta = 0; ta < 2; ta++)
            for (int pad = 0; pad < 4; pad += 3) {
                gemm_case c = make_case(ta, 0, 1031, 1013, ks[i], pad, i == 1 ? -0.5f : 1.0f,
                                        pad ? 0.3f : 0.0f);
                check_case(&c, &rng);
            }
}

/* Threads split tiles of C, never K: results are bit-identical. */
static void test_threads_bit_identical(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 9);
    int saved = nb_get_threads();
    const char *was = nb_isa_name();
    const int shapes[][3] = {{257, 263, 300}, {1000, 37, 517}, {20, 1100, 700}, {1031, 1013, 8}, {8, 4096, 600}};
    for (int p = 0; p < TARGETS; p++) {
        if (nb_isa_set(targets[p]) != NB_OK) continue;
        for (int sh = 0; sh < 5; sh++)
            for (int t = 0; t < 4; t++) {
                gemm_case c = make_case(t & 1, t >> 1, shapes[sh][0], shapes[sh][1], shapes[sh][2],
                                        1, 1.0f, t == 3 ? 0.0f : 0.5f);
                float *a = malloc(a_size(&c) * sizeof(float)), *b = malloc(b_size(&c) * sizeof(float));
                float *one = malloc(c_size(&c) * sizeof(float)), *two = malloc(c_size(&c) * sizeof(float));
                fill_uniform(a, a_size(&c), -1, 1, &rng);
                fill_uniform(b, b_size(&c), -1, 1, &rng);
                fill_uniform(one, c_size(&c), -1, 1, &rng);
                memcpy(two, one, c_size(&c) * sizeof(float));
                nb_set_threads(1);
                run(&c, a, b, one);
                nb_set_threads(test_threads(2));
                run(&c, a, b, two);
                assert_memory_equal(one, two, c_size(&c) * sizeof(float));
                free(a), free(b), free(one), free(two);
            }
    }
    assert_int_equal(nb_isa_set(was), NB_OK);
    nb_set_threads(saved);
}

static void test_degenerate_sizes(void **s) {
    (void)s;
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    float c[4] = {1, 2, 3, 4};
    nb_sgemm(0, 0, 2, 2, 0, 1.0f, a, 2, b, 2, 2.0f, c, 2); /* K = 0: C = beta C */
    assert_float_equal(c[3], 8, 0);
    nb_sgemm(0, 0, 2, 2, 0, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    assert_float_equal(c[0], 0, 0);
    c[0] = 5;
    nb_sgemm(0, 0, 0, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2); /* M = 0: nothing happens */
    assert_float_equal(c[0], 5, 0);
    c[1] = NAN;
    nb_sgemm(0, 0, 2, 2, 2, 0.0f, a, 2, b, 2, 0.0f, c, 2); /* alpha = 0, beta = 0: zeros */
    for (int i = 0; i < 4; i++) assert_float_equal(c[i], 0, 0);
}

static void test_reference_matches_known_product(void **s) {
    (void)s;
    /* [1 2; 3 4] x [5 6; 7 8] = [19 22; 43 50] */
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4], r[4];
    nb_sgemm(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    nb_sgemm_reference(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, r, 2);
    const float want[4] = {19, 22, 43, 50};
    for (int i = 0; i < 4; i++) {
        assert_float_equal(c[i], want[i], 0);
        assert_float_equal(r[i], want[i], 0);
    }
}

/* Forcing a target: what the CPU runs is taken and reported, an unknown
 * or unsupported name is refused with the list of what runs, and changes
 * nothing. */
static void test_force_target(void **s) {
    (void)s;
    const char *was = nb_isa_name();
    assert_int_equal(nb_isa_set("generic"), NB_OK);
    assert_string_equal(nb_isa_name(), "generic");
    assert_true(nb_isa_supported("generic"));
    assert_int_equal(nb_isa_set("sse9"), NB_ERR_ARG);
    assert_non_null(strstr(nb_last_error(), "unknown SIMD target 'sse9'"));
    assert_string_equal(nb_isa_name(), "generic");
    for (int p = 1; p < TARGETS; p++)
        if (!nb_isa_supported(targets[p])) {
            assert_int_equal(nb_isa_set(targets[p]), NB_ERR_ARG);
            assert_non_null(strstr(nb_last_error(), "generic"));
        }
    assert_int_equal(nb_isa_set(NULL), NB_OK); /* the best this CPU has: listed first */
    assert_int_equal(strncmp(nb_isa_targets(), nb_isa_name(), strlen(nb_isa_name())), 0);
    assert_int_equal(nb_isa_set(was), NB_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_matches_known_product),
        cmocka_unit_test(test_degenerate_sizes),
        cmocka_unit_test(test_force_target),
        cmocka_unit_test(test_awkward_shapes_active),
        cmocka_unit_test(test_awkward_shapes_each_target),
        cmocka_unit_test(test_targets_agree_with_generic),
        cmocka_unit_test(test_long_k_spans_blocks),
        cmocka_unit_test(test_short_k_products),
        cmocka_unit_test(test_threads_bit_identical),
    };
    return cmocka_run_group_tests_name("gemm", tests, NULL, NULL);
}
