/* resize.c — torchvision's image transforms on 8-bit pixels, computed the
 * way Pillow computes them so that a model trained in PyTorch sees the same
 * bytes here: the antialiased bilinear resize (Image.resize with BILINEAR),
 * the channel conversions of Image.convert, and Resize(S) + CenterCrop.
 *
 * The resize is separable: each output column (then row) is a weighted sum
 * of the input pixels under a triangle filter widened by the downscale
 * factor, so shrinking averages every input pixel (antialiasing) instead of
 * sampling two. Weights are computed in double, normalised to sum to 1,
 * then rounded to fixed point with 22 fraction bits; sums start at one half
 * and are clamped to 0..255, exactly Pillow's 8-bit arithmetic. The
 * horizontal pass runs first over only the rows the vertical pass reads. */
#include "io/io.h"

#include <math.h>
#include <string.h>

enum { FRACTION_BITS = 22 }; /* 32 bits - 8 for the pixel - 2 for overshoot */

/* One axis: for each output position the first input index, the number of
 * inputs and `taps` weights (the rest zero). */
typedef struct axis_weights {
    int taps;
    int *first, *count;
    int32_t *w;
} axis_weights;

static void axis_free(axis_weights *a) {
    nb_free(a->first);
    nb_free(a->count);
    nb_free(a->w);
}

static double triangle(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static nb_status axis_init(int in_size, int out_size, axis_weights *a) {
    memset(a, 0, sizeof *a);
    const double scale = (double)in_size / out_size;
    const double widen = scale < 1.0 ? 1.0 : scale;
    const double support = widen; /* the triangle's half-width is 1 */
    a->taps = (int)ceil(support) * 2 + 1;
    double *k = nb_alloc((size_t)a->taps * sizeof *k, "resize weights");
    a->first = nb_alloc((size_t)out_size * sizeof *a->first, "resize bounds");
    a->count = nb_alloc((size_t)out_size * sizeof *a->count, "resize bounds");
    a->w = nb_zalloc((size_t)out_size * (size_t)a->taps * sizeof *a->w, "resize weights");
    if (!k || !a->first || !a->count || !a->w) {
        nb_free(k);
        axis_free(a);
        return NB_ERR_NOMEM;
    }
    for (int o = 0; o < out_size; o++) {
        const double center = (o + 0.5) * scale;
        /* Truncation after adding one half, as Pillow rounds the bounds. */
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        int n = hi - lo;
        double total = 0.0;
        for (int i = 0; i < n; i++) {
            k[i] = triangle((i + lo - center + 0.5) / widen);
            total += k[i];
        }
        int32_t *w = a->w + (size_t)o * (size_t)a->taps;
        for (int i = 0; i < n; i++) {
            double v = total != 0.0 ? k[i] / total : k[i];
            v *= (double)(1 << FRACTION_BITS);
            w[i] = (int32_t)(v < 0 ? v - 0.5 : v + 0.5);
        }
        a->first[o] = lo;
        a->count[o] = n;
    }
    nb_free(k);
    return NB_OK;
}

static uint8_t clamp_fixed(int32_t v) {
    if (v <= 0) return 0;
    if (v >= (255 << FRACTION_BITS)) return 255;
    return (uint8_t)(v >> FRACTION_BITS);
}

/* Two RGB rows at once: each tap's weight and position serve six sums. */
static void rgb_rows2(const uint8_t *r0, const uint8_t *r1, const axis_weights *a, int out_w,
                      uint8_t *o0, uint8_t *o1) {
    const int32_t half = 1 << (FRACTION_BITS - 1);
    for (int x = 0; x < out_w; x++) {
        const int32_t *w = a->w + (size_t)x * (size_t)a->taps;
        const size_t at = (size_t)a->first[x] * 3;
        const uint8_t *p = r0 + at, *q = r1 + at;
        const int n = a->count[x];
        int32_t s0 = half, s1 = half, s2 = half, t0 = half, t1 = half, t2 = half;
        for (int i = 0; i < n; i++) {
            const int32_t k = w[i];
            s0 += p[3 * i] * k, s1 += p[3 * i + 1] * k, s2 += p[3 * i + 2] * k;
            t0 += q[3 * i] * k, t1 += q[3 * i + 1] * k, t2 += q[3 * i + 2] * k;
        }
        o0[3 * x] = clamp_fixed(s0), o0[3 * x + 1] = clamp_fixed(s1), o0[3 * x + 2] = clamp_fixed(s2);
        o1[3 * x] = clamp_fixed(t0), o1[3 * x + 1] = clamp_fixed(t1), o1[3 * x + 2] = clamp_fixed(t2);
    }
}

/* src: rows of in_w pixels of ch bytes; dst: the same rows at out_w. RGB,
 * the common case, sums its three channels, of two rows, in one pass over
 * the taps. */
static void pass_horizontal(const uint8_t *src, int in_w, int rows, int ch,
                            const axis_weights *a, int out_w, uint8_t *dst) {
    const int32_t half = 1 << (FRACTION_BITS - 1);
    int y = 0;
    if (ch == 3)
        for (; y + 2 <= rows; y += 2)
            rgb_rows2(src + (size_t)y * (size_t)in_w * 3, src + (size_t)(y + 1) * (size_t)in_w * 3, a,
                      out_w, dst + (size_t)y * (size_t)out_w * 3, dst + (size_t)(y + 1) * (size_t)out_w * 3);
    for (; y < rows; y++) {
        const uint8_t *row = src + (size_t)y * (size_t)in_w * (size_t)ch;
        uint8_t *out = dst + (size_t)y * (size_t)out_w * (size_t)ch;
        for (int x = 0; x < out_w; x++) {
            const int32_t *w = a->w + (size_t)x * (size_t)a->taps;
            const uint8_t *p = row + (size_t)a->first[x] * (size_t)ch;
            const int n = a->count[x];
            if (ch == 3) {
                int32_t s0 = half, s1 = half, s2 = half;
                for (int i = 0; i < n; i++) {
                    s0 += p[3 * i] * w[i];
                    s1 += p[3 * i + 1] * w[i];
                    s2 += p[3 * i + 2] * w[i];
                }
                out[3 * x] = clamp_fixed(s0);
                out[3 * x + 1] = clamp_fixed(s1);
                out[3 * x + 2] = clamp_fixed(s2);
                continue;
            }
            for (int c = 0; c < ch; c++) {
                int32_t sum = half;
                for (int i = 0; i < n; i++) sum += p[(size_t)i * (size_t)ch + (size_t)c] * w[i];
                out[(size_t)x * (size_t)ch + (size_t)c] = clamp_fixed(sum);
            }
        }
    }
}

/* src: rows of `row_bytes`, the first being input row `row0`. Each output
 * row sums whole input rows into acc (row_bytes of int32), so the inner
 * loop runs along a row and vectorises; integer sums of non-negative terms
 * give Pillow's bits in any order. */
static void pass_vertical(const uint8_t *src, size_t row_bytes, int row0, const axis_weights *a,
                          int out_h, int32_t *acc, uint8_t *dst) {
    for (int y = 0; y < out_h; y++) {
        const int32_t *w = a->w + (size_t)y * (size_t)a->taps;
        const uint8_t *top = src + (size_t)(a->first[y] - row0) * row_bytes;
        uint8_t *out = dst + (size_t)y * row_bytes;
        for (size_t b = 0; b < row_bytes; b++) acc[b] = 1 << (FRACTION_BITS - 1);
        for (int i = 0; i < a->count[y]; i++) {
            const uint8_t *in = top + (size_t)i * row_bytes;
            const int32_t wi = w[i];
#pragma omp simd
            for (size_t b = 0; b < row_bytes; b++) acc[b] += in[b] * wi;
        }
        for (size_t b = 0; b < row_bytes; b++) out[b] = clamp_fixed(acc[b]);
    }
}

nb_status nb_image_resize(const nb_image *in, int width, int height, nb_image *out) {
    if (!in || !out || !in->pixels)
        return nb_fail(NB_ERR_ARG, "nb_image_resize: NULL image");
    if (width <= 0 || height <= 0 || width > (1 << 20) || height > (1 << 20))
        return nb_fail(NB_ERR_ARG, "nb_image_resize: size %dx%d, expected 1 to %d per side", width,
                       height, 1 << 20);
    memset(out, 0, sizeof *out);
    const int ch = in->channels;
    axis_weights ax, ay;
    nb_status s = axis_init(in->width, width, &ax);
    if (s) return s;
    if ((s = axis_init(in->height, height, &ay))) {
        axis_free(&ax);
        return s;
    }
    /* The input rows the vertical pass reads. */
    const int row0 = ay.first[0];
    const int rows = ay.first[height - 1] + ay.count[height - 1] - row0;
    uint8_t *mid = NULL;
    uint8_t *px = nb_alloc((size_t)width * (size_t)height * (size_t)ch, "resized image");
    if (!px) s = NB_ERR_NOMEM;
    const uint8_t *src = in->pixels + (size_t)row0 * (size_t)in->width * (size_t)ch;
    if (!s && width != in->width) {
        mid = nb_alloc((size_t)width * (size_t)rows * (size_t)ch, "resize rows");
        if (!mid) s = NB_ERR_NOMEM;
        else pass_horizontal(src, in->width, rows, ch, &ax, width, mid);
        src = mid;
    }
    if (!s) {
        size_t row_bytes = (size_t)width * (size_t)ch;
        if (height != in->height) {
            int32_t *acc = nb_alloc(row_bytes * sizeof *acc, "resize sums");
            if (!acc) s = NB_ERR_NOMEM;
            else pass_vertical(src, row_bytes, row0, &ay, height, acc, px);
            nb_free(acc);
        } else {
            memcpy(px, src, row_bytes * (size_t)height);
        }
    }
    nb_free(mid);
    axis_free(&ax);
    axis_free(&ay);
    if (s) {
        nb_free(px);
        return s;
    }
    out->width = width;
    out->height = height;
    out->channels = ch;
    out->pixels = px;
    return NB_OK;
}

/* ---- conversion and the eval transform ------------------------------------ */

/* Pillow's convert("L"): ITU-R 601-2 luma in 16-bit fixed point, rounded. */
static uint8_t luma8(const uint8_t *rgb) {
    return (uint8_t)((rgb[0] * 19595u + rgb[1] * 38470u + rgb[2] * 7471u + 0x8000u) >> 16);
}

/* Python's round() of a half-integer: to even. */
static int round_half_even(double v) {
    double r = floor(v + 0.5);
    if (r - v == 0.5 && fmod(r, 2.0) != 0.0) r -= 1.0;
    return (int)r;
}

nb_status nb_image_to_gray(const nb_image *in, nb_image *out) {
    size_t n = (size_t)in->width * (size_t)in->height;
    out->pixels = nb_alloc(n, "gray image");
    if (!out->pixels) return NB_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) out->pixels[i] = luma8(in->pixels + 3 * i);
    out->width = in->width, out->height = in->height, out->channels = 1;
    return NB_OK;
}

/* Interleaved pixels to planes: as many as the image has, or a gray
 * image's one value in every plane (Pillow's convert("RGB")). */
static void to_planes(const nb_image *im, int channels, uint8_t *chw) {
    const size_t plane = (size_t)im->width * (size_t)im->height;
    const int src_ch = im->channels;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < channels; c++)
            chw[(size_t)c * plane + p] = im->pixels[p * (size_t)src_ch + (size_t)(src_ch == 1 ? 0 : c)];
}

nb_status nb_image_resized_crop(const nb_image *in, int top, int left, int h, int w, int channels,
                                int height, int width, uint8_t *chw) {
    if (top < 0 || left < 0 || h <= 0 || w <= 0 || top + h > in->height || left + w > in->width)
        return nb_fail(NB_ERR_ARG, "crop %dx%d at (%d, %d) is outside the %dx%d image", w, h, left,
                       top, in->width, in->height);
    nb_image gray = {0, 0, 0, NULL}, crop = {0, 0, 0, NULL}, scaled = {0, 0, 0, NULL};
    nb_status s = NB_OK;
    /* convert("L") before anything else, as the eval transform does. */
    if (channels == 1 && in->channels == 3) {
        if ((s = nb_image_to_gray(in, &gray))) return s;
        in = &gray;
    }
    const size_t px = (size_t)in->channels;
    crop.width = w, crop.height = h, crop.channels = in->channels;
    crop.pixels = nb_alloc((size_t)w * (size_t)h * px, "crop");
    if (!crop.pixels) s = NB_ERR_NOMEM;
    for (int y = 0; !s && y < h; y++)
        memcpy(crop.pixels + (size_t)y * (size_t)w * px,
               in->pixels + ((size_t)(top + y) * (size_t)in->width + (size_t)left) * px, (size_t)w * px);
    const nb_image *im = &crop;
    if (!s && (w != width || h != height)) {
        s = nb_image_resize(&crop, width, height, &scaled);
        im = &scaled;
    }
    if (!s) to_planes(im, channels, chw);
    nb_image_free(&scaled);
    nb_image_free(&crop);
    nb_image_free(&gray);
    return s;
}

nb_status nb_image_eval_transform(const nb_image *in, int channels, int height, int width,
                                  int resize, uint8_t *chw) {
    if (!in || !in->pixels || !chw)
        return nb_fail(NB_ERR_ARG, "nb_image_eval_transform: NULL image or output");
    if ((channels != 1 && channels != 3) || height <= 0 || width <= 0 || resize < 0)
        return nb_fail(NB_ERR_ARG, "nb_image_eval_transform: %d channels (1 or 3) at %dx%d, "
                       "resize %d", channels, width, height, resize);
    if (resize == 0) resize = (int)lround((height > width ? height : width) / 0.875);
    nb_image gray = {0, 0, 0, NULL}, scaled = {0, 0, 0, NULL};
    /* A colour image for a gray model is converted first, as a loader's
     * convert("L") does, then resized. */
    if (channels == 1 && in->channels == 3) {
        nb_status s = nb_image_to_gray(in, &gray);
        if (s) return s;
        in = &gray;
    }
    const nb_image *im = in;
    if (in->width != width || in->height != height) {
        /* torchvision's Resize(S): the shorter side becomes S, the longer
         * int(S * long / short); an image whose shorter side is already S
         * is left as it is. */
        bool wide = in->width >= in->height;
        int shorter = wide ? in->height : in->width, longer = wide ? in->width : in->height;
        if (shorter != resize) {
            int new_long = (int)((double)resize * longer / shorter);
            if (new_long < 1) new_long = 1;
            nb_status s = nb_image_resize(in, wide ? new_long : resize, wide ? resize : new_long,
                                          &scaled);
            if (s) {
                nb_image_free(&gray);
                return s;
            }
            im = &scaled;
        }
    }
    /* CenterCrop: offsets round((size - crop) / 2) as Python rounds; a
     * side shorter than the crop is padded with zeros, as torchvision's. */
    const int top = round_half_even((im->height - height) / 2.0);
    const int left = round_half_even((im->width - width) / 2.0);
    const size_t plane = (size_t)height * (size_t)width;
    const int src_ch = im->channels;
    for (int y = 0; y < height; y++) {
        int sy = y + top;
        for (int x = 0; x < width; x++) {
            int sx = x + left;
            size_t at = (size_t)y * (size_t)width + (size_t)x;
            if (sy < 0 || sy >= im->height || sx < 0 || sx >= im->width) {
                for (int c = 0; c < channels; c++) chw[(size_t)c * plane + at] = 0;
                continue;
            }
            const uint8_t *p = im->pixels + ((size_t)sy * (size_t)im->width + (size_t)sx) * (size_t)src_ch;
            if (channels == 1) chw[at] = src_ch == 3 ? luma8(p) : p[0];
            else for (int c = 0; c < 3; c++) chw[(size_t)c * plane + at] = p[src_ch == 3 ? c : 0];
        }
    }
    nb_image_free(&scaled);
    nb_image_free(&gray);
    return NB_OK;
}
