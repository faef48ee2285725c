/* test_jpeg.c — JPEG decoding, the resize and the eval transform against
 * Pillow and torchvision: tests/pil_image_check.py writes JPEGs (baseline,
 * progressive, 4:4:4, gray, a portrait one) and a PNG with Pillow, and next
 * to each what Pillow decodes, Image.resize(BILINEAR) and Resize(S) +
 * CenterCrop give; nabla must give the same bytes. Then JPEGs written here
 * with libjpeg, truncated and corrupt files, the pixel limit, and
 * out-of-memory paths. Needs /usr/bin/python3 with python3-pil and
 * python3-torchvision (CI installs them). */
#include "support.h"
#include "io/io.h" /* nb_image_resized_crop, the crop RandomResizedCrop resizes */

#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <jpeglib.h>
#include <string.h>

/* Bytes of `raw` (HWC, as numpy writes them) against an nb_image. */
static void expect_pixels(const char *raw, const nb_image *im) {
    size_t len;
    uint8_t *want = read_bytes(raw, &len);
    size_t n = (size_t)im->width * (size_t)im->height * (size_t)im->channels;
    if (len != n) fail_msg("%s: %zu bytes, nabla's image has %zu", raw, len, n);
    for (size_t i = 0; i < n; i++)
        if (want[i] != im->pixels[i])
            fail_msg("%s: byte %zu is %u in Pillow, %u in nabla", raw, i, want[i], im->pixels[i]);
    free(want);
}

static int pillow_fixtures(void **state) {
    if (tmpdir_setup(state)) return -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/pil_image_check.py %s", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "tests/pil_image_check.py failed: install python3-pil and "
                        "python3-torchvision (scripts/install-deps.sh)\n");
        return -1;
    }
    return 0;
}

static const char *const images[] = {"base.jpg", "prog.jpg", "s444.jpg", "gray.jpg", "rgb.png", "tall.jpg"};
enum { N_IMAGES = sizeof images / sizeof *images };

static void test_decode_matches_pillow(void **s) {
    (void)s;
    char raw[512];
    for (int i = 0; i < N_IMAGES; i++) {
        nb_image im;
        assert_ok(nb_image_decode(tmp_path(images[i]), 0, &im));
        assert_int_equal(im.channels, strcmp(images[i], "gray.jpg") ? 3 : 1);
        snprintf(raw, sizeof raw, "%s/%s.raw", tmpdir, images[i]);
        expect_pixels(raw, &im);
        nb_image_free(&im);
    }
}

static void test_resize_matches_pillow(void **s) {
    (void)s;
    static const int sizes[][2] = {{20, 15}, {100, 80}, {7, 90}, {1, 1}, {61, 45}, {33, 33}};
    char raw[512];
    for (int i = 0; i < N_IMAGES; i++) {
        nb_image im;
        assert_ok(nb_image_decode(tmp_path(images[i]), 0, &im));
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            nb_image out;
            assert_ok(nb_image_resize(&im, sizes[k][0], sizes[k][1], &out));
            snprintf(raw, sizeof raw, "%s/%s.%dx%d.raw", tmpdir, images[i], sizes[k][0], sizes[k][1]);
            expect_pixels(raw, &out);
            nb_image_free(&out);
        }
        nb_image_free(&im);
    }
}

static void test_eval_transform_matches_torchvision(void **s) {
    (void)s;
    static const int cases[][3] = {{3, 28, 0}, {1, 28, 0}, {3, 40, 50}, {3, 24, 24}, {1, 16, 20}};
    char raw[512];
    for (int i = 0; i < N_IMAGES; i++) {
        nb_image im;
        assert_ok(nb_image_decode(tmp_path(images[i]), 0, &im));
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            int c = cases[k][0], size = cases[k][1], resize = cases[k][2];
            uint8_t *chw = malloc((size_t)(c * size * size));
            assert_ok(nb_image_eval_transform(&im, c, size, size, resize, chw));
            /* torchvision's HWC bytes as an image, to compare as one. */
            nb_image hwc = {size, size, c, malloc((size_t)(c * size * size))};
            for (int p = 0; p < size * size; p++)
                for (int ch = 0; ch < c; ch++) hwc.pixels[p * c + ch] = chw[ch * size * size + p];
            snprintf(raw, sizeof raw, "%s/%s.eval%d_%d_%d.raw", tmpdir, images[i], c, size, resize);
            expect_pixels(raw, &hwc);
            free(hwc.pixels);
            free(chw);
        }
        nb_image_free(&im);
    }
}

/* RandomResizedCrop's resize of a drawn box, against torchvision's
 * F.resized_crop on the same box of the decoded image. */
static void test_resized_crop_matches_torchvision(void **s) {
    (void)s;
    static const int cases[][6] = {{3, 3, 5, 30, 40, 24}, {1, 0, 0, 45, 61, 28},
                                   {3, 10, 2, 12, 9, 32}, {3, 1, 1, 20, 20, 20}};
    char raw[512];
    for (int i = 0; i < N_IMAGES; i++) {
        nb_image im;
        assert_ok(nb_image_decode(tmp_path(images[i]), 0, &im));
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            const int *q = cases[k];
            int c = q[0], size = q[5];
            int h = q[3] < im.height ? q[3] : im.height, w = q[4] < im.width ? q[4] : im.width;
            int top = q[1] < im.height - h ? q[1] : im.height - h;
            int left = q[2] < im.width - w ? q[2] : im.width - w;
            uint8_t *chw = malloc((size_t)(c * size * size));
            assert_ok(nb_image_resized_crop(&im, top, left, h, w, c, size, size, chw));
            nb_image hwc = {size, size, c, malloc((size_t)(c * size * size))};
            for (int p = 0; p < size * size; p++)
                for (int ch = 0; ch < c; ch++) hwc.pixels[p * c + ch] = chw[ch * size * size + p];
            snprintf(raw, sizeof raw, "%s/%s.rrc%d_%d_%d_%d_%d_%d.raw", tmpdir, images[i], c, q[1],
                     q[2], q[3], q[4], size);
            expect_pixels(raw, &hwc);
            free(hwc.pixels);
            free(chw);
        }
        nb_image_free(&im);
    }
}

/* An image already at the input size is not resized at all, even where
 * torchvision's Resize(S) would scale it up first. */
static void test_eval_transform_passes_input_size(void **s) {
    (void)s;
    uint8_t px[3 * 5 * 4];
    for (int i = 0; i < (int)sizeof px; i++) px[i] = (uint8_t)(i * 29 + 3);
    nb_image im = {4, 5, 3, px};
    uint8_t chw[3 * 5 * 4];
    assert_ok(nb_image_eval_transform(&im, 3, 5, 4, 0, chw));
    for (int p = 0; p < 20; p++)
        for (int c = 0; c < 3; c++) assert_int_equal(chw[c * 20 + p], px[p * 3 + c]);
    /* Gray replicated into three planes. */
    nb_image gray = {4, 5, 1, px};
    assert_ok(nb_image_eval_transform(&gray, 3, 5, 4, 0, chw));
    for (int p = 0; p < 20; p++)
        for (int c = 0; c < 3; c++) assert_int_equal(chw[c * 20 + p], px[p]);
    assert_int_equal(nb_image_eval_transform(&im, 2, 5, 4, 0, chw), NB_ERR_ARG);
    assert_int_equal(nb_image_resize(&im, 0, 3, &gray), NB_ERR_ARG);
}

/* ---- JPEGs written here with libjpeg ------------------------------------------ */

static size_t write_jpeg(const char *path, int w, int h, int gray, int progressive) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    unsigned char *buf = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &buf, &size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = gray ? 1 : 3;
    c.in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 92, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    int ch = gray ? 1 : 3;
    unsigned char *row = malloc((size_t)(w * ch));
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w * ch; x++) row[x] = (unsigned char)((x * 7 + (int)c.next_scanline * 3) & 0xff);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    write_bytes(path, buf, size);
    free(buf);
    free(row);
    return size;
}

static void test_libjpeg_files(void **s) {
    (void)s;
    for (int gray = 0; gray < 2; gray++) {
        for (int prog = 0; prog < 2; prog++) {
            const char *path = tmp_path("w.jpg");
            write_jpeg(path, 19, 13, gray, prog);
            nb_image im;
            assert_ok(nb_image_decode(path, 0, &im));
            assert_int_equal(im.width, 19);
            assert_int_equal(im.height, 13);
            assert_int_equal(im.channels, gray ? 1 : 3);
            nb_image_free(&im);
            /* nb_image_load reads JPEG too, at exactly its size. */
            float x[3 * 13 * 19];
            assert_ok(nb_image_load(path, 3, 13, 19, x));
            assert_int_equal(nb_image_load(path, 1, 28, 28, x), NB_ERR_SHAPE);
            assert_non_null(strstr(nb_last_error(), "image is 19x13, the model expects 28x28"));
        }
    }
}

/* Every cut of a file is an error naming it, never a crash, an exit, or an
 * image padded with gray. */
static void test_truncated_and_corrupt(void **s) {
    (void)s;
    const char *whole = tmp_path("whole.jpg");
    for (int prog = 0; prog < 2; prog++) {
        size_t len = write_jpeg(whole, 40, 24, 0, prog);
        size_t n;
        uint8_t *data = read_bytes(whole, &n);
        assert_int_equal(n, len);
        const char *cut = tmp_path("cut.jpg");
        for (size_t k = 3; k < len; k += (k < 700 ? 1 : 37)) {
            write_bytes(cut, data, k);
            nb_image im;
            nb_status st = nb_image_decode(cut, 0, &im);
            if (st == NB_OK) fail_msg("a JPEG cut to %zu of %zu bytes decoded", k, len);
            assert_int_equal(st, NB_ERR_FORMAT);
            assert_non_null(strstr(nb_last_error(), cut));
            assert_null(im.pixels);
        }
        /* Flipped bytes after the header: an error or an image, never a crash. */
        for (size_t k = 20; k < len; k += 11) {
            uint8_t keep = data[k];
            data[k] ^= 0x5a;
            write_bytes(cut, data, len);
            nb_image im;
            if (nb_image_decode(cut, 0, &im) == NB_OK) nb_image_free(&im);
            else assert_non_null(strstr(nb_last_error(), cut));
            data[k] = keep;
        }
        free(data);
    }
    const char *head = tmp_path("head.jpg");
    write_bytes(head, "\xff\xd8\xff\xe0garbage", 11);
    nb_image im;
    assert_int_equal(nb_image_decode(head, 0, &im), NB_ERR_FORMAT);
    assert_non_null(strstr(nb_last_error(), "bad JPEG"));
}

static void test_pixel_limit(void **s) {
    (void)s;
    const char *path = tmp_path("big.jpg");
    write_jpeg(path, 40, 30, 0, 0);
    nb_image im;
    assert_int_equal(nb_image_decode(path, 1199, &im), NB_ERR_FORMAT);
    assert_non_null(strstr(nb_last_error(), "40x30, 1200 pixels, more than the limit of 1199"));
    assert_ok(nb_image_decode(path, 1200, &im));
    nb_image_free(&im);
    /* PNG and PGM have the same limit. */
    const char *pgm = tmp_path("big.pgm");
    uint8_t pgm_data[64 + 40 * 30];
    int head = snprintf((char *)pgm_data, 64, "P5 40 30 255\n");
    memset(pgm_data + head, 9, 40 * 30);
    write_bytes(pgm, pgm_data, (size_t)head + 40 * 30);
    assert_int_equal(nb_image_decode(pgm, 1000, &im), NB_ERR_FORMAT);
    assert_non_null(strstr(nb_last_error(), "more than the limit of 1000"));
    assert_ok(nb_image_decode(pgm, 0, &im));
    assert_int_equal(im.pixels[0], 9);
    nb_image_free(&im);
}

/* Every allocation of decoding, resizing and transforming failed in turn:
 * out of memory, and nothing left allocated. */
static void test_allocation_failures(void **s) {
    (void)s;
    const char *path = tmp_path("oom.jpg");
    write_jpeg(path, 30, 20, 0, 1);
    uint8_t chw[3 * 16 * 16];
    nb_set_allocator(counting_malloc, counting_realloc, counting_free);
    int failures = 0;
    for (long k = 0;; k++) {
        alloc_budget = k;
        live_allocs = 0;
        nb_image im;
        nb_status st = nb_image_decode(path, 0, &im);
        if (!st) {
            st = nb_image_eval_transform(&im, 1, 16, 16, 0, chw);
            nb_image_free(&im);
        }
        assert_int_equal(live_allocs, 0);
        if (st == NB_OK) break;
        assert_int_equal(st, NB_ERR_NOMEM);
        failures++;
    }
    nb_set_allocator(NULL, NULL, NULL);
    alloc_budget = -1;
    assert_true(failures >= 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_matches_pillow),
        cmocka_unit_test(test_resize_matches_pillow),
        cmocka_unit_test(test_resized_crop_matches_torchvision),
        cmocka_unit_test(test_eval_transform_matches_torchvision),
        cmocka_unit_test(test_eval_transform_passes_input_size),
        cmocka_unit_test(test_libjpeg_files),
        cmocka_unit_test(test_truncated_and_corrupt),
        cmocka_unit_test(test_pixel_limit),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests_name("jpeg", tests, pillow_fixtures, tmpdir_teardown);
}
