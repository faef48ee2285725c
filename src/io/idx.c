/* idx.c — the IDX format of the MNIST files: a 4-byte magic (two zero
 * bytes, a type code, the number of dimensions), one big-endian u32 per
 * dimension, then the data in row-major order. Only unsigned bytes (type
 * 0x08) are read: every MNIST-style file uses it. */
#include "io/io.h"

#include <string.h>

/* The largest data we accept. A gzip bomb or a corrupt header could
 * otherwise ask for any amount of memory; the biggest real IDX file
 * (MNIST's training images) is 47 MB. */
#define NB_IDX_MAX_BYTES ((size_t)1 << 30)

void nb_idx_free(nb_idx *idx) {
    if (!idx) return;
    nb_free(idx->data);
    memset(idx, 0, sizeof *idx);
}

/* Read exactly n bytes of the header; a short read names what was missing. */
static nb_status read_header_part(nb_in *in, const char *path, uint8_t *buf, size_t n,
                                  size_t at, size_t header_len) {
    size_t got;
    nb_status s = nb_in_read(in, buf, n, &got);
    if (s) return s;
    if (got < n)
        return nb_fail(NB_ERR_FORMAT,
                       "%s: file ends after %zu bytes, inside the %zu-byte IDX header", path,
                       at + got, header_len);
    return NB_OK;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* "60000 x 28 x 28" */
static void dims_str(const uint32_t *dims, int ndim, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? " x %u" : "%u", dims[i]);
}

static nb_status parse(nb_in *in, const char *path, nb_idx *out) {
    uint8_t magic[4];
    nb_status s = read_header_part(in, path, magic, 4, 0, 4);
    if (s) return s;
    if (magic[0] != 0 || magic[1] != 0)
        return nb_fail(NB_ERR_FORMAT,
                       "%s: not an IDX file: it starts with bytes %02x %02x %02x %02x%s "
                       "(expected 00 00, the type code and the number of dimensions)",
                       path, magic[0], magic[1], magic[2], magic[3],
                       nb_in_is_gzip(in) ? " after gzip decompression" : "");
    if (magic[2] != 0x08)
        return nb_fail(NB_ERR_FORMAT,
                       "%s: unsupported IDX type 0x%02X at byte 2 (only unsigned bytes, 0x08, "
                       "are read)",
                       path, magic[2]);
    int ndim = magic[3];
    if (ndim < 1 || ndim > NB_MAX_DIMS)
        return nb_fail(NB_ERR_FORMAT,
                       "%s: IDX header has %d dimensions at byte 3, expected 1 to %d", path, ndim,
                       NB_MAX_DIMS);

    size_t header_len = 4 + 4 * (size_t)ndim;
    uint8_t raw[4 * NB_MAX_DIMS];
    s = read_header_part(in, path, raw, 4 * (size_t)ndim, 4, header_len);
    if (s) return s;
    uint32_t dims[NB_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(raw + 4 * i);
        if (dims[i] == 0)
            return nb_fail(NB_ERR_FORMAT, "%s: dimension %d is 0 (at byte offset %d)", path, i,
                           4 + 4 * i);
    }
    char dstr[64];
    dims_str(dims, ndim, dstr, sizeof dstr);
    size_t bytes = 1;
    for (int i = 0; i < ndim; i++)
        if (!nb_mul_size(bytes, dims[i], &bytes))
            return nb_fail(NB_ERR_FORMAT, "%s: header says %s bytes of data, which overflows", path,
                           dstr);

    /* "2 x 3 = 6", or just "6" for one dimension. */
    char what[96];
    if (ndim == 1) snprintf(what, sizeof what, "%zu", bytes);
    else snprintf(what, sizeof what, "%s = %zu", dstr, bytes);
    if (bytes > NB_IDX_MAX_BYTES)
        return nb_fail(NB_ERR_FORMAT,
                       "%s: header says %s bytes of data, more than the %zu-byte limit", path, what,
                       NB_IDX_MAX_BYTES);
    uint8_t *data = nb_alloc(bytes, "IDX data");
    if (!data) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    size_t got;
    s = nb_in_read(in, data, bytes, &got);
    if (!s && got < bytes)
        s = nb_fail(NB_ERR_FORMAT,
                    "%s: header says %s bytes of data but the %sfile has %zu after the "
                    "%zu-byte header",
                    path, what, nb_in_is_gzip(in) ? "decompressed " : "", got, header_len);
    if (!s) {
        /* Count what follows, so the message can say how much; stop
         * counting at the size limit so a bomb cannot keep us busy. */
        uint8_t scratch[4096];
        size_t extra = 0, k;
        do {
            s = nb_in_read(in, scratch, sizeof scratch, &k);
            extra += k;
        } while (!s && k == sizeof scratch && extra <= NB_IDX_MAX_BYTES);
        if (!s && extra > 0)
            s = nb_fail(NB_ERR_FORMAT,
                        "%s: header says %s bytes of data but the %sfile has %s%zu after "
                        "the %zu-byte header (%s%zu extra byte%s at the end)",
                        path, what, nb_in_is_gzip(in) ? "decompressed " : "",
                        extra > NB_IDX_MAX_BYTES ? "more than " : "", bytes + extra, header_len,
                        extra > NB_IDX_MAX_BYTES ? "more than " : "", extra, extra == 1 ? "" : "s");
    }
    if (s) {
        nb_free(data);
        return s;
    }
    out->ndim = ndim;
    for (int i = 0; i < NB_MAX_DIMS; i++) out->dims[i] = i < ndim ? (int)dims[i] : 0;
    out->data = data;
    return NB_OK;
}

nb_status nb_idx_read(const char *path, nb_idx *out) {
    if (!path || !out) return nb_fail(NB_ERR_ARG, "nb_idx_read: path and out must not be NULL");
    nb_in *in;
    nb_status s = nb_in_open(path, &in);
    if (s) return s;
    nb_idx idx = {0};
    s = parse(in, path, &idx);
    nb_in_close(in);
    /* out changes only on success, so a caller's previous value survives. */
    if (!s) *out = idx;
    return s;
}
