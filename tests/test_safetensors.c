/* test_safetensors.c — safetensors save and load: a round trip with
 * metadata and the exact bytes written, a table of malformed headers each
 * with its error, every mismatch reported at once with no buffer changed,
 * F16/BF16/F64 conversion, atomic replacement, and out-of-memory paths. */
#include "support.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A file by hand: 8-byte little-endian length (hlen, or the JSON's own
 * length when hlen < 0), the JSON, then `data`. */
static const char *write_st(const char *name, long long hlen, const char *json, const void *data,
                            size_t data_len) {
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t n = hlen < 0 ? strlen(json) : (uint64_t)hlen;
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(n >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(json, 1, strlen(json), f);
    if (data_len) fwrite(data, 1, data_len, f);
    fclose(f);
    return path;
}

static nb_named_tensor named(const char *name, int ndim, const int *shape, float *data) {
    nb_named_tensor t = {name, {ndim, {0}, data}, NULL};
    for (int i = 0; i < ndim; i++) t.tensor.shape[i] = shape[i];
    return t;
}

static nb_meta meta_entry(const char *k, const char *v) {
    nb_meta m;
    memset(&m, 0, sizeof m);
    snprintf(m.key, sizeof m.key, "%s", k);
    snprintf(m.value, sizeof m.value, "%s", v);
    return m;
}

/* ---- round trip ------------------------------------------------------------------ */

static void test_round_trip(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    static float w[6 * 1 * 5 * 5], b[6], fc[10 * 4];
    fill_uniform(w, 150, -1, 1, &rng);
    fill_uniform(b, 6, -1, 1, &rng);
    fill_uniform(fc, 40, -1, 1, &rng);
    fc[0] = -0.0f, fc[1] = INFINITY, fc[2] = 1e-40f; /* sign, infinity and a subnormal survive */
    nb_named_tensor t[3] = {named("conv1.weight", 4, (int[]){6, 1, 5, 5}, w),
                            named("conv1.bias", 1, (int[]){6}, b),
                            named("fc.weight", 2, (int[]){10, 4}, fc)};
    nb_meta meta[2] = {meta_entry("model", "lenet5"), meta_entry("note", "a \"quoted\" value\n")};
    const char *path = tmp_path("model.safetensors");
    assert_ok(nb_safetensors_save(path, t, 3, meta, 2));
    assert_no_temporaries(tmpdir);

    /* The layout: header length a multiple of 8, tensors in the given
     * order, each right after the previous one. */
    size_t len;
    uint8_t *raw = read_bytes(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(len, 8 + hlen + (150 + 6 + 40) * 4);
    cJSON *root = cJSON_ParseWithLength((const char *)raw + 8, (size_t)hlen);
    assert_non_null(root);
    assert_string_equal(root->child->string, "__metadata__");
    assert_string_equal(root->child->next->string, "conv1.weight");
    cJSON *bias = cJSON_GetObjectItem(root, "conv1.bias");
    assert_string_equal(cJSON_GetObjectItem(bias, "dtype")->valuestring, "F32");
    cJSON *offs = cJSON_GetObjectItem(bias, "data_offsets");
    assert_int_equal(cJSON_GetArrayItem(offs, 0)->valueint, 600);
    assert_int_equal(cJSON_GetArrayItem(offs, 1)->valueint, 624);
    cJSON_Delete(root);
    /* Little-endian floats, whatever the host. */
    uint32_t bits;
    memcpy(&bits, &w[0], 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(raw[8 + hlen + (size_t)i], (bits >> (8 * i)) & 0xff);
    free(raw);

    static float w2[150], b2[6], fc2[40];
    nb_named_tensor u[3] = {named("fc.weight", 2, (int[]){10, 4}, fc2),
                            named("conv1.weight", 4, (int[]){6, 1, 5, 5}, w2),
                            named("conv1.bias", 1, (int[]){6}, b2)};
    nb_meta got[4];
    int n_meta = -1;
    assert_ok(nb_safetensors_load(path, u, 3, 0, got, 4, &n_meta));
    assert_memory_equal(w2, w, sizeof w);
    assert_memory_equal(b2, b, sizeof b);
    assert_memory_equal(fc2, fc, sizeof fc);
    assert_int_equal(n_meta, 2);
    assert_string_equal(got[0].key, "model");
    assert_string_equal(got[0].value, "lenet5");
    assert_string_equal(got[1].value, "a \"quoted\" value\n");
    /* Fewer metadata slots than entries; none at all. */
    assert_ok(nb_safetensors_load(path, u, 3, 0, got, 1, &n_meta));
    assert_int_equal(n_meta, 1);
    assert_ok(nb_safetensors_load(path, u, 3, 0, NULL, 0, NULL));
    /* Metadata alone, everything else allowed. */
    assert_ok(nb_safetensors_load(path, NULL, 0, 1, got, 4, &n_meta));
    assert_int_equal(n_meta, 2);
    /* A subset is an error unless extras are allowed. */
    assert_int_equal(nb_safetensors_load(path, u, 1, 0, NULL, 0, NULL), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_last_error(), "conv1.weight: in the file but not expected"));
    assert_non_null(strstr(nb_last_error(), "conv1.bias: in the file but not expected"));
    assert_ok(nb_safetensors_load(path, u, 1, 1, NULL, 0, NULL));
}

static void test_save_without_metadata(void **s) {
    (void)s;
    float x[2] = {1.0f, -2.0f};
    nb_named_tensor t = named("x", 1, (int[]){2}, x);
    const char *path = tmp_path("plain.safetensors");
    assert_ok(nb_safetensors_save(path, &t, 1, NULL, 0));
    size_t len;
    uint8_t *raw = read_bytes(path, &len);
    static const uint8_t tail[8] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0};
    assert_memory_equal(raw + len - 8, tail, 8);
    assert_null(strstr((const char *)raw + 8, "__metadata__"));
    free(raw);
    int n_meta = -1;
    nb_meta m[1];
    float y[2];
    t.tensor.data = y;
    assert_ok(nb_safetensors_load(path, &t, 1, 0, m, 1, &n_meta));
    assert_int_equal(n_meta, 0);
    assert_memory_equal(x, y, sizeof x);
}

/* ---- malformed files ------------------------------------------------------------------ */

typedef struct bad_file {
    const char *what;
    long long hlen; /* < 0: the JSON's length */
    const char *json;
    size_t data_len;
    const char *message;
} bad_file;

static const bad_file bad_files[] = {
    {"length past EOF", 1000, "{}", 0,
     "header length 1000 (bytes 0-7) runs past the end of the 10-byte file"},
    {"huge length", 1ll << 40, "{}", 0,
     "header length 1099511627776 (bytes 0-7) is more than the 100000000-byte limit"},
    {"zero length", 0, "", 0, "header length 0 is too short for a JSON object"},
    {"invalid JSON", -1, "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]", 8,
     "header is not valid JSON"},
    {"not an object", -1, "[1, 2]", 0, "header must be a JSON object"},
    {"garbage after", -1, "{}  x", 0, "unexpected byte 0x78 after the JSON header at byte 12"},
    {"no dtype", -1, "{\"x\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 8,
     "tensor 'x': missing \"dtype\""},
    {"no shape", -1, "{\"x\": {\"dtype\": \"F32\", \"data_offsets\": [0, 8]}}", 8,
     "tensor 'x': missing \"shape\""},
    {"no offsets", -1, "{\"x\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8,
     "tensor 'x': missing \"data_offsets\""},
    {"entry not object", -1, "{\"x\": 5}", 0, "tensor 'x': entry must be a JSON object"},
    {"dtype number", -1, "{\"x\": {\"dtype\": 4, \"shape\": [2], \"data_offsets\": [0, 8]}}", 8,
     "tensor 'x': \"dtype\" must be a string"},
    {"unknown dtype", -1, "{\"x\": {\"dtype\": \"F31\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
     8, "tensor 'x': unknown dtype \"F31\""},
    {"lower-case dtype", -1,
     "{\"x\": {\"dtype\": \"f32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8,
     "unknown dtype \"f32\""},
    {"shape string", -1,
     "{\"x\": {\"dtype\": \"F32\", \"shape\": \"2\", \"data_offsets\": [0, 8]}}", 8,
     "tensor 'x': \"shape\" must be an array"},
    {"shape negative", -1,
     "{\"x\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 8,
     "tensor 'x': shape entry 0 is not a non-negative whole number"},
    {"shape fraction", -1,
     "{\"x\": {\"dtype\": \"F32\", \"shape\": [2, 1.5], \"data_offsets\": [0, 8]}}", 8,
     "tensor 'x': shape entry 1 is not a non-negative whole number"},
    {"shape of strings", -1,
     "{\"x\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}", 8,
     "shape entry 0 is not a non-negative whole number"},
    {"shape overflow", -1,
     "{\"x\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296], "
     "\"data_offsets\": [0, 8]}}",
     8, "tensor 'x': the element count of its shape overflows"},
    {"one offset", -1, "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8]}}", 8,
     "\"data_offsets\" must be [begin, end]"},
    {"three offsets", -1,
     "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8, 8]}}", 8,
     "\"data_offsets\" must be [begin, end]"},
    {"offsets string", -1,
     "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": \"0,8\"}}", 8,
     "\"data_offsets\" must be [begin, end]"},
    {"offset string", -1,
     "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, \"8\"]}}", 8,
     "\"data_offsets\" must be [begin, end]"},
    {"offset too big", -1,
     "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 1e300]}}", 8,
     "\"data_offsets\" must be [begin, end]"},
    {"reversed", -1, "{\"x\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 0]}}", 8,
     "tensor 'x': data_offsets [8, 0] end before they begin"},
    {"outside", -1, "{\"x\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8,
     "tensor 'x': data_offsets [0, 16] lie outside the 8-byte data buffer"},
    {"size mismatch", -1, "{\"x\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}",
     8, "tensor 'x': data_offsets [0, 8] span 8 bytes but shape [3] of F32 needs 12"},
    {"duplicate", -1,
     "{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
     " \"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
     8, "tensor 'x' appears twice in the header"},
    {"two metadata", -1,
     "{\"__metadata__\": {}, \"__metadata__\": {}, \"x\": {\"dtype\": \"F32\", \"shape\": [2], "
     "\"data_offsets\": [0, 8]}}",
     8, "\"__metadata__\" appears twice"},
    {"metadata number", -1,
     "{\"__metadata__\": {\"k\": 1}, \"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": "
     "[0, 8]}}",
     8, "metadata \"k\" must be a string"},
    {"metadata array", -1, "{\"__metadata__\": [\"k\"]}", 0,
     "\"__metadata__\" must be an object of strings"},
    {"overlap", -1,
     "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
     " \"y\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
     12, "tensors 'x' [0, 8) and 'y' [4, 12) overlap in the data buffer"},
    {"hole", -1,
     "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
     " \"y\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [12, 20]}}",
     20, "bytes [8, 12) of the data buffer belong to no tensor"},
    {"tail", -1, "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 12,
     "the data buffer is 12 bytes but the tensors end at byte 8"},
    {"data but no tensors", -1, "{}", 4,
     "the header lists no tensors but the data buffer has 4 bytes"},
};

static void test_malformed(void **s) {
    (void)s;
    static const uint8_t data[32] = {0};
    /* Too short even for the length. */
    FILE *f = fopen(tmp_path("short.safetensors"), "wb");
    fwrite("\x02\0\0", 1, 3, f);
    fclose(f);
    float x[2] = {5, 6};
    nb_named_tensor t = named("x", 1, (int[]){2}, x);
    assert_int_equal(nb_safetensors_load(tmp_path("short.safetensors"), &t, 1, 1, NULL, 0, NULL),
                     NB_ERR_FORMAT);
    assert_non_null(
        strstr(nb_last_error(), "file is 3 bytes, too short for the 8-byte header length"));

    for (size_t i = 0; i < sizeof bad_files / sizeof *bad_files; i++) {
        const bad_file *c = &bad_files[i];
        const char *path = write_st("bad.safetensors", c->hlen, c->json, data, c->data_len);
        nb_meta m = meta_entry("keep", "me");
        int n_meta = 77;
        nb_status st = nb_safetensors_load(path, &t, 1, 1, &m, 1, &n_meta);
        const char *msg = nb_last_error();
        if (st != NB_ERR_FORMAT || !strstr(msg, c->message) || !strstr(msg, path))
            print_error("case '%s': status %d, message: %s\n", c->what, st, msg);
        assert_int_equal(st, NB_ERR_FORMAT);
        assert_non_null(strstr(msg, c->message));
        assert_non_null(strstr(msg, path));
        /* Nothing the caller passed was touched. */
        assert_true(x[0] == 5 && x[1] == 6);
        assert_string_equal(m.key, "keep");
        assert_int_equal(n_meta, 77);
    }
}

/* The spec allows any rank and any dtype; those we do not read are fine
 * when not asked for. */
static void test_unrequested_exotic_tensors(void **s) {
    (void)s;
    static const uint8_t data[8 + 10 + 16] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0x40};
    const char *json =
        "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
        " \"mask\": {\"dtype\": \"BOOL\", \"shape\": [1, 1, 1, 2, 5], \"data_offsets\": [8, 18]},"
        " \"ids\": {\"dtype\": \"I64\", \"shape\": [2], \"data_offsets\": [18, 34]},"
        " \"empty\": {\"dtype\": \"F32\", \"shape\": [0, 3], \"data_offsets\": [34, 34]}}  ";
    const char *path = write_st("exotic.safetensors", -1, json, data, sizeof data);
    float x[2];
    nb_named_tensor t = named("x", 1, (int[]){2}, x);
    assert_ok(nb_safetensors_load(path, &t, 1, 1, NULL, 0, NULL));
    assert_true(x[0] == 1.0f && x[1] == 2.0f);
    /* Asked for, they are mismatches. */
    float m[10] = {0}, ids[2] = {0};
    nb_named_tensor u[3] = {t, named("mask", 2, (int[]){2, 5}, m),
                            named("ids", 1, (int[]){2}, ids)};
    assert_int_equal(nb_safetensors_load(path, u, 3, 1, NULL, 0, NULL), NB_ERR_SHAPE);
    const char *msg = nb_last_error();
    assert_non_null(strstr(msg, "mask: file has [1, 1, 1, 2, 5], model expects [2, 5]"));
    assert_non_null(strstr(msg, "mask: dtype BOOL is not supported"));
    assert_non_null(strstr(msg, "ids: dtype I64 is not supported (F32, F64, F16 or BF16)"));
}

/* Every difference in one message, and not one buffer written. */
static void test_all_mismatches_at_once(void **s) {
    (void)s;
    float w[6 * 9], b[6], junk[1] = {3};
    for (int i = 0; i < 54; i++) w[i] = (float)i;
    for (int i = 0; i < 6; i++) b[i] = (float)-i;
    nb_named_tensor file[3] = {named("conv1.weight", 4, (int[]){6, 1, 3, 3}, w),
                               named("conv1.bias", 1, (int[]){6}, b),
                               named("junk", 1, (int[]){1}, junk)};
    const char *path = tmp_path("mismatch.safetensors");
    assert_ok(nb_safetensors_save(path, file, 3, NULL, 0));

    float w2[6 * 25], b2[6], fc[3];
    for (int i = 0; i < 150; i++) w2[i] = 42;
    for (int i = 0; i < 6; i++) b2[i] = 42;
    for (int i = 0; i < 3; i++) fc[i] = 42;
    nb_named_tensor want[3] = {named("conv1.weight", 4, (int[]){6, 1, 5, 5}, w2),
                               named("conv1.bias", 1, (int[]){6}, b2), /* this one fits */
                               named("fc.bias", 1, (int[]){3}, fc)};
    assert_int_equal(nb_safetensors_load(path, want, 3, 0, NULL, 0, NULL), NB_ERR_SHAPE);
    const char *msg = nb_last_error();
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "3 mismatches"));
    assert_non_null(strstr(msg, "conv1.weight: file has [6, 1, 3, 3], model expects [6, 1, 5, 5]"));
    assert_non_null(strstr(msg, "fc.bias: missing from the file"));
    assert_non_null(strstr(msg, "junk: in the file but not expected"));
    assert_null(strchr(msg, '\n'));
    for (int i = 0; i < 150; i++) assert_true(w2[i] == 42);
    for (int i = 0; i < 6; i++) assert_true(b2[i] == 42); /* even the tensor that fit */
    for (int i = 0; i < 3; i++) assert_true(fc[i] == 42);
}

/* More mismatches than a line holds: the rest are counted, not cut. */
static void test_many_mismatches(void **s) {
    (void)s;
    float x[1] = {0};
    nb_named_tensor file = named("only", 1, (int[]){1}, x);
    const char *path = tmp_path("many.safetensors");
    assert_ok(nb_safetensors_save(path, &file, 1, NULL, 0));
    enum { M = 60 };
    static char names[M][48];
    nb_named_tensor want[M];
    for (int i = 0; i < M; i++) {
        snprintf(names[i], sizeof names[i], "features.%d.a_rather_long_parameter_name", i);
        want[i] = named(names[i], 1, (int[]){1}, x);
    }
    assert_int_equal(nb_safetensors_load(path, want, M, 1, NULL, 0, NULL), NB_ERR_SHAPE);
    const char *msg = nb_last_error();
    assert_non_null(strstr(msg, "60 mismatches"));
    assert_non_null(strstr(msg, "features.0.a_rather_long_parameter_name: missing from the file"));
    assert_non_null(strstr(msg, " more"));
    assert_non_null(strstr(msg, "; ... and "));
}

/* ---- other dtypes -------------------------------------------------------------------- */

static void test_dtype_conversion(void **s) {
    (void)s;
    /* F16: 1, -2, 0.5, 65504 (largest), 2^-24 (smallest subnormal),
     * 2^-14 (smallest normal), -0, +inf, NaN. */
    static const uint16_t h[9] = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001,
                                  0x0400, 0x8000, 0x7C00, 0x7E00};
    const float hv[9] = {1.0f,           -2.0f, 0.5f,     65504.0f, ldexpf(1, -24),
                         ldexpf(1, -14), -0.0f, INFINITY, NAN};
    /* BF16: 1, -3.5, 3.140625 (pi truncated), 1e38-ish. */
    static const uint16_t bf[4] = {0x3F80, 0xC060, 0x4049, 0x7E96};
    float bv[4];
    for (int i = 0; i < 4; i++) {
        uint32_t bits = (uint32_t)bf[i] << 16;
        memcpy(&bv[i], &bits, 4);
    }
    const double dv[3] = {1.0 / 3.0, -1e300, 123.456};
    uint8_t data[18 + 8 + 24];
    for (int i = 0; i < 9; i++) data[2 * i] = (uint8_t)h[i], data[2 * i + 1] = (uint8_t)(h[i] >> 8);
    for (int i = 0; i < 4; i++)
        data[18 + 2 * i] = (uint8_t)bf[i], data[18 + 2 * i + 1] = (uint8_t)(bf[i] >> 8);
    for (int i = 0; i < 3; i++) {
        uint64_t bits;
        memcpy(&bits, &dv[i], 8);
        for (int k = 0; k < 8; k++) data[26 + 8 * i + k] = (uint8_t)(bits >> (8 * k));
    }
    const char *json =
        "{\"h\": {\"dtype\": \"F16\", \"shape\": [9], \"data_offsets\": [0, 18]},"
        " \"bf\": {\"dtype\": \"BF16\", \"shape\": [2, 2], \"data_offsets\": [18, 26]},"
        " \"d\": {\"dtype\": \"F64\", \"shape\": [3], \"data_offsets\": [26, 50]}}";
    const char *path = write_st("dtypes.safetensors", -1, json, data, sizeof data);
    float hf[9], bff[4], df[3];
    nb_named_tensor t[3] = {named("h", 1, (int[]){9}, hf), named("bf", 2, (int[]){2, 2}, bff),
                            named("d", 1, (int[]){3}, df)};
    assert_ok(nb_safetensors_load(path, t, 3, 0, NULL, 0, NULL));
    for (int i = 0; i < 8; i++) assert_true(hf[i] == hv[i]);
    assert_true(signbit(hf[6]));
    assert_true(isnan(hf[8]));
    for (int i = 0; i < 4; i++) assert_true(bff[i] == bv[i]);
    assert_true(bff[0] == 1.0f && bff[1] == -3.5f && bff[2] == 3.140625f);
    assert_true(df[0] == (float)(1.0 / 3.0));
    assert_true(isinf(df[1]) && df[1] < 0);
    assert_true(df[2] == (float)123.456);

    /* Every F16 bit pattern against an independent decoding. */
    uint8_t all[65536 * 2];
    for (uint32_t i = 0; i < 65536; i++)
        all[2 * i] = (uint8_t)i, all[2 * i + 1] = (uint8_t)(i >> 8);
    path =
        write_st("f16.safetensors", -1,
                 "{\"h\": {\"dtype\": \"F16\", \"shape\": [65536], \"data_offsets\": [0, 131072]}}",
                 all, sizeof all);
    static float out[65536];
    nb_named_tensor a = named("h", 1, (int[]){65536}, out);
    assert_ok(nb_safetensors_load(path, &a, 1, 0, NULL, 0, NULL));
    for (uint32_t i = 0; i < 65536; i++) {
        int e = (int)(i >> 10 & 0x1f), m = (int)(i & 0x3ff);
        double v = e == 0    ? ldexp(m, -24)
                   : e == 31 ? (m ? NAN : INFINITY)
                             : ldexp(1024 + m, e - 25);
        if (i & 0x8000) v = -v;
        if (isnan(v)) assert_true(isnan(out[i]));
        else assert_true(out[i] == (float)v);
    }
}

/* ---- atomic writes -------------------------------------------------------------------- */

static void test_atomic_write(void **s) {
    (void)s;
    float x[3] = {1, 2, 3};
    nb_named_tensor t = named("x", 1, (int[]){3}, x);

    /* Into a directory that does not exist: a clear error, nothing made. */
    char path[600];
    snprintf(path, sizeof path, "%s/no/such/dir/w.safetensors", tmpdir);
    assert_int_equal(nb_safetensors_save(path, &t, 1, NULL, 0), NB_ERR_IO);
    assert_non_null(strstr(nb_last_error(), path));
    assert_non_null(strstr(nb_last_error(), "cannot create a temporary file"));
    assert_non_null(strstr(nb_last_error(), "No such file or directory"));

    /* Replacing a file keeps its permissions, and leaves no temporary. */
    const char *target = tmp_path("w.safetensors");
    snprintf(path, sizeof path, "%s", target);
    assert_ok(nb_safetensors_save(path, &t, 1, NULL, 0));
    assert_int_equal(chmod(path, 0640), 0);
    x[0] = 10;
    assert_ok(nb_safetensors_save(path, &t, 1, NULL, 0));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    float y[3];
    t.tensor.data = y;
    assert_ok(nb_safetensors_load(path, &t, 1, 0, NULL, 0, NULL));
    assert_true(y[0] == 10);
    t.tensor.data = x;
    assert_no_temporaries(tmpdir);

    /* A failure after the data is written (the rename, here onto a
     * directory) removes the temporary and keeps the old target. */
    snprintf(path, sizeof path, "%s/dir.safetensors", tmpdir);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(nb_safetensors_save(path, &t, 1, NULL, 0), NB_ERR_IO);
    assert_non_null(strstr(nb_last_error(), "cannot rename"));
    assert_non_null(strstr(nb_last_error(), "the previous file is unchanged"));
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_no_temporaries(tmpdir);
    rmdir(path);

    /* A read-only directory: the old file stays bit-identical. Root
     * ignores permissions, so there the check cannot fail the write. */
    char dir[128];
    snprintf(dir, sizeof dir, "%s/ro", tmpdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/old.safetensors", dir);
    assert_ok(nb_safetensors_save(path, &t, 1, NULL, 0));
    size_t len0, len1;
    uint8_t *before = read_bytes(path, &len0);
    assert_int_equal(chmod(dir, 0555), 0);
    x[0] = 99;
    nb_status st_ro = nb_safetensors_save(path, &t, 1, NULL, 0);
    chmod(dir, 0755);
    if (geteuid() != 0) {
        assert_int_equal(st_ro, NB_ERR_IO);
        assert_non_null(strstr(nb_last_error(), "Permission denied"));
        uint8_t *after = read_bytes(path, &len1);
        assert_int_equal(len0, len1);
        assert_memory_equal(before, after, len0);
        free(after);
    } else {
        print_message("running as root: the read-only directory check is skipped\n");
    }
    free(before);
    remove(path);
    rmdir(dir);
}

/* nb_file_write_atomic, the writer behind every file nabla writes, on its
 * own: bytes in place, a failure that keeps the previous file, bad
 * arguments. */
static void test_file_write_atomic(void **s) {
    (void)s;
    const char *path = tmp_path("bytes.bin");
    assert_ok(nb_file_write_atomic(path, "first", 5));
    assert_ok(nb_file_write_atomic(path, "second!", 7));
    size_t n;
    uint8_t *got = read_bytes(path, &n);
    assert_int_equal(n, 7);
    assert_memory_equal(got, "second!", 7);
    free(got);
    assert_ok(nb_file_write_atomic(path, NULL, 0)); /* an empty file */
    got = read_bytes(path, &n);
    assert_int_equal(n, 0);
    free(got);
    assert_ok(nb_file_write_atomic(path, "kept", 4));
    char dir[600];
    snprintf(dir, sizeof dir, "%s/missing/bytes.bin", tmpdir);
    assert_int_equal(nb_file_write_atomic(dir, "x", 1), NB_ERR_IO);
    assert_non_null(strstr(nb_last_error(), dir));
    assert_int_equal(nb_file_write_atomic(NULL, "x", 1), NB_ERR_ARG);
    assert_int_equal(nb_file_write_atomic(path, NULL, 1), NB_ERR_ARG);
    assert_int_equal(nb_file_write_atomic("", "x", 1), NB_ERR_ARG);
    got = read_bytes(path, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(got, "kept", 4);
    free(got);
    assert_no_temporaries(tmpdir);
}

static void test_bad_arguments(void **s) {
    (void)s;
    float x[2] = {1, 2};
    const char *path = tmp_path("args.safetensors");
    nb_named_tensor dup[2] = {named("a", 1, (int[]){2}, x), named("a", 1, (int[]){2}, x)};
    assert_int_equal(nb_safetensors_save(path, dup, 2, NULL, 0), NB_ERR_ARG);
    assert_non_null(strstr(nb_last_error(), "tensor 'a' is given twice"));
    nb_named_tensor reserved = named("__metadata__", 1, (int[]){2}, x);
    assert_int_equal(nb_safetensors_save(path, &reserved, 1, NULL, 0), NB_ERR_ARG);
    nb_named_tensor nodata = named("a", 1, (int[]){2}, NULL);
    assert_int_equal(nb_safetensors_save(path, &nodata, 1, NULL, 0), NB_ERR_ARG);
    nb_named_tensor unnamed = named(NULL, 1, (int[]){2}, x);
    assert_int_equal(nb_safetensors_save(path, &unnamed, 1, NULL, 0), NB_ERR_ARG);
    nb_named_tensor ok = named("a", 1, (int[]){2}, x);
    nb_meta m[2] = {meta_entry("k", "1"), meta_entry("k", "2")};
    assert_int_equal(nb_safetensors_save(path, &ok, 1, m, 2), NB_ERR_ARG);
    assert_non_null(strstr(nb_last_error(), "metadata key 'k' is given twice"));
    memset(m[0].key, 'z', sizeof m[0].key); /* no terminator */
    assert_int_equal(nb_safetensors_save(path, &ok, 1, m, 1), NB_ERR_ARG);
    assert_int_equal(nb_safetensors_save(NULL, &ok, 1, NULL, 0), NB_ERR_ARG);
    assert_int_equal(access(path, F_OK), -1); /* nothing was written */

    assert_ok(nb_safetensors_save(path, &ok, 1, NULL, 0));
    assert_int_equal(nb_safetensors_load(path, dup, 2, 0, NULL, 0, NULL), NB_ERR_ARG);
    assert_non_null(strstr(nb_last_error(), "tensor 'a' is requested twice"));
    assert_int_equal(nb_safetensors_load(path, &ok, 1, 0, NULL, 3, NULL), NB_ERR_ARG);
    assert_int_equal(nb_safetensors_load(tmp_path("missing.safetensors"), &ok, 1, 0, NULL, 0, NULL),
                     NB_ERR_IO);
    assert_non_null(strstr(nb_last_error(), "No such file"));
}

/* Metadata that does not fit nb_meta's fields is left out, never cut. */
static void test_long_metadata(void **s) {
    (void)s;
    char json[1024];
    char longval[301];
    memset(longval, 'v', 300);
    longval[300] = '\0';
    snprintf(json, sizeof json,
             "{\"__metadata__\": {\"a\": \"1\", \"long\": \"%s\", \"b\": \"2\"}}", longval);
    const char *path = write_st("meta.safetensors", -1, json, NULL, 0);
    nb_meta m[4];
    int n = 0;
    assert_ok(nb_safetensors_load(path, NULL, 0, 0, m, 4, &n));
    assert_int_equal(n, 2);
    assert_string_equal(m[0].key, "a");
    assert_string_equal(m[1].key, "b");
}

/* ---- allocation failures ------------------------------------------------------------------- */

static void test_allocation_failures(void **s) {
    (void)s;
    float x[4] = {1, 2, 3, 4}, y[4];
    nb_named_tensor t[2] = {named("a", 1, (int[]){4}, x), named("b", 2, (int[]){2, 2}, x)};
    nb_meta m = meta_entry("k", "v");
    const char *path = tmp_path("oom.safetensors");
    nb_set_allocator(counting_malloc, counting_realloc, counting_free);
    int failures = 0;
    for (long k = 0;; k++) {
        alloc_budget = k;
        live_allocs = 0;
        nb_status st = nb_safetensors_save(path, t, 2, &m, 1);
        assert_int_equal(live_allocs, 0);
        if (st == NB_OK) break;
        assert_int_equal(st, NB_ERR_NOMEM);
        failures++;
    }
    assert_true(failures >= 2);
    nb_named_tensor u[2] = {named("a", 1, (int[]){4}, y), named("b", 2, (int[]){2, 2}, y)};
    failures = 0;
    for (long k = 0;; k++) {
        alloc_budget = k;
        live_allocs = 0;
        for (int i = 0; i < 4; i++) y[i] = -1;
        nb_status st = nb_safetensors_load(path, u, 2, 0, NULL, 0, NULL);
        assert_int_equal(live_allocs, 0);
        if (st == NB_OK) break;
        assert_int_equal(st, NB_ERR_NOMEM);
        for (int i = 0; i < 4; i++) assert_true(y[i] == -1);
        failures++;
    }
    nb_set_allocator(NULL, NULL, NULL);
    alloc_budget = -1;
    assert_true(failures >= 3);
    assert_memory_equal(x, y, sizeof x);
    assert_no_temporaries(tmpdir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_save_without_metadata),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_unrequested_exotic_tensors),
        cmocka_unit_test(test_all_mismatches_at_once),
        cmocka_unit_test(test_many_mismatches),
        cmocka_unit_test(test_dtype_conversion),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_file_write_atomic),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_long_metadata),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests_name("safetensors", tests, tmpdir_setup, tmpdir_teardown);
}
