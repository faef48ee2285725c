/* test_pictures.c — the PNGs nabla draws: `nabla plot` from a --log file
 * (CSV and JSON lines), and `nabla eval --confusion/--errors`. Each file
 * is read back as an image: the size the command draws, not blank, and for
 * the heat map, a darker diagonal than the rest; class names on an image
 * folder's pictures; a failed write that keeps the previous file. Needs
 * Fashion-MNIST. */
#include "support.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Width and height from a PNG's IHDR chunk. */
static void png_size(const char *path, int *w, int *h) {
    unsigned char b[24];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(b, 1, 24, f), 24);
    fclose(f);
    assert_memory_equal(b, "\x89PNG\r\n\x1a\n", 8);
    *w = b[16] << 24 | b[17] << 16 | b[18] << 8 | b[19];
    *h = b[20] << 24 | b[21] << 16 | b[22] << 8 | b[23];
}

/* The picture as grey levels in [0, 1]; the caller frees it. */
static float *read_png(const char *path, int *w, int *h) {
    png_size(path, w, h);
    float *px = malloc((size_t)*w * (size_t)*h * sizeof *px);
    assert_non_null(px);
    assert_ok(nb_image_load(path, 1, *h, *w, px));
    return px;
}

/* Share of pixels darker than mid-grey: ink on a white page. */
static double ink(const float *px, size_t n) {
    size_t dark = 0;
    for (size_t i = 0; i < n; i++) dark += px[i] < 0.5f;
    return (double)dark / (double)n;
}

static void test_plot(void **s) {
    (void)s;
    assert_int_equal(run_nabla("train --model logreg --epochs 3 --batch 600 --threads 1 --log %s",
                               tmp_path("run.csv")), 0);
    assert_int_equal(run_nabla("plot %s --out %s --title 'logreg, 3 epochs'", tmp_path("run.csv"),
                               tmp_path("curves.png")), 0);
    int w, h;
    float *px = read_png(tmp_path("curves.png"), &w, &h);
    assert_int_equal(w, 1100);
    assert_int_equal(h, 1100 * 9 / 22);
    double k = ink(px, (size_t)w * h);
    assert_true(k > 0.005 && k < 0.2); /* axes, text and lines on white */
    free(px);
    /* The same from JSON lines, at another width. */
    assert_int_equal(run_nabla("train --model logreg --steps 150 --batch 600 --threads 1 --log %s",
                               tmp_path("run.jsonl")), 0);
    assert_int_equal(run_nabla("plot %s --out=%s --width 800", tmp_path("run.jsonl"),
                               tmp_path("j.png")), 0);
    png_size(tmp_path("j.png"), &w, &h);
    assert_int_equal(w, 800);
    /* Mistakes. */
    assert_int_equal(run_nabla("plot %s --out %s", tmp_path("run.csv"), tmp_path("c.jpg")), 2);
    expect(err_text, "give a .png file");
    assert_int_equal(run_nabla("plot %s", tmp_path("run.csv")), 2);
    expect(err_text, "--out FILE.png");
    assert_int_equal(run_nabla("plot %s --out %s", tmp_path("none.csv"), tmp_path("c.png")), 1);
    expect(err_text, "none.csv: No such file");
}

static void test_eval_pictures(void **s) {
    (void)s;
    assert_int_equal(run_nabla("train --model logreg --epochs 1 --batch 600 --threads 1 --no-test --save %s",
                               tmp_path("w.safetensors")), 0);
    assert_int_equal(run_nabla("eval --model logreg --weights %s --confusion %s --errors %s",
                               tmp_path("w.safetensors"), tmp_path("cm.png"), tmp_path("err.png")), 0);
    expect(out_text, "accuracy");
    int w, h;
    float *px = read_png(tmp_path("cm.png"), &w, &h);
    /* 10 classes: cells of 52 pixels from (130, 130). Diagonal cells are
     * darker than the off-diagonal ones on average. */
    double diag = 0, off = 0;
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 10; j++) {
            /* a corner of the cell, clear of its number */
            float v = px[(size_t)(130 + i * 52 + 4) * w + (size_t)(130 + j * 52 + 4)];
            if (i == j) diag += v / 10.0;
            else off += v / 90.0;
        }
    if (!(diag < 0.5 && off > 0.8)) print_error("diagonal %g, off-diagonal %g\n", diag, off);
    assert_true(diag < 0.5 && off > 0.8);
    free(px);
    /* The errors grid: 8 columns of 132 pixels, 5 rows of 140 under a
     * 50-pixel heading (a model this weak gets 40 wrong). */
    png_size(tmp_path("err.png"), &w, &h);
    assert_int_equal(w, 14 * 2 + 132 * 8);
    assert_int_equal(h, 50 + 140 * 5 + 10);
    px = read_png(tmp_path("err.png"), &w, &h);
    double k = ink(px, (size_t)w * h);
    assert_true(k > 0.2 && k < 0.6); /* dark-background images on white */
    free(px);
    assert_int_equal(run_nabla("eval --model logreg --weights %s --confusion cm.txt", tmp_path("w.safetensors")), 2);
    expect(err_text, "--confusion cm.txt: the picture is a PNG");
}

/* Images of 28x28 in DIR/val/NAME/ (and DIR/train/NAME/ with train), four
 * a class; in val/ two of each class are the same image, so something is
 * always misclassified. */
static void write_folder(const char *dir, const char *const *names, int classes, bool train) {
    char rel[128];
    for (int c = 0; c < classes; c++)
        for (int i = 0; i < 4; i++) {
            for (int split = train ? 0 : 1; split < 2; split++) {
                const char *sub = split ? "val" : "train";
                snprintf(rel, sizeof rel, "%s/%s/%s", dir, sub, names[c]);
                tmp_mkdirs(rel);
                snprintf(rel, sizeof rel, "%s/%s/%s/%d.pgm", dir, sub, names[c], i);
                int value = split == 0 ? 40 + 80 * c + i : i < 2 ? 128 : 40 + 80 * c;
                tmp_write_pgm(rel, 28, 28, (uint8_t)value);
            }
        }
}

/* Ink where the confusion matrix's row labels reach far left of the grid
 * (at x = 130, 3 rows of 52 from y = 130): a name of several letters does,
 * a number or a single letter (under 10 pixels) does not. */
static size_t long_row_labels(const char *png) {
    int w, h;
    float *px = read_png(png, &w, &h);
    size_t dark = 0;
    for (int y = 130; y < 130 + 3 * 52; y++)
        for (int x = 60; x < 110; x++) dark += px[(size_t)y * w + x] < 0.5f;
    free(px);
    return dark;
}

/* Image folders whose classes are not Fashion-MNIST's label the pictures
 * with the weights' class names where they carry them, else the data's. */
static void test_pictures_name_folder_classes(void **s) {
    (void)s;
    static const char *const shapes[3] = {"hexagon", "pentagon", "triangle"}, *const abc[3] = {"a", "b", "c"};
    write_folder("shapes", shapes, 3, true);
    write_folder("abc", abc, 3, false);
    /* 3 classes: the weights carry the folder names and win over abc's. */
    assert_int_equal(run_nabla("train --model logreg --classes 3 --steps 3 --batch 4 --threads 1 --no-test "
                               "--data %s --save %s", tmp_path("shapes"), tmp_path("named.safetensors")), 0);
    assert_int_equal(run_nabla("eval --model logreg --classes 3 --weights %s --data %s --confusion %s",
                               tmp_path("named.safetensors"), tmp_path("abc"), tmp_path("named.png")), 0);
    assert_true(long_row_labels(tmp_path("named.png")) > 20);
    /* The default 10 classes: no names saved, so the data's label them. */
    assert_int_equal(run_nabla("train --model logreg --steps 3 --batch 4 --threads 1 --no-test --data %s "
                               "--save %s", tmp_path("shapes"), tmp_path("plain.safetensors")), 0);
    expect(out_text, "the class names are not saved");
    assert_int_equal(run_nabla("eval --model logreg --weights %s --data %s --confusion %s --errors %s",
                               tmp_path("plain.safetensors"), tmp_path("shapes"), tmp_path("scm.png"),
                               tmp_path("serr.png")), 0);
    expect(out_text, "pentagon");
    assert_true(long_row_labels(tmp_path("scm.png")) > 20);
    assert_int_equal(run_nabla("eval --model logreg --weights %s --data %s --confusion %s",
                               tmp_path("plain.safetensors"), tmp_path("abc"), tmp_path("acm.png")), 0);
    assert_int_equal(long_row_labels(tmp_path("acm.png")), 0);
    /* The first miss's "true: NAME" line under its 96-pixel image, in the
     * first 132-pixel cell from x = 14: wider than "true: 2" would be. */
    int w, h;
    float *px = read_png(tmp_path("serr.png"), &w, &h);
    int lo = w, hi = -1;
    for (int y = 50 + 96 + 2; y < 50 + 96 + 18; y++)
        for (int x = 14; x < 14 + 132; x++)
            if (px[(size_t)y * w + x] < 0.5f) lo = x < lo ? x : lo, hi = x > hi ? x : hi;
    free(px);
    if (hi - lo < 70) print_error("the label under the first miss is %d pixels wide\n", hi - lo + 1);
    assert_true(hi - lo >= 70);
}

/* A picture that cannot be written leaves the previous file as it was and
 * no temporary file beside it: here the write fails for a file size limit
 * (as for a full disk) below the picture's size. */
static void test_failed_write_keeps_previous(void **s) {
    (void)s;
    assert_int_equal(run_nabla("train --model logreg --steps 100 --batch 600 --threads 1 --log %s",
                               tmp_path("keep.csv")), 0);
    tmp_write("keep.png", "previous", 8);
    struct rlimit old, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 8192; /* the PNG is some 30 KB; the captured output far less */
    void (*handler)(int) = signal(SIGXFSZ, SIG_IGN); /* a write past it fails with EFBIG */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    int code = run_nabla("plot %s --out %s", tmp_path("keep.csv"), tmp_path("keep.png"));
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, handler);
    assert_int_equal(code, 1);
    expect(err_text, "keep.png");
    expect(err_text, "the previous file is unchanged");
    FILE *f = fopen(tmp_path("keep.png"), "rb");
    assert_non_null(f);
    char buf[16] = {0};
    assert_int_equal(fread(buf, 1, sizeof buf, f), 8);
    fclose(f);
    assert_memory_equal(buf, "previous", 8);
    assert_no_temporaries(tmpdir);
    /* Without the limit the same command replaces it. */
    assert_int_equal(run_nabla("plot %s --out %s", tmp_path("keep.csv"), tmp_path("keep.png")), 0);
    int w, h;
    png_size(tmp_path("keep.png"), &w, &h);
    assert_int_equal(w, 1100);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plot),
        cmocka_unit_test(test_eval_pictures),
        cmocka_unit_test(test_pictures_name_folder_classes),
        cmocka_unit_test(test_failed_write_keeps_previous),
    };
    return cmocka_run_group_tests(tests, nabla_setup, tmpdir_teardown);
}
