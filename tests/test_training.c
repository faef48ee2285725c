/* test_training.c — the training loop when things go wrong: a NaN or an
 * infinity in a loss, a gradient or the weights (stopped with the step and
 * the tensor named, or skipped on request), checkpoints that never take
 * non-finite weights, stopping on request and resuming to the same numbers,
 * epoch reports that do not depend on where a run was resumed, and
 * allocation failures anywhere from model creation to evaluation. */
#include "support.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

static void assert_error_has(const char *needle) {
    if (!strstr(nb_last_error(), needle))
        print_error("error '%s' lacks '%s'\n", nb_last_error(), needle);
    assert_non_null(strstr(nb_last_error(), needle));
}

/* The whole file, or NULL when it cannot be read; *n gets its size. */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0;
    *n = 0;
    for (;;) {
        if (*n == cap) buf = realloc(buf, cap = cap ? 2 * cap : 4096);
        size_t k = fread(buf + *n, 1, cap - *n, f);
        if (k == 0) break;
        *n += k;
    }
    fclose(f);
    return buf;
}

/* 1x4x4 images in three classes: class c lights pixel 4 + 4c over noise.
 * Pixels 0 and 1 stay dark except in the samples listed in `hot`, where
 * they are 255: with the weights hot_weights() sets, those samples (and
 * only those) overflow the first logit to infinity. */
static nb_dataset tiny_data(int count, const int *hot, int n_hot, uint64_t seed) {
    nb_dataset d = {count, 1, 4, 4, malloc((size_t)count * 16), malloc((size_t)count * sizeof(int32_t)), NULL};
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    for (int i = 0; i < count; i++) {
        uint8_t *img = d.images + (size_t)i * 16;
        for (int k = 0; k < 16; k++) img[k] = (uint8_t)nb_rng_below(&rng, 60);
        img[0] = img[1] = 0;
        d.labels[i] = i % 3;
        img[4 + 4 * (i % 3)] = 240;
    }
    for (int h = 0; h < n_hot; h++) d.images[(size_t)hot[h] * 16] = d.images[(size_t)hot[h] * 16 + 1] = 255;
    return d;
}

static void free_data(nb_dataset *d) {
    free(d->images);
    free(d->labels);
}

static const char tiny_net[] = "input 1 4 4\nflatten\nlinear name=fc out=3\n";

static nb_model *tiny_model(uint64_t seed) {
    nb_model_config cfg = {.seed = seed};
    nb_model *m = nb_model_parse(tiny_net, "tiny.net", &cfg);
    if (!m) print_error("%s\n", nb_last_error());
    assert_non_null(m);
    return m;
}

/* The weights from pixels 0 and 1 to class 0 near FLT_MAX: finite, and
 * harmless while those pixels are dark, but 3e38 + 3e38 overflows. Their
 * gradients stay 0 on dark pixels, so training never moves them. */
static void hot_weights(nb_model *m) {
    float *p;
    nb_graph_params(nb_model_graph(m), &p, NULL);
    p[0] = p[1] = 3e38f; /* fc.weight is [3, 16], row 0 first */
}

static nb_optimizer *adam(const nb_model *m) {
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_ADAM);
    o.lr = 0.01f;
    nb_optimizer *opt = nb_optimizer_new(&o, nb_graph_params(nb_model_graph(m), NULL, NULL));
    assert_non_null(opt);
    return opt;
}

static size_t param_count(const nb_model *m) { return nb_graph_params(nb_model_graph(m), NULL, NULL); }

static float *params_of(const nb_model *m) {
    float *p;
    nb_graph_params(nb_model_graph(m), &p, NULL);
    return p;
}

typedef struct reports {
    int calls;
    nb_epoch_report r[8];
} reports;

static void collect(const nb_epoch_report *r, void *user) {
    reports *rs = user;
    if (rs->calls < 8) rs->r[rs->calls] = *r;
    rs->calls++;
}

/* ---- non-finite values ---------------------------------------------------- */

/* The loss is finite (the hidden layer outputs tanh(0) = 0), but fc2's
 * weights are so large that the gradient flowing back to the hidden layer
 * overflows: the step must stop before the update and name fc1.weight. */
static void test_nonfinite_gradient_is_named(void **s) {
    (void)s;
    nb_model_config cfg = {.seed = 1};
    nb_model *m = nb_model_parse("input 4\nlinear name=fc1 out=2\ntanh\nlinear name=fc2 out=10\n",
                                 "grad.net", &cfg);
    assert_non_null(m);
    float *p = params_of(m);
    size_t n = param_count(m);
    assert_int_equal(n, 4 * 2 + 2 + 2 * 10 + 10);
    memset(p, 0, n * sizeof *p);
    float *w2 = p + 10; /* fc2.weight [10, 2]: class 0 (the label) against the rest */
    for (int k = 0; k < 10; k++) w2[2 * k] = w2[2 * k + 1] = k == 0 ? -3e38f : 3e38f;
    float *before = malloc(n * sizeof *before);
    memcpy(before, p, n * sizeof *p);
    nb_optimizer *opt = adam(m);
    float x[4] = {1, 1, 1, 1}, y[1] = {0}, loss = -1;
    assert_int_equal(nb_model_train_step(m, opt, x, y, 1, &loss), NB_ERR_NONFINITE);
    assert_error_has("the gradient of fc1.weight is not finite (element 0 is inf)");
    assert_memory_equal(before, p, n * sizeof *p); /* no update */
    assert_int_equal(nb_optimizer_steps(opt), 0);
    nb_optimizer_free(opt);
    free(before);
    nb_model_free(m);
}

static void test_nonfinite_loss_and_weights(void **s) {
    (void)s;
    nb_model *m = tiny_model(1);
    nb_dataset d = tiny_data(12, NULL, 0, 1);
    nb_optimizer *opt = adam(m);
    params_of(m)[21] = NAN; /* fc.weight[1][5] */
    float x[16 * 4], y[4];
    nb_dataset_batch(&d, NULL, 0, 4, NULL, NULL, x, y);
    assert_int_equal(nb_model_train_step(m, opt, x, y, 4, NULL), NB_ERR_NONFINITE);
    assert_error_has("the loss is nan");
    /* nb_train refuses such weights before the first step. */
    nb_train_opts o = nb_train_defaults();
    o.batch = 4;
    o.skip_nonfinite = 1;
    assert_int_equal(nb_train(m, opt, &d, &o), NB_ERR_NONFINITE);
    assert_error_has("parameter fc.weight is not finite (element 21 is nan)");
    assert_int_equal(nb_optimizer_steps(opt), 0);
    nb_optimizer_free(opt);
    free_data(&d);
    nb_model_free(m);
}

/* Samples 5 and 17 overflow: without skip_nonfinite the run stops at the
 * step of the first (step 2, in file order with batch 4) naming it; with
 * it, the two steps of each epoch that hold them are skipped and counted,
 * and the rest train. */
static void test_skip_nonfinite_steps(void **s) {
    (void)s;
    static const int hot[2] = {5, 17};
    nb_dataset d = tiny_data(24, hot, 2, 2);
    nb_model *m = tiny_model(1);
    hot_weights(m);
    nb_optimizer *opt = adam(m);
    nb_train_opts o = nb_train_defaults();
    o.epochs = 2;
    o.batch = 4;
    o.shuffle = 0;
    reports rs = {0};
    o.on_epoch = collect;
    o.user = &rs;
    assert_int_equal(nb_train(m, opt, &d, &o), NB_ERR_NONFINITE);
    assert_error_has("epoch 1, step 2: model 'tiny': the loss is nan");
    assert_int_equal(nb_optimizer_steps(opt), 1);
    assert_int_equal(rs.calls, 0);
    nb_optimizer_free(opt);
    nb_model_free(m);

    m = tiny_model(1);
    hot_weights(m);
    opt = adam(m);
    o.skip_nonfinite = 1;
    assert_ok(nb_train(m, opt, &d, &o));
    assert_int_equal(rs.calls, 2);
    for (int e = 0; e < 2; e++) {
        assert_int_equal(rs.r[e].skipped, 2);
        assert_int_equal(rs.r[e].samples, 16);
        assert_true(isfinite(rs.r[e].train_loss));
    }
    assert_int_equal(rs.r[1].step, 12);
    assert_int_equal(nb_optimizer_steps(opt), 8);
    assert_true(params_of(m)[0] == 3e38f); /* dark pixels: never moved */
    nb_optimizer_free(opt);
    nb_model_free(m);
    free_data(&d);
}

/* Weights that turn non-finite after the first epoch (here by the report
 * callback, standing in for an update that overflowed) must not replace
 * the checkpoint of that epoch. */
typedef struct poison {
    nb_model *m;
    const char *checkpoint;
    unsigned char *saved;
    size_t saved_n;
} poison;

static void poison_at_epoch_2(const nb_epoch_report *r, void *user) {
    poison *p = user;
    if (r->epoch != 2) return;
    p->saved = slurp(p->checkpoint, &p->saved_n);
    params_of(p->m)[7] = INFINITY;
}

static void test_checkpoint_never_takes_nonfinite_weights(void **s) {
    (void)s;
    nb_dataset d = tiny_data(24, NULL, 0, 3);
    nb_model *m = tiny_model(1);
    nb_optimizer *opt = adam(m);
    const char *ck = tmp_path("poison.ckpt");
    poison p = {m, ck, NULL, 0};
    nb_train_opts o = nb_train_defaults();
    o.epochs = 3;
    o.batch = 4;
    o.checkpoint = ck;
    o.on_epoch = poison_at_epoch_2;
    o.user = &p;
    assert_int_equal(nb_train(m, opt, &d, &o), NB_ERR_NONFINITE);
    assert_error_has("poison.ckpt: checkpoint not written, the previous one is kept: parameter "
                     "fc.weight is not finite (element 7 is inf)");
    assert_non_null(p.saved);
    size_t n;
    unsigned char *now = slurp(ck, &n);
    assert_int_equal(n, p.saved_n);
    assert_memory_equal(now, p.saved, n);
    assert_no_temporaries(tmpdir);
    free(now);
    free(p.saved);
    nb_optimizer_free(opt);
    nb_model_free(m);
    free_data(&d);
}

/* ---- stopping and resuming ------------------------------------------------------ */

/* A run of `epochs` over 24 samples in batches of 5 (5 batches an epoch,
 * the last of 4), shuffled, with a test set; optionally checkpointing,
 * resuming or stopping. */
typedef struct plan {
    int epochs;
    const char *checkpoint, *resume, *stop_checkpoint;
    long every;
    volatile sig_atomic_t *stop;
    nb_epoch_fn on_epoch;
    void *user;
} plan;

static nb_status train_plan(nb_model *m, const nb_dataset *d, const plan *p) {
    nb_optimizer *opt = adam(m);
    nb_train_opts o = nb_train_defaults();
    o.epochs = p->epochs;
    o.batch = 5;
    o.seed = 7;
    o.test = d;
    o.checkpoint = p->checkpoint;
    o.checkpoint_every = p->every;
    o.resume = p->resume;
    o.stop = p->stop;
    o.stop_checkpoint = p->stop_checkpoint;
    o.on_epoch = p->on_epoch;
    o.user = p->user;
    nb_status s = nb_train(m, opt, d, &o);
    nb_optimizer_free(opt);
    return s;
}

static volatile sig_atomic_t stop_flag;

static void stop_after_epoch_1(const nb_epoch_report *r, void *user) {
    collect(r, user);
    if (r->epoch == 1) stop_flag = 1;
}

/* Stopped before its first step, and again after its first epoch; each
 * time resumed: the weights and epoch reports are those of a straight run. */
static void test_stop_on_request_and_resume(void **s) {
    (void)s;
    nb_dataset d = tiny_data(24, NULL, 0, 4);
    nb_model *straight = tiny_model(1);
    reports want = {0};
    assert_ok(train_plan(straight, &d, &(plan){.epochs = 3, .on_epoch = collect, .user = &want}));
    assert_int_equal(want.calls, 3);

    const char *ck = tmp_path("stop.ckpt");
    nb_model *m = tiny_model(1);
    stop_flag = 1;
    assert_int_equal(train_plan(m, &d, &(plan){.epochs = 3, .stop = &stop_flag, .stop_checkpoint = ck}),
                     NB_ERR_STOPPED);
    assert_error_has("stopped after step 0 (epoch 1, batch 0 of 5); checkpoint written to");
    assert_error_has("stop.ckpt");
    nb_model_free(m);

    stop_flag = 0;
    reports got = {0};
    m = tiny_model(2); /* another init: everything must come from the checkpoint */
    assert_int_equal(train_plan(m, &d, &(plan){.epochs = 3, .resume = ck, .checkpoint = ck,
                                               .stop = &stop_flag, .on_epoch = stop_after_epoch_1,
                                               .user = &got}),
                     NB_ERR_STOPPED);
    assert_error_has("stopped after step 5 (epoch 2, batch 0 of 5)");
    nb_model_free(m);
    stop_flag = 0;
    m = tiny_model(3);
    assert_ok(train_plan(m, &d, &(plan){.epochs = 3, .resume = ck, .on_epoch = collect, .user = &got}));
    assert_int_equal(got.calls, 3);
    assert_memory_equal(params_of(m), params_of(straight), param_count(m) * sizeof(float));
    for (int e = 0; e < 3; e++) {
        assert_true(got.r[e].train_loss == want.r[e].train_loss);
        assert_true(got.r[e].test_loss == want.r[e].test_loss);
        assert_int_equal(got.r[e].samples, want.r[e].samples);
    }
    /* Without a place to write, a stop still stops, and says so. */
    stop_flag = 1;
    assert_int_equal(train_plan(m, &d, &(plan){.epochs = 3, .stop = &stop_flag}), NB_ERR_STOPPED);
    assert_error_has("no checkpoint was asked for");
    stop_flag = 0;
    nb_model_free(m);
    nb_model_free(straight);
    free_data(&d);
}

/* With checkpoint_every 5 the checkpoint of step 5 is written after the
 * epoch's last step but before its evaluation and report. A run resumed
 * from it (as after a crash in between) reports epoch 1 again, with the
 * same train loss, and ends where a straight run ends. */
static void keep_first_checkpoint(const nb_epoch_report *r, void *user) {
    if (r->epoch != 1) return;
    size_t n;
    unsigned char *bytes = slurp(tmp_path("every.ckpt"), &n);
    assert_non_null(bytes);
    FILE *f = fopen(user, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
    free(bytes);
}

static void test_checkpoint_every_and_pending_report(void **s) {
    (void)s;
    nb_dataset d = tiny_data(24, NULL, 0, 5);
    nb_model *straight = tiny_model(1);
    reports want = {0};
    assert_ok(train_plan(straight, &d, &(plan){.epochs = 2, .on_epoch = collect, .user = &want}));

    const char *ck = tmp_path("every.ckpt");
    char copy[160];
    snprintf(copy, sizeof copy, "%s", tmp_path("every-step5.ckpt"));
    nb_model *m = tiny_model(1);
    assert_ok(train_plan(m, &d, &(plan){.epochs = 2, .checkpoint = ck, .every = 5,
                                        .on_epoch = keep_first_checkpoint, .user = copy}));
    assert_memory_equal(params_of(m), params_of(straight), param_count(m) * sizeof(float));
    nb_model_free(m);

    nb_meta meta[32];
    int n_meta = 0;
    nb_named_tensor none = {0};
    assert_ok(nb_safetensors_load(copy, &none, 0, 1, meta, 32, &n_meta));
    int found = 0;
    for (int i = 0; i < n_meta; i++) {
        if (!strcmp(meta[i].key, "nabla.step")) found += !strcmp(meta[i].value, "5");
        if (!strcmp(meta[i].key, "nabla.batch_in_epoch")) found += !strcmp(meta[i].value, "5");
        if (!strcmp(meta[i].key, "nabla.epoch")) found += !strcmp(meta[i].value, "0");
    }
    assert_int_equal(found, 3);

    reports got = {0};
    m = tiny_model(2);
    assert_ok(train_plan(m, &d, &(plan){.epochs = 2, .resume = copy, .on_epoch = collect, .user = &got}));
    assert_int_equal(got.calls, 2);
    for (int e = 0; e < 2; e++) {
        assert_int_equal(got.r[e].epoch, e + 1);
        assert_true(got.r[e].train_loss == want.r[e].train_loss);
        assert_true(got.r[e].test_accuracy == want.r[e].test_accuracy);
    }
    assert_memory_equal(params_of(m), params_of(straight), param_count(m) * sizeof(float));
    nb_model_free(m);
    nb_model_free(straight);
    free_data(&d);
    assert_no_temporaries(tmpdir);
}

/* ---- allocation failures ---------------------------------------------------------- */

/* A network with a layer of every kind that holds state for backward
 * (conv, max-pool argmax, dropout mask), then everything a user does with
 * it: create, load weights, one step, a checkpointed run, a resumed run,
 * loading the checkpoint as weights, evaluation and prediction. Stops at
 * the first failure, freeing what it made. */
static const char oom_net[] = "input 1 4 4\nconv2d name=c out=2 kernel=3 pad=1\nrelu\n"
                              "maxpool2d kernel=2\nflatten\ndropout p=0.25\nlinear name=fc out=3\n";

static nb_status workload(const nb_dataset *d, const char *weights, const char *ck) {
    nb_model_config cfg = {.seed = 1};
    nb_model *m = nb_model_parse(oom_net, "oom.net", &cfg);
    if (!m) return strstr(nb_last_error(), "out of memory") ? NB_ERR_NOMEM : NB_ERR_ARG;
    nb_optimizer_opts oo = nb_optimizer_defaults(NB_OPT_ADAM);
    nb_optimizer *opt = nb_optimizer_new(&oo, param_count(m));
    nb_status s = opt ? NB_OK : NB_ERR_NOMEM;
    if (!s) s = nb_model_load(m, weights);
    float x[16 * 6], y[6];
    nb_dataset_batch(d, NULL, 0, 6, NULL, NULL, x, y);
    if (!s) s = nb_model_train_step(m, opt, x, y, 6, NULL);
    nb_train_opts o = nb_train_defaults();
    o.epochs = 1;
    o.batch = 4;
    o.test = d;
    o.checkpoint = ck;
    if (!s) s = nb_train(m, opt, d, &o);
    o.epochs = 2;
    o.checkpoint = NULL;
    o.resume = ck;
    if (!s) s = nb_train(m, opt, d, &o);
    if (!s) s = nb_model_load(m, ck);
    nb_eval_result r;
    size_t cm[9];
    if (!s) s = nb_evaluate(m, d, 5, &r, cm);
    if (!s && !nb_model_predict(m, x, 3)) s = NB_ERR_NOMEM;
    nb_optimizer_free(opt);
    nb_model_free(m);
    return s;
}

static void test_allocation_failures_anywhere(void **s) {
    (void)s;
    nb_dataset d = tiny_data(10, NULL, 0, 6);
    const char *weights = tmp_path("oom.safetensors"), *ck = tmp_path("oom.ckpt");
    nb_model_config cfg = {.seed = 1};
    nb_model *m = nb_model_parse(oom_net, "oom.net", &cfg);
    assert_non_null(m);
    assert_ok(nb_model_save(m, weights));
    nb_model_free(m);
    assert_ok(workload(&d, weights, ck)); /* it all works with memory to spare */

    int failures = 0;
    for (long k = 0;; k++) {
        alloc_budget = k;
        live_allocs = 0;
        nb_set_allocator(counting_malloc, counting_realloc, counting_free);
        nb_status st = workload(&d, weights, ck);
        nb_set_allocator(NULL, NULL, NULL);
        alloc_budget = -1;
        if (live_allocs != 0) print_error("allocation %ld failing leaks %ld blocks\n", k, live_allocs);
        assert_int_equal(live_allocs, 0);
        if (st == NB_OK) break;
        if (st != NB_ERR_NOMEM || !strstr(nb_last_error(), "out of memory"))
            print_error("allocation %ld failing gave %s: %s\n", k, nb_status_name(st), nb_last_error());
        assert_int_equal(st, NB_ERR_NOMEM);
        assert_non_null(strstr(nb_last_error(), "out of memory"));
        failures++;
    }
    assert_true(failures > 40);
    free_data(&d);
    assert_no_temporaries(tmpdir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nonfinite_gradient_is_named),
        cmocka_unit_test(test_nonfinite_loss_and_weights),
        cmocka_unit_test(test_skip_nonfinite_steps),
        cmocka_unit_test(test_checkpoint_never_takes_nonfinite_weights),
        cmocka_unit_test(test_stop_on_request_and_resume),
        cmocka_unit_test(test_checkpoint_every_and_pending_report),
        cmocka_unit_test(test_allocation_failures_anywhere),
    };
    return cmocka_run_group_tests_name("training", tests, tmpdir_setup, tmpdir_teardown);
}
