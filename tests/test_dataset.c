/* test_dataset.c — MNIST-format datasets: loading generated splits and
 * their errors, batches (order, normalisation, labels), the shuffle, and
 * the real Fashion-MNIST when its package is installed. */
#include "support.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* Write an IDX file of ndim dims into tmpdir/name (gzipped when gz). */
static void write_idx(const char *name, int ndim, const uint32_t *dims, const uint8_t *data,
                      int gz) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    uint8_t head[4 + 4 * NB_MAX_DIMS] = {0, 0, 0x08, (uint8_t)ndim};
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        for (int k = 0; k < 4; k++) head[4 + 4 * i + k] = (uint8_t)(dims[i] >> (24 - 8 * k));
        n *= dims[i];
    }
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        gzwrite(f, head, (unsigned)(4 + 4 * ndim));
        gzwrite(f, data, (unsigned)n);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fwrite(head, 1, (size_t)(4 + 4 * ndim), f);
        fwrite(data, 1, n, f);
        assert_int_equal(fclose(f), 0);
    }
}

enum { N = 5, H = 2, W = 3 };

static uint8_t images[N * H * W], labels[N];

/* A split "train" of N 2x3 images: images .gz, labels plain. */
static void write_split(void) {
    for (int i = 0; i < N * H * W; i++) images[i] = (uint8_t)(i * 37 % 256);
    for (int i = 0; i < N; i++) labels[i] = (uint8_t)(9 - i);
    write_idx("train-images-idx3-ubyte.gz", 3, (uint32_t[]){N, H, W}, images, 1);
    write_idx("train-labels-idx1-ubyte", 1, (uint32_t[]){N}, labels, 0);
}

static void test_load_generated(void **s) {
    (void)s;
    tmpdir_clear();
    write_split();
    nb_dataset d;
    assert_ok(nb_dataset_load_mnist(tmpdir, "train", &d));
    assert_int_equal(d.count, N);
    assert_int_equal(d.channels, 1);
    assert_int_equal(d.height, H);
    assert_int_equal(d.width, W);
    assert_memory_equal(d.images, images, sizeof images);
    for (int i = 0; i < N; i++) assert_int_equal(d.labels[i], labels[i]);
    nb_dataset_free(&d);
    assert_null(d.images);
    assert_int_equal(d.count, 0);
}

/* With both forms present the .gz wins (the distributed form). */
static void test_prefers_gzip(void **s) {
    (void)s;
    tmpdir_clear();
    write_split();
    uint8_t other[N] = {0, 0, 0, 0, 0};
    write_idx("train-labels-idx1-ubyte.gz", 1, (uint32_t[]){N}, other, 1);
    nb_dataset d;
    assert_ok(nb_dataset_load_mnist(tmpdir, "train", &d));
    for (int i = 0; i < N; i++) assert_int_equal(d.labels[i], 0);
    nb_dataset_free(&d);
}

static void expect_error(nb_status status, const char *part1, const char *part2) {
    nb_dataset d = {.count = 123};
    nb_status st = nb_dataset_load_mnist(tmpdir, "train", &d);
    if (st != status || !strstr(nb_last_error(), part1) ||
        (part2 && !strstr(nb_last_error(), part2)))
        print_error("status %d: %s\n", st, nb_last_error());
    assert_int_equal(st, status);
    assert_non_null(strstr(nb_last_error(), part1));
    if (part2) assert_non_null(strstr(nb_last_error(), part2));
    assert_int_equal(d.count, 123); /* untouched on failure */
}

static void test_load_errors(void **s) {
    (void)s;
    char path[512];
    /* Nothing there: the message names the path and says how to get it. */
    tmpdir_clear();
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz: not found", tmpdir);
    expect_error(NB_ERR_IO, path, "apt-get install dataset-fashion-mnist");
    expect_error(NB_ERR_IO, "--data DIR", NULL);

    /* Labels missing. */
    write_split();
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", tmpdir);
    remove(path);
    expect_error(NB_ERR_IO, "train-labels-idx1-ubyte.gz: not found", NULL);

    /* Counts disagree. */
    tmpdir_clear();
    write_split();
    write_idx("train-labels-idx1-ubyte", 1, (uint32_t[]){N - 1}, labels, 0);
    expect_error(NB_ERR_FORMAT, "has 5 images but", "has 4 labels");

    /* A label of 10 at index 3. */
    tmpdir_clear();
    write_split();
    uint8_t bad[N] = {1, 2, 3, 10, 11};
    write_idx("train-labels-idx1-ubyte", 1, (uint32_t[]){N}, bad, 0);
    expect_error(NB_ERR_FORMAT, "label 10 at index 3 (byte offset 11) is not below 10", NULL);

    /* Images that are not 3-D, and labels that are not 1-D. */
    tmpdir_clear();
    write_split();
    write_idx("train-images-idx3-ubyte.gz", 2, (uint32_t[]){N, H * W}, images, 1);
    expect_error(NB_ERR_FORMAT, "images must be 3-D [count, height, width] or 4-D [count, channels, height, width], the file has 2", NULL);
    tmpdir_clear();
    write_split();
    write_idx("train-labels-idx1-ubyte", 2, (uint32_t[]){N, 1}, labels, 0);
    expect_error(NB_ERR_FORMAT, "labels must be 1-D", NULL);

    /* A malformed IDX file passes its own message through. */
    tmpdir_clear();
    write_split();
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", tmpdir);
    FILE *f = fopen(path, "wb");
    static const uint8_t short_labels[] = {0, 0, 8, 1, 0, 0, 0, N + 2, 1, 2, 3, 4, 5};
    fwrite(short_labels, 1, sizeof short_labels, f); /* 2 labels short */
    fclose(f);
    expect_error(NB_ERR_FORMAT, "header says 7 bytes of data but the file has 5", NULL);

    nb_dataset d;
    assert_int_equal(nb_dataset_load_mnist(NULL, "train", &d), NB_ERR_ARG);
    assert_int_equal(nb_dataset_load_mnist(tmpdir, "../x", &d), NB_ERR_ARG);
}

static int32_t class_of[N];

static nb_dataset small_dataset(void) {
    nb_dataset d = {N, 1, H, W, images, class_of, NULL};
    for (int i = 0; i < N * H * W; i++) images[i] = (uint8_t)(i * 37 % 256);
    for (int i = 0; i < N; i++) labels[i] = (uint8_t)(9 - i), class_of[i] = 9 - i;
    return d;
}

static void test_batch_values(void **s) {
    (void)s;
    nb_dataset d = small_dataset();
    float x[3 * H * W], y[3];
    /* File order, plain x/255. */
    assert_ok(nb_dataset_batch(&d, NULL, 1, 3, NULL, NULL, x, y));
    for (int b = 0; b < 3; b++) {
        assert_float_equal(y[b], (float)labels[1 + b], 0);
        for (int i = 0; i < H * W; i++)
            assert_float_equal(x[b * H * W + i], (float)images[(1 + b) * H * W + i] / 255.0f, 0);
    }
    /* Through an order, normalised. */
    const uint32_t order[N] = {4, 0, 3, 1, 2};
    const float mean[1] = {0.2860f}, std[1] = {0.3530f};
    assert_ok(nb_dataset_batch(&d, order, 2, 3, mean, std, x, y));
    for (int b = 0; b < 3; b++) {
        uint32_t idx = order[2 + b];
        assert_float_equal(y[b], (float)labels[idx], 0);
        for (int i = 0; i < H * W; i++) {
            float want = ((float)images[idx * H * W + i] / 255.0f - mean[0]) / std[0];
            assert_float_equal(x[b * H * W + i], want, 1e-6);
        }
    }
    /* labels may be NULL. */
    assert_ok(nb_dataset_batch(&d, order, 0, 1, NULL, NULL, x, NULL));
    assert_float_equal(x[0], (float)images[4 * H * W] / 255.0f, 0);
    /* An index past the end is an error naming it. */
    const uint32_t bad_order[1] = {N};
    assert_int_equal(nb_dataset_batch(&d, bad_order, 0, 1, NULL, NULL, x, y), NB_ERR_ARG);
    assert_non_null(strstr(nb_last_error(), "sample 5 of a data set of 5"));
}

/* Per-channel statistics on a 3-channel set. */
static void test_batch_channels(void **s) {
    (void)s;
    uint8_t px[2 * 3 * 2 * 2];
    int32_t lb[2] = {1, 2};
    for (int i = 0; i < (int)sizeof px; i++) px[i] = (uint8_t)(i * 11);
    nb_dataset d = {2, 3, 2, 2, px, lb, NULL};
    const float mean[3] = {0.5f, 0.25f, 0.0f}, std[3] = {0.5f, 2.0f, 1.0f};
    float x[2 * 12], y[2];
    nb_dataset_batch(&d, NULL, 0, 2, mean, std, x, y);
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 4; i++) {
                int at = b * 12 + c * 4 + i;
                assert_float_equal(x[at], ((float)px[at] / 255.0f - mean[c]) / std[c], 1e-6);
            }
}

static void test_shuffle(void **s) {
    (void)s;
    enum { M = 1000 };
    uint32_t a[M], b[M], c[M];
    nb_rng r1, r2, r3;
    nb_rng_seed(&r1, 42);
    nb_rng_seed(&r2, 42);
    nb_rng_seed(&r3, 43);
    nb_shuffle(a, M, 1, &r1);
    nb_shuffle(b, M, 1, &r2);
    nb_shuffle(c, M, 1, &r3);
    assert_memory_equal(a, b, sizeof a); /* same seed, same order */
    assert_memory_not_equal(a, c, sizeof a);
    /* A permutation of 0..M-1 that moved most elements. */
    int seen[M] = {0}, fixed = 0;
    for (int i = 0; i < M; i++) {
        assert_true(a[i] < M);
        seen[a[i]]++;
        fixed += a[i] == (uint32_t)i;
    }
    for (int i = 0; i < M; i++) assert_int_equal(seen[i], 1);
    assert_true(fixed < 20);
    /* Without reset it shuffles what is there, continuing the stream. */
    nb_shuffle(a, M, 0, &r1);
    nb_shuffle(b, M, 0, &r2);
    assert_memory_equal(a, b, sizeof a);
    /* Tiny cases. */
    uint32_t one[1] = {7};
    nb_shuffle(one, 1, 0, &r1);
    assert_int_equal(one[0], 7);
    nb_shuffle(NULL, 0, 1, &r1);
}

/* Position 0 lands on each value about equally often (Fisher-Yates, not
 * the biased "swap with any" variant). */
static void test_shuffle_uniform(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    int counts[4][4] = {{0}};
    for (int t = 0; t < 40000; t++) {
        uint32_t o[4];
        nb_shuffle(o, 4, 1, &rng);
        for (int p = 0; p < 4; p++) counts[p][o[p]]++;
    }
    for (int p = 0; p < 4; p++)
        for (int v = 0; v < 4; v++) assert_true(abs(counts[p][v] - 10000) < 500);
}

/* ---- the real data -------------------------------------------------------------- */

static int first_label_by_zlib(const char *dir, const char *split) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    gzFile f = gzopen(path, "rb");
    if (!f) return -1;
    uint8_t head[9];
    int n = gzread(f, head, 9);
    gzclose(f);
    return n == 9 ? head[8] : -1;
}

static void test_fashion_mnist(void **s) {
    (void)s;
    char path[512];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", NB_FASHION_MNIST_DIR);
    if (access(path, R_OK) != 0) {
        print_message("Fashion-MNIST not installed in %s: skipped\n", NB_FASHION_MNIST_DIR);
        skip();
    }
    static const struct {
        const char *split;
        int count;
    } splits[] = {{"train", 60000}, {"t10k", 10000}};
    for (int k = 0; k < 2; k++) {
        nb_dataset d;
        assert_ok(nb_dataset_load_mnist(NB_FASHION_MNIST_DIR, splits[k].split, &d));
        assert_int_equal(d.count, splits[k].count);
        assert_int_equal(d.channels, 1);
        assert_int_equal(d.height, 28);
        assert_int_equal(d.width, 28);
        assert_int_equal(d.labels[0], first_label_by_zlib(NB_FASHION_MNIST_DIR, splits[k].split));
        /* Fashion-MNIST is balanced: every class has a tenth of the set. */
        int per_class[10] = {0};
        for (int i = 0; i < d.count; i++) per_class[d.labels[i]]++;
        for (int c = 0; c < 10; c++) assert_int_equal(per_class[c], d.count / 10);
        /* Its pixel mean is the well-known 0.2860 (train). */
        if (k == 0) {
            double sum = 0;
            size_t n = (size_t)d.count * 28 * 28;
            for (size_t i = 0; i < n; i++) sum += d.images[i];
            assert_float_equal(sum / (double)n / 255.0, 0.2860, 5e-4);
            assert_int_equal(d.labels[0], 9); /* the first training image is an ankle boot */
        }
        nb_dataset_free(&d);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_generated),  cmocka_unit_test(test_prefers_gzip),
        cmocka_unit_test(test_load_errors),     cmocka_unit_test(test_batch_values),
        cmocka_unit_test(test_batch_channels),  cmocka_unit_test(test_shuffle),
        cmocka_unit_test(test_shuffle_uniform), cmocka_unit_test(test_fashion_mnist),
    };
    return cmocka_run_group_tests_name("dataset", tests, tmpdir_setup, tmpdir_teardown);
}
