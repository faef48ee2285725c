/* test_pictures.c — the PNGs nabla draws: `nabla plot` from a --log file
 * (CSV and JSON lines), and `nabla eval --confusion/--errors`. Each file
 * is read back as an image: the size the command draws, not blank, and for
 * the heat map, a darker diagonal than the rest. Needs Fashion-MNIST. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect(const char *text, const char *needle) {
    if (!strstr(text, needle)) print_error("expected '%s' in:\n%s\n", needle, text);
    assert_non_null(strstr(text, needle));
}

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plot),
        cmocka_unit_test(test_eval_pictures),
    };
    return cmocka_run_group_tests(tests, nabla_setup, tmpdir_teardown);
}
