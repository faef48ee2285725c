/* test_optimizer.c — the optimizers and schedules against torch.optim's
 * recorded runs (tests/fixtures/optimizer_fixtures.h, made by
 * make_optimizer_fixtures.py), option checking, checkpoint state and resume,
 * clipping, and thread-count independence. */
#include "support.h"

#include "fixtures/optimizer_fixtures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_FIX_OPT (sizeof fix_opt_cases / sizeof fix_opt_cases[0])
#define N_FIX_SCHED (sizeof fix_sched_cases / sizeof fix_sched_cases[0])

/* torch fuses some multiply-adds where nabla's portable build rounds twice:
 * a few float ulps over five steps, far below what a wrong rule gives. */
#define REL_TOL 1e-6
#define ABS_TOL 1e-7

static int close_enough(double got, double want) {
    return fabs(got - want) <= REL_TOL * fabs(want) + ABS_TOL;
}

/* Replay the fixture's gradients through nabla and hold every step against
 * torch's parameters. */
static void test_matches_torch(void **s) {
    (void)s;
    for (size_t c = 0; c < N_FIX_OPT; c++) {
        const fix_opt_case *fc = &fix_opt_cases[c];
        nb_optimizer *opt = nb_optimizer_new(&fc->opts, FIX_N);
        if (!opt) print_error("%s: %s\n", fc->name, nb_last_error());
        assert_non_null(opt);
        float p[FIX_N], g[FIX_N];
        memcpy(p, fix_params0, sizeof p);
        int clipped = 0;
        for (int t = 0; t < FIX_STEPS; t++) {
            memcpy(g, fix_grads[t], sizeof g);
            assert_ok(nb_optimizer_step(opt, p, g));
            clipped += memcmp(g, fix_grads[t], sizeof g) != 0;
            for (int i = 0; i < FIX_N; i++) {
                double want = fc->expect[t][i];
                if (!close_enough(p[i], want)) {
                    print_error("%s: step %d, param %d: got %.9g, torch %.9g\n", fc->name, t + 1, i,
                                (double)p[i], want);
                    fail();
                }
            }
        }
        /* Clipping acts on some steps and not others (the fixture makes sure
         * of it), and never where it is off. */
        if (fc->opts.clip_norm > 0) {
            assert_true(clipped > 0);
            assert_true(clipped < FIX_STEPS);
        } else {
            assert_int_equal(clipped, 0);
        }
        assert_int_equal(nb_optimizer_steps(opt), FIX_STEPS);
        nb_optimizer_free(opt);
    }
}

/* The lr each step uses, read before the step, against torch's schedulers
 * (and, for cosine past total_steps, the documented hold at min_lr). */
static void test_schedules_match_torch(void **s) {
    (void)s;
    for (size_t c = 0; c < N_FIX_SCHED; c++) {
        const fix_sched_case *fc = &fix_sched_cases[c];
        nb_optimizer *opt = nb_optimizer_new(&fc->opts, 1);
        if (!opt) print_error("%s: %s\n", fc->name, nb_last_error());
        assert_non_null(opt);
        float p = 0, g = 0;
        for (int t = 0; t < FIX_SCHED_STEPS; t++) {
            float lr = nb_optimizer_lr(opt);
            if (fabs(lr - fc->lr[t]) > 1e-7 * fc->lr[t]) {
                print_error("%s schedule: step %d: lr %.9g, torch %.9g\n", fc->name, t, (double)lr, fc->lr[t]);
                fail();
            }
            assert_ok(nb_optimizer_step(opt, &p, &g));
        }
        nb_optimizer_free(opt);
    }
}

/* The schedule is a function of the step count alone, so setting the count
 * moves it: far past total_steps cosine holds at min_lr. */
static void test_schedule_follows_set_steps(void **s) {
    (void)s;
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_SGD);
    o.lr = 0.5f;
    o.schedule = NB_SCHED_COSINE;
    o.total_steps = 100;
    o.min_lr = 0.01f;
    nb_optimizer *opt = nb_optimizer_new(&o, 3);
    assert_non_null(opt);
    assert_true(nb_optimizer_lr(opt) == 0.5f);
    nb_optimizer_set_steps(opt, 50);
    assert_true(fabsf(nb_optimizer_lr(opt) - 0.255f) < 1e-7f);
    nb_optimizer_set_steps(opt, 100);
    assert_true(nb_optimizer_lr(opt) == 0.01f);
    nb_optimizer_set_steps(opt, 1000000);
    assert_true(nb_optimizer_lr(opt) == 0.01f);
    assert_int_equal(nb_optimizer_steps(opt), 1000000);
    nb_optimizer_free(opt);

    o.schedule = NB_SCHED_STEP;
    o.step_size = 10;
    o.gamma = 0.5f;
    opt = nb_optimizer_new(&o, 3);
    assert_non_null(opt);
    nb_optimizer_set_steps(opt, 29);
    assert_true(nb_optimizer_lr(opt) == 0.125f);
    nb_optimizer_set_steps(opt, 30);
    assert_true(nb_optimizer_lr(opt) == 0.0625f);
    nb_optimizer_free(opt);
}

static void test_defaults_are_torch(void **s) {
    (void)s;
    nb_optimizer_opts sgd = nb_optimizer_defaults(NB_OPT_SGD);
    nb_optimizer_opts adam = nb_optimizer_defaults(NB_OPT_ADAM);
    nb_optimizer_opts adamw = nb_optimizer_defaults(NB_OPT_ADAMW);
    assert_int_equal(sgd.kind, NB_OPT_SGD);
    assert_true(sgd.lr == 0.01f && sgd.momentum == 0 && !sgd.nesterov && sgd.weight_decay == 0);
    assert_int_equal(adam.kind, NB_OPT_ADAM);
    assert_true(adam.lr == 0.001f && adam.beta1 == 0.9f && adam.beta2 == 0.999f && adam.eps == 1e-8f);
    assert_true(adam.weight_decay == 0);
    assert_int_equal(adamw.kind, NB_OPT_ADAMW);
    assert_true(adamw.lr == 0.001f && adamw.weight_decay == 0.01f);
    assert_true(sgd.clip_norm == 0 && adam.clip_norm == 0);
    assert_int_equal(sgd.schedule, NB_SCHED_CONSTANT);
    /* Each default is accepted as it is. */
    nb_optimizer_opts all[3] = {sgd, adam, adamw};
    for (int k = 0; k < 3; k++) {
        nb_optimizer *opt = nb_optimizer_new(&all[k], 10);
        assert_non_null(opt);
        nb_optimizer_free(opt);
    }
}

/* nb_optimizer_new refuses o with NB_ERR_ARG, and the message names the
 * field and shows the bad value. */
static void expect_bad(const nb_optimizer_opts *o, size_t n, const char *field, const char *value) {
    nb_optimizer *opt = nb_optimizer_new(o, n);
    if (opt) {
        print_error("options with a bad %s = %s were accepted\n", field, value);
        nb_optimizer_free(opt);
        fail();
    }
    const char *msg = nb_last_error();
    if (!strstr(msg, field) || !strstr(msg, value)) {
        print_error("bad %s = %s: message \"%s\" should name both\n", field, value, msg);
        fail();
    }
}

static void test_bad_options(void **s) {
    (void)s;
    const nb_optimizer_opts sgd = nb_optimizer_defaults(NB_OPT_SGD);
    const nb_optimizer_opts adam = nb_optimizer_defaults(NB_OPT_ADAM);
    nb_optimizer_opts o;

    o = sgd, o.lr = -0.5f, expect_bad(&o, 4, "lr", "-0.5");
    o = sgd, o.lr = NAN, expect_bad(&o, 4, "lr", "nan");
    o = adam, o.lr = INFINITY, expect_bad(&o, 4, "lr", "inf");
    o = sgd, o.momentum = 1.0f, expect_bad(&o, 4, "momentum", "1");
    o = sgd, o.momentum = -0.25f, expect_bad(&o, 4, "momentum", "-0.25");
    o = sgd, o.momentum = NAN, expect_bad(&o, 4, "momentum", "nan");
    o = sgd, o.nesterov = 1, expect_bad(&o, 4, "nesterov", "momentum 0");
    o = sgd, o.weight_decay = -1e-3f, expect_bad(&o, 4, "weight_decay", "-0.001");
    o = adam, o.weight_decay = INFINITY, expect_bad(&o, 4, "weight_decay", "inf");
    o = adam, o.beta1 = 1.0f, expect_bad(&o, 4, "beta1", "1");
    o = adam, o.beta2 = -0.5f, expect_bad(&o, 4, "beta2", "-0.5");
    o = adam, o.beta2 = 1.5f, expect_bad(&o, 4, "beta2", "1.5");
    o = adam, o.eps = 0, expect_bad(&o, 4, "eps", "0");
    o = adam, o.eps = -1e-8f, expect_bad(&o, 4, "eps", "-1e-08");
    o = sgd, o.clip_norm = -1, expect_bad(&o, 4, "clip_norm", "-1");
    o = adam, o.clip_norm = NAN, expect_bad(&o, 4, "clip_norm", "nan");
    o = sgd, o.kind = (nb_optimizer_kind)7, expect_bad(&o, 4, "kind", "7");
    o = sgd, o.schedule = (nb_schedule_kind)9, expect_bad(&o, 4, "schedule", "9");
    o = sgd, o.schedule = NB_SCHED_STEP, expect_bad(&o, 4, "step_size", "0");
    o = sgd, o.schedule = NB_SCHED_STEP, o.step_size = -3, expect_bad(&o, 4, "step_size", "-3");
    o = sgd, o.schedule = NB_SCHED_STEP, o.step_size = 3, o.gamma = 0, expect_bad(&o, 4, "gamma", "0");
    o = sgd, o.schedule = NB_SCHED_COSINE, expect_bad(&o, 4, "total_steps", "0");
    o = sgd, o.schedule = NB_SCHED_COSINE, o.total_steps = 10, o.min_lr = -0.5f,
    expect_bad(&o, 4, "min_lr", "-0.5");
    o = sgd, o.schedule = NB_SCHED_COSINE, o.total_steps = 10, o.min_lr = 0.5f,
    expect_bad(&o, 4, "min_lr", "0.5");
    o = sgd, o.schedule = NB_SCHED_INV, o.gamma = 1e-4f, expect_bad(&o, 4, "power", "0");
    o = sgd, o.schedule = NB_SCHED_INV, o.gamma = -1, o.power = 0.75f, expect_bad(&o, 4, "gamma", "-1");
    o = sgd, expect_bad(&o, 0, "n_params", "0");

    assert_null(nb_optimizer_new(NULL, 4));
    assert_non_null(strstr(nb_last_error(), "opts"));

    /* Fields a kind does not read are not held against it. */
    o = adam, o.momentum = 5, o.nesterov = 1;
    nb_optimizer *opt = nb_optimizer_new(&o, 4);
    assert_non_null(opt);
    nb_optimizer_free(opt);
    o = sgd, o.beta1 = 7, o.eps = 0;
    opt = nb_optimizer_new(&o, 4);
    assert_non_null(opt);
    nb_optimizer_free(opt);
}

static void test_step_null_args(void **s) {
    (void)s;
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_SGD);
    nb_optimizer *opt = nb_optimizer_new(&o, 2);
    float p[2] = {1, 2}, g[2] = {3, 4};
    assert_int_equal(nb_optimizer_step(NULL, p, g), NB_ERR_ARG);
    assert_int_equal(nb_optimizer_step(opt, NULL, g), NB_ERR_ARG);
    assert_non_null(strstr(nb_last_error(), "params"));
    assert_int_equal(nb_optimizer_step(opt, p, NULL), NB_ERR_ARG);
    assert_non_null(strstr(nb_last_error(), "grads"));
    assert_int_equal(nb_optimizer_steps(opt), 0);
    nb_optimizer_free(opt);
}

/* Which buffers exist for which kind. */
static void test_state_buffers(void **s) {
    (void)s;
    float *b0, *b1;
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_SGD);
    nb_optimizer *opt = nb_optimizer_new(&o, 5);
    nb_optimizer_state(opt, &b0, &b1);
    assert_null(b0);
    assert_null(b1);
    nb_optimizer_free(opt);

    o.momentum = 0.9f;
    opt = nb_optimizer_new(&o, 5);
    nb_optimizer_state(opt, &b0, &b1);
    assert_non_null(b0);
    assert_null(b1);
    nb_optimizer_free(opt);

    o = nb_optimizer_defaults(NB_OPT_ADAMW);
    opt = nb_optimizer_new(&o, 5);
    nb_optimizer_state(opt, &b0, &b1);
    assert_non_null(b0);
    assert_non_null(b1);
    for (int i = 0; i < 5; i++) assert_true(b0[i] == 0 && b1[i] == 0);
    /* After a step the buffers hold Adam's moments: m = (1 - beta1) g. */
    float p[5] = {0}, g[5] = {1, 2, 3, 4, 5};
    assert_ok(nb_optimizer_step(opt, p, g));
    for (int i = 0; i < 5; i++) assert_true(fabsf(b0[i] - 0.1f * g[i]) < 1e-6f);
    nb_optimizer_free(opt);
}

/* Run 3 steps; copy the state and the step count into a fresh optimizer;
 * run 2 more on both: the two must agree bit for bit. */
static void check_resume(const nb_optimizer_opts *o) {
    float *a0, *a1, *b0, *b1;
    float pa[FIX_N], pb[FIX_N], g[FIX_N];
    nb_optimizer *a = nb_optimizer_new(o, FIX_N);
    nb_optimizer *b = nb_optimizer_new(o, FIX_N);
    nb_optimizer *cold = nb_optimizer_new(o, FIX_N); /* state copied, step count not */
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(cold);
    memcpy(pa, fix_params0, sizeof pa);
    for (int t = 0; t < 3; t++) {
        memcpy(g, fix_grads[t], sizeof g);
        assert_ok(nb_optimizer_step(a, pa, g));
    }
    nb_optimizer_state(a, &a0, &a1);
    nb_optimizer_state(b, &b0, &b1);
    assert_true(!a0 == !b0 && !a1 == !b1);
    if (a0) memcpy(b0, a0, FIX_N * sizeof *b0);
    if (a1) memcpy(b1, a1, FIX_N * sizeof *b1);
    nb_optimizer_set_steps(b, nb_optimizer_steps(a));
    assert_int_equal(nb_optimizer_steps(b), 3);
    assert_true(nb_optimizer_lr(a) == nb_optimizer_lr(b));
    float *c0, *c1, pc[FIX_N];
    nb_optimizer_state(cold, &c0, &c1);
    if (a0) memcpy(c0, a0, FIX_N * sizeof *c0);
    if (a1) memcpy(c1, a1, FIX_N * sizeof *c1);
    memcpy(pb, pa, sizeof pb);
    memcpy(pc, pa, sizeof pc);
    for (int t = 3; t < FIX_STEPS; t++) {
        memcpy(g, fix_grads[t], sizeof g);
        assert_ok(nb_optimizer_step(a, pa, g));
        memcpy(g, fix_grads[t], sizeof g);
        assert_ok(nb_optimizer_step(b, pb, g));
        memcpy(g, fix_grads[t], sizeof g);
        assert_ok(nb_optimizer_step(cold, pc, g));
    }
    assert_memory_equal(pa, pb, sizeof pa);
    if (a0) assert_memory_equal(a0, b0, FIX_N * sizeof *a0);
    if (a1) assert_memory_equal(a1, b1, FIX_N * sizeof *a1);
    assert_int_equal(nb_optimizer_steps(a), nb_optimizer_steps(b));
    /* The step count matters (bias correction, first momentum step, the
     * schedule), so the test is not passing by accident. */
    assert_true(memcmp(pa, pc, sizeof pa) != 0);
    nb_optimizer_free(a);
    nb_optimizer_free(b);
    nb_optimizer_free(cold);
}

static void test_resume_is_identical(void **s) {
    (void)s;
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_SGD);
    o.lr = 0.1f, o.momentum = 0.9f, o.nesterov = 1, o.weight_decay = 1e-3f;
    o.schedule = NB_SCHED_STEP, o.step_size = 2, o.gamma = 0.5f;
    check_resume(&o);
    o = nb_optimizer_defaults(NB_OPT_ADAM);
    o.lr = 0.01f, o.weight_decay = 1e-2f, o.clip_norm = 1;
    o.schedule = NB_SCHED_COSINE, o.total_steps = 6, o.min_lr = 1e-4f;
    check_resume(&o);
    o = nb_optimizer_defaults(NB_OPT_ADAMW);
    o.lr = 0.01f, o.schedule = NB_SCHED_INV, o.gamma = 0.1f, o.power = 0.75f;
    check_resume(&o);
}

/* clip_grad_norm_ on known numbers: |(3, 4)| = 5 is scaled to max_norm 1,
 * and a gradient already inside the ball is left alone bit for bit. */
static void test_clip_known_values(void **s) {
    (void)s;
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_SGD);
    o.lr = 0; /* look at the clipping alone */
    o.clip_norm = 1;
    nb_optimizer *opt = nb_optimizer_new(&o, 2);
    assert_non_null(opt);
    float p[2] = {1, -1}, g[2] = {3, 4};
    assert_ok(nb_optimizer_step(opt, p, g));
    float c = (float)(1.0 / (5.0 + 1e-6));
    assert_true(g[0] == 3 * c && g[1] == 4 * c);
    assert_true(p[0] == 1 && p[1] == -1);
    float h[2] = {0.3f, 0.4f};
    assert_ok(nb_optimizer_step(opt, p, h));
    assert_true(h[0] == 0.3f && h[1] == 0.4f);
    nb_optimizer_free(opt);
}

/* A NaN or infinite gradient norm stops the step before anything changes. */
static void test_clip_nonfinite(void **s) {
    (void)s;
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_ADAM);
    o.clip_norm = 1;
    nb_optimizer *opt = nb_optimizer_new(&o, 3);
    assert_non_null(opt);
    float p[3] = {1, 2, 3}, g[3] = {0.5f, NAN, 1};
    assert_int_equal(nb_optimizer_step(opt, p, g), NB_ERR_NONFINITE);
    assert_non_null(strstr(nb_last_error(), "norm"));
    float h[3] = {0.5f, -INFINITY, 1};
    assert_int_equal(nb_optimizer_step(opt, p, h), NB_ERR_NONFINITE);
    assert_true(p[0] == 1 && p[1] == 2 && p[2] == 3);
    assert_true(g[0] == 0.5f && g[2] == 1);
    float *m, *v;
    nb_optimizer_state(opt, &m, &v);
    assert_true(m[0] == 0 && v[0] == 0);
    assert_int_equal(nb_optimizer_steps(opt), 0);
    nb_optimizer_free(opt);
}

/* Large enough for the threaded loops and several norm blocks with a ragged
 * tail: one thread and four must give the same bits, and the clipping must
 * agree with a plain double-precision norm. */
static void run_large(const nb_optimizer_opts *o, size_t n, int threads, float *p, float *g_out) {
    nb_rng rng;
    nb_rng_seed(&rng, 99);
    fill_uniform(p, n, -1, 1, &rng);
    float *g = malloc(n * sizeof *g);
    assert_non_null(g);
    nb_set_threads(test_threads(threads));
    nb_optimizer *opt = nb_optimizer_new(o, n);
    assert_non_null(opt);
    for (int t = 0; t < 3; t++) {
        fill_uniform(g, n, -0.05f, 0.05f, &rng);
        assert_ok(nb_optimizer_step(opt, p, g));
    }
    memcpy(g_out, g, n * sizeof *g);
    nb_optimizer_free(opt);
    free(g);
}

static void test_threads_do_not_change_results(void **s) {
    (void)s;
    const size_t n = 100003;
    int saved = nb_get_threads();
    float *p1 = malloc(n * sizeof *p1), *p4 = malloc(n * sizeof *p4);
    float *g1 = malloc(n * sizeof *g1), *g4 = malloc(n * sizeof *g4);
    assert_true(p1 && p4 && g1 && g4);
    nb_optimizer_opts opts[2] = {nb_optimizer_defaults(NB_OPT_ADAM), nb_optimizer_defaults(NB_OPT_SGD)};
    opts[0].clip_norm = 2, opts[0].weight_decay = 1e-2f;
    opts[1].clip_norm = 2, opts[1].momentum = 0.9f, opts[1].nesterov = 1;
    for (int k = 0; k < 2; k++) {
        run_large(&opts[k], n, 1, p1, g1);
        run_large(&opts[k], n, 4, p4, g4);
        assert_memory_equal(p1, p4, n * sizeof *p1);
        assert_memory_equal(g1, g4, n * sizeof *g1);
    }
    nb_set_threads(saved);

    /* The last gradient (uniform, norm about 0.05 sqrt(n / 3) ~ 9) was
     * clipped to norm 2 up to float rounding. */
    double sq = 0;
    for (size_t i = 0; i < n; i++) sq += (double)g1[i] * g1[i];
    assert_true(fabs(sqrt(sq) - 2.0) < 1e-5);
    free(p1), free(p4), free(g1), free(g4);
}

/* ---- allocation failures ------------------------------------------------- */

/* Every allocation nb_optimizer_new makes is failed in turn: it reports
 * NB_ERR_NOMEM and leaves nothing allocated. */
static void test_alloc_failure_leaks_nothing(void **s) {
    (void)s;
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_ADAM);
    o.clip_norm = 1; /* the most allocations: struct, m, v, norm blocks */
    nb_set_allocator(counting_malloc, counting_realloc, counting_free);
    const long plenty = 1000000;
    alloc_budget = plenty, live_allocs = 0;
    nb_optimizer *opt = nb_optimizer_new(&o, 1000);
    assert_non_null(opt);
    long total = plenty - alloc_budget;
    nb_optimizer_free(opt);
    assert_int_equal(live_allocs, 0);
    assert_true(total >= 4);
    for (long k = 0; k < total; k++) { /* the first k succeed, the next fails */
        alloc_budget = k, live_allocs = 0;
        assert_null(nb_optimizer_new(&o, 1000));
        assert_non_null(strstr(nb_last_error(), "out of memory"));
        assert_int_equal(live_allocs, 0);
    }
    nb_set_allocator(NULL, NULL, NULL);
    alloc_budget = -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_torch),
        cmocka_unit_test(test_schedules_match_torch),
        cmocka_unit_test(test_schedule_follows_set_steps),
        cmocka_unit_test(test_defaults_are_torch),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_step_null_args),
        cmocka_unit_test(test_state_buffers),
        cmocka_unit_test(test_resume_is_identical),
        cmocka_unit_test(test_clip_known_values),
        cmocka_unit_test(test_clip_nonfinite),
        cmocka_unit_test(test_threads_do_not_change_results),
        cmocka_unit_test(test_alloc_failure_leaks_nothing),
    };
    return cmocka_run_group_tests_name("optimizer", tests, NULL, NULL);
}
