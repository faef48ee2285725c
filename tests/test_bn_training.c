/* test_bn_training.c — batch norm at the model level: train mode updates
 * the running statistics and eval mode only reads them; buffers are no
 * parameters (the optimizer's block leaves them out) and are saved, loaded
 * and carried by checkpoints, so a resumed run ends at the same bits; five
 * SGD-with-momentum steps end at PyTorch's weights and buffers
 * (tests/torch_bn_sgd_check.py, run now with /usr/bin/python3; without
 * PyTorch that test fails unless NB_SKIP_TORCH=1). */
#include "support.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The network of tests/torch_bn_sgd_check.py. */
static const char bn_net[] =
    "input 1 8 8\n"
    "conv2d name=conv out=4 kernel=3 pad=1 bias=0\n"
    "batchnorm2d name=bn\n"
    "relu\n"
    "flatten\n"
    "linear name=fc1 out=16 bias=0\n"
    "batchnorm1d name=bn1\n"
    "relu\n"
    "linear name=fc out=3\n";

static nb_model *bn_model(uint64_t seed) {
    nb_model_config cfg = {.seed = seed};
    nb_model *m = nb_model_parse(bn_net, "bn.net", &cfg);
    if (!m) print_error("%s\n", nb_last_error());
    assert_non_null(m);
    return m;
}

static float *params_of(const nb_model *m, size_t *n) {
    float *p;
    *n = nb_graph_params(nb_model_graph(m), &p, NULL);
    return p;
}

/* The i-th buffer node, the i-th batch norm node. */
static nb_node *nth_node(const nb_model *m, const char *op, int index) {
    nb_graph *g = nb_model_graph(m);
    for (int i = 0; i < nb_graph_node_count(g); i++)
        if (!strcmp(nb_node_op(nb_graph_node(g, i)), op) && index-- == 0) return nb_graph_node(g, i);
    return NULL;
}

/* Largest |a - b| over both models' buffers, relative to the largest |b|;
 * asserts their num_batches_tracked agree. */
static double buffers_diff(const nb_model *a, const nb_model *b) {
    double d = 0, ref = 1e-30;
    for (int i = 0; nth_node(b, "buffer", i); i++) {
        const nb_tensor *x = nb_value(nth_node(a, "buffer", i)), *y = nb_value(nth_node(b, "buffer", i));
        for (size_t k = 0; k < nb_tensor_numel(y); k++) {
            d = fmax(d, fabs((double)x->data[k] - y->data[k]));
            ref = fmax(ref, fabs((double)y->data[k]));
        }
    }
    for (int i = 0; nth_node(b, "batchnorm", i); i++)
        assert_int_equal(nb_batchnorm_batches(nth_node(a, "batchnorm", i)),
                         nb_batchnorm_batches(nth_node(b, "batchnorm", i)));
    return d / ref;
}

static void random_batch(float *x, float *labels, int batch, nb_rng *rng) {
    for (int i = 0; i < batch * 64; i++) x[i] = nb_rng_uniform(rng);
    for (int i = 0; i < batch; i++) labels[i] = (float)nb_rng_below(rng, 3);
}

static nb_optimizer *sgd(const nb_model *m) {
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_SGD);
    o.lr = 0.1f;
    o.momentum = 0.9f;
    o.weight_decay = 1e-3f;
    nb_optimizer *opt = nb_optimizer_new(&o, nb_graph_params(nb_model_graph(m), NULL, NULL));
    assert_non_null(opt);
    return opt;
}

static void test_modes_and_buffers(void **s) {
    (void)s;
    nb_model *m = bn_model(1);
    /* The parameter block holds the parameters only: conv 36, bn 4 + 4,
     * fc1 4096, bn1 16 + 16, fc 48 + 3. */
    size_t n;
    params_of(m, &n);
    assert_int_equal(n, 36 + 8 + 4096 + 32 + 51);
    nb_node *mean = nth_node(m, "buffer", 0), *var = nth_node(m, "buffer", 1);
    assert_string_equal(nb_node_name(mean), "bn.running_mean");
    assert_string_equal(nb_node_name(var), "bn.running_var");
    assert_true(nb_value(var)->data[0] == 1.0f && nb_value(mean)->data[0] == 0.0f);

    float x[8 * 64], labels[8], before[4];
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    random_batch(x, labels, 8, &rng);
    /* Eval mode reads the statistics and changes nothing. */
    assert_ok(nb_model_eval_batch(m, x, labels, 8, NULL));
    assert_true(nb_value(mean)->data[0] == 0.0f);
    assert_int_equal(nb_batchnorm_batches(nth_node(m, "batchnorm", 0)), 0);
    /* A training step updates them and counts the batch. */
    nb_optimizer *opt = sgd(m);
    assert_ok(nb_model_train_step(m, opt, x, labels, 8, NULL));
    assert_true(nb_value(mean)->data[0] != 0.0f);
    assert_int_equal(nb_batchnorm_batches(nth_node(m, "batchnorm", 0)), 1);
    assert_int_equal(nb_batchnorm_batches(nth_node(m, "batchnorm", 1)), 1);
    memcpy(before, nb_value(var)->data, sizeof before);
    const nb_tensor *p = nb_model_predict(m, x, 8);
    assert_non_null(p);
    assert_memory_equal(before, nb_value(var)->data, sizeof before);
    /* Eval and train give different logits for the same batch: the one
     * uses running statistics, the other the batch's. */
    float eval_logits[24];
    assert_ok(nb_model_eval_batch(m, x, NULL, 8, NULL));
    memcpy(eval_logits, nb_value(nb_model_logits(m))->data, sizeof eval_logits);
    assert_ok(nb_model_train_step(m, opt, x, labels, 8, NULL));
    assert_memory_not_equal(eval_logits, nb_value(nb_model_logits(m))->data, sizeof eval_logits);
    nb_optimizer_free(opt);

    /* Saved and loaded with the weights, under PyTorch's names. */
    assert_ok(nb_model_save(m, tmp_path("bn.safetensors")));
    int64_t tracked = -1;
    nb_named_tensor t = {"bn1.num_batches_tracked", {0, {0}, NULL}, &tracked};
    assert_ok(nb_safetensors_load(tmp_path("bn.safetensors"), &t, 1, 1, NULL, 0, NULL));
    assert_int_equal(tracked, 2);
    nb_model *back = bn_model(9);
    assert_ok(nb_model_load(back, tmp_path("bn.safetensors")));
    assert_true(buffers_diff(back, m) == 0.0);
    size_t nb;
    assert_memory_equal(params_of(back, &nb), params_of(m, &n), n * sizeof(float));
    assert_ok(nb_model_eval_batch(m, x, NULL, 8, NULL));
    memcpy(eval_logits, nb_value(nb_model_logits(m))->data, sizeof eval_logits);
    assert_ok(nb_model_eval_batch(back, x, NULL, 8, NULL));
    assert_memory_equal(eval_logits, nb_value(nb_model_logits(back))->data, sizeof eval_logits);
    /* A file without the buffers is refused, naming them; an I64 tensor
     * asked for as I64 only. */
    nb_named_tensor only_fc = {"fc.bias", *nb_value(nb_graph_param(nb_model_graph(m), 7)), NULL};
    assert_string_equal(nb_node_name(nb_graph_param(nb_model_graph(m), 7)), "fc.bias");
    assert_ok(nb_safetensors_save(tmp_path("partial.safetensors"), &only_fc, 1, NULL, 0));
    assert_int_equal(nb_model_load(back, tmp_path("partial.safetensors")), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_last_error(), "bn.running_mean: missing from the file"));
    assert_non_null(strstr(nb_last_error(), "bn1.num_batches_tracked: missing"));
    nb_named_tensor as_i64 = {"fc.bias", {1, {3}, NULL}, (int64_t[3]){0}};
    assert_int_equal(nb_safetensors_load(tmp_path("partial.safetensors"), &as_i64, 1, 0, NULL, 0, NULL),
                     NB_ERR_SHAPE);
    assert_non_null(strstr(nb_last_error(), "fc.bias: dtype F32, expected I64"));
    nb_model_free(back);
    nb_model_free(m);
}

/* 1x8x8 images in three classes. */
static nb_dataset tiny_data(int count, uint64_t seed) {
    nb_dataset d = {count, 1, 8, 8, malloc((size_t)count * 64), malloc((size_t)count * sizeof(int32_t)), NULL};
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    for (int i = 0; i < count; i++) {
        for (int k = 0; k < 64; k++) d.images[i * 64 + k] = (uint8_t)nb_rng_below(&rng, 80);
        d.labels[i] = i % 3;
        d.images[i * 64 + 9 + 20 * (i % 3)] = 250;
    }
    return d;
}

static volatile sig_atomic_t stop_flag;

static void stop_after_epoch_1(const nb_epoch_report *r, void *user) {
    (void)user;
    if (r->epoch == 1) stop_flag = 1;
}

static nb_status run(nb_model *m, const nb_dataset *d, const char *checkpoint, const char *resume,
                     nb_epoch_fn on_epoch) {
    nb_optimizer *opt = sgd(m);
    nb_train_opts o = nb_train_defaults();
    o.epochs = 3;
    o.batch = 6; /* 26 samples: four batches of 6, then one of 2 */
    o.seed = 3;
    o.test = d;
    o.checkpoint = checkpoint;
    o.resume = resume;
    o.stop = &stop_flag;
    o.on_epoch = on_epoch;
    nb_status s = nb_train(m, opt, d, &o);
    nb_optimizer_free(opt);
    return s;
}

/* Stopped after the first epoch and resumed: weights, buffers and counts
 * are those of the straight run, to the bit. */
static void test_resume_is_bit_identical(void **s) {
    (void)s;
    nb_dataset d = tiny_data(26, 4);
    stop_flag = 0;
    nb_model *straight = bn_model(1);
    assert_ok(run(straight, &d, NULL, NULL, NULL));
    const char *ck = tmp_path("bn.ckpt");
    nb_model *m = bn_model(1);
    assert_int_equal(run(m, &d, ck, NULL, stop_after_epoch_1), NB_ERR_STOPPED);
    nb_model_free(m);
    stop_flag = 0;
    m = bn_model(2); /* another init: everything comes from the checkpoint */
    assert_ok(run(m, &d, NULL, ck, NULL));
    size_t n;
    assert_memory_equal(params_of(m, &n), params_of(straight, &n), n * sizeof(float));
    assert_true(buffers_diff(m, straight) == 0.0);
    assert_int_equal(nb_batchnorm_batches(nth_node(m, "batchnorm", 0)), 15);
    nb_model_free(m);
    nb_model_free(straight);
    free(d.images);
    free(d.labels);
}

static bool have_torch(void) {
    return system("/usr/bin/python3 -c 'import torch, torchvision' >/dev/null 2>&1") == 0;
}

static bool torch_fixtures_ready;

/* Run tests/torch_bn_sgd_check.py once for the tests below. */
static void need_torch_fixtures(void) {
    if (torch_fixtures_ready) return;
    if (!have_torch()) {
        if (getenv("NB_SKIP_TORCH")) skip();
        fail_msg("/usr/bin/python3 cannot import torch and torchvision: install them "
                 "(scripts/install-deps.sh), or set NB_SKIP_TORCH=1 to skip this test locally");
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/torch_bn_sgd_check.py %s", tmpdir);
    assert_int_equal(system(cmd), 0);
    torch_fixtures_ready = true;
}

/* Five SGD steps (lr 0.1, momentum 0.9, weight_decay wd) from PyTorch's
 * init on its batches; returns how far the weights or the buffers end from
 * `fixture`'s, whichever is further, relative to the largest. */
static double five_steps_vs(const char *fixture, float wd, float smoothing, bool no_decay) {
    need_torch_fixtures();
    nb_model *m = bn_model(1), *want = bn_model(1);
    assert_ok(nb_model_load(m, tmp_path("init.safetensors")));
    assert_ok(nb_model_load(want, tmp_path(fixture)));
    static float x[5 * 8 * 64], labels[5 * 8];
    nb_named_tensor data[2] = {{"x", {4, {40, 1, 8, 8}, x}, NULL}, {"labels", {2, {5, 8}, labels}, NULL}};
    assert_ok(nb_safetensors_load(tmp_path("data.safetensors"), data, 2, 1, NULL, 0, NULL));
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_SGD);
    o.lr = 0.1f;
    o.momentum = 0.9f;
    o.weight_decay = wd;
    nb_optimizer *opt = nb_optimizer_new(&o, nb_graph_params(nb_model_graph(m), NULL, NULL));
    assert_non_null(opt);
    if (no_decay) {
        int count;
        assert_ok(nb_model_no_decay_norm_bias(m, opt, &count));
        assert_int_equal(count, 5); /* bn.weight, bn.bias, bn1.weight, bn1.bias, fc.bias */
    }
    assert_ok(nb_set_label_smoothing(nb_model_loss(m), smoothing));
    for (int step = 0; step < 5; step++)
        assert_ok(nb_model_train_step(m, opt, x + step * 8 * 64, labels + step * 8, 8, NULL));
    size_t n;
    float *got = params_of(m, &n), *ref = params_of(want, &n);
    double d = 0, largest = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)got[i] - ref[i]));
        largest = fmax(largest, fabs((double)ref[i]));
    }
    double dbuf = buffers_diff(m, want);
    print_message("%s: weights differ by %.3g (largest %.3g), buffers by %.3g of the largest\n",
                  fixture, d, largest, dbuf);
    assert_int_equal(nb_batchnorm_batches(nth_node(m, "batchnorm", 1)), 5);
    nb_optimizer_free(opt);
    nb_model_free(m);
    nb_model_free(want);
    return fmax(d / largest, dbuf);
}

static void test_sgd_steps_match_torch(void **s) {
    (void)s;
    assert_true(five_steps_vs("final.safetensors", 1e-3f, 0.0f, false) <= 1e-5);
}

static void test_label_smoothing_matches_torch(void **s) {
    (void)s;
    assert_true(five_steps_vs("final_smooth.safetensors", 1e-3f, 0.1f, false) <= 1e-5);
    /* Not vacuous: without smoothing the run ends elsewhere. */
    assert_true(five_steps_vs("final_smooth.safetensors", 1e-3f, 0.0f, false) > 1e-3);
}

static void test_no_decay_norm_bias_matches_torch(void **s) {
    (void)s;
    assert_true(five_steps_vs("final_nodecay.safetensors", 0.05f, 0.0f, true) <= 1e-5);
    assert_true(five_steps_vs("final_decay.safetensors", 0.05f, 0.0f, false) <= 1e-5);
    assert_true(five_steps_vs("final_nodecay.safetensors", 0.05f, 0.0f, false) > 1e-4);
}

/* --warmup 4 then a cosine over the 6 steps after it, against torch's
 * SequentialLR(LinearLR, CosineAnnealingLR). */
static void test_warmup_matches_torch(void **s) {
    (void)s;
    need_torch_fixtures();
    float lrs[10];
    nb_named_tensor t = {"lrs", {1, {10}, lrs}, NULL};
    assert_ok(nb_safetensors_load(tmp_path("data.safetensors"), &t, 1, 1, NULL, 0, NULL));
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_SGD);
    o.lr = 0.1f;
    o.schedule = NB_SCHED_COSINE;
    o.total_steps = 6;
    o.warmup_steps = 4;
    nb_optimizer *opt = nb_optimizer_new(&o, 1);
    assert_non_null(opt);
    float p = 0, g = 0;
    for (int k = 0; k < 10; k++) {
        assert_float_equal(nb_optimizer_lr(opt), lrs[k], 1e-7);
        assert_ok(nb_optimizer_step(opt, &p, &g));
    }
    nb_optimizer_free(opt);
    o.warmup_steps = -1;
    assert_null(nb_optimizer_new(&o, 1));
}

/* The smoothed loss's gradient, checked against finite differences. */
static void test_label_smoothing_gradcheck(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 2);
    nb_graph *g = nb_graph_new();
    nb_node *x = random_input(g, "logits", 2, (int[]){4, 5}, -2.0f, 2.0f, &rng);
    nb_requires_grad(x, 1);
    float labels[4] = {0, 3, 4, 1};
    nb_node *y = nb_input(g, "labels", 1, (int[]){4});
    assert_ok(nb_feed(y, labels, 4));
    nb_node *loss = nb_softmax_cross_entropy(g, x, y);
    assert_ok(nb_set_label_smoothing(loss, 0.2f));
    assert_ok(nb_forward(g, loss));
    assert_gradcheck(g, loss, 1e-2, 1e-2);
    assert_int_equal(nb_set_label_smoothing(loss, 1.5f), NB_ERR_ARG);
    assert_int_equal(nb_set_label_smoothing(x, 0.1f), NB_ERR_ARG);
    nb_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes_and_buffers),
        cmocka_unit_test(test_resume_is_bit_identical),
        cmocka_unit_test(test_sgd_steps_match_torch),
        cmocka_unit_test(test_label_smoothing_matches_torch),
        cmocka_unit_test(test_no_decay_norm_bias_matches_torch),
        cmocka_unit_test(test_warmup_matches_torch),
        cmocka_unit_test(test_label_smoothing_gradcheck),
    };
    return cmocka_run_group_tests_name("bn_training", tests, tmpdir_setup, tmpdir_teardown);
}
