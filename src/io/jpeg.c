/* jpeg.c — JPEG decoding through libjpeg-turbo: baseline and progressive,
 * grayscale and colour, into 8-bit pixels. libjpeg's default error handler
 * prints and calls exit(); ours formats libjpeg's message and longjmps back
 * here, so a corrupt file is a status and a message naming it. The decoder's
 * settings are libjpeg's defaults (integer DCT, fancy upsampling), the ones
 * Pillow decodes with, so both give the same pixels. */
#include "io/io.h"

#include <jpeglib.h>
#include <jerror.h>
#include <setjmp.h>
#include <string.h>

typedef struct jpeg_ctx {
    struct jpeg_error_mgr err; /* first, so libjpeg's pointer is ours too */
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    bool truncated;
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    c->err.format_message(cinfo, c->msg);
    longjmp(c->jump, 1);
}

/* Warnings (level -1) are data libjpeg worked around. A file that ends
 * early is padded with gray by libjpeg; Pillow refuses it, and so do we.
 * Other warnings (extraneous bytes before a marker) leave a usable image.
 * Trace messages (level >= 0) are dropped: a library does not print. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    if (level < 0 && c->err.msg_code == JWRN_JPEG_EOF) c->truncated = true;
}

/* Everything that must survive the longjmp is in memory the caller owns
 * (volatile where it changes after setjmp). */
static nb_status decode(const char *path, const uint8_t *data, size_t size, long max_pixels,
                        struct jpeg_decompress_struct *cinfo, jpeg_ctx *c,
                        uint8_t *volatile *pixels, nb_image *out) {
    if (setjmp(c->jump))
        return nb_fail(NB_ERR_FORMAT, "%s: bad JPEG: %s", path, c->msg);
    jpeg_create_decompress(cinfo);
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    jpeg_read_header(cinfo, TRUE);
    if (c->truncated)
        return nb_fail(NB_ERR_FORMAT, "%s: JPEG file ends early, inside its header (truncated)", path);
    /* Refused before anything the size of the image is allocated. */
    unsigned long w = cinfo->image_width, h = cinfo->image_height;
    if (max_pixels > 0 && (double)w * (double)h > (double)max_pixels)
        return nb_fail(NB_ERR_FORMAT, "%s: JPEG is %lux%lu, %.0f pixels, more than the limit of "
                       "%ld (raise it with --max-pixels)", path, w, h, (double)w * (double)h,
                       max_pixels);
    int channels;
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo->out_color_space = JCS_GRAYSCALE, channels = 1; break;
    case JCS_YCbCr:
    case JCS_RGB: cinfo->out_color_space = JCS_RGB, channels = 3; break;
    default:
        return nb_fail(NB_ERR_FORMAT, "%s: JPEG in CMYK or YCCK colour is not supported (gray "
                       "and RGB/YCbCr are)", path);
    }
    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != channels)
        return nb_fail(NB_ERR_FORMAT, "%s: JPEG decodes to %d components, expected %d", path,
                       cinfo->output_components, channels);
    size_t stride = (size_t)w * (size_t)channels, total;
    if (!nb_mul_size(stride, (size_t)h, &total))
        return nb_fail(NB_ERR_FORMAT, "%s: JPEG %lux%lu is too large", path, w, h);
    *pixels = nb_alloc(total, "JPEG pixels");
    if (!*pixels) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = *pixels + (size_t)cinfo->output_scanline * stride;
        jpeg_read_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_decompress(cinfo);
    if (c->truncated)
        return nb_fail(NB_ERR_FORMAT, "%s: JPEG file ends early, inside its image data "
                       "(truncated)", path);
    out->width = (int)w;
    out->height = (int)h;
    out->channels = channels;
    out->pixels = *pixels;
    *pixels = NULL;
    return NB_OK;
}

nb_status nb_jpeg_decode(const char *path, const uint8_t *data, size_t size, long max_pixels,
                         nb_image *out) {
    struct jpeg_decompress_struct cinfo;
    jpeg_ctx c;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&c, 0, sizeof c);
    cinfo.err = jpeg_std_error(&c.err);
    c.err.error_exit = jpeg_on_error;
    c.err.emit_message = jpeg_on_message;
    uint8_t *volatile pixels = NULL;
    nb_status s = decode(path, data, size, max_pixels, &cinfo, &c, &pixels, out);
    jpeg_destroy_decompress(&cinfo);
    nb_free(pixels);
    return s;
}
