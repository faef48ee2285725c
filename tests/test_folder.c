/* test_folder.c — nb_dataset_open on every layout, with data written here:
 * ImageFolder trees (classes, order, ignored files, val/ and test/, the
 * eval transform, bad and empty folders, --skip-bad-images), CIFAR-10 and
 * CIFAR-100 binaries (labels, names, lengths, label ranges, fitting to a
 * model's input) and the message when nothing matches. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Sample i's bytes as a batch would see them (a folder's are decoded
 * when read). */
static uint8_t *sample_bytes(const nb_dataset *d, int i) {
    static uint8_t buf[3 * 64 * 64];
    assert_true((size_t)d->channels * d->height * d->width <= sizeof buf);
    assert_ok(nb_dataset_sample(d, (uint32_t)i, NULL, 0, 0, buf));
    return buf;
}

static nb_dataset_opts gray(int size) {
    nb_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.channels = 1;
    o.height = o.width = size;
    return o;
}

/* train/ with classes "cat" and "dog" (sorted: cat = 0), files in a nested
 * folder, upper-case extensions and files that are not images. */
static void write_tree(void) {
    tmpdir_clear();
    tmp_mkdirs("data/train/dog/more");
    tmp_mkdirs("data/train/cat");
    tmp_mkdirs("data/val/dog");
    tmp_write_pgm("data/train/dog/b.pgm", 8, 8, 20);
    tmp_write_pgm("data/train/dog/a.PGM", 8, 8, 10);
    tmp_write_pgm("data/train/dog/more/c.pgm", 8, 8, 30);
    tmp_write_pgm("data/train/cat/z.pgm", 16, 12, 40); /* resized and cropped */
    tmp_write("data/train/cat/notes.txt", "hi", 2);
    tmp_write("data/train/cat/.DS_Store", "x", 1);
    tmp_write_pgm("data/val/dog/v.pgm", 8, 8, 50);
}

static void test_image_folder(void **s) {
    (void)s;
    write_tree();
    nb_dataset d;
    nb_dataset_info info;
    nb_dataset_opts o = gray(8);
    assert_ok(nb_dataset_open(tmp_path("data"), "train", &o, &d, &info));
    assert_int_equal(info.kind, NB_DATA_FOLDER);
    assert_non_null(strstr(info.layout, "image folder (train/, 2 classes)"));
    assert_int_equal(info.classes, 2);
    assert_string_equal(info.class_names[0], "cat");
    assert_string_equal(info.class_names[1], "dog");
    assert_int_equal(info.ignored, 2);
    assert_int_equal(d.count, 4);
    assert_int_equal(d.channels, 1);
    assert_int_equal(d.height, 8);
    /* cat first; then dog's own files sorted (a.PGM before b.pgm), then
     * its subfolder's, as ImageFolder orders them. */
    static const uint8_t want_labels[4] = {0, 1, 1, 1}, want_px[4] = {40, 10, 20, 30};
    assert_null(d.images); /* nothing is decoded until a batch needs it */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(d.labels[i], want_labels[i]);
        const uint8_t *px = sample_bytes(&d, i);
        for (int p = 0; p < 64; p++) assert_int_equal(px[p], want_px[i]);
    }
    nb_dataset_free(&d);
    nb_dataset_info_free(&info);

    /* The test split is val/, labelled by train/'s classes: dog stays 1. */
    assert_ok(nb_dataset_open(tmp_path("data"), "test", &o, &d, &info));
    assert_int_equal(d.count, 1);
    assert_int_equal(d.labels[0], 1);
    assert_int_equal(sample_bytes(&d, 0)[0], 50);
    assert_non_null(strstr(info.layout, "val/"));
    nb_dataset_free(&d);
    nb_dataset_info_free(&info);

    /* Colour models get gray replicated; NULL info is allowed. */
    nb_dataset_opts c3 = o;
    c3.channels = 3;
    assert_ok(nb_dataset_open(tmp_path("data"), "train", &c3, &d, NULL));
    assert_int_equal(d.channels, 3);
    assert_int_equal(sample_bytes(&d, 0)[2 * 64], 40);
    nb_dataset_free(&d);
}

static void expect_open_fails(const char *dir, const char *split, const nb_dataset_opts *o,
                              nb_status want, const char *needle) {
    nb_dataset d;
    nb_dataset_info info;
    nb_status st = nb_dataset_open(dir, split, o, &d, &info);
    if (st != want || !strstr(nb_last_error(), needle))
        fail_msg("status %d (want %d), message '%s', expected it to contain '%s'", st, want,
                 nb_last_error(), needle);
    assert_null(d.images);
}

static void test_folder_errors(void **s) {
    (void)s;
    nb_dataset_opts o = gray(8);
    /* A class in val/ that train/ lacks. */
    write_tree();
    tmp_mkdirs("data/val/bird");
    tmp_write_pgm("data/val/bird/x.pgm", 8, 8, 1);
    expect_open_fails(tmp_path("data"), "test", &o, NB_ERR_FORMAT,
                      "val/bird: class 'bird' is not a class of");
    /* An empty class folder (only a non-image in it). */
    write_tree();
    tmp_mkdirs("data/train/emu");
    tmp_write("data/train/emu/readme.md", "x", 1);
    expect_open_fails(tmp_path("data"), "train", &o, NB_ERR_FORMAT,
                      "train/emu: empty class folder");
    /* A corrupt image stops the batch that reads it, with its path... */
    write_tree();
    tmp_write("data/train/cat/bad.jpg", "\xff\xd8\xff\xe0 not really", 15);
    nb_dataset d;
    nb_dataset_info info;
    float x[5 * 64], y[5];
    assert_ok(nb_dataset_open(tmp_path("data"), "train", &o, &d, &info));
    assert_int_equal(d.count, 5);
    assert_int_equal(nb_dataset_batch(&d, NULL, 0, 5, NULL, NULL, x, y), NB_ERR_FORMAT);
    assert_non_null(strstr(nb_last_error(), "train/cat/bad.jpg: bad JPEG"));
    nb_dataset_free(&d);
    nb_dataset_info_free(&info);
    /* ... unless bad images are skipped: the loader leaves it out of its
     * batch and counts it. */
    nb_dataset_opts skip = o;
    skip.skip_bad_images = 1;
    assert_ok(nb_dataset_open(tmp_path("data"), "train", &skip, &d, &info));
    nb_loader_opts lo = {.batch = 5};
    nb_loader *l;
    const nb_batch *b;
    assert_ok(nb_loader_new(&d, &lo, &l));
    assert_ok(nb_loader_start(l, NULL, 5, 0, 0));
    assert_ok(nb_loader_next(l, &b));
    assert_non_null(b);
    assert_int_equal(b->count, 4);
    assert_int_equal(b->global_count, 5);
    assert_int_equal(b->bad, 1);
    assert_float_equal(b->y[0], 0.0f, 0); /* z.pgm, the cat after bad.jpg */
    assert_float_equal(b->y[1], 1.0f, 0);
    assert_ok(nb_loader_next(l, &b));
    assert_null(b);
    nb_loader_free(l);
    nb_dataset_free(&d);
    nb_dataset_info_free(&info);
    /* The pixel limit applies to every image, as it is read. */
    write_tree();
    nb_dataset_opts small = o;
    small.max_pixels = 100;
    assert_ok(nb_dataset_open(tmp_path("data"), "train", &small, &d, &info));
    assert_int_equal(nb_dataset_batch(&d, NULL, 0, 4, NULL, NULL, x, y), NB_ERR_FORMAT);
    assert_non_null(strstr(nb_last_error(), "more than the limit of 100"));
    nb_dataset_free(&d);
    nb_dataset_info_free(&info);
    /* No val/ nor test/ to evaluate on; test/ is taken when val/ is absent. */
    write_tree();
    char path[512];
    snprintf(path, sizeof path, "rm -rf %s/data/val", tmpdir);
    assert_int_equal(system(path), 0);
    expect_open_fails(tmp_path("data"), "test", &o, NB_ERR_FORMAT, "neither val/ nor test/");
    tmp_mkdirs("data/test/cat");
    tmp_write_pgm("data/test/cat/t.pgm", 8, 8, 60);
    assert_ok(nb_dataset_open(tmp_path("data"), "test", &o, &d, &info));
    assert_int_equal(d.labels[0], 0);
    assert_non_null(strstr(info.layout, "test/"));
    nb_dataset_free(&d);
    nb_dataset_info_free(&info);
    /* A folder data set needs the size to load at. */
    nb_dataset_opts none;
    memset(&none, 0, sizeof none);
    expect_open_fails(tmp_path("data"), "train", &none, NB_ERR_ARG, "needs the model's input size");
}

/* More classes than a byte counts (ImageNet has 1000): labels are int32. */
static void test_many_classes(void **s) {
    (void)s;
    tmpdir_clear();
    char rel[128];
    for (int c = 0; c < 300; c++) {
        snprintf(rel, sizeof rel, "many/train/n%03d", c);
        tmp_mkdirs(rel);
        snprintf(rel, sizeof rel, "many/train/n%03d/x.pgm", c);
        tmp_write_pgm(rel, 4, 4, (uint8_t)c);
    }
    nb_dataset_opts o = gray(4);
    nb_dataset d;
    nb_dataset_info info;
    assert_ok(nb_dataset_open(tmp_path("many"), "train", &o, &d, &info));
    assert_int_equal(info.classes, 300);
    assert_int_equal(d.count, 300);
    assert_int_equal(d.labels[299], 299);
    assert_string_equal(info.class_names[299], "n299");
    assert_int_equal(sample_bytes(&d, 299)[0], 299 % 256);
    nb_dataset_free(&d);
    nb_dataset_info_free(&info);
}

static void test_nothing_found(void **s) {
    (void)s;
    tmpdir_clear();
    tmp_mkdirs("empty");
    nb_dataset_opts o = gray(8);
    expect_open_fails(tmp_path("empty"), "train", &o, NB_ERR_FORMAT, "no data set found: looked for MNIST IDX");
    assert_non_null(strstr(nb_last_error(), "data_batch_1.bin"));
    assert_non_null(strstr(nb_last_error(), "train.bin"));
    assert_non_null(strstr(nb_last_error(), "train/<class>/<image>"));
    expect_open_fails(tmp_path("missing"), "train", &o, NB_ERR_IO, "no such data directory");
    expect_open_fails(tmp_path("empty"), "dev", &o, NB_ERR_ARG, "expected \"train\" or \"test\"");
}

/* ---- CIFAR ------------------------------------------------------------------- */

enum { PIX = 3072 };

/* n records of label_bytes labels (labels[i * label_bytes + k]); record i's
 * pixels are i + plane (R = i, G = i + 1, B = i + 2). */
static void write_cifar(const char *rel, int n, int label_bytes, const uint8_t *labels) {
    size_t rec = (size_t)label_bytes + PIX;
    uint8_t *buf = malloc((size_t)n * rec);
    for (int i = 0; i < n; i++) {
        memcpy(buf + (size_t)i * rec, labels + i * label_bytes, (size_t)label_bytes);
        for (int c = 0; c < 3; c++)
            memset(buf + (size_t)i * rec + (size_t)label_bytes + (size_t)c * 1024, i + c, 1024);
    }
    tmp_write(rel, buf, (size_t)n * rec);
    free(buf);
}

static void test_cifar10(void **s) {
    (void)s;
    tmpdir_clear();
    tmp_mkdirs("c10");
    uint8_t labels[3] = {9, 0, 4};
    char name[64];
    for (int k = 1; k <= 5; k++) {
        snprintf(name, sizeof name, "c10/data_batch_%d.bin", k);
        write_cifar(name, 2, 1, labels + (k == 5));
    }
    write_cifar("c10/test_batch.bin", 3, 1, labels);
    nb_dataset d;
    nb_dataset_info info;
    assert_ok(nb_dataset_open(tmp_path("c10"), "train", NULL, &d, &info));
    assert_int_equal(info.kind, NB_DATA_CIFAR10);
    assert_int_equal(d.count, 10);
    assert_int_equal(d.channels, 3);
    assert_int_equal(d.height, 32);
    assert_int_equal(d.labels[0], 9);
    assert_int_equal(d.labels[9], 4);
    assert_int_equal(d.images[PIX + 1024], 2); /* record 1's G plane */
    assert_int_equal(info.classes, 10);
    assert_string_equal(info.class_names[9], "truck");
    nb_dataset_free(&d);
    nb_dataset_info_free(&info);
    assert_ok(nb_dataset_open(tmp_path("c10"), "test", NULL, &d, &info));
    assert_int_equal(d.count, 3);
    nb_dataset_free(&d);
    nb_dataset_info_free(&info);
    /* Fitted to a gray 28x28 model: Pillow's luma, resized and cropped. */
    nb_dataset_opts o = gray(28);
    assert_ok(nb_dataset_open(tmp_path("c10"), "test", &o, &d, &info));
    assert_int_equal(d.channels, 1);
    assert_int_equal(d.height, 28);
    /* R 2, G 3, B 4: (2*19595 + 3*38470 + 4*7471 + 32768) >> 16 = 3 */
    assert_null(d.images); /* the 32x32 images stay; samples are transformed as read */
    uint8_t fitted[784];
    assert_ok(nb_dataset_sample(&d, 2, NULL, 0, 0, fitted));
    assert_int_equal(fitted[400], 3);
    nb_dataset_free(&d);
    nb_dataset_info_free(&info);

    /* A bad label names the file, record and byte offset. */
    uint8_t bad[2] = {3, 10};
    write_cifar("c10/data_batch_3.bin", 2, 1, bad);
    expect_open_fails(tmp_path("c10"), "train", NULL, NB_ERR_FORMAT,
                      "data_batch_3.bin: label 10 of record 1 (byte offset 3073) is not below 10");
    /* A file that is not whole records. */
    tmp_write("c10/data_batch_3.bin", "\x01", 1);
    expect_open_fails(tmp_path("c10"), "train", NULL, NB_ERR_FORMAT,
                      "data_batch_3.bin: 1 bytes is not a whole number of 3073-byte CIFAR-10 records");
    /* A missing batch. */
    remove(tmp_path("c10/data_batch_3.bin"));
    expect_open_fails(tmp_path("c10"), "train", NULL, NB_ERR_IO, "data_batch_3.bin");
}

static void test_cifar100(void **s) {
    (void)s;
    tmpdir_clear();
    tmp_mkdirs("c100/cifar-100-binary");
    uint8_t labels[4] = {19, 99, 0, 5}; /* coarse, fine per record */
    write_cifar("c100/cifar-100-binary/train.bin", 2, 2, labels);
    write_cifar("c100/cifar-100-binary/test.bin", 1, 2, labels + 2);
    char names[20 * 8 + 1] = "";
    for (int i = 0; i < 20; i++) snprintf(names + strlen(names), 9, "group%02d\n", i);
    tmp_write("c100/cifar-100-binary/coarse_label_names.txt", names, strlen(names));
    nb_dataset d;
    nb_dataset_info info;
    assert_ok(nb_dataset_open(tmp_path("c100"), "train", NULL, &d, &info));
    assert_int_equal(info.kind, NB_DATA_CIFAR100);
    assert_non_null(strstr(info.layout, "fine labels"));
    assert_int_equal(info.classes, 100);
    assert_null(info.class_names); /* no fine_label_names.txt */
    assert_int_equal(d.labels[0], 99);
    assert_int_equal(d.labels[1], 5);
    nb_dataset_free(&d);
    nb_dataset_info_free(&info);
    nb_dataset_opts coarse;
    memset(&coarse, 0, sizeof coarse);
    coarse.coarse_labels = 1;
    assert_ok(nb_dataset_open(tmp_path("c100"), "train", &coarse, &d, &info));
    assert_int_equal(info.classes, 20);
    assert_int_equal(d.labels[0], 19);
    assert_int_equal(d.labels[1], 0);
    assert_string_equal(info.class_names[19], "group19");
    nb_dataset_free(&d);
    nb_dataset_info_free(&info);
    uint8_t bad[2] = {20, 3};
    write_cifar("c100/cifar-100-binary/test.bin", 1, 2, bad);
    expect_open_fails(tmp_path("c100"), "test", NULL, NB_ERR_FORMAT,
                      "test.bin: coarse label 20 of record 0 (byte offset 0) is not below 20");
    /* CIFAR-10 records in a CIFAR-100 file: the length says so. */
    write_cifar("c100/cifar-100-binary/test.bin", 2, 1, bad);
    expect_open_fails(tmp_path("c100"), "test", NULL, NB_ERR_FORMAT, "3074-byte CIFAR-100 records");
    /* A names file with the wrong count. */
    tmp_write("c100/cifar-100-binary/coarse_label_names.txt", "a\nb\n", 4);
    expect_open_fails(tmp_path("c100"), "train", &coarse, NB_ERR_FORMAT, "2 class names, expected 20");
}

/* Failing every allocation in turn while loading a folder and CIFAR:
 * out of memory, nothing left allocated. */
static void test_allocation_failures(void **s) {
    (void)s;
    write_tree();
    tmp_mkdirs("c10");
    uint8_t labels[2] = {1, 2};
    write_cifar("c10/test_batch.bin", 2, 1, labels);
    nb_dataset_opts o = gray(8);
    const char *dirs[2] = {"data", "c10"};
    /* One thread: the counting allocator's budget is not thread-safe. */
    int threads = nb_get_threads();
    nb_set_threads(1);
    for (int k = 0; k < 2; k++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", tmpdir, dirs[k]);
        nb_set_allocator(counting_malloc, counting_realloc, counting_free);
        int failures = 0;
        for (long b = 0;; b++) {
            alloc_budget = b;
            live_allocs = 0;
            nb_dataset d;
            nb_dataset_info info;
            nb_status st = nb_dataset_open(dir, k ? "test" : "train", &o, &d, &info);
            if (!st) {
                nb_dataset_free(&d);
                nb_dataset_info_free(&info);
            }
            assert_int_equal(live_allocs, 0);
            if (st == NB_OK) break;
            assert_int_equal(st, NB_ERR_NOMEM);
            failures++;
        }
        nb_set_allocator(NULL, NULL, NULL);
        alloc_budget = -1;
        assert_true(failures >= 3);
    }
    nb_set_threads(threads);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_folder),  cmocka_unit_test(test_folder_errors),
        cmocka_unit_test(test_many_classes),
        cmocka_unit_test(test_nothing_found), cmocka_unit_test(test_cifar10),
        cmocka_unit_test(test_cifar100),      cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests_name("folder", tests, tmpdir_setup, tmpdir_teardown);
}
