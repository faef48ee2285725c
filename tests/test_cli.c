/* test_cli.c — the `nabla` command as a user meets it: help and version,
 * usage mistakes (exit 2) and failures (exit 1) with a clear message and no
 * output file left behind, and a short train -> eval -> predict round whose
 * --json output parses. Runs $BUILD/nabla (BUILD defaults to "build") from
 * the repository root; needs Fashion-MNIST in NB_FASHION_MNIST_DIR. */
#include "support.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* A binary PGM of a t10k image, so predict has something real to read. */
static int write_pgm(const char *path, const nb_dataset *d, int index, int size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fprintf(f, "P5\n%d %d\n255\n", size, size);
    for (int r = 0; r < size; r++)
        for (int c = 0; c < size; c++)
            fputc(r < 28 && c < 28 ? d->images[(size_t)index * 784 + (size_t)r * 28 + (size_t)c] : 0, f);
    fclose(f);
    return 0;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_help_and_version(void **s) {
    (void)s;
    EXPECT_RUN(0, out_text, "nabla " NB_VERSION, "--version");
    EXPECT_RUN(0, out_text, "train", "--help");
    EXPECT_RUN(0, out_text, "--steps N", "train --help");
    EXPECT_RUN(0, out_text, "--json", "eval --help");
    EXPECT_RUN(0, out_text, "IMAGE...", "predict --help");
    EXPECT_RUN(2, err_text, "usage", "%s", "");
    EXPECT_RUN(2, err_text, "nabla: unknown command 'fly'", "fly");
}

static void test_usage_errors_exit_2(void **s) {
    (void)s;
    EXPECT_RUN(2, err_text, "nabla: --batch: 'abc' is not an integer", "train --model lenet5 --batch abc");
    EXPECT_RUN(2, err_text, "--batch: 0 is out of range", "train --model lenet5 --batch 0");
    EXPECT_RUN(2, err_text, "unknown option '--bogus'", "train --model lenet5 --bogus 3");
    EXPECT_RUN(2, err_text, "unexpected argument 'extra'", "train --model lenet5 extra");
    EXPECT_RUN(2, err_text, "--optimizer: unknown optimizer 'rmsprop'", "train --model lenet5 --optimizer rmsprop");
    EXPECT_RUN(2, err_text, "unknown model 'lenet6'", "train --model lenet6");
    EXPECT_RUN(2, err_text, "--epochs or --steps, not both", "train --model lenet5 --epochs 2 --steps 3");
    EXPECT_RUN(2, err_text, "--schedule step SIZE: 'x' is not an integer", "train --model lenet5 --schedule step:x:0.5");
    EXPECT_RUN(2, err_text, "--schedule: 'warm'", "train --model lenet5 --schedule warm");
    EXPECT_RUN(2, err_text, "option --lr needs a value", "train --model lenet5 --lr");
    EXPECT_RUN(2, err_text, "--lr: 'fast' is not a number", "train --model lenet5 --lr fast");
    EXPECT_RUN(2, err_text, "--normalize: '1,2,3'", "train --model lenet5 --normalize 1,2,3 --steps 1");
    EXPECT_RUN(2, err_text, "option --no-shuffle takes no value", "train --model lenet5 --no-shuffle=1");
    EXPECT_RUN(2, err_text, "no model", "train --steps 1");
    EXPECT_RUN(2, err_text, "nesterov", "train --model logreg --momentum 0 --nesterov --steps 1 --no-test");
    EXPECT_RUN(2, err_text, "--weights is required", "eval --model lenet5");
    EXPECT_RUN(2, err_text, "--split: 'dev'", "eval --model lenet5 --weights x --split dev");
    EXPECT_RUN(2, err_text, "no images given", "predict --model lenet5 --weights x");
    EXPECT_RUN(2, err_text, "--weights is required", "predict --model lenet5 a.png");
    const char *out = tmp_path("never.safetensors");
    EXPECT_RUN(2, err_text, "--save /no/such/dir/w.safetensors: cannot write to directory /no/such/dir",
               "train --model logreg --steps 1 --save /no/such/dir/w.safetensors");
    assert_false(exists(out));
}

static void test_failures_exit_1_without_output(void **s) {
    (void)s;
    const char *out = tmp_path("out.safetensors");
    EXPECT_RUN(1, err_text, "/no/such/data", "train --model logreg --data /no/such/data --steps 1 --save %s", out);
    assert_false(exists(out));
    EXPECT_RUN(1, err_text, "/no/such/init.safetensors",
               "train --model logreg --init /no/such/init.safetensors --steps 1 --save %s", out);
    assert_false(exists(out));
    /* Garbage where weights should be. */
    const char *junk = tmp_path("junk.safetensors");
    write_bytes(junk, "this is not a safetensors file at all", 38);
    EXPECT_RUN(1, err_text, "junk.safetensors", "train --model logreg --init %s --steps 1 --save %s", junk, out);
    assert_false(exists(out));
    EXPECT_RUN(1, err_text, "junk.safetensors", "eval --model logreg --weights %s", junk);
    EXPECT_RUN(1, err_text, "junk.safetensors", "predict --model logreg --weights %s x.pgm", junk);
    /* A network file with a mistake names its line. */
    const char *net = tmp_path("bad.net");
    write_bytes(net, "input 1 28 28\nflatten\nlinear out=10 kernel=3\n", 45);
    EXPECT_RUN(1, err_text, "bad.net:3: linear: unknown option 'kernel'", "train --model %s --steps 1", net);
    /* AlexNet takes 3x224x224 images, not Fashion-MNIST's. */
    EXPECT_RUN(2, err_text, "3x224x224", "train --model alexnet --classes 10 --steps 1 --no-test --save %s", out);
    expect(err_text, "1x28x28");
    assert_false(exists(out));
}

/* Train briefly, then eval and predict with the weights, as JSON. */
static void test_train_eval_predict_json(void **s) {
    (void)s;
    const char *w = tmp_path("logreg.safetensors");
    EXPECT_RUN(0, out_text, "epoch 1/1",
               "train --model logreg --steps 40 --batch 32 --no-test --seed 3 --save %s", w);
    expect(out_text, "saved weights to");
    assert_true(exists(w));

    EXPECT_RUN(0, out_text, "\"accuracy\":", "eval --model logreg --weights %s --json --batch 500", w);
    cJSON *j = cJSON_Parse(out_text);
    assert_non_null(j);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(j, "loss")));
    double acc = cJSON_GetObjectItem(j, "accuracy")->valuedouble;
    assert_true(acc > 0.5 && acc <= 1.0); /* 40 steps of logistic regression learn something */
    assert_int_equal(cJSON_GetObjectItem(j, "n")->valueint, 10000);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "confusion")), 10);
    cJSON_Delete(j);
    EXPECT_RUN(0, out_text, "confusion matrix", "eval --model logreg --weights %s", w);
    expect(out_text, "accuracy");

    /* Weights of the wrong model: every mismatch named. */
    EXPECT_RUN(1, err_text, "conv1.weight", "eval --model lenet5 --weights %s", w);

    nb_dataset d;
    assert_ok(nb_dataset_load_mnist(NB_FASHION_MNIST_DIR, "t10k", &d));
    const char *a = tmp_path("a.pgm"), *b = tmp_path("b \"q\".pgm"), *big = tmp_path("big.pgm");
    assert_int_equal(write_pgm(a, &d, 0, 28), 0);
    assert_int_equal(write_pgm(b, &d, 1, 28), 0);
    assert_int_equal(write_pgm(big, &d, 2, 32), 0);
    nb_dataset_free(&d);
    char quoted_b[256];
    snprintf(quoted_b, sizeof quoted_b, "'%s'", b);
    EXPECT_RUN(0, out_text, "\"probs\":[", "predict --model logreg --weights %s --json %s %s", w, a, quoted_b);
    int lines = 0;
    for (char *line = strtok(out_text, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        cJSON *o = cJSON_Parse(line);
        if (!o) print_error("not JSON: %s\n", line);
        assert_non_null(o);
        const char *file = cJSON_GetObjectItem(o, "file")->valuestring;
        assert_string_equal(file, lines ? b : a);
        int cls = cJSON_GetObjectItem(o, "class")->valueint;
        cJSON *probs = cJSON_GetObjectItem(o, "probs");
        assert_int_equal(cJSON_GetArraySize(probs), 10);
        double sum = 0;
        for (int k = 0; k < 10; k++) sum += cJSON_GetArrayItem(probs, k)->valuedouble;
        assert_float_equal(sum, 1.0, 1e-4);
        assert_float_equal(cJSON_GetObjectItem(o, "prob")->valuedouble,
                           cJSON_GetArrayItem(probs, cls)->valuedouble, 1e-9);
        cJSON_Delete(o);
    }
    assert_int_equal(lines, 2);
    /* The weights name Fashion-MNIST's classes (from the data directory). */
    EXPECT_RUN(0, out_text, "(p = ", "predict --model logreg --weights %s %s", w, a);
    expect(out_text, "a.pgm: Ankle boot (p = ");
    /* A larger image is centre-cropped; a bad one is named and the others
     * still print. */
    /* (Not tmp_path: it keeps only four paths, and w is older.) */
    char bad[256];
    snprintf(bad, sizeof bad, "%s/bad.jpg", tmpdir);
    FILE *f = fopen(bad, "wb");
    fputs("\xff\xd8\xff\xe0 cut short", f);
    fclose(f);
    EXPECT_RUN(1, err_text, "bad.jpg: bad JPEG", "predict --model logreg --weights %s %s %s %s", w,
               bad, big, a);
    expect(out_text, "big.pgm: ");
    expect(out_text, "a.pgm: ");
}

/* --normalize is saved with the weights and used again by eval. */
static void test_normalize_travels_with_weights(void **s) {
    (void)s;
    const char *w = tmp_path("norm.safetensors");
    EXPECT_RUN(0, out_text, "epoch", "train --model logreg --steps 5 --no-test --normalize 0.286,0.353 --save %s", w);
    EXPECT_RUN(0, out_text, "\"n\":10000", "eval --model logreg --weights %s --json", w);
    cJSON *j = cJSON_Parse(out_text);
    double with_saved = cJSON_GetObjectItem(j, "loss")->valuedouble;
    cJSON_Delete(j);
    EXPECT_RUN(0, out_text, "\"n\":10000", "eval --model logreg --weights %s --json --normalize 0,1", w);
    j = cJSON_Parse(out_text);
    double overridden = cJSON_GetObjectItem(j, "loss")->valuedouble;
    cJSON_Delete(j);
    assert_true(fabs(with_saved - overridden) > 1e-3);
}

/* Stop after 3 steps with a checkpoint, resume to 7: the weights are those
 * of 7 steps straight, byte for byte. (A constant schedule: cosine's
 * horizon is the run's length, which the short first run changes.) */
static void test_checkpoint_and_resume(void **s) {
    (void)s;
    const char *straight = tmp_path("straight.safetensors"), *ck = tmp_path("run.ckpt");
    const char *resumed = tmp_path("resumed.safetensors");
    static const char common[] =
        "train --model logreg --batch 16 --no-test --optimizer adam --schedule constant --seed 4";
    EXPECT_RUN(0, out_text, "saved", "%s --steps 7 --save %s", common, straight);
    EXPECT_RUN(0, out_text, "epoch", "%s --steps 3 --checkpoint %s", common, ck);
    assert_true(exists(ck));
    EXPECT_RUN(0, out_text, "saved", "%s --steps 7 --resume %s --save %s", common, ck, resumed);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", straight, resumed);
    assert_int_equal(system(cmd), 0);
    /* Resuming with another batch size cannot repeat the run: refused. */
    EXPECT_RUN(2, err_text, "batch 16", "train --model logreg --batch 32 --no-test --optimizer adam "
               "--schedule constant --steps 7 --resume %s", ck);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_usage_errors_exit_2),
        cmocka_unit_test(test_failures_exit_1_without_output),
        cmocka_unit_test(test_train_eval_predict_json),
        cmocka_unit_test(test_normalize_travels_with_weights),
        cmocka_unit_test(test_checkpoint_and_resume),
    };
    return cmocka_run_group_tests_name("cli", tests, nabla_setup, tmpdir_teardown);
}
