/* test_idx.c — the IDX reader: round trips of generated files (plain and
 * gzipped), a table of malformed files each with its exact error, the
 * out-of-memory paths, and the real Fashion-MNIST files when installed. */
#include "support.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Write bytes to tmpdir/name, gzipped with zlib's own writer when gz. */
static const char *write_file(const char *name, const void *data, size_t len, int gz) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        if (len) assert_int_equal(gzwrite(f, data, (unsigned)len), (int)len);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
    }
    return path;
}

/* An IDX image: header for dims, then `extra` more (or fewer, if negative)
 * data bytes than the dims call for. */
static uint8_t *make_idx(int type, int ndim, const uint32_t *dims, long extra, size_t *len) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    size_t data = (size_t)((long)n + extra);
    *len = 4 + 4 * (size_t)ndim + data;
    uint8_t *b = malloc(*len);
    b[0] = 0, b[1] = 0, b[2] = (uint8_t)type, b[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++)
        for (int k = 0; k < 4; k++) b[4 + 4 * i + k] = (uint8_t)(dims[i] >> (24 - 8 * k));
    for (size_t i = 0; i < data; i++) b[4 + 4 * (size_t)ndim + i] = (uint8_t)(i * 7 + 3);
    return b;
}

static void check_round_trip(int ndim, const uint32_t *dims, int gz) {
    size_t len;
    uint8_t *b = make_idx(0x08, ndim, dims, 0, &len);
    const char *path = write_file(gz ? "rt.idx.gz" : "rt.idx", b, len, gz);
    nb_idx idx;
    assert_ok(nb_idx_read(path, &idx));
    assert_int_equal(idx.ndim, ndim);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        assert_int_equal(idx.dims[i], (int)dims[i]);
        n *= dims[i];
    }
    for (int i = ndim; i < NB_MAX_DIMS; i++) assert_int_equal(idx.dims[i], 0);
    assert_memory_equal(idx.data, b + 4 + 4 * ndim, n);
    nb_idx_free(&idx);
    assert_null(idx.data);
    free(b);
}

static void test_round_trip(void **s) {
    (void)s;
    static const uint32_t d1[] = {17}, d3[] = {5, 4, 3}, d4[] = {2, 3, 4, 5};
    for (int gz = 0; gz <= 1; gz++) {
        check_round_trip(1, d1, gz);
        check_round_trip(3, d3, gz);
        check_round_trip(4, d4, gz);
    }
    /* Large enough to cross zlib's and the reader's buffer sizes. */
    static const uint32_t big[] = {300, 28, 28};
    check_round_trip(3, big, 1);
}

/* Gzip is recognised by content: a .gz name on a plain file and a plain
 * name on gzip data both read. */
static void test_detects_gzip_by_magic(void **s) {
    (void)s;
    static const uint32_t dims[] = {4, 5};
    size_t len;
    uint8_t *b = make_idx(0x08, 2, dims, 0, &len);
    nb_idx idx;
    assert_ok(nb_idx_read(write_file("plain-named.gz", b, len, 0), &idx));
    assert_memory_equal(idx.data, b + 12, 20);
    nb_idx_free(&idx);
    assert_ok(nb_idx_read(write_file("gzip-named.idx", b, len, 1), &idx));
    assert_memory_equal(idx.data, b + 12, 20);
    nb_idx_free(&idx);
    free(b);
}

typedef struct bad_case {
    const char *what;
    uint8_t bytes[40];
    size_t len;
    int gz;
    nb_status status;
    const char *message;
} bad_case;

#define DIM(x) (uint8_t)((x) >> 24), (uint8_t)((x) >> 16), (uint8_t)((x) >> 8), (uint8_t)(x)

static const bad_case bad_cases[] = {
    {"empty", {0}, 0, 0, NB_ERR_FORMAT, "file ends after 0 bytes, inside the 4-byte IDX header"},
    {"wrong magic",
     {0x12, 0x34, 0x08, 0x01, DIM(1), 7},
     9,
     0,
     NB_ERR_FORMAT,
     "not an IDX file: it starts with bytes 12 34 08 01"},
    {"float type",
     {0, 0, 0x0D, 0x01, DIM(1), 0, 0, 0, 0},
     12,
     0,
     NB_ERR_FORMAT,
     "unsupported IDX type 0x0D"},
    {"int type",
     {0, 0, 0x0C, 0x01, DIM(1), 0, 0, 0, 0},
     12,
     0,
     NB_ERR_FORMAT,
     "unsupported IDX type 0x0C"},
    {"ndim 0", {0, 0, 0x08, 0x00}, 4, 0, NB_ERR_FORMAT, "IDX header has 0 dimensions at byte 3"},
    {"ndim 5",
     {0, 0, 0x08, 0x05, DIM(1), DIM(1), DIM(1), DIM(1), DIM(1), 9},
     25,
     0,
     NB_ERR_FORMAT,
     "IDX header has 5 dimensions at byte 3, expected 1 to 4"},
    {"zero dim",
     {0, 0, 0x08, 0x02, DIM(3), DIM(0)},
     12,
     0,
     NB_ERR_FORMAT,
     "dimension 1 is 0 (at byte offset 8)"},
    {"cut in magic",
     {0, 0},
     2,
     0,
     NB_ERR_FORMAT,
     "file ends after 2 bytes, inside the 4-byte IDX header"},
    {"cut in dims",
     {0, 0, 0x08, 0x03, DIM(60000), 0, 0},
     10,
     0,
     NB_ERR_FORMAT,
     "file ends after 10 bytes, inside the 16-byte IDX header"},
    {"no data",
     {0, 0, 0x08, 0x02, DIM(2), DIM(3)},
     12,
     0,
     NB_ERR_FORMAT,
     "header says 2 x 3 = 6 bytes of data but the file has 0 after the 12-byte header"},
    {"cut in data",
     {0, 0, 0x08, 0x02, DIM(2), DIM(3), 1, 2, 3, 4},
     16,
     0,
     NB_ERR_FORMAT,
     "header says 2 x 3 = 6 bytes of data but the file has 4 after the 12-byte header"},
    {"trailing bytes",
     {0, 0, 0x08, 0x02, DIM(2), DIM(3), 1, 2, 3, 4, 5, 6, 7, 8, 9},
     21,
     0,
     NB_ERR_FORMAT,
     "the file has 9 after the 12-byte header (3 extra bytes at the end)"},
    {"overflow",
     {0, 0, 0x08, 0x04, DIM(0xffffffffu), DIM(0xffffffffu), DIM(0xffffffffu), DIM(0xffffffffu)},
     20,
     0,
     NB_ERR_FORMAT,
     "header says 4294967295 x 4294967295 x 4294967295 x 4294967295 bytes of data, which "
     "overflows"},
    {"over the limit",
     {0, 0, 0x08, 0x02, DIM(65536), DIM(65536)},
     12,
     0,
     NB_ERR_FORMAT,
     "header says 65536 x 65536 = 4294967296 bytes of data, more than the 1073741824-byte limit"},
    {"gz: cut in data",
     {0, 0, 0x08, 0x02, DIM(2), DIM(3), 1, 2, 3, 4},
     16,
     1,
     NB_ERR_FORMAT,
     "header says 2 x 3 = 6 bytes of data but the decompressed file has 4 after the 12-byte "
     "header"},
    {"gz: trailing",
     {0, 0, 0x08, 0x01, DIM(2), 1, 2, 3},
     11,
     1,
     NB_ERR_FORMAT,
     "the decompressed file has 3 after the 8-byte header (1 extra byte at the end)"},
    {"gz: type",
     {0, 0, 0x0D, 0x01, DIM(1), 0, 0, 0, 0},
     12,
     1,
     NB_ERR_FORMAT,
     "unsupported IDX type 0x0D"},
    /* A gzip header followed by a deflate block of reserved type 3. */
    {"gz: garbage",
     {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03, 0xff, 0xff, 0xff, 0xff, 0xff},
     15,
     0,
     NB_ERR_FORMAT,
     "corrupt gzip data near compressed byte"},
    {"gz: bad method",
     {0x1f, 0x8b, 0x07, 0, 0, 0, 0, 0, 0, 0x03, 0, 0},
     12,
     0,
     NB_ERR_FORMAT,
     "corrupt gzip data"},
    {"gz: header only",
     {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0},
     8,
     0,
     NB_ERR_FORMAT,
     "gzip data ends early, after 8 compressed bytes"},
};

static void test_malformed_files(void **s) {
    (void)s;
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const bad_case *c = &bad_cases[i];
        const char *path = write_file("bad.idx", c->bytes, c->len, c->gz);
        nb_idx idx = {.ndim = 77, .data = (uint8_t *)&idx};
        nb_status st = nb_idx_read(path, &idx);
        const char *msg = nb_last_error();
        if (st != c->status || !strstr(msg, c->message) || !strstr(msg, path))
            print_error("case '%s': status %d, message: %s\n", c->what, st, msg);
        assert_int_equal(st, c->status);
        assert_non_null(strstr(msg, c->message));
        assert_non_null(strstr(msg, path));
        /* A failed read leaves the output as it was. */
        assert_int_equal(idx.ndim, 77);
        assert_ptr_equal(idx.data, (uint8_t *)&idx);
    }
}

/* Every prefix of a valid gzip file is rejected, never read as short data. */
static void test_truncated_gzip(void **s) {
    (void)s;
    static const uint32_t dims[] = {10, 28, 28};
    size_t len;
    uint8_t *b = make_idx(0x08, 3, dims, 0, &len);
    const char *path = write_file("full.gz", b, len, 1);
    FILE *f = fopen(path, "rb");
    uint8_t gz[16384];
    size_t gz_len = fread(gz, 1, sizeof gz, f);
    fclose(f);
    assert_true(gz_len > 20 && gz_len < sizeof gz);
    for (size_t cut = 1; cut < gz_len; cut += 1 + cut / 3) {
        path = write_file("cut.gz", gz, cut, 0);
        nb_idx idx;
        nb_status st = nb_idx_read(path, &idx);
        if (st != NB_ERR_FORMAT)
            print_error("cut at %zu of %zu: %s\n", cut, gz_len, nb_last_error());
        assert_int_equal(st, NB_ERR_FORMAT);
    }
    /* The last 8 bytes are the CRC and length: a wrong CRC is caught. */
    gz[gz_len - 8] ^= 0x55;
    nb_idx idx;
    assert_int_equal(nb_idx_read(write_file("crc.gz", gz, gz_len, 0), &idx), NB_ERR_FORMAT);
    assert_non_null(strstr(nb_last_error(), "incorrect data check"));
    free(b);
}

/* Two gzip members back to back (cat a.gz b.gz) are one stream. */
static void test_gzip_members(void **s) {
    (void)s;
    static const uint32_t dims[] = {6, 7};
    size_t len;
    uint8_t *b = make_idx(0x08, 2, dims, 0, &len);
    char path[512];
    snprintf(path, sizeof path, "%s/members.gz", tmpdir);
    gzFile f = gzopen(path, "wb");
    gzwrite(f, b, 20);
    gzclose(f);
    f = gzopen(path, "ab");
    gzwrite(f, b + 20, (unsigned)(len - 20));
    gzclose(f);
    nb_idx idx;
    assert_ok(nb_idx_read(path, &idx));
    assert_memory_equal(idx.data, b + 12, 42);
    nb_idx_free(&idx);
    free(b);
}

static void test_missing_and_directory(void **s) {
    (void)s;
    nb_idx idx;
    char path[512];
    snprintf(path, sizeof path, "%s/does-not-exist.idx", tmpdir);
    assert_int_equal(nb_idx_read(path, &idx), NB_ERR_IO);
    assert_non_null(strstr(nb_last_error(), path));
    assert_non_null(strstr(nb_last_error(), "No such file"));
    assert_int_equal(nb_idx_read(tmpdir, &idx), NB_ERR_IO);
    assert_non_null(strstr(nb_last_error(), "not a regular file"));
    assert_int_equal(nb_idx_read(NULL, &idx), NB_ERR_ARG);
}

/* ---- allocation failures ---------------------------------------------------- */

/* Fail the 1st, 2nd, ... allocation in turn: each run must report
 * out-of-memory and free everything, until one succeeds. */
static void test_allocation_failures(void **s) {
    (void)s;
    static const uint32_t dims[] = {3, 4};
    size_t len;
    uint8_t *b = make_idx(0x08, 2, dims, 0, &len);
    const char *path = write_file("oom.gz", b, len, 1);
    nb_set_allocator(counting_malloc, counting_realloc, counting_free);
    int failures = 0;
    for (long k = 0;; k++) {
        alloc_budget = k;
        live_allocs = 0;
        nb_idx idx;
        nb_status st = nb_idx_read(path, &idx);
        if (st == NB_OK) {
            nb_idx_free(&idx);
            assert_int_equal(live_allocs, 0);
            break;
        }
        assert_int_equal(st, NB_ERR_NOMEM);
        assert_non_null(strstr(nb_last_error(), "out of memory"));
        assert_int_equal(live_allocs, 0);
        failures++;
    }
    nb_set_allocator(NULL, NULL, NULL);
    alloc_budget = -1;
    assert_true(failures >= 3); /* reader, zlib state, window, data ... */
    free(b);
}

/* ---- the real data ------------------------------------------------------------ */

/* The first label byte of a labels file, read with zlib alone, to hold
 * the reader against an independent decoder. */
static int first_label_by_zlib(const char *path) {
    gzFile f = gzopen(path, "rb");
    if (!f) return -1;
    uint8_t head[9];
    int n = gzread(f, head, 9);
    gzclose(f);
    return n == 9 ? head[8] : -1;
}

static void test_fashion_mnist_files(void **s) {
    (void)s;
    char path[512];
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", NB_FASHION_MNIST_DIR);
    if (access(path, R_OK) != 0) {
        print_message("Fashion-MNIST not installed in %s: skipped\n", NB_FASHION_MNIST_DIR);
        skip();
    }
    nb_idx labels;
    assert_ok(nb_idx_read(path, &labels));
    assert_int_equal(labels.ndim, 1);
    assert_int_equal(labels.dims[0], 60000);
    assert_int_equal(labels.data[0], first_label_by_zlib(path));
    assert_int_equal(labels.data[0], 9); /* an ankle boot */
    nb_idx_free(&labels);

    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", NB_FASHION_MNIST_DIR);
    nb_idx images;
    assert_ok(nb_idx_read(path, &images));
    assert_int_equal(images.ndim, 3);
    assert_int_equal(images.dims[0], 10000);
    assert_int_equal(images.dims[1], 28);
    assert_int_equal(images.dims[2], 28);
    nb_idx_free(&images);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_detects_gzip_by_magic),
        cmocka_unit_test(test_malformed_files),
        cmocka_unit_test(test_truncated_gzip),
        cmocka_unit_test(test_gzip_members),
        cmocka_unit_test(test_missing_and_directory),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_fashion_mnist_files),
    };
    return cmocka_run_group_tests_name("idx", tests, tmpdir_setup, tmpdir_teardown);
}
