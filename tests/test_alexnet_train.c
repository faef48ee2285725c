/* test_alexnet_train.c — AlexNet trains: a tiny colour data set (3 x 224 x
 * 224 images, two classes told apart by where a bright square sits) written
 * as a 4-D IDX file under the MNIST file names, loaded as any data set is,
 * and a few SGD steps of alexnet --classes 2 on it lower the loss; the
 * README's `nabla train --model alexnet --data DIR` runs on it too ($BUILD/nabla,
 * BUILD defaulting to "build"). */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { COUNT = 16, C = 3, S = 224 };

static char dir[64];

static void write_idx(const char *name, int ndim, const uint32_t *dims, const uint8_t *data) {
    char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint8_t head[4 + 4 * NB_MAX_DIMS] = {0, 0, 0x08, (uint8_t)ndim};
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        for (int k = 0; k < 4; k++) head[4 + 4 * i + k] = (uint8_t)(dims[i] >> (24 - 8 * k));
        n *= dims[i];
    }
    assert_int_equal(fwrite(head, 1, (size_t)(4 + 4 * ndim), f), (size_t)(4 + 4 * ndim));
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Class 0: a bright square in the top-left quarter; class 1: bottom-right.
 * Low noise elsewhere, and the square's place jitters a little. */
static void write_dataset(void) {
    uint8_t *img = malloc((size_t)COUNT * C * S * S), labels[COUNT];
    nb_rng rng;
    nb_rng_seed(&rng, 77);
    for (int i = 0; i < COUNT; i++) {
        labels[i] = (uint8_t)(i % 2);
        uint8_t *p = img + (size_t)i * C * S * S;
        for (size_t k = 0; k < (size_t)C * S * S; k++) p[k] = (uint8_t)nb_rng_below(&rng, 40);
        int y0 = (labels[i] ? 130 : 20) + (int)nb_rng_below(&rng, 20);
        int x0 = (labels[i] ? 130 : 20) + (int)nb_rng_below(&rng, 20);
        for (int c = 0; c < C; c++)
            for (int y = y0; y < y0 + 60; y++)
                for (int x = x0; x < x0 + 60; x++) p[((size_t)c * S + y) * S + x] = (uint8_t)(200 + 20 * c);
    }
    write_idx("train-images-idx3-ubyte", 4, (uint32_t[]){COUNT, C, S, S}, img);
    write_idx("train-labels-idx1-ubyte", 1, (uint32_t[]){COUNT}, labels);
    free(img);
}

static void test_alexnet_loss_falls(void **s) {
    (void)s;
    snprintf(dir, sizeof dir, "/tmp/nabla-alexnet-XXXXXX");
    assert_non_null(mkdtemp(dir));
    write_dataset();
    nb_dataset d;
    assert_ok(nb_dataset_load_mnist(dir, "train", &d));
    assert_int_equal(d.count, COUNT);
    assert_int_equal(d.channels, C);
    assert_int_equal(d.height, S);
    assert_int_equal(d.width, S);

    nb_model_config cfg = {.classes = 2, .seed = 1};
    nb_model *m = nb_model_create("alexnet", &cfg);
    assert_non_null(m);
    nb_eval_result before, after;
    assert_ok(nb_evaluate(m, &d, 8, &before, NULL));
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_SGD);
    /* PyTorch's default init leaves AlexNet's gradients small: a high rate
     * makes six steps enough to see it learn. */
    o.lr = 0.1f;
    o.momentum = 0.9f;
    nb_optimizer *opt = nb_optimizer_new(&o, nb_graph_params(nb_model_graph(m), NULL, NULL));
    assert_non_null(opt);
    nb_train_opts t = nb_train_defaults();
    t.steps = 6;
    t.batch = 8;
    assert_ok(nb_train(m, opt, &d, &t));
    assert_ok(nb_evaluate(m, &d, 8, &after, NULL));
    print_message("alexnet on 16 images: loss %.4f -> %.4f, accuracy %.2f -> %.2f\n", before.loss,
                  after.loss, before.accuracy, after.accuracy);
    assert_true(isfinite(after.loss));
    assert_true(after.loss < before.loss - 0.005);
    assert_true(after.accuracy > before.accuracy);

    nb_optimizer_free(opt);
    nb_model_free(m);
    nb_dataset_free(&d);

    /* The command line, as the README shows it (two steps here). */
    const char *build = getenv("BUILD");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/nabla train --model alexnet --classes 2 --data %s --batch 8 "
             "--lr 0.1 --steps 2 --no-test > %s/out 2>&1", build && *build ? build : "build", dir, dir);
    int status = system(cmd);
    char out[4096] = "", path[160];
    snprintf(path, sizeof path, "%s/out", dir);
    FILE *f = fopen(path, "r");
    if (f) {
        out[fread(out, 1, sizeof out - 1, f)] = '\0';
        fclose(f);
    }
    if (status != 0) print_error("%s\n%s\n", cmd, out);
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "epoch 1/1"));
    unlink(path);
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alexnet_loss_falls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
