/* test_image.c — nb_image_load on PNGs written here with libpng (gray,
 * gray+alpha, RGB, RGBA, palette, 1- and 16-bit, interlaced) and on PGMs
 * (P5 8/16-bit, P2, comments), the size check, malformed and truncated
 * files, and out-of-memory paths. */
#include "support.h"

#include <dirent.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A PNG through libpng's writer: `data` holds the rows as PNG stores them
 * (16-bit samples big-endian, low depths packed). */
typedef struct png_spec {
    int width, height, color_type, depth, interlace;
    const uint8_t *data;
    const png_color *palette;
    int n_palette;
    const uint8_t *trns;
    int n_trns;
} png_spec;

static const char *write_png(const char *name, const png_spec *p) {
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng could not write %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)p->width, (png_uint_32)p->height, p->depth, p->color_type,
                 p->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (p->palette) png_set_PLTE(png, info, p->palette, p->n_palette);
    if (p->trns) png_set_tRNS(png, info, p->trns, p->n_trns, NULL);
    png_write_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    png_bytep *rows = malloc((size_t)p->height * sizeof *rows);
    for (int y = 0; y < p->height; y++) rows[y] = (png_bytep)p->data + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(f);
    return path;
}

static float luma(float r, float g, float b, float max) {
    return (0.299f * r + 0.587f * g + 0.114f * b) / max;
}

/* Load as 1 and 3 channels and compare with expected gray and RGB planes. */
static void check_load(const char *path, int h, int w, const float *gray, const float *rgb) {
    size_t plane = (size_t)h * (size_t)w;
    float *x = malloc(3 * plane * sizeof *x);
    assert_ok(nb_image_load(path, 1, h, w, x));
    for (size_t i = 0; i < plane; i++) assert_float_equal(x[i], gray[i], 1e-6);
    assert_ok(nb_image_load(path, 3, h, w, x));
    for (size_t i = 0; i < 3 * plane; i++) assert_float_equal(x[i], rgb[i], 1e-6);
    free(x);
}

static void test_png_gray8(void **s) {
    (void)s;
    enum { W = 5, H = 3 };
    uint8_t px[W * H];
    float gray[W * H], rgb[3 * W * H];
    for (int i = 0; i < W * H; i++) {
        px[i] = (uint8_t)(i * 17);
        gray[i] = rgb[i] = rgb[W * H + i] = rgb[2 * W * H + i] = (float)px[i] / 255.0f;
    }
    png_spec p = {W, H, PNG_COLOR_TYPE_GRAY, 8, 0, px, NULL, 0, NULL, 0};
    check_load(write_png("gray8.png", &p), H, W, gray, rgb);
    /* Values exactly x/255, as the dataset batches give them. */
    float x[W * H];
    assert_ok(nb_image_load(tmp_path("gray8.png"), 1, H, W, x));
    for (int i = 0; i < W * H; i++) assert_true(x[i] == (float)px[i] / 255.0f);
}

static void test_png_gray16_and_1bit(void **s) {
    (void)s;
    enum { W = 3, H = 2 };
    static const unsigned v[W * H] = {0, 1, 257, 32768, 54321, 65535};
    uint8_t px[2 * W * H];
    float gray[W * H], rgb[3 * W * H];
    for (int i = 0; i < W * H; i++) {
        px[2 * i] = (uint8_t)(v[i] >> 8), px[2 * i + 1] = (uint8_t)v[i];
        gray[i] = rgb[i] = rgb[W * H + i] = rgb[2 * W * H + i] = (float)v[i] / 65535.0f;
    }
    png_spec p = {W, H, PNG_COLOR_TYPE_GRAY, 16, 0, px, NULL, 0, NULL, 0};
    check_load(write_png("gray16.png", &p), H, W, gray, rgb);

    /* 1-bit: rows packed MSB first, 0 -> 0.0 and 1 -> 1.0. */
    enum { W1 = 10, H1 = 2 };
    static const uint8_t bits[2 * H1] = {0xA5, 0xC0, 0x0F, 0x40}; /* 10100101 11, 00001111 01 */
    float g1[W1 * H1], c1[3 * W1 * H1];
    for (int y = 0; y < H1; y++)
        for (int x = 0; x < W1; x++) {
            int bit = (bits[2 * y + x / 8] >> (7 - x % 8)) & 1;
            int i = y * W1 + x;
            g1[i] = c1[i] = c1[W1 * H1 + i] = c1[2 * W1 * H1 + i] = (float)bit;
        }
    png_spec p1 = {W1, H1, PNG_COLOR_TYPE_GRAY, 1, 0, bits, NULL, 0, NULL, 0};
    check_load(write_png("gray1.png", &p1), H1, W1, g1, c1);
}

/* RGB-like layouts: ch samples per pixel of `depth` bits, alpha last (and
 * ignored). */
static void check_color(const char *name, int color_type, int ch, int depth, int interlace) {
    enum { W = 9, H = 7 };
    const int bytes = depth / 8;
    const float max = depth == 16 ? 65535.0f : 255.0f;
    uint8_t *px = malloc((size_t)(W * H * ch * bytes));
    float gray[W * H], rgb[3 * W * H];
    for (int i = 0; i < W * H; i++) {
        unsigned val[4];
        for (int c = 0; c < ch; c++) {
            val[c] = (unsigned)((i * 53 + c * 101 + i * c * 7) * (depth == 16 ? 263 : 1)) %
                     (depth == 16 ? 65536u : 256u);
            uint8_t *p = px + (size_t)((i * ch + c) * bytes);
            if (bytes == 2) p[0] = (uint8_t)(val[c] >> 8), p[1] = (uint8_t)val[c];
            else p[0] = (uint8_t)val[c];
        }
        if (ch >= 3) {
            for (int c = 0; c < 3; c++) rgb[c * W * H + i] = (float)val[c] / max;
            gray[i] = luma((float)val[0], (float)val[1], (float)val[2], max);
        } else {
            gray[i] = rgb[i] = rgb[W * H + i] = rgb[2 * W * H + i] = (float)val[0] / max;
        }
    }
    png_spec p = {W, H, color_type, depth, interlace, px, NULL, 0, NULL, 0};
    check_load(write_png(name, &p), H, W, gray, rgb);
    free(px);
}

static void test_png_color_types(void **s) {
    (void)s;
    check_color("rgb8.png", PNG_COLOR_TYPE_RGB, 3, 8, 0);
    check_color("rgba8.png", PNG_COLOR_TYPE_RGB_ALPHA, 4, 8, 0);
    check_color("ga8.png", PNG_COLOR_TYPE_GRAY_ALPHA, 2, 8, 0);
    check_color("rgb16.png", PNG_COLOR_TYPE_RGB, 3, 16, 0);
    check_color("rgba16.png", PNG_COLOR_TYPE_RGB_ALPHA, 4, 16, 0);
    check_color("ga16.png", PNG_COLOR_TYPE_GRAY_ALPHA, 2, 16, 0);
    check_color("rgb8-adam7.png", PNG_COLOR_TYPE_RGB, 3, 8, 1);
    check_color("gray8-adam7.png", PNG_COLOR_TYPE_GRAY, 1, 8, 1);
}

/* The BT.601 weights themselves, on pure colours. */
static void test_luma_weights(void **s) {
    (void)s;
    static const uint8_t px[4 * 3] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255};
    png_spec p = {4, 1, PNG_COLOR_TYPE_RGB, 8, 0, px, NULL, 0, NULL, 0};
    float x[4];
    assert_ok(nb_image_load(write_png("primaries.png", &p), 1, 1, 4, x));
    assert_float_equal(x[0], 0.299f, 1e-6);
    assert_float_equal(x[1], 0.587f, 1e-6);
    assert_float_equal(x[2], 0.114f, 1e-6);
    assert_float_equal(x[3], 1.0f, 1e-6);
}

static void test_png_palette(void **s) {
    (void)s;
    static const png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {10, 200, 30}, {255, 255, 255}};
    enum { W = 4, H = 2 };
    static const uint8_t idx[W * H] = {0, 1, 2, 3, 3, 2, 1, 0};
    float gray[W * H], rgb[3 * W * H];
    for (int i = 0; i < W * H; i++) {
        const png_color *c = &pal[idx[i]];
        rgb[i] = c->red / 255.0f, rgb[W * H + i] = c->green / 255.0f,
        rgb[2 * W * H + i] = c->blue / 255.0f;
        gray[i] = luma(c->red, c->green, c->blue, 255.0f);
    }
    png_spec p = {W, H, PNG_COLOR_TYPE_PALETTE, 8, 0, idx, pal, 4, NULL, 0};
    check_load(write_png("pal8.png", &p), H, W, gray, rgb);
    /* With transparency (tRNS): alpha is still ignored. */
    static const uint8_t trns[4] = {0, 128, 255, 7};
    p.trns = trns, p.n_trns = 4;
    check_load(write_png("pal8-trns.png", &p), H, W, gray, rgb);
    /* 2 bits per index, packed. */
    static const uint8_t packed[H] = {0x1B, 0xE4}; /* 00 01 10 11, 11 10 01 00 */
    png_spec p2 = {W, H, PNG_COLOR_TYPE_PALETTE, 2, 0, packed, pal, 4, NULL, 0};
    check_load(write_png("pal2.png", &p2), H, W, gray, rgb);
}

/* ---- PGM ---------------------------------------------------------------------- */

static void test_pgm(void **s) {
    (void)s;
    /* P5, 8-bit, comments between every header field. */
    static const char p5[] = "P5\n# written by a test\n3 # width\n2\n# maxval next\n255\n";
    uint8_t buf[128];
    size_t n = sizeof p5 - 1;
    memcpy(buf, p5, n);
    static const uint8_t v8[6] = {0, 1, 127, 128, 254, 255};
    memcpy(buf + n, v8, 6);
    float gray[6], rgb[18];
    for (int i = 0; i < 6; i++) gray[i] = rgb[i] = rgb[6 + i] = rgb[12 + i] = v8[i] / 255.0f;
    check_load(tmp_write("a.pgm", buf, n + 6), 2, 3, gray, rgb);

    /* P5, 16-bit, maxval 1000: scaled by maxval. */
    static const char p5_16[] = "P5 3 2 1000\n";
    static const unsigned v16[6] = {0, 1, 500, 999, 1000, 256};
    n = sizeof p5_16 - 1;
    memcpy(buf, p5_16, n);
    for (int i = 0; i < 6; i++) {
        buf[n + 2 * (size_t)i] = (uint8_t)(v16[i] >> 8),
                    buf[n + 2 * (size_t)i + 1] = (uint8_t)v16[i];
        gray[i] = rgb[i] = rgb[6 + i] = rgb[12 + i] = (float)v16[i] / 1000.0f;
    }
    check_load(tmp_write("b.pgm", buf, n + 12), 2, 3, gray, rgb);

    /* P5 with maxval 65535. */
    static const char p5_max[] = "P5\n2 1\n65535\n\xff\xff\x80\x00";
    float two[2] = {1.0f, 32768.0f / 65535.0f},
          two3[6] = {two[0], two[1], two[0], two[1], two[0], two[1]};
    check_load(tmp_write("c.pgm", p5_max, sizeof p5_max - 1), 1, 2, two, two3);

    /* P2, ASCII, maxval 15, with comments and ragged spacing. */
    static const char p2[] = "P2\n# ascii\n3 2\n15\n0 15  7\n# mid comment\n  1\t2\n3\n";
    static const int v2[6] = {0, 15, 7, 1, 2, 3};
    for (int i = 0; i < 6; i++) gray[i] = rgb[i] = rgb[6 + i] = rgb[12 + i] = (float)v2[i] / 15.0f;
    check_load(tmp_write("d.pgm", p2, sizeof p2 - 1), 2, 3, gray, rgb);
}

/* ---- errors ------------------------------------------------------------------- */

/* Load expecting failure; the output must be left exactly as it was. */
static void expect_fail(const char *path, int ch, int h, int w, nb_status status,
                        const char *part) {
    float out[64];
    for (int i = 0; i < 64; i++) out[i] = -7.0f;
    nb_status st = nb_image_load(path, ch, h, w, out);
    const char *msg = nb_last_error();
    if (st != status || !strstr(msg, part) || !strstr(msg, path))
        print_error("%s: status %d, message: %s\n", path, st, msg);
    assert_int_equal(st, status);
    assert_non_null(strstr(msg, part));
    assert_non_null(strstr(msg, path));
    for (int i = 0; i < 64; i++) assert_true(out[i] == -7.0f);
}

static void test_wrong_size(void **s) {
    (void)s;
    uint8_t *px = calloc(32 * 32, 1);
    png_spec p = {32, 32, PNG_COLOR_TYPE_GRAY, 8, 0, px, NULL, 0, NULL, 0};
    const char *path = write_png("32.png", &p);
    char want[600];
    snprintf(want, sizeof want, "%s: image is 32x32, the model expects 28x28", path);
    expect_fail(path, 1, 28, 28, NB_ERR_SHAPE, want);
    /* Width first, as image sizes are written: 4 wide, 3 tall. */
    png_spec r = {4, 3, PNG_COLOR_TYPE_GRAY, 8, 0, px, NULL, 0, NULL, 0};
    expect_fail(write_png("4x3.png", &r), 1, 4, 3, NB_ERR_SHAPE,
                "image is 4x3, the model expects 3x4");
    expect_fail(tmp_write("4x3.pgm", "P5 4 3 255\n", 11), 1, 3, 3, NB_ERR_SHAPE,
                "image is 4x3, the model expects 3x3");
    free(px);
}

static void test_truncated_png(void **s) {
    (void)s;
    enum { W = 6, H = 5 };
    uint8_t px[W * H * 3];
    for (int i = 0; i < (int)sizeof px; i++) px[i] = (uint8_t)(i * 31);
    png_spec p = {W, H, PNG_COLOR_TYPE_RGB, 8, 0, px, NULL, 0, NULL, 0};
    size_t len;
    uint8_t *b = read_bytes(write_png("full.png", &p), &len);
    for (size_t cut = 0; cut < len; cut++) {
        const char *path = tmp_write("cut.png", b, cut);
        expect_fail(path, 3, H, W, NB_ERR_FORMAT, cut < 8 ? "not a PNG, JPEG or PGM" : "truncated");
    }
    /* A corrupt IHDR CRC (bytes 29..32) is caught by libpng. */
    b[30] ^= 0xff;
    expect_fail(tmp_write("crc.png", b, len), 3, H, W, NB_ERR_FORMAT, "bad PNG");
    b[30] ^= 0xff;
    /* A flipped byte inside the compressed pixels. */
    b[45] ^= 0x5a;
    float out[W * H * 3];
    nb_status st = nb_image_load(tmp_write("flip.png", b, len), 3, H, W, out);
    assert_int_equal(st, NB_ERR_FORMAT);
    free(b);
}

static void test_bad_pgm(void **s) {
    (void)s;
    static const struct {
        const char *text;
        size_t len;
        nb_status status;
        const char *part;
    } cases[] = {
        {"P5 3 2 0\n", 9, NB_ERR_FORMAT, "PGM maxval 0"},
        {"P5 3 2 70000\n", 13, NB_ERR_FORMAT,
         "PGM maxval 70000 (after byte 6) is outside 1..65535"},
        {"P5 3 2 9999999\n", 15, NB_ERR_FORMAT, "PGM maxval at byte 7 is more than 1048576"},
        {"P5 99999999999 1 255\n", 21, NB_ERR_FORMAT, "PGM width at byte 3 is more than 16777216"},
        {"P5 3 0 255\n", 11, NB_ERR_FORMAT, "has a zero dimension"},
        {"P5 3 2", 6, NB_ERR_FORMAT, "file ends before the PGM maxval (truncated)"},
        {"P5 3 2 255", 10, NB_ERR_FORMAT, "file ends after its header"},
        {"P5 3 2 255\n\1\2\3", 14, NB_ERR_FORMAT,
         "PGM 3x2 with maxval 255 needs 6 bytes of data after the 11-byte header, the file has 3 "
         "(truncated)"},
        {"P5 3 2 255\n\1\2\3\4\5\6\7", 18, NB_ERR_FORMAT, "the file has 7 (only single-image"},
        {"P5 3 2 255#c\n\1\2\3\4\5\6", 19, NB_ERR_FORMAT, "followed by one whitespace byte"},
        {"P5 3 2 100\n\1\2\310\4\5\6", 17, NB_ERR_FORMAT,
         "PGM sample 200 at byte 13 is above maxval 100"},
        {"P5 3 x2 255\n", 12, NB_ERR_FORMAT, "expected the PGM height at byte 5"},
        {"P5 3a 2 255\n", 12, NB_ERR_FORMAT, "PGM width at byte 3 runs into byte 0x61"},
        {"P2 3 2 9\n1 2 3 4 5", 18, NB_ERR_FORMAT, "PGM data is truncated: 5 of 6 samples"},
        {"P2 3 2 9\n1 2 3 4 5 10", 21, NB_ERR_FORMAT, "PGM sample 10 at byte 19 is above maxval 9"},
        {"P2 3 2 9\n1 2 3 4 5 6 7", 22, NB_ERR_FORMAT,
         "unexpected data at byte 21 after the 6 PGM"},
        {"P2 3 2 9\n1 2 3 4 5 x", 20, NB_ERR_FORMAT, "expected the PGM sample at byte 19"},
        {"P6 3 2 255\n", 11, NB_ERR_FORMAT,
         "netpbm format P6 is not supported (PGM only: P5 or P2)"},
        {"GIF89a", 6, NB_ERR_FORMAT, "not a PNG, JPEG or PGM image (it starts with bytes 47 49 46 38)"},
        {"", 0, NB_ERR_FORMAT, "not a PNG, JPEG or PGM image"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_fail(tmp_write("bad.pgm", cases[i].text, cases[i].len), 1, 2, 3, cases[i].status,
                    cases[i].part);
}

static void test_bad_arguments(void **s) {
    (void)s;
    const char *path = tmp_write("ok.pgm", "P5 1 1 255\n\x10", 12);
    expect_fail(path, 2, 1, 1, NB_ERR_ARG, "as 2 channels");
    expect_fail(path, 1, 0, 1, NB_ERR_ARG, "not positive");
    expect_fail(tmp_path("missing.png"), 1, 1, 1, NB_ERR_IO, "No such file");
    expect_fail(tmpdir, 1, 1, 1, NB_ERR_IO, "not a regular file");
    float x;
    assert_int_equal(nb_image_load(NULL, 1, 1, 1, &x), NB_ERR_ARG);
    assert_int_equal(nb_image_load(path, 1, 1, 1, NULL), NB_ERR_ARG);
}

/* ---- allocation failures ------------------------------------------------------------ */

/* libpng's own allocations go through nb_alloc too: failing each in turn
 * gives out-of-memory, frees everything and leaves the output alone. */
static void check_oom(const char *path, int ch, int h, int w) {
    float *out = malloc((size_t)(ch * h * w) * sizeof *out);
    nb_set_allocator(counting_malloc, counting_realloc, counting_free);
    int failures = 0;
    for (long k = 0;; k++) {
        alloc_budget = k;
        live_allocs = 0;
        for (int i = 0; i < ch * h * w; i++) out[i] = -7.0f;
        nb_status st = nb_image_load(path, ch, h, w, out);
        assert_int_equal(live_allocs, 0);
        if (st == NB_OK) break;
        assert_int_equal(st, NB_ERR_NOMEM);
        for (int i = 0; i < ch * h * w; i++) assert_true(out[i] == -7.0f);
        failures++;
    }
    nb_set_allocator(NULL, NULL, NULL);
    alloc_budget = -1;
    assert_true(failures >= 2);
    free(out);
}

static void test_allocation_failures(void **s) {
    (void)s;
    uint8_t px[8 * 6 * 4];
    for (int i = 0; i < (int)sizeof px; i++) px[i] = (uint8_t)i;
    png_spec p = {8, 6, PNG_COLOR_TYPE_RGB_ALPHA, 8, 1, px, NULL, 0, NULL, 0};
    check_oom(write_png("oom.png", &p), 1, 6, 8);
    check_oom(tmp_write("oom.pgm", "P2 2 1 9\n1 2\n", 13), 3, 1, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_gray8),       cmocka_unit_test(test_png_gray16_and_1bit),
        cmocka_unit_test(test_png_color_types), cmocka_unit_test(test_luma_weights),
        cmocka_unit_test(test_png_palette),     cmocka_unit_test(test_pgm),
        cmocka_unit_test(test_wrong_size),      cmocka_unit_test(test_truncated_png),
        cmocka_unit_test(test_bad_pgm),         cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests_name("image", tests, tmpdir_setup, tmpdir_teardown);
}
