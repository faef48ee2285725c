/* image.c — one image into a float tensor, or decoded to 8-bit pixels of
 * any size: PNG through libpng, JPEG through libjpeg (jpeg.c), PGM (P5 and
 * P2) parsed here. The format is found from the first bytes, never from the
 * name. Values are scaled by the file's maximum (255, 65535 or a PGM's
 * maxval) to [0, 1]; alpha is ignored, as PIL's convert('L') does. */
#include "io/io.h"

#include <png.h>
#include <string.h>

/* No image a model reads comes near this; it keeps a mislabelled multi-GB
 * file from being read into memory. */
#define NB_IMAGE_MAX_FILE ((size_t)256 << 20)

/* Decoded samples: 1 or 2 bytes each (2 = big-endian, as both PNG and PGM
 * store them), src_ch per pixel (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA),
 * rows `stride` bytes apart. */
typedef struct raw_image {
    const uint8_t *px;
    size_t stride;
    int bytes, src_ch;
    unsigned maxval;
} raw_image;

static unsigned sample(const raw_image *r, const uint8_t *p) {
    return r->bytes == 2 ? (unsigned)p[0] << 8 | p[1] : p[0];
}

/* Into chw as planes, gray replicated or RGB reduced by BT.601 luma, in
 * the file's own units before the scaling to [0, 1]. */
static void to_chw(const raw_image *r, int channels, int height, int width, float *chw) {
    const size_t plane = (size_t)height * (size_t)width;
    /* Divided, not multiplied by a reciprocal, so an 8-bit pixel becomes
     * exactly the float nb_dataset_batch makes of the same byte. */
    const float maxf = (float)r->maxval;
    const bool color = r->src_ch >= 3;
    for (int y = 0; y < height; y++) {
        const uint8_t *row = r->px + (size_t)y * r->stride;
        for (int x = 0; x < width; x++) {
            const uint8_t *p = row + (size_t)x * (size_t)(r->src_ch * r->bytes);
            size_t at = (size_t)y * (size_t)width + (size_t)x;
            if (!color) {
                float v = (float)sample(r, p) / maxf;
                for (int c = 0; c < channels; c++) chw[(size_t)c * plane + at] = v;
                continue;
            }
            float R = (float)sample(r, p), G = (float)sample(r, p + r->bytes),
                  B = (float)sample(r, p + 2 * r->bytes);
            if (channels == 1) {
                chw[at] = (0.299f * R + 0.587f * G + 0.114f * B) / maxf;
            } else {
                chw[at] = R / maxf;
                chw[plane + at] = G / maxf;
                chw[2 * plane + at] = B / maxf;
            }
        }
    }
}

static nb_status wrong_size(const char *path, long w, long h, int width, int height) {
    return nb_fail(NB_ERR_SHAPE, "%s: image is %ldx%ld, the model expects %dx%d", path, w, h, width,
                   height);
}

/* ---- PNG ----------------------------------------------------------------- */

/* Everything the libpng callbacks and the cleanup need. It lives in the
 * caller's frame, so its members keep their values across libpng's
 * longjmp (only the setjmp function's own locals would be indeterminate). */
typedef struct png_ctx {
    const char *path;
    const uint8_t *data;
    size_t size, pos;
    bool nomem;
    char msg[160];
    png_structp png;
    png_infop info;
    uint8_t *pixels;
    png_bytep *rows;
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings are problems libpng recovered from (a bad ancillary chunk's
 * CRC, an unknown profile); the image is still good, and a library must
 * not print to stderr. */
static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_read_mem(png_structp png, png_bytep out, size_t n) {
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->size - c->pos) png_error(png, "file ends early (truncated)");
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
}

static png_voidp png_mem_alloc(png_structp png, png_alloc_size_t n) {
    png_ctx *c = png_get_mem_ptr(png);
    void *p = nb_alloc(n, "PNG decoder");
    if (!p) c->nomem = true;
    return p;
}

static void png_mem_free(png_structp png, png_voidp p) {
    (void)png;
    nb_free(p);
}

/* Decode into c->pixels / c->rows and describe them in *r. With height and
 * width 0 any size up to max_pixels is taken, and *height / *width say it. */
static nb_status decode_png(png_ctx *c, int *height_io, int *width_io, long max_pixels,
                            raw_image *r) {
    c->png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, c, png_on_error, png_on_warning, c,
                                      png_mem_alloc, png_mem_free);
    if (!c->png) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", c->path);
    c->info = png_create_info_struct(c->png);
    if (!c->info) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", c->path);
    if (setjmp(png_jmpbuf(c->png))) {
        if (c->nomem) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", c->path);
        return nb_fail(NB_ERR_FORMAT, "%s: bad PNG at byte %zu: %s", c->path, c->pos, c->msg);
    }
    /* Declared after setjmp: nothing the jump returns to reads them. */
    int height = *height_io, width = *width_io;
    png_set_read_fn(c->png, c, png_read_mem);
    png_read_info(c->png, c->info);
    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(c->png, c->info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    /* Before any pixel memory: a huge IHDR is simply the wrong size. */
    if (width == 0 && height == 0) {
        if (max_pixels > 0 && (double)w * (double)h > (double)max_pixels)
            return nb_fail(NB_ERR_FORMAT, "%s: PNG is %lux%lu, %.0f pixels, more than the limit "
                           "of %ld (raise it with --max-pixels)", c->path, (unsigned long)w,
                           (unsigned long)h, (double)w * (double)h, max_pixels);
        *width_io = width = (int)w;
        *height_io = height = (int)h;
    }
    if (w != (png_uint_32)width || h != (png_uint_32)height)
        return wrong_size(c->path, (long)w, (long)h, width, height);
    /* Samples as stored, widened to whole bytes: palettes become RGB, low
     * bit depths gray 0..255. No gamma or colour-profile correction: the
     * values are what the file holds, as training data was read. */
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(c->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(c->png);
    png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);
    int ch = png_get_channels(c->png, c->info);
    int out_depth = png_get_bit_depth(c->png, c->info);
    size_t rowbytes = png_get_rowbytes(c->png, c->info);
    if (ch < 1 || ch > 4 || (out_depth != 8 && out_depth != 16) ||
        rowbytes < (size_t)width * (size_t)ch * (size_t)(out_depth / 8))
        return nb_fail(NB_ERR_FORMAT,
                       "%s: PNG decodes to an unexpected layout (%d channels, %d bits)", c->path,
                       ch, out_depth);
    size_t total;
    if (!nb_mul_size(rowbytes, (size_t)height, &total))
        return nb_fail(NB_ERR_FORMAT, "%s: PNG image too large", c->path);
    c->pixels = nb_alloc(total, "PNG pixels");
    c->rows = nb_alloc((size_t)height * sizeof *c->rows, "PNG rows");
    if (!c->pixels || !c->rows) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", c->path);
    for (int y = 0; y < height; y++) c->rows[y] = c->pixels + (size_t)y * rowbytes;
    png_read_image(c->png, c->rows);
    /* Reads up to IEND, so a file cut after its pixels is still caught. */
    png_read_end(c->png, NULL);
    r->px = c->pixels;
    r->stride = rowbytes;
    r->bytes = out_depth / 8;
    r->src_ch = ch;
    r->maxval = out_depth == 16 ? 65535u : 255u;
    return NB_OK;
}

static nb_status load_png(const char *path, const uint8_t *data, size_t size, int channels,
                          int height, int width, float *chw) {
    png_ctx c;
    memset(&c, 0, sizeof c);
    c.path = path;
    c.data = data;
    c.size = size;
    raw_image r;
    nb_status s = decode_png(&c, &height, &width, 0, &r);
    if (!s) to_chw(&r, channels, height, width, chw);
    if (c.png) png_destroy_read_struct(&c.png, c.info ? &c.info : NULL, NULL);
    nb_free(c.rows);
    nb_free(c.pixels);
    return s;
}

/* ---- PGM ----------------------------------------------------------------- */

typedef struct pgm_cursor {
    const char *path;
    const uint8_t *d;
    size_t n, pos;
} pgm_cursor;

static bool is_space(uint8_t ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Whitespace and '#' comments (to the end of the line) between tokens. */
static void skip_blank(pgm_cursor *c) {
    while (c->pos < c->n) {
        if (is_space(c->d[c->pos])) {
            c->pos++;
        } else if (c->d[c->pos] == '#') {
            while (c->pos < c->n && c->d[c->pos] != '\n' && c->d[c->pos] != '\r') c->pos++;
        } else {
            break;
        }
    }
}

/* One decimal number, followed by whitespace, a comment or the end. */
static nb_status read_uint(pgm_cursor *c, const char *what, unsigned long limit,
                           unsigned long *out) {
    skip_blank(c);
    size_t start = c->pos;
    if (c->pos >= c->n)
        return nb_fail(NB_ERR_FORMAT, "%s: file ends before the PGM %s (truncated)", c->path, what);
    unsigned long v = 0;
    while (c->pos < c->n && c->d[c->pos] >= '0' && c->d[c->pos] <= '9') {
        v = v * 10 + (unsigned long)(c->d[c->pos] - '0');
        if (v > limit)
            return nb_fail(NB_ERR_FORMAT, "%s: PGM %s at byte %zu is more than %lu", c->path, what,
                           start, limit);
        c->pos++;
    }
    if (c->pos == start)
        return nb_fail(NB_ERR_FORMAT, "%s: expected the PGM %s at byte %zu, found 0x%02x", c->path,
                       what, start, c->d[start]);
    if (c->pos < c->n && !is_space(c->d[c->pos]) && c->d[c->pos] != '#')
        return nb_fail(NB_ERR_FORMAT, "%s: PGM %s at byte %zu runs into byte 0x%02x", c->path, what,
                       start, c->d[c->pos]);
    *out = v;
    return NB_OK;
}

/* Parse a PGM into *r (its pixels in data, or in *owned for P2). With
 * *height and *width 0 any size up to max_pixels is taken and reported. */
static nb_status parse_pgm(const char *path, const uint8_t *data, size_t size, int *height_io,
                           int *width_io, long max_pixels, raw_image *r_out, uint8_t **owned_out) {
    int height = *height_io, width = *width_io;
    pgm_cursor c = {path, data, size, 2};
    const bool ascii = data[1] == '2';
    unsigned long w, h, maxval;
    /* Far beyond any real image, and small enough that w*h cannot overflow. */
    const unsigned long dim_limit = 1ul << 24;
    nb_status s = read_uint(&c, "width", dim_limit, &w);
    if (!s) s = read_uint(&c, "height", dim_limit, &h);
    size_t maxval_at = c.pos;
    if (!s) s = read_uint(&c, "maxval", 1ul << 20, &maxval);
    if (s) return s;
    if (w == 0 || h == 0)
        return nb_fail(NB_ERR_FORMAT, "%s: PGM size %lux%lu has a zero dimension", path, w, h);
    if (maxval == 0 || maxval > 65535)
        return nb_fail(NB_ERR_FORMAT, "%s: PGM maxval %lu (after byte %zu) is outside 1..65535",
                       path, maxval, maxval_at);
    if (width == 0 && height == 0) {
        if (max_pixels > 0 && (double)w * (double)h > (double)max_pixels)
            return nb_fail(NB_ERR_FORMAT, "%s: PGM is %lux%lu, %.0f pixels, more than the limit "
                           "of %ld (raise it with --max-pixels)", path, w, h,
                           (double)w * (double)h, max_pixels);
        *width_io = width = (int)w;
        *height_io = height = (int)h;
    }
    if (w != (unsigned long)width || h != (unsigned long)height)
        return wrong_size(path, (long)w, (long)h, width, height);

    const int bytes = maxval > 255 ? 2 : 1;
    const size_t count = (size_t)w * (size_t)h;
    raw_image r = {NULL, (size_t)w * (size_t)bytes, bytes, 1, (unsigned)maxval};
    uint8_t *owned = NULL;
    if (!ascii) {
        /* Exactly one whitespace byte separates maxval from the raster (a
         * comment there would be read as pixels). */
        if (c.pos >= size)
            return nb_fail(NB_ERR_FORMAT, "%s: PGM data is truncated: the file ends after its "
                           "header (%zu bytes)", path, size);
        if (!is_space(data[c.pos]))
            return nb_fail(NB_ERR_FORMAT, "%s: PGM maxval must be followed by one whitespace byte, "
                           "found 0x%02x at byte %zu", path, data[c.pos], c.pos);
        size_t at = c.pos + 1, need = count * (size_t)bytes, have = size - at;
        if (have != need)
            return nb_fail(NB_ERR_FORMAT,
                           "%s: PGM %lux%lu with maxval %lu needs %zu bytes of data after the "
                           "%zu-byte header, the file has %zu%s",
                           path, w, h, maxval, need, at, have,
                           have < need ? " (truncated)" : " (only single-image files are read)");
        r.px = data + at;
    } else {
        owned = nb_alloc(count * (size_t)bytes, "PGM pixels");
        if (!owned) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
        for (size_t i = 0; i < count; i++) {
            unsigned long v;
            skip_blank(&c);
            if (c.pos >= size) {
                nb_free(owned);
                return nb_fail(NB_ERR_FORMAT, "%s: PGM data is truncated: %zu of %zu samples", path,
                               i, count);
            }
            size_t at = c.pos;
            s = read_uint(&c, "sample", 65535, &v);
            if (!s && v > maxval)
                s = nb_fail(NB_ERR_FORMAT, "%s: PGM sample %lu at byte %zu is above maxval %lu",
                            path, v, at, maxval);
            if (s) {
                nb_free(owned);
                return s;
            }
            if (bytes == 2) owned[2 * i] = (uint8_t)(v >> 8), owned[2 * i + 1] = (uint8_t)v;
            else owned[i] = (uint8_t)v;
        }
        skip_blank(&c);
        if (c.pos < size) {
            nb_free(owned);
            return nb_fail(NB_ERR_FORMAT,
                           "%s: unexpected data at byte %zu after the %zu PGM samples", path, c.pos,
                           count);
        }
        r.px = owned;
    }
    if (!ascii) {
        /* Check every sample before any output is written. */
        for (size_t i = 0; i < count; i++) {
            unsigned v = sample(&r, r.px + i * (size_t)bytes);
            if (v > maxval)
                return nb_fail(NB_ERR_FORMAT, "%s: PGM sample %u at byte %zu is above maxval %lu",
                               path, v, (size_t)(r.px - data) + i * (size_t)bytes, maxval);
        }
    }
    *r_out = r;
    *owned_out = owned;
    return NB_OK;
}

static nb_status load_pgm(const char *path, const uint8_t *data, size_t size, int channels,
                          int height, int width, float *chw) {
    raw_image r;
    uint8_t *owned = NULL;
    nb_status s = parse_pgm(path, data, size, &height, &width, 0, &r, &owned);
    if (!s) to_chw(&r, channels, height, width, chw);
    nb_free(owned);
    return s;
}

/* ---- 8-bit pixels ------------------------------------------------------- */

/* Samples into an 8-bit image of 1 (gray) or 3 (RGB) channels: alpha
 * dropped, 16-bit samples cut to their high byte and other PGM maxvals
 * scaled to 0..255 with rounding. */
static nb_status raw_to_image(const char *path, const raw_image *r, int height, int width,
                              nb_image *out) {
    const int ch = r->src_ch >= 3 ? 3 : 1;
    size_t total = (size_t)height * (size_t)width * (size_t)ch;
    uint8_t *px = nb_alloc(total, "image pixels");
    if (!px) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    const bool plain = r->maxval == 255u || r->maxval == 65535u;
    for (int y = 0; y < height; y++) {
        const uint8_t *row = r->px + (size_t)y * r->stride;
        uint8_t *dst = px + (size_t)y * (size_t)width * (size_t)ch;
        for (int x = 0; x < width; x++) {
            const uint8_t *p = row + (size_t)x * (size_t)(r->src_ch * r->bytes);
            for (int c = 0; c < ch; c++) {
                const uint8_t *q = p + c * r->bytes;
                dst[(size_t)x * (size_t)ch + (size_t)c] =
                    plain ? q[0] : (uint8_t)((sample(r, q) * 255u + r->maxval / 2) / r->maxval);
            }
        }
    }
    out->width = width;
    out->height = height;
    out->channels = ch;
    out->pixels = px;
    return NB_OK;
}

void nb_image_free(nb_image *im) {
    if (!im) return;
    nb_free(im->pixels);
    memset(im, 0, sizeof *im);
}

/* ---- entry --------------------------------------------------------------- */

typedef enum image_format { FMT_PNG, FMT_JPEG, FMT_PGM, FMT_UNKNOWN } image_format;

/* From the first bytes; an unknown format gets its message here. */
static image_format sniff(const char *path, const uint8_t *data, size_t size) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size >= 8 && memcmp(data, png_sig, 8) == 0) return FMT_PNG;
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return FMT_JPEG;
    if (size >= 2 && data[0] == 'P' && (data[1] == '5' || data[1] == '2')) return FMT_PGM;
    if (size >= 2 && data[0] == 'P' && data[1] >= '1' && data[1] <= '7') {
        nb_fail(NB_ERR_FORMAT, "%s: netpbm format P%c is not supported (PGM only: P5 or P2)",
                path, data[1]);
    } else {
        uint8_t head[4] = {0, 0, 0, 0};
        memcpy(head, data, size < 4 ? size : 4);
        nb_fail(NB_ERR_FORMAT,
                "%s: not a PNG, JPEG or PGM image (it starts with bytes %02x %02x %02x %02x)",
                path, head[0], head[1], head[2], head[3]);
    }
    return FMT_UNKNOWN;
}

static nb_status decode_bytes(const char *path, const uint8_t *data, size_t size, long max_pixels,
                              nb_image *out) {
    int height = 0, width = 0;
    raw_image r;
    nb_status s;
    switch (sniff(path, data, size)) {
    case FMT_JPEG: return nb_jpeg_decode(path, data, size, max_pixels, out);
    case FMT_PNG: {
        png_ctx c;
        memset(&c, 0, sizeof c);
        c.path = path;
        c.data = data;
        c.size = size;
        s = decode_png(&c, &height, &width, max_pixels, &r);
        if (!s) s = raw_to_image(path, &r, height, width, out);
        if (c.png) png_destroy_read_struct(&c.png, c.info ? &c.info : NULL, NULL);
        nb_free(c.rows);
        nb_free(c.pixels);
        return s;
    }
    case FMT_PGM: {
        uint8_t *owned = NULL;
        s = parse_pgm(path, data, size, &height, &width, max_pixels, &r, &owned);
        if (!s) s = raw_to_image(path, &r, height, width, out);
        nb_free(owned);
        return s;
    }
    default: return NB_ERR_FORMAT;
    }
}

nb_status nb_image_decode(const char *path, long max_pixels, nb_image *out) {
    if (!path || !out) return nb_fail(NB_ERR_ARG, "nb_image_decode: path and out must not be NULL");
    memset(out, 0, sizeof *out);
    if (max_pixels == 0) max_pixels = NB_IMAGE_MAX_PIXELS;
    uint8_t *data;
    size_t size;
    nb_status s = nb_read_file(path, NB_IMAGE_MAX_FILE, "image", &data, &size);
    if (s) return s;
    s = decode_bytes(path, data, size, max_pixels, out);
    nb_free(data);
    return s;
}

/* A JPEG for nb_image_load: decoded, then held to the same size rule. */
static nb_status load_jpeg(const char *path, const uint8_t *data, size_t size, int channels,
                           int height, int width, float *chw) {
    nb_image im;
    nb_status s = nb_jpeg_decode(path, data, size, NB_IMAGE_MAX_PIXELS, &im);
    if (s) return s;
    if (im.width != width || im.height != height) {
        s = wrong_size(path, im.width, im.height, width, height);
    } else {
        raw_image r = {im.pixels, (size_t)im.width * (size_t)im.channels, 1, im.channels, 255u};
        to_chw(&r, channels, height, width, chw);
    }
    nb_image_free(&im);
    return s;
}

nb_status nb_image_load(const char *path, int channels, int height, int width, float *chw) {
    if (!path || !chw) return nb_fail(NB_ERR_ARG, "nb_image_load: path and chw must not be NULL");
    if (channels != 1 && channels != 3)
        return nb_fail(NB_ERR_ARG, "%s: cannot load an image as %d channels (1 or 3)", path,
                       channels);
    if (height <= 0 || width <= 0)
        return nb_fail(NB_ERR_ARG, "%s: expected image size %dx%d is not positive", path, width,
                       height);
    uint8_t *data;
    size_t size;
    nb_status s = nb_read_file(path, NB_IMAGE_MAX_FILE, "image", &data, &size);
    if (s) return s;
    switch (sniff(path, data, size)) {
    case FMT_PNG: s = load_png(path, data, size, channels, height, width, chw); break;
    case FMT_JPEG: s = load_jpeg(path, data, size, channels, height, width, chw); break;
    case FMT_PGM: s = load_pgm(path, data, size, channels, height, width, chw); break;
    default: s = NB_ERR_FORMAT; break;
    }
    nb_free(data);
    return s;
}
