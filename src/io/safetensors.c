/* safetensors.c — the safetensors format: an 8-byte little-endian header
 * length N, N bytes of JSON naming each tensor's dtype, shape and byte
 * range, then one data buffer, little-endian and row-major. The header is
 * parsed and written with cJSON; every field is checked before any byte of
 * data is used, and loading changes no output unless everything fits. */
#include "io/io.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* What the reference implementation accepts; a larger "header" is a
 * corrupt length or a hostile file, not a set of tensor names. */
#define NB_ST_MAX_HEADER 100000000ull
/* JSON numbers are doubles: integers above 2^53 are not exact. */
#define NB_ST_MAX_INT 9007199254740992.0

typedef enum st_dtype {
    ST_F64, ST_F32, ST_F16, ST_BF16, /* the ones nabla converts to float */
    ST_I64, ST_I32, ST_I16, ST_I8, ST_U64, ST_U32, ST_U16, ST_U8, ST_BOOL,
    ST_F8_E5M2, ST_F8_E4M3, ST_C64,
    ST_COUNT
} st_dtype;

static const struct {
    const char *name;
    int size;
} dtype_info[ST_COUNT] = {
    [ST_F64] = {"F64", 8},   [ST_F32] = {"F32", 4},   [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2}, [ST_I64] = {"I64", 8},   [ST_I32] = {"I32", 4},
    [ST_I16] = {"I16", 2},   [ST_I8] = {"I8", 1},     [ST_U64] = {"U64", 8},
    [ST_U32] = {"U32", 4},   [ST_U16] = {"U16", 2},   [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1},
    [ST_C64] = {"C64", 8},
};

static bool dtype_readable(st_dtype d) { return d <= ST_BF16; }

/* ---- byte order: written and read byte by byte, whatever the host ------ */

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static float f32_from_le(const uint8_t *p) {
    uint32_t bits =
        (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float f64_from_le(const uint8_t *p) {
    uint64_t bits = le64(p);
    double d;
    memcpy(&d, &bits, sizeof d);
    return (float)d;
}

/* IEEE half: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
static float f16_from_le(const uint8_t *p) {
    uint16_t h = (uint16_t)(p[0] | p[1] << 8);
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | man << 13; /* infinity or NaN */
    } else if (exp == 0) {
        /* Zero or subnormal: man * 2^-24, exact in float. */
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* bfloat16 is the top half of a float32. */
static float bf16_from_le(const uint8_t *p) {
    uint32_t bits = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 24;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- the parsed header ---------------------------------------------------- */

typedef struct st_entry {
    const char *name;     /* points into the cJSON tree */
    const cJSON *shape;   /* the JSON array, for messages */
    st_dtype dtype;
    int rank;
    uint64_t dims[NB_MAX_DIMS]; /* the first NB_MAX_DIMS dims */
    uint64_t begin, end;
    bool used;
} st_entry;

/* "[6, 1, 3, 3]" from the JSON array (any rank). */
static void json_shape_str(const cJSON *shape, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "[");
    int i = 0;
    for (const cJSON *d = shape->child; d && used < size; d = d->next, i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %.0f" : "%.0f", d->valuedouble);
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* A JSON number that is a whole number in [0, 2^53]. */
static bool whole_number(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double v = j->valuedouble;
    if (!isfinite(v) || v < 0 || v > NB_ST_MAX_INT || floor(v) != v) return false;
    *out = (uint64_t)v;
    return true;
}

static nb_status parse_entry(const char *path, const cJSON *item, uint64_t buffer_len,
                             st_entry *e) {
    const char *name = item->string;
    e->name = name;
    if (!cJSON_IsObject(item))
        return nb_fail(NB_ERR_FORMAT, "%s: tensor '%s': entry must be a JSON object", path, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!dtype || !shape || !offs)
        return nb_fail(NB_ERR_FORMAT, "%s: tensor '%s': missing \"%s\"", path, name,
                       !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    if (!cJSON_IsString(dtype))
        return nb_fail(NB_ERR_FORMAT, "%s: tensor '%s': \"dtype\" must be a string", path, name);
    int d = 0;
    while (d < ST_COUNT && strcmp(dtype_info[d].name, dtype->valuestring) != 0) d++;
    if (d == ST_COUNT)
        return nb_fail(NB_ERR_FORMAT, "%s: tensor '%s': unknown dtype \"%s\"", path, name,
                       dtype->valuestring);
    e->dtype = (st_dtype)d;

    if (!cJSON_IsArray(shape))
        return nb_fail(NB_ERR_FORMAT, "%s: tensor '%s': \"shape\" must be an array", path, name);
    e->shape = shape;
    uint64_t numel = 1;
    bool overflow = false;
    e->rank = 0;
    for (const cJSON *j = shape->child; j; j = j->next, e->rank++) {
        uint64_t v;
        if (!whole_number(j, &v))
            return nb_fail(NB_ERR_FORMAT, "%s: tensor '%s': shape entry %d is not a non-negative "
                           "whole number", path, name, e->rank);
        if (e->rank < NB_MAX_DIMS) e->dims[e->rank] = v;
        if (v != 0 && numel > UINT64_MAX / v) overflow = true;
        else numel *= v;
    }
    uint64_t bytes = 0;
    if (overflow || numel > UINT64_MAX / (uint64_t)dtype_info[d].size) {
        /* A zero dimension makes the tensor empty whatever the others say. */
        bool empty = false;
        for (const cJSON *j = shape->child; j; j = j->next) empty |= j->valuedouble == 0;
        if (!empty)
            return nb_fail(NB_ERR_FORMAT, "%s: tensor '%s': the element count of its shape "
                           "overflows", path, name);
    } else {
        bytes = numel * (uint64_t)dtype_info[d].size;
    }

    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !whole_number(offs->child, &e->begin) || !whole_number(offs->child->next, &e->end))
        return nb_fail(NB_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" must be [begin, end], two "
                       "non-negative whole numbers", path, name);
    if (e->end < e->begin)
        return nb_fail(NB_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before they "
                       "begin", path, name, (unsigned long long)e->begin,
                       (unsigned long long)e->end);
    if (e->end > buffer_len)
        return nb_fail(NB_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] lie outside the "
                       "%llu-byte data buffer", path, name, (unsigned long long)e->begin,
                       (unsigned long long)e->end, (unsigned long long)buffer_len);
    if (e->end - e->begin != bytes) {
        char sh[128];
        json_shape_str(shape, sh, sizeof sh);
        return nb_fail(NB_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] span %llu bytes "
                       "but shape %s of %s needs %llu", path, name, (unsigned long long)e->begin,
                       (unsigned long long)e->end, (unsigned long long)(e->end - e->begin), sh,
                       dtype_info[d].name, (unsigned long long)bytes);
    }
    return NB_OK;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

static int by_offset(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* The spec's rule: the tensors tile the buffer exactly — no overlap (two
 * names sharing bytes) and no hole or tail (bytes no tensor owns, where a
 * second file format could hide). */
static nb_status check_layout(const char *path, st_entry *e, size_t n, uint64_t buffer_len) {
    if (n == 0) {
        if (buffer_len != 0)
            return nb_fail(NB_ERR_FORMAT, "%s: the header lists no tensors but the data buffer has "
                           "%llu bytes", path, (unsigned long long)buffer_len);
        return NB_OK;
    }
    st_entry **order = nb_alloc(n * sizeof *order, "safetensors layout check");
    if (!order) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    for (size_t i = 0; i < n; i++) order[i] = &e[i];
    qsort(order, n, sizeof *order, by_offset);
    nb_status s = NB_OK;
    uint64_t pos = 0;
    const st_entry *prev = NULL;
    for (size_t i = 0; i < n && !s; i++) {
        const st_entry *t = order[i];
        if (t->begin < pos)
            s = nb_fail(NB_ERR_FORMAT, "%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) "
                        "overlap in the data buffer", path, prev->name,
                        (unsigned long long)prev->begin, (unsigned long long)prev->end, t->name,
                        (unsigned long long)t->begin, (unsigned long long)t->end);
        else if (t->begin > pos)
            s = nb_fail(NB_ERR_FORMAT, "%s: bytes [%llu, %llu) of the data buffer belong to no "
                        "tensor", path, (unsigned long long)pos, (unsigned long long)t->begin);
        if (t->end > pos) pos = t->end, prev = t;
        else if (!prev) prev = t;
    }
    if (!s && pos != buffer_len)
        s = nb_fail(NB_ERR_FORMAT, "%s: the data buffer is %llu bytes but the tensors end at byte "
                    "%llu", path, (unsigned long long)buffer_len, (unsigned long long)pos);
    nb_free(order);
    return s;
}

/* ---- collecting mismatches into one line ---------------------------------- */

typedef struct mismatch_list {
    char text[800];
    size_t len;
    int count, dropped;
} mismatch_list;

static void NB_PRINTF(2, 3) add_mismatch(mismatch_list *m, const char *fmt, ...) {
    char item[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(item, sizeof item, fmt, ap);
    va_end(ap);
    size_t need = strlen(item) + 2;
    m->count++;
    /* Past the line's room, count what is left out rather than cut an item. */
    if (m->dropped || m->len + need >= sizeof m->text) {
        m->dropped++;
        return;
    }
    m->len += (size_t)snprintf(m->text + m->len, sizeof m->text - m->len, "%s%s",
                               m->count > 1 ? "; " : "", item);
}

/* ---- load ------------------------------------------------------------------ */

static nb_status check_request(const nb_named_tensor *tensors, int count) {
    if (count < 0 || (count > 0 && !tensors))
        return nb_fail(NB_ERR_ARG, "safetensors: %d tensors requested with %s list", count,
                       tensors ? "a" : "no");
    for (int i = 0; i < count; i++) {
        const nb_named_tensor *t = &tensors[i];
        if (!t->name || !t->name[0])
            return nb_fail(NB_ERR_ARG, "safetensors: requested tensor %d has no name", i);
        if (t->tensor.ndim < 0 || t->tensor.ndim > NB_MAX_DIMS)
            return nb_fail(NB_ERR_ARG, "safetensors: requested tensor '%s' has %d dimensions",
                           t->name, t->tensor.ndim);
        for (int d = 0; d < t->tensor.ndim; d++)
            if (t->tensor.shape[d] < 0)
                return nb_fail(NB_ERR_ARG, "safetensors: requested tensor '%s' has a negative "
                               "dimension", t->name);
        if (!t->tensor.data && !t->i64 && nb_tensor_numel(&t->tensor) > 0)
            return nb_fail(NB_ERR_ARG, "safetensors: requested tensor '%s' has no data buffer",
                           t->name);
        for (int j = 0; j < i; j++)
            if (strcmp(tensors[j].name, t->name) == 0)
                return nb_fail(NB_ERR_ARG, "safetensors: tensor '%s' is requested twice", t->name);
    }
    return NB_OK;
}

static bool shape_matches(const st_entry *e, const nb_tensor *t) {
    if (e->rank != t->ndim) return false;
    for (int d = 0; d < t->ndim; d++)
        if (e->dims[d] != (uint64_t)t->shape[d]) return false;
    return true;
}

static void convert(const st_entry *e, const uint8_t *src, float *dst) {
    size_t n = (size_t)(e->end - e->begin) / (size_t)dtype_info[e->dtype].size;
    switch (e->dtype) {
    case ST_F32: for (size_t i = 0; i < n; i++) dst[i] = f32_from_le(src + 4 * i); break;
    case ST_F64: for (size_t i = 0; i < n; i++) dst[i] = f64_from_le(src + 8 * i); break;
    case ST_F16: for (size_t i = 0; i < n; i++) dst[i] = f16_from_le(src + 2 * i); break;
    case ST_BF16: for (size_t i = 0; i < n; i++) dst[i] = bf16_from_le(src + 2 * i); break;
    default: break; /* refused before any conversion */
    }
}

/* Everything a load holds, released in one place. */
typedef struct st_load {
    FILE *f;
    char *header;
    cJSON *root;
    st_entry *entries;
    const st_entry **match; /* per requested tensor */
    uint8_t *staged;
} st_load;

static void st_load_free(st_load *L) {
    if (L->f) fclose(L->f);
    nb_free(L->header);
    cJSON_Delete(L->root);
    nb_free(L->entries);
    nb_free(L->match);
    nb_free(L->staged);
}

static nb_status load(st_load *L, const char *path, const nb_named_tensor *tensors, int count,
                      int allow_extra, nb_meta *meta, int meta_cap, int *meta_count) {
    L->f = fopen(path, "rb");
    if (!L->f) return nb_fail(NB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(L->f), &st) != 0 || !S_ISREG(st.st_mode))
        return nb_fail(NB_ERR_IO, "%s: not a regular file", path);
    uint64_t file_size = (uint64_t)st.st_size;
    uint8_t len_bytes[8];
    if (file_size < 8 || fread(len_bytes, 1, 8, L->f) != 8)
        return nb_fail(NB_ERR_FORMAT, "%s: file is %llu bytes, too short for the 8-byte header "
                       "length of a safetensors file", path, (unsigned long long)file_size);
    uint64_t hlen = le64(len_bytes);
    if (hlen > NB_ST_MAX_HEADER)
        return nb_fail(NB_ERR_FORMAT,
                       "%s: header length %llu (bytes 0-7) is more than the %llu-byte "
                       "limit: not a safetensors file, or a corrupt one",
                       path, (unsigned long long)hlen, NB_ST_MAX_HEADER);
    if (hlen > file_size - 8)
        return nb_fail(NB_ERR_FORMAT, "%s: header length %llu (bytes 0-7) runs past the end of the "
                       "%llu-byte file", path, (unsigned long long)hlen,
                       (unsigned long long)file_size);
    if (hlen < 2)
        return nb_fail(NB_ERR_FORMAT, "%s: header length %llu is too short for a JSON object", path,
                       (unsigned long long)hlen);
    const uint64_t buffer_len = file_size - 8 - hlen;

    L->header = nb_alloc((size_t)hlen + 1, "safetensors header");
    if (!L->header) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    if (fread(L->header, 1, (size_t)hlen, L->f) != (size_t)hlen)
        return nb_fail(NB_ERR_IO, "%s: cannot read the %llu-byte header: %s", path,
                       (unsigned long long)hlen, ferror(L->f) ? strerror(errno) : "file shrank");
    L->header[hlen] = '\0';
    const char *end = NULL;
    L->root = cJSON_ParseWithLengthOpts(L->header, (size_t)hlen, &end, 0);
    if (!L->root) {
        size_t at = end && end >= L->header ? (size_t)(end - L->header) : 0;
        return nb_fail(NB_ERR_FORMAT,
                       "%s: header is not valid JSON (error near byte %zu of the file)", path,
                       8 + at);
    }
    /* Writers pad the header with spaces so the data starts aligned. */
    for (const char *p = end; p < L->header + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return nb_fail(NB_ERR_FORMAT, "%s: unexpected byte 0x%02x after the JSON header at "
                           "byte %zu", path, (unsigned char)*p, 8 + (size_t)(p - L->header));
    if (!cJSON_IsObject(L->root))
        return nb_fail(NB_ERR_FORMAT, "%s: header must be a JSON object", path);

    /* Tensor entries; __metadata__ is set aside. cJSON keeps repeated
     * keys, so duplicates are found below by sorting the names. */
    size_t n = 0;
    const cJSON *meta_obj = NULL;
    for (const cJSON *j = L->root->child; j; j = j->next) {
        if (strcmp(j->string, "__metadata__") != 0) {
            n++;
            continue;
        }
        if (meta_obj)
            return nb_fail(NB_ERR_FORMAT, "%s: \"__metadata__\" appears twice in the header", path);
        if (!cJSON_IsObject(j))
            return nb_fail(NB_ERR_FORMAT, "%s: \"__metadata__\" must be an object of strings",
                           path);
        for (const cJSON *m = j->child; m; m = m->next)
            if (!cJSON_IsString(m))
                return nb_fail(NB_ERR_FORMAT, "%s: metadata \"%s\" must be a string", path,
                               m->string);
        meta_obj = j;
    }
    L->entries = nb_zalloc((n ? n : 1) * sizeof *L->entries, "safetensors entries");
    if (!L->entries) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    size_t k = 0;
    for (const cJSON *j = L->root->child; j; j = j->next) {
        if (j == meta_obj) continue;
        nb_status s = parse_entry(path, j, buffer_len, &L->entries[k++]);
        if (s) return s;
    }
    qsort(L->entries, n, sizeof *L->entries, by_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(L->entries[i - 1].name, L->entries[i].name) == 0)
            return nb_fail(NB_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path,
                           L->entries[i].name);
    nb_status s = check_layout(path, L->entries, n, buffer_len);
    if (s) return s;

    /* Match what was asked for against what the file holds, and report
     * every difference at once so one run shows the whole fix. */
    L->match = nb_zalloc((count ? (size_t)count : 1) * sizeof *L->match, "safetensors matches");
    if (!L->match) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    mismatch_list mm = {.len = 0};
    size_t staged_bytes = 0;
    for (int i = 0; i < count; i++) {
        const nb_named_tensor *t = &tensors[i];
        st_entry key = {.name = t->name};
        st_entry *e = bsearch(&key, L->entries, n, sizeof *L->entries, by_name);
        if (!e) {
            add_mismatch(&mm, "%s: missing from the file", t->name);
            continue;
        }
        e->used = true;
        bool ok = true;
        if (!shape_matches(e, &t->tensor)) {
            char fs[128], ms[128];
            json_shape_str(e->shape, fs, sizeof fs);
            nb_shape_str(&t->tensor, ms, sizeof ms);
            add_mismatch(&mm, "%s: file has %s, model expects %s", t->name, fs, ms);
            ok = false;
        }
        if (t->i64 && e->dtype != ST_I64) {
            add_mismatch(&mm, "%s: dtype %s, expected I64", t->name, dtype_info[e->dtype].name);
            ok = false;
        } else if (!t->i64 && !dtype_readable(e->dtype)) {
            add_mismatch(&mm, "%s: dtype %s is not supported (F32, F64, F16 or BF16)", t->name,
                         dtype_info[e->dtype].name);
            ok = false;
        }
        if (ok) {
            L->match[i] = e;
            staged_bytes += (size_t)(e->end - e->begin);
        }
    }
    if (!allow_extra)
        for (const cJSON *j = L->root->child; j; j = j->next) {
            if (j == meta_obj) continue;
            st_entry key = {.name = j->string};
            const st_entry *e = bsearch(&key, L->entries, n, sizeof *L->entries, by_name);
            if (e && !e->used) add_mismatch(&mm, "%s: in the file but not expected", e->name);
        }
    if (mm.count) {
        char more[48] = "";
        if (mm.dropped) snprintf(more, sizeof more, "; ... and %d more", mm.dropped);
        return nb_fail(NB_ERR_SHAPE, "%s: %d mismatch%s: %s%s", path, mm.count,
                       mm.count == 1 ? "" : "es", mm.text, more);
    }

    /* Read every requested tensor before writing any output, so a read
     * error cannot leave a model half loaded. */
    L->staged = nb_alloc(staged_bytes, "safetensors data");
    if (!L->staged) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    size_t at = 0;
    for (int i = 0; i < count; i++) {
        const st_entry *e = L->match[i];
        size_t bytes = (size_t)(e->end - e->begin);
        if (bytes == 0) continue;
        if (fseeko(L->f, (off_t)(8 + hlen + e->begin), SEEK_SET) != 0 ||
            fread(L->staged + at, 1, bytes, L->f) != bytes)
            return nb_fail(NB_ERR_IO, "%s: cannot read tensor '%s' at byte %llu: %s", path, e->name,
                           (unsigned long long)(8 + hlen + e->begin),
                           ferror(L->f) ? strerror(errno) : "file shrank");
        at += bytes;
    }
    at = 0;
    for (int i = 0; i < count; i++) {
        const st_entry *e = L->match[i];
        if (tensors[i].i64) {
            size_t count_i64 = (size_t)(e->end - e->begin) / 8;
            for (size_t k = 0; k < count_i64; k++)
                tensors[i].i64[k] = (int64_t)le64(L->staged + at + 8 * k);
        } else {
            convert(e, L->staged + at, tensors[i].tensor.data);
        }
        at += (size_t)(e->end - e->begin);
    }
    /* Entries too long for nb_meta's fixed fields are skipped rather than
     * cut: a truncated value would be silently wrong. */
    int stored = 0;
    if (meta_obj && meta)
        for (const cJSON *m = meta_obj->child; m && stored < meta_cap; m = m->next) {
            if (strlen(m->string) >= sizeof meta->key ||
                strlen(m->valuestring) >= sizeof meta->value)
                continue;
            snprintf(meta[stored].key, sizeof meta->key, "%s", m->string);
            snprintf(meta[stored].value, sizeof meta->value, "%s", m->valuestring);
            stored++;
        }
    if (meta_count) *meta_count = stored;
    return NB_OK;
}

nb_status nb_safetensors_load(const char *path, const nb_named_tensor *tensors, int count,
                              int allow_extra, nb_meta *meta, int meta_cap, int *meta_count) {
    if (!path) return nb_fail(NB_ERR_ARG, "nb_safetensors_load: path is NULL");
    if (meta_cap < 0 || (meta_cap > 0 && !meta))
        return nb_fail(NB_ERR_ARG, "%s: metadata capacity %d without a buffer", path, meta_cap);
    nb_status s = check_request(tensors, count);
    if (s) return nb_fail_prefix(s, "%s: ", path);
    st_load L = {0};
    s = load(&L, path, tensors, count, allow_extra, meta, meta_cap, meta_count);
    st_load_free(&L);
    return s;
}

/* ---- save ------------------------------------------------------------------ */

static nb_status check_save(const nb_named_tensor *tensors, int count, const nb_meta *meta,
                            int meta_count) {
    if (count < 0 || (count > 0 && !tensors))
        return nb_fail(NB_ERR_ARG, "%d tensors to save with %s list", count, tensors ? "a" : "no");
    if (meta_count < 0 || (meta_count > 0 && !meta))
        return nb_fail(NB_ERR_ARG, "%d metadata entries with %s list", meta_count,
                       meta ? "a" : "no");
    for (int i = 0; i < count; i++) {
        const nb_named_tensor *t = &tensors[i];
        if (!t->name || !t->name[0])
            return nb_fail(NB_ERR_ARG, "tensor %d to save has no name", i);
        if (strcmp(t->name, "__metadata__") == 0)
            return nb_fail(NB_ERR_ARG, "a tensor cannot be named \"__metadata__\"");
        if (t->tensor.ndim < 0 || t->tensor.ndim > NB_MAX_DIMS)
            return nb_fail(NB_ERR_ARG, "tensor '%s' has %d dimensions", t->name, t->tensor.ndim);
        for (int d = 0; d < t->tensor.ndim; d++)
            if (t->tensor.shape[d] < 0)
                return nb_fail(NB_ERR_ARG, "tensor '%s' has a negative dimension", t->name);
        if (!t->tensor.data && !t->i64 && nb_tensor_numel(&t->tensor) > 0)
            return nb_fail(NB_ERR_ARG, "tensor '%s' has no data", t->name);
        for (int j = 0; j < i; j++)
            if (strcmp(tensors[j].name, t->name) == 0)
                return nb_fail(NB_ERR_ARG, "tensor '%s' is given twice", t->name);
    }
    for (int i = 0; i < meta_count; i++) {
        if (strnlen(meta[i].key, sizeof meta[i].key) == sizeof meta[i].key ||
            strnlen(meta[i].value, sizeof meta[i].value) == sizeof meta[i].value)
            return nb_fail(NB_ERR_ARG, "metadata entry %d is not NUL-terminated", i);
        if (!meta[i].key[0]) return nb_fail(NB_ERR_ARG, "metadata entry %d has an empty key", i);
        for (int j = 0; j < i; j++)
            if (strcmp(meta[j].key, meta[i].key) == 0)
                return nb_fail(NB_ERR_ARG, "metadata key '%s' is given twice", meta[i].key);
    }
    return NB_OK;
}

/* The header in the given order: __metadata__ first, then the tensors,
 * each one's bytes right after the previous one's. */
static cJSON *build_header(const nb_named_tensor *tensors, int count, const nb_meta *meta,
                           int meta_count) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    if (meta_count > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        if (!m) goto fail;
        for (int i = 0; i < meta_count; i++)
            if (!cJSON_AddStringToObject(m, meta[i].key, meta[i].value)) goto fail;
    }
    uint64_t offset = 0;
    for (int i = 0; i < count; i++) {
        const nb_tensor *t = &tensors[i].tensor;
        const bool i64 = tensors[i].i64 != NULL;
        uint64_t bytes = (uint64_t)nb_tensor_numel(t) * (i64 ? 8 : sizeof(float));
        cJSON *e = cJSON_AddObjectToObject(root, tensors[i].name);
        if (!e || !cJSON_AddStringToObject(e, "dtype", i64 ? "I64" : "F32")) goto fail;
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        if (!shape) goto fail;
        for (int d = 0; d < t->ndim; d++) {
            cJSON *v = cJSON_CreateNumber(t->shape[d]);
            if (!v || !cJSON_AddItemToArray(shape, v)) {
                cJSON_Delete(v);
                goto fail;
            }
        }
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        if (!offs) goto fail;
        double ends[2] = {(double)offset, (double)(offset + bytes)};
        for (int k = 0; k < 2; k++) {
            cJSON *v = cJSON_CreateNumber(ends[k]);
            if (!v || !cJSON_AddItemToArray(offs, v)) {
                cJSON_Delete(v);
                goto fail;
            }
        }
        offset += bytes;
    }
    return root;
fail:
    cJSON_Delete(root);
    return NULL;
}

/* Floats as little-endian bytes through a small buffer. */
static nb_status write_f32(nb_atomic_file *af, const float *x, size_t n) {
    uint8_t buf[4096 * 4];
    while (n > 0) {
        size_t k = n < 4096 ? n : 4096;
        for (size_t i = 0; i < k; i++) {
            uint32_t bits;
            memcpy(&bits, &x[i], sizeof bits);
            for (int b = 0; b < 4; b++) buf[4 * i + (size_t)b] = (uint8_t)(bits >> (8 * b));
        }
        nb_status s = nb_atomic_write(af, buf, 4 * k);
        if (s) return s;
        x += k;
        n -= k;
    }
    return NB_OK;
}

static nb_status write_i64(nb_atomic_file *af, const int64_t *x, size_t n) {
    uint8_t buf[8];
    for (size_t i = 0; i < n; i++) {
        put_le64(buf, (uint64_t)x[i]);
        nb_status s = nb_atomic_write(af, buf, 8);
        if (s) return s;
    }
    return NB_OK;
}

nb_status nb_safetensors_save(const char *path, const nb_named_tensor *tensors, int count,
                              const nb_meta *meta, int meta_count) {
    if (!path) return nb_fail(NB_ERR_ARG, "nb_safetensors_save: path is NULL");
    nb_status s = check_save(tensors, count, meta, meta_count);
    if (s) return nb_fail_prefix(s, "%s: ", path);
    cJSON *root = build_header(tensors, count, meta, meta_count);
    char *json = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json)
        return nb_fail(NB_ERR_NOMEM, "%s: out of memory building the safetensors header", path);
    /* Pad with spaces so the data buffer starts 8-byte aligned in the file,
     * letting readers that map the file use it in place. */
    size_t json_len = strlen(json), hlen = (json_len + 7) & ~(size_t)7;
    uint8_t *head = nb_alloc(8 + hlen, "safetensors header");
    if (!head) {
        cJSON_free(json);
        return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    }
    put_le64(head, hlen);
    memcpy(head + 8, json, json_len);
    memset(head + 8 + json_len, ' ', hlen - json_len);
    cJSON_free(json);

    nb_atomic_file af;
    s = nb_atomic_open(&af, path);
    if (!s) s = nb_atomic_write(&af, head, 8 + hlen);
    nb_free(head);
    for (int i = 0; i < count && !s; i++)
        s = tensors[i].i64 ? write_i64(&af, tensors[i].i64, nb_tensor_numel(&tensors[i].tensor))
                           : write_f32(&af, tensors[i].tensor.data, nb_tensor_numel(&tensors[i].tensor));
    if (!s) s = nb_atomic_commit(&af);
    return s;
}
