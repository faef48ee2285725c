/* test_model.c — the network level: built-in models' names and shapes,
 * PyTorch's default init, weights saved and loaded, the head (logits,
 * probabilities, loss), layer errors, the training loop, evaluation, and
 * checkpoints that resume a run exactly. */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

static nb_model *create(const char *name, int classes, int hidden, uint64_t seed) {
    nb_model_config cfg = {.classes = classes, .hidden = hidden, .seed = seed};
    nb_model *m = nb_model_create(name, &cfg);
    if (!m) print_error("nb_model_create(%s): %s\n", name, nb_last_error());
    assert_non_null(m);
    return m;
}

/* "name [shape]" of every parameter, one per line, in parameter order. */
static void describe_params(const nb_model *m, char *out, size_t size) {
    nb_graph *g = nb_model_graph(m);
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < nb_graph_param_count(g); i++) {
        const nb_node *p = nb_graph_param(g, i);
        char sh[64];
        used += (size_t)snprintf(out + used, size - used, "%s %s\n", nb_node_name(p),
                                 nb_shape_str(nb_value(p), sh, sizeof sh));
    }
}

static void assert_params(const nb_model *m, const char *expected) {
    char got[2048];
    describe_params(m, got, sizeof got);
    assert_string_equal(got, expected);
}

static void assert_error_has(const char *needle) {
    if (!strstr(nb_last_error(), needle))
        print_error("error '%s' lacks '%s'\n", nb_last_error(), needle);
    assert_non_null(strstr(nb_last_error(), needle));
}

static float *params_of(const nb_model *m, size_t *n) {
    float *p;
    *n = nb_graph_params(nb_model_graph(m), &p, NULL);
    return p;
}

/* A learnable synthetic set of 1x28x28 images: class c lights a 4x4 block
 * at a place of its own, over low noise. */
static nb_dataset synthetic(int count, int classes, uint64_t seed) {
    nb_dataset d = {count, 1, 28, 28, NULL, NULL, NULL};
    d.images = malloc((size_t)count * 784);
    d.labels = malloc((size_t)count * sizeof *d.labels);
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    for (int i = 0; i < count; i++) {
        int c = i % classes;
        uint8_t *img = d.images + (size_t)i * 784;
        for (int k = 0; k < 784; k++) img[k] = (uint8_t)nb_rng_below(&rng, 40);
        int r0 = 2 + 6 * (c / 4), c0 = 2 + 6 * (c % 4);
        for (int r = 0; r < 4; r++)
            for (int q = 0; q < 4; q++) img[(r0 + r) * 28 + c0 + q] = 250;
        d.labels[i] = c;
    }
    return d;
}

static void free_synthetic(nb_dataset *d) {
    free(d->images);
    free(d->labels);
}

static nb_optimizer *sgd(const nb_model *m, float lr, float momentum) {
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_SGD);
    o.lr = lr;
    o.momentum = momentum;
    nb_optimizer *opt = nb_optimizer_new(&o, nb_graph_params(nb_model_graph(m), NULL, NULL));
    assert_non_null(opt);
    return opt;
}

/* ---- built-in models ------------------------------------------------------ */

static void test_builtin_names_and_shapes(void **s) {
    (void)s;
    nb_model *m = create("logreg", 0, 0, 1);
    assert_params(m, "fc.weight [10, 784]\nfc.bias [10]\n");
    assert_int_equal(nb_model_classes(m), 10);
    nb_model_free(m);

    m = create("mlp", 0, 32, 1);
    assert_params(m, "fc1.weight [32, 784]\nfc1.bias [32]\nfc2.weight [10, 32]\nfc2.bias [10]\n");
    nb_model_free(m);
    m = create("mlp", 5, 0, 1); /* default hidden width 128, 5 classes */
    assert_params(m, "fc1.weight [128, 784]\nfc1.bias [128]\nfc2.weight [5, 128]\nfc2.bias [5]\n");
    nb_model_free(m);

    m = create("lenet5", 0, 0, 1);
    assert_params(m, "conv1.weight [6, 1, 5, 5]\nconv1.bias [6]\nconv2.weight [16, 6, 5, 5]\n"
                     "conv2.bias [16]\nfc1.weight [120, 400]\nfc1.bias [120]\n"
                     "fc2.weight [84, 120]\nfc2.bias [84]\nfc3.weight [10, 84]\nfc3.bias [10]\n");
    int shape[3];
    assert_int_equal(nb_model_input_shape(m, shape), 3);
    assert_int_equal(shape[0], 1);
    assert_int_equal(shape[2], 28);
    size_t n;
    params_of(m, &n);
    assert_int_equal(n, 61706); /* PyTorch's count for this LeNet-5 */
    nb_model_free(m);

    m = create("alexnet", 10, 0, 1);
    assert_params(m, "features.0.weight [64, 3, 11, 11]\nfeatures.0.bias [64]\n"
                     "features.3.weight [192, 64, 5, 5]\nfeatures.3.bias [192]\n"
                     "features.6.weight [384, 192, 3, 3]\nfeatures.6.bias [384]\n"
                     "features.8.weight [256, 384, 3, 3]\nfeatures.8.bias [256]\n"
                     "features.10.weight [256, 256, 3, 3]\nfeatures.10.bias [256]\n"
                     "classifier.1.weight [4096, 9216]\nclassifier.1.bias [4096]\n"
                     "classifier.4.weight [4096, 4096]\nclassifier.4.bias [4096]\n"
                     "classifier.6.weight [10, 4096]\nclassifier.6.bias [10]\n");
    assert_int_equal(nb_model_input_shape(m, shape), 3);
    assert_int_equal(shape[0], 3);
    assert_int_equal(shape[1], 224);
    nb_model_free(m);
}

static void test_init_bounds_and_determinism(void **s) {
    (void)s;
    nb_model *a = create("lenet5", 0, 0, 7), *b = create("lenet5", 0, 0, 7), *c = create("lenet5", 0, 0, 8);
    size_t n;
    float *pa = params_of(a, &n), *pb = params_of(b, &n), *pc = params_of(c, &n);
    assert_memory_equal(pa, pb, n * sizeof(float));
    assert_memory_not_equal(pa, pc, n * sizeof(float));
    /* Each tensor is uniform within +-1/sqrt(fan_in), and fills that range
     * (so the bound is the right one, not merely a bound). */
    static const struct { const char *name; int fan_in; } fans[] = {
        {"conv1.weight", 25}, {"conv1.bias", 25}, {"conv2.weight", 150}, {"conv2.bias", 150},
        {"fc1.weight", 400}, {"fc1.bias", 400}, {"fc2.weight", 120}, {"fc2.bias", 120},
        {"fc3.weight", 84}, {"fc3.bias", 84}};
    nb_graph *g = nb_model_graph(a);
    for (int i = 0; i < nb_graph_param_count(g); i++) {
        const nb_node *p = nb_graph_param(g, i);
        assert_string_equal(nb_node_name(p), fans[i].name);
        float bound = 1.0f / sqrtf((float)fans[i].fan_in), lo = 0, hi = 0;
        const nb_tensor *t = nb_value(p);
        for (size_t k = 0; k < nb_tensor_numel(t); k++) {
            lo = fminf(lo, t->data[k]);
            hi = fmaxf(hi, t->data[k]);
        }
        assert_true(lo >= -bound && hi <= bound);
        if (nb_tensor_numel(t) >= 100) assert_true(hi > 0.9f * bound && lo < -0.9f * bound);
    }
    /* nb_model_init with the model's seed gives the same numbers again. */
    nb_model_init(c, 7);
    assert_memory_equal(pa, pc, n * sizeof(float));
    nb_model_free(a);
    nb_model_free(b);
    nb_model_free(c);
}

/* ---- save and load ---------------------------------------------------------- */

static void test_save_load_round_trip(void **s) {
    (void)s;
    nb_model *a = create("lenet5", 0, 0, 1), *b = create("lenet5", 0, 0, 2);
    float mean = 0.286f, std = 0.353f;
    assert_ok(nb_model_set_normalization(a, 1, &mean, &std));
    const char *path = tmp_path("lenet5.safetensors");
    assert_ok(nb_model_save(a, path));
    assert_ok(nb_model_load(b, path));
    size_t n;
    float *pa = params_of(a, &n), *pb = params_of(b, &n);
    assert_memory_equal(pa, pb, n * sizeof(float));
    const float *m2, *s2;
    assert_int_equal(nb_model_normalization(b, &m2, &s2), 1);
    assert_float_equal(m2[0], mean, 0);
    assert_float_equal(s2[0], std, 0);
    nb_model_free(a);
    nb_model_free(b);
}

static void test_load_wrong_shapes_names_all(void **s) {
    (void)s;
    nb_model *small = create("mlp", 0, 32, 1), *big = create("mlp", 0, 64, 2);
    const char *path = tmp_path("mlp32.safetensors");
    assert_ok(nb_model_save(small, path));
    size_t n;
    float *p = params_of(big, &n);
    float *before = malloc(n * sizeof(float));
    memcpy(before, p, n * sizeof(float));
    assert_int_not_equal(nb_model_load(big, path), NB_OK);
    /* Every mismatch in one message, and the model untouched. */
    assert_error_has("fc1.weight");
    assert_error_has("fc1.bias");
    assert_error_has("fc2.weight");
    assert_error_has("mlp32.safetensors");
    assert_memory_equal(before, p, n * sizeof(float));
    free(before);
    /* A file of another model altogether. */
    nb_model *lenet = create("lenet5", 0, 0, 1);
    assert_int_not_equal(nb_model_load(lenet, path), NB_OK);
    assert_error_has("conv1.weight");
    nb_model_free(lenet);
    nb_model_free(small);
    nb_model_free(big);
}

/* ---- running ------------------------------------------------------------------ */

static void test_predict_and_batch_change(void **s) {
    (void)s;
    nb_model *m = create("lenet5", 0, 0, 3);
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    float x[3 * 784], labels[3] = {1, 4, 9};
    fill_uniform(x, 3 * 784, 0, 1, &rng);
    const nb_tensor *p = nb_model_predict(m, x, 3);
    assert_non_null(p);
    assert_int_equal(p->shape[0], 3);
    assert_int_equal(p->shape[1], 10);
    for (int i = 0; i < 3; i++) {
        double sum = 0;
        for (int k = 0; k < 10; k++) sum += p->data[i * 10 + k];
        assert_float_equal(sum, 1.0, 1e-5);
    }
    float first[10];
    memcpy(first, p->data, sizeof first);
    /* A smaller batch without rebuilding gives the same numbers per sample. */
    p = nb_model_predict(m, x, 1);
    assert_non_null(p);
    assert_int_equal(p->shape[0], 1);
    for (int k = 0; k < 10; k++) assert_float_equal(p->data[k], first[k], 1e-6);
    float loss;
    assert_ok(nb_model_eval_batch(m, x, labels, 3, &loss));
    assert_true(isfinite(loss) && loss > 0);
    /* The loss is the mean cross-entropy of the logits. */
    const float *z = nb_value(nb_model_logits(m))->data;
    double ce = 0;
    for (int i = 0; i < 3; i++) {
        double mx = z[i * 10], sum = 0;
        for (int k = 1; k < 10; k++) mx = fmax(mx, z[i * 10 + k]);
        for (int k = 0; k < 10; k++) sum += exp(z[i * 10 + k] - mx);
        ce += log(sum) + mx - z[i * 10 + (int)labels[i]];
    }
    assert_float_equal(loss, ce / 3, 1e-5);
    labels[1] = 10;
    assert_int_equal(nb_model_eval_batch(m, x, labels, 3, &loss), NB_ERR_ARG);
    assert_error_has("label 10 of sample 1");
    nb_model_free(m);
}

/* A network that ends in softmax: the loss takes the softmax's input, and
 * the softmax's output is the probabilities. */
static void test_final_softmax_not_applied_twice(void **s) {
    (void)s;
    nb_model_config cfg = {.seed = 4};
    nb_model *a = nb_model_parse("input 6\nlinear name=fc out=4\nsoftmax\n", "soft.net", &cfg);
    nb_model *b = nb_model_parse("input 6\nlinear name=fc out=4\n", "plain.net", &cfg);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(nb_node_op(nb_model_logits(a)), "linear");
    float x[12] = {1, -2, 3, 0.5f, 0, 1, -1, 2, 0, 1, 1, -3}, y[2] = {2, 0}, la, lb;
    assert_ok(nb_model_eval_batch(a, x, y, 2, &la));
    assert_ok(nb_model_eval_batch(b, x, y, 2, &lb));
    assert_float_equal(la, lb, 1e-6);
    const nb_tensor *pa = nb_model_predict(a, x, 2);
    float probs[8];
    memcpy(probs, pa->data, sizeof probs);
    const nb_tensor *pb = nb_model_predict(b, x, 2);
    for (int k = 0; k < 8; k++) assert_float_equal(probs[k], pb->data[k], 1e-6);
    nb_model_free(a);
    nb_model_free(b);
}

static void test_layer_errors_name_the_layer(void **s) {
    (void)s;
    nb_model *m = nb_model_new("t", 3, (int[]){1, 8, 8}, 0);
    assert_ok(nb_model_flatten(m));
    assert_int_equal(nb_model_conv2d(m, "c", 4, 3, 3, 1, 1, 0, 0, 1), NB_ERR_SHAPE);
    assert_error_has("layer 1 (conv2d c)");
    assert_error_has("[1, 64]");
    /* The model is dead after a failure. */
    assert_int_not_equal(nb_model_relu(m), NB_OK);
    nb_model_free(m);

    m = nb_model_new("t", 1, (int[]){8}, 0);
    assert_ok(nb_model_linear(m, "fc", 4, 1));
    assert_int_equal(nb_model_linear(m, "fc", 2, 1), NB_ERR_ARG);
    assert_error_has("'fc.weight' is already used");
    nb_model_free(m);

    m = nb_model_new("t", 1, (int[]){8}, 0);
    assert_int_equal(nb_model_linear(m, NULL, 0, 1), NB_ERR_ARG);
    assert_error_has("layer 0 (linear 0)");
    nb_model_free(m);

    m = nb_model_new("t", 1, (int[]){8}, 0);
    assert_int_equal(nb_model_dropout(m, 1.0f), NB_ERR_ARG);
    nb_model_free(m);

    m = nb_model_new("t", 3, (int[]){2, 8, 8}, 0);
    assert_ok(nb_model_conv2d(m, NULL, 3, 3, 3, 1, 1, 1, 1, 1));
    assert_int_equal(nb_model_finish(m), NB_ERR_SHAPE);
    assert_error_has("[1, 3, 8, 8]");
    nb_model_free(m);

    m = nb_model_new("t", 1, (int[]){8}, 0);
    assert_ok(nb_model_linear(m, NULL, 3, 0));
    assert_ok(nb_model_finish(m));
    assert_int_equal(nb_graph_param_count(nb_model_graph(m)), 1); /* bias=0 */
    assert_int_equal(nb_model_relu(m), NB_ERR_STATE);
    nb_model_free(m);

    assert_null(nb_model_new("t", 2, (int[]){8, 8}, 0));
    assert_null(nb_model_create("no-such-model", NULL));
    assert_error_has("unknown model 'no-such-model'");
}

static void test_train_step_learns(void **s) {
    (void)s;
    nb_model *m = create("logreg", 0, 0, 1);
    nb_dataset d = synthetic(40, 10, 1);
    float *x = malloc(40 * 784 * sizeof(float)), y[40];
    nb_dataset_batch(&d, NULL, 0, 40, NULL, NULL, x, y);
    nb_optimizer *opt = sgd(m, 0.1f, 0.9f);
    float first = 0, loss = 0;
    for (int i = 0; i < 30; i++) {
        assert_ok(nb_model_train_step(m, opt, x, y, 40, &loss));
        if (i == 0) first = loss;
    }
    assert_true(loss < 0.5f * first);
    y[3] = 12;
    assert_int_equal(nb_model_train_step(m, opt, x, y, 40, &loss), NB_ERR_ARG);
    assert_error_has("label 12 of sample 3");
    nb_optimizer_free(opt);
    free(x);
    free_synthetic(&d);
    nb_model_free(m);
}

typedef struct reports {
    int calls;
    nb_epoch_report last;
    size_t samples;
} reports;

static void collect(const nb_epoch_report *r, void *user) {
    reports *rs = user;
    rs->calls++;
    rs->samples += r->samples;
    rs->last = *r;
}

static void test_train_loop_and_evaluate(void **s) {
    (void)s;
    nb_model *m = create("logreg", 0, 0, 1);
    nb_dataset train = synthetic(50, 10, 2), test = synthetic(30, 10, 3);
    nb_optimizer *opt = sgd(m, 0.05f, 0.9f);
    nb_train_opts o = nb_train_defaults();
    reports rs = {0};
    o.epochs = 3;
    o.batch = 16; /* 4 batches an epoch, the last of 2 samples: it is used */
    o.test = &test;
    o.on_epoch = collect;
    o.user = &rs;
    assert_ok(nb_train(m, opt, &train, &o));
    assert_int_equal(rs.calls, 3);
    assert_int_equal(rs.samples, 150);
    assert_int_equal(rs.last.epoch, 3);
    assert_int_equal(rs.last.epochs, 3);
    assert_int_equal(rs.last.step, 12);
    assert_int_equal(nb_optimizer_steps(opt), 12);
    assert_true(rs.last.test_accuracy > 0.9);
    assert_true(isfinite(rs.last.train_loss) && rs.last.images_per_s > 0);

    size_t cm[100];
    nb_eval_result r;
    assert_ok(nb_evaluate(m, &test, 7, &r, cm));
    assert_int_equal(r.n, 30);
    size_t total = 0, trace = 0;
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 10; j++) total += cm[i * 10 + j], trace += i == j ? cm[i * 10 + j] : 0;
    assert_int_equal(total, 30);
    assert_int_equal(trace, r.correct);
    assert_float_equal(r.accuracy, rs.last.test_accuracy, 1e-12);
    assert_float_equal(r.loss, rs.last.test_loss, 1e-5);

    /* A step budget ends mid-epoch and reports that partial epoch. */
    rs.calls = 0;
    o.epochs = 0;
    o.steps = 14;
    o.test = NULL;
    assert_ok(nb_train(m, opt, &train, &o));
    assert_int_equal(rs.calls, 4);
    assert_int_equal(rs.last.epoch, 4);
    assert_int_equal(rs.last.samples, 32); /* 14 = 3 epochs of 4 batches, and 2 */
    assert_true(isnan(rs.last.test_accuracy));
    nb_optimizer_free(opt);
    free_synthetic(&train);
    free_synthetic(&test);
    nb_model_free(m);
}

static void test_data_must_fit_the_model(void **s) {
    (void)s;
    nb_model_config cfg = {.seed = 1};
    nb_model *m = nb_model_parse("input 3 8 8\nflatten\nlinear out=10\n", "rgb.net", &cfg);
    assert_non_null(m);
    nb_dataset d = synthetic(20, 10, 4);
    nb_optimizer *opt = sgd(m, 0.1f, 0);
    nb_train_opts o = nb_train_defaults();
    assert_int_equal(nb_train(m, opt, &d, &o), NB_ERR_SHAPE);
    assert_error_has("1x28x28");
    assert_error_has("3x8x8");
    nb_eval_result r;
    assert_int_equal(nb_evaluate(m, &d, 10, &r, NULL), NB_ERR_SHAPE);
    nb_optimizer_free(opt);
    nb_model_free(m);

    /* Labels must be below the class count. */
    m = create("logreg", 5, 0, 1);
    opt = sgd(m, 0.1f, 0);
    assert_int_equal(nb_train(m, opt, &d, &o), NB_ERR_ARG);
    assert_error_has("sample 5 has label 5");
    nb_optimizer_free(opt);
    nb_model_free(m);
    free_synthetic(&d);
}

/* ---- checkpoints ------------------------------------------------------------------ */

/* Train `steps` in all with Adam, shuffling, through a network with dropout
 * (its masks depend on the graph's step); resume from `resume` if given. */
static nb_model *run_steps(const nb_dataset *d, long steps, const char *checkpoint,
                           const char *resume, uint64_t init_seed) {
    static const char net[] = "input 1 28 28\nflatten\nlinear name=a out=16\nrelu\n"
                              "dropout p=0.3\nlinear name=b out=10\n";
    nb_model_config cfg = {.seed = init_seed};
    nb_model *m = nb_model_parse(net, "drop.net", &cfg);
    assert_non_null(m);
    nb_optimizer_opts oo = nb_optimizer_defaults(NB_OPT_ADAM);
    oo.lr = 0.01f;
    nb_optimizer *opt = nb_optimizer_new(&oo, nb_graph_params(nb_model_graph(m), NULL, NULL));
    assert_non_null(opt);
    nb_train_opts o = nb_train_defaults();
    o.steps = steps;
    o.batch = 16;
    o.seed = 99;
    o.checkpoint = checkpoint;
    o.resume = resume;
    assert_ok(nb_train(m, opt, d, &o));
    assert_int_equal(nb_optimizer_steps(opt), steps);
    nb_optimizer_free(opt);
    return m;
}

static void test_checkpoint_resumes_exactly(void **s) {
    (void)s;
    nb_dataset d = synthetic(50, 10, 5); /* 4 batches an epoch */
    nb_model *straight = run_steps(&d, 7, NULL, NULL, 1);
    const char *ck = tmp_path("run.ckpt");
    nb_model *first = run_steps(&d, 5, ck, NULL, 1); /* stops mid-epoch 2 */
    /* Another init seed: everything must come from the checkpoint. */
    nb_model *resumed = run_steps(&d, 7, NULL, ck, 2);
    size_t n;
    float *a = params_of(straight, &n), *b = params_of(resumed, &n), *c = params_of(first, &n);
    assert_memory_equal(a, b, n * sizeof(float));
    assert_memory_not_equal(a, c, n * sizeof(float));
    assert_int_equal(nb_graph_step(nb_model_graph(resumed)), 7);

    /* A checkpoint also loads as plain weights (its optimizer state left aside). */
    assert_ok(nb_model_load(straight, ck));
    assert_memory_equal(params_of(straight, &n), c, n * sizeof(float));
    /* A weights file is not a checkpoint. */
    const char *w = tmp_path("w.safetensors");
    assert_ok(nb_model_save(first, w));
    nb_model_config cfg = {.seed = 1};
    nb_model *m = nb_model_parse("input 1 28 28\nflatten\nlinear name=a out=16\nrelu\n"
                                 "dropout p=0.3\nlinear name=b out=10\n", "drop.net", &cfg);
    nb_optimizer *opt = sgd(m, 0.1f, 0);
    nb_train_opts o = nb_train_defaults();
    o.resume = w;
    assert_int_not_equal(nb_train(m, opt, &d, &o), NB_OK);
    nb_optimizer_free(opt);
    nb_model_free(m);
    nb_model_free(straight);
    nb_model_free(first);
    nb_model_free(resumed);
    free_synthetic(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_names_and_shapes),
        cmocka_unit_test(test_init_bounds_and_determinism),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_load_wrong_shapes_names_all),
        cmocka_unit_test(test_predict_and_batch_change),
        cmocka_unit_test(test_final_softmax_not_applied_twice),
        cmocka_unit_test(test_layer_errors_name_the_layer),
        cmocka_unit_test(test_train_step_learns),
        cmocka_unit_test(test_train_loop_and_evaluate),
        cmocka_unit_test(test_data_must_fit_the_model),
        cmocka_unit_test(test_checkpoint_resumes_exactly),
    };
    return cmocka_run_group_tests_name("model", tests, tmpdir_setup, tmpdir_teardown);
}
