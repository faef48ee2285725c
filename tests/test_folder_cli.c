/* test_folder_cli.c — real data through the `nabla` command: Fashion-MNIST
 * written as image folders by scripts/fashion_mnist_folders.py (Pillow).
 * The same weights evaluated over the PNG test folder and over the IDX test
 * set give the same accuracy and loss; LeNet-5 trains for a few steps from
 * a folder of 36x36 JPEGs (resized and centre-cropped to 28x28), saves the
 * folders' class names, and eval and predict print them; LeNet-5 trained
 * from all 70,000 images as PNG folders ends within half a point of the
 * IDX-trained one. Needs
 * Fashion-MNIST and /usr/bin/python3 with python3-pil. */
#include "support.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void script(const char *args) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 scripts/fashion_mnist_folders.py %s >/dev/null", args);
    if (system(cmd) != 0)
        fail_msg("%s failed: it needs python3-pil and Fashion-MNIST (scripts/install-deps.sh)", cmd);
}

static double json_number(const char *text, const char *key) {
    cJSON *j = cJSON_Parse(text);
    if (!j) fail_msg("not JSON: %s", text);
    cJSON *v = cJSON_GetObjectItem(j, key);
    assert_non_null(v);
    double x = v->valuedouble;
    cJSON_Delete(j);
    return x;
}

/* The IDX test set and the same images as PNGs in val/<class>/ (only
 * val/: its own folders are the classes) give the same results. */
static void test_png_folder_matches_idx(void **s) {
    (void)s;
    char dir[256], w[256];
    snprintf(dir, sizeof dir, "%s/fm_png", tmpdir);
    snprintf(w, sizeof w, "%s/logreg.safetensors", tmpdir);
    char args[512];
    snprintf(args, sizeof args, "%s --splits val", dir);
    script(args);
    EXPECT_RUN(0, out_text, "saved", "train --model logreg --steps 30 --no-test --save %s", w);
    EXPECT_RUN(0, out_text, "\"top5\":", "eval --model logreg --weights %s --json", w);
    double idx_correct = json_number(out_text, "correct"), idx_loss = json_number(out_text, "loss");
    double idx_top5 = json_number(out_text, "top5");
    EXPECT_RUN(0, out_text, "\"top5\":", "eval --model logreg --weights %s --data %s --json", w, dir);
    assert_int_equal((int)json_number(out_text, "n"), 10000);
    assert_int_equal((int)json_number(out_text, "correct"), (int)idx_correct);
    assert_float_equal(json_number(out_text, "top5"), idx_top5, 1e-12);
    /* The mean loss sums the batches in another order (the folder's is by
     * class), so it may differ in the last digits only. */
    assert_float_equal(json_number(out_text, "loss"), idx_loss, 1e-5 * idx_loss);
    /* The text report names the layout and the classes. */
    EXPECT_RUN(0, out_text, "data: image folder (val/, 10 classes)", "eval --model logreg --weights %s --data %s",
               w, dir);
    expect(out_text, "(test split): loss");
    expect(out_text, "top-5");
    expect(out_text, "Ankle boot"); /* the weights' names, from the IDX directory */
}

/* With five classes or fewer, top-5 is always 100%: eval leaves it out of
 * its text (JSON keeps the field). */
static void test_few_classes_no_top5(void **s) {
    (void)s;
    for (int split = 0; split < 2; split++)
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < 4; i++) {
                char rel[96];
                snprintf(rel, sizeof rel, "two/%s/%s", split ? "val" : "train", c ? "dark" : "light");
                tmp_mkdirs(rel);
                snprintf(rel, sizeof rel, "two/%s/%s/%d.pgm", split ? "val" : "train", c ? "dark" : "light", i);
                tmp_write_pgm(rel, 28, 28, (uint8_t)(c ? 10 + i : 240 - i));
            }
    char dir[256], w[256];
    snprintf(dir, sizeof dir, "%s/two", tmpdir);
    snprintf(w, sizeof w, "%s/two.safetensors", tmpdir);
    EXPECT_RUN(0, out_text, "saved", "train --model logreg --classes 2 --data %s --steps 2 --batch 4 --no-test --save %s",
               dir, w);
    EXPECT_RUN(0, out_text, "(test split): loss", "eval --model logreg --classes 2 --weights %s --data %s", w, dir);
    if (strstr(out_text, "top-5")) fail_msg("top-5 printed for 2 classes:\n%s", out_text);
    EXPECT_RUN(0, out_text, "\"top5\":1", "eval --model logreg --classes 2 --weights %s --data %s --json", w, dir);
}

/* LeNet-5 from JPEGs of another size, end to end. */
static void test_train_from_jpeg_folder(void **s) {
    (void)s;
    char dir[256], w[256], img[512];
    snprintf(dir, sizeof dir, "%s/fm_jpg", tmpdir);
    snprintf(w, sizeof w, "%s/lenet.safetensors", tmpdir);
    char args[512];
    snprintf(args, sizeof args, "%s --format jpg --size 36 --limit 300", dir);
    script(args);
    EXPECT_RUN(0, out_text, "data: image folder (train/, 10 classes)",
               "train --model lenet5 --data %s --steps 6 --batch 50 --save %s", dir, w);
    expect(out_text, "300 train images");
    expect(out_text, "300 test images");
    expect(out_text, "saved weights to");
    EXPECT_RUN(0, out_text, "\"accuracy\":", "eval --model lenet5 --weights %s --data %s --json", w, dir);
    assert_int_equal((int)json_number(out_text, "n"), 300);
    cJSON *j = cJSON_Parse(out_text);
    cJSON *per = cJSON_GetObjectItem(j, "per_class");
    assert_true(cJSON_GetArraySize(per) >= 5);
    const char *name = cJSON_GetObjectItem(cJSON_GetArrayItem(per, 0), "name")->valuestring;
    assert_string_equal(name, "0_T-shirt-top");
    cJSON_Delete(j);
    /* predict takes the 36x36 JPEG as it is and names the class. */
    snprintf(img, sizeof img, "%s/val/9_Ankle_boot/00001.jpg", dir);
    EXPECT_RUN(0, out_text, "00001.jpg: ", "predict --model lenet5 --weights %s --top 3 %s", w, img);
    expect(out_text, "(p = ");
    assert_int_equal((int)(strchr(out_text, '\n') - out_text) > 0, 1);
    EXPECT_RUN(0, out_text, "\"name\":", "predict --model lenet5 --weights %s --json --top 2 %s", w, img);
    expect(out_text, "\"top\":[");
}

/* The last "test acc X%" that training printed. */
static double last_test_accuracy(const char *text) {
    const char *at = NULL;
    for (const char *p = text; (p = strstr(p, "test acc ")); p++) at = p;
    assert_non_null(at);
    return atof(at + strlen("test acc "));
}

/* LeNet-5 trained from all of Fashion-MNIST as PNG folders ends within half
 * a point of the same training from the IDX files: the same images, in
 * another file order (by class), so another shuffle. Two epochs each, read
 * by a worker thread, the folder's images cached after the first. With
 * NB_TEST_QUICK set (the sanitizer build, where it would take many minutes,
 * and CI's reruns on each forced SIMD target) it is skipped: the folder
 * path runs there on the small sets above. */
static void test_lenet_from_folders_matches_idx(void **s) {
    (void)s;
    if (getenv("NB_TEST_QUICK")) {
        print_message("skipped with NB_TEST_QUICK (70,000 PNGs, two trainings)\n");
        skip();
    }
    char dir[256];
    snprintf(dir, sizeof dir, "%s/fm_all", tmpdir);
    script(dir);
    EXPECT_RUN(0, out_text, "test acc", "train --model lenet5 --epochs 2 --quiet");
    double idx = last_test_accuracy(out_text);
    EXPECT_RUN(0, out_text, "data: image folder (train/, 10 classes)",
               "train --model lenet5 --epochs 2 --quiet --data %s --workers 1 --cache", dir);
    expect(out_text, "60000 train images");
    double folder = last_test_accuracy(out_text);
    print_message("LeNet-5, 2 epochs: %.2f%% from IDX, %.2f%% from PNG folders\n", idx, folder);
    assert_true(fabs(idx - folder) <= 0.5);
    assert_true(idx > 80.0);
}

/* CIFAR-10 files written here, a 3x32x32 network, the CIFAR augmentation
 * and ImageNet's normalisation, saved with the weights. */
static void test_cifar_with_augmentation(void **s) {
    (void)s;
    char dir[256], path[512], net[256], w[256];
    snprintf(dir, sizeof dir, "%s/cifar-10-batches-bin", tmpdir);
    snprintf(path, sizeof path, "mkdir -p %s", dir);
    assert_int_equal(system(path), 0);
    uint8_t *rec = malloc(3073 * 20);
    for (int k = 0; k <= 5; k++) {
        for (int i = 0; i < 20; i++) {
            rec[i * 3073] = (uint8_t)(i % 10);
            for (int p = 0; p < 3072; p++) rec[i * 3073 + 1 + p] = (uint8_t)(p * (i % 10 + 1) + k);
        }
        if (k) snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, k);
        else snprintf(path, sizeof path, "%s/test_batch.bin", dir);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(rec, 3073, 20, f), 20);
        fclose(f);
    }
    free(rec);
    snprintf(net, sizeof net, "%s/cifar.net", tmpdir);
    FILE *f = fopen(net, "w");
    fputs("input 3 32 32\nconv2d out=4 kernel=3 stride=2\nrelu\nflatten\nlinear out=10\n", f);
    fclose(f);
    snprintf(w, sizeof w, "%s/cifar.safetensors", tmpdir);
    EXPECT_RUN(0, out_text, "data: CIFAR-10 binary files",
               "train --model %s --data %s --augment crop:4,flip --normalize imagenet --steps 3 "
               "--batch 25 --save %s", net, dir, w);
    expect(out_text, "100 train images");
    EXPECT_RUN(0, out_text, "truck", "eval --model %s --weights %s --data %s", net, w, dir);
    EXPECT_RUN(2, err_text, "--normalize imagenet", "train --model lenet5 --normalize imagenet --steps 1");
}

static void test_bad_data_messages(void **s) {
    (void)s;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/nothing", tmpdir);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    assert_int_equal(system(cmd), 0);
    EXPECT_RUN(1, err_text, "no data set found: looked for MNIST IDX",
               "train --model lenet5 --data %s --steps 1", dir);
    EXPECT_RUN(2, err_text, "--labels: 'medium'", "train --model lenet5 --labels medium --steps 1");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_folder_matches_idx),
        cmocka_unit_test(test_train_from_jpeg_folder),
        cmocka_unit_test(test_few_classes_no_top5),
        cmocka_unit_test(test_cifar_with_augmentation),
        cmocka_unit_test(test_lenet_from_folders_matches_idx),
        cmocka_unit_test(test_bad_data_messages),
    };
    return cmocka_run_group_tests_name("folder_cli", tests, nabla_setup, tmpdir_teardown);
}
