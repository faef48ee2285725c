/* augment.c — training augmentation as torchvision samples it:
 * RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3, ten tries and then the
 * centre-crop fallback; the crop resized back with Pillow's bilinear
 * filter), RandomCrop with zero padding, RandomHorizontalFlip (p = 0.5),
 * applied in that order. Every draw comes from a generator seeded by
 * (seed, epoch, image index) alone, so an image's augmentation does not
 * depend on the batch it lands in, the thread that fills it, or a resume. */
#include "io/io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

nb_status nb_augment_parse(const char *list, nb_augment *out) {
    if (!list || !out) return nb_fail(NB_ERR_ARG, "nb_augment_parse: NULL argument");
    memset(out, 0, sizeof *out);
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 3 && !strncmp(p, "rrc", 3)) {
            out->rrc = 1;
        } else if (len == 4 && !strncmp(p, "flip", 4)) {
            out->flip = 1;
        } else if (len > 5 && !strncmp(p, "crop:", 5)) {
            char *stop;
            long pad = strtol(p + 5, &stop, 10);
            if (stop != p + len || pad < 1 || pad > 1024)
                return nb_fail(NB_ERR_ARG, "augmentation '%.*s': crop:P needs a padding P of 1 to "
                               "1024 pixels", (int)len, p);
            out->crop_pad = (int)pad;
        } else {
            return nb_fail(NB_ERR_ARG, "unknown augmentation '%.*s' in '%s' (expected a list of "
                           "rrc, flip and crop:P)", (int)len, p, list);
        }
        p += len;
        if (*p == ',') p++;
    }
    return NB_OK;
}

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void nb_augment_rng(nb_rng *r, uint64_t seed, int epoch, uint32_t index) {
    nb_rng_seed(r, mix64(mix64(mix64(seed) ^ (uint64_t)(uint32_t)epoch) ^ index));
}

/* Uniform in [lo, hi), as torch's uniform_(lo, hi). */
static double uniform(nb_rng *r, double lo, double hi) { return lo + (hi - lo) * nb_rng_uniform(r); }

/* RandomResizedCrop.get_params: the crop's top, left, height and width. */
void nb_augment_rrc_box(nb_rng *r, int H, int W, int *top, int *left, int *h, int *w) {
    const double area = (double)H * W;
    const double log_lo = log(3.0 / 4.0), log_hi = log(4.0 / 3.0);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * uniform(r, 0.08, 1.0);
        double ratio = exp(uniform(r, log_lo, log_hi));
        /* Python's round(): halves to even, as nearbyint does by default. */
        int cw = (int)nearbyint(sqrt(target * ratio));
        int ch = (int)nearbyint(sqrt(target / ratio));
        if (cw > 0 && cw <= W && ch > 0 && ch <= H) {
            *top = (int)nb_rng_below(r, (uint32_t)(H - ch + 1));
            *left = (int)nb_rng_below(r, (uint32_t)(W - cw + 1));
            *h = ch;
            *w = cw;
            return;
        }
    }
    double in_ratio = (double)W / H;
    int cw = W, ch = H;
    if (in_ratio < 3.0 / 4.0) ch = (int)nearbyint(W / (3.0 / 4.0));
    else if (in_ratio > 4.0 / 3.0) cw = (int)nearbyint(H * (4.0 / 3.0));
    *h = ch;
    *w = cw;
    *top = (H - ch) / 2;
    *left = (W - cw) / 2;
}

nb_status nb_augment_after_crop(const nb_augment *a, nb_rng *r, int C, int H, int W, uint8_t *out) {
    const size_t plane = (size_t)H * (size_t)W, sample = (size_t)C * plane;
    if (a->crop_pad) {
        /* RandomCrop(size, padding=P): offsets into the padded image, so a
         * shift of -P..P; what comes from the padding is zero. */
        const int P = a->crop_pad;
        int dy = (int)nb_rng_below(r, (uint32_t)(2 * P + 1)) - P;
        int dx = (int)nb_rng_below(r, (uint32_t)(2 * P + 1)) - P;
        uint8_t *tmp = nb_alloc(sample, "crop");
        if (!tmp) return NB_ERR_NOMEM;
        memcpy(tmp, out, sample);
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int sy = y + dy, sx = x + dx;
                    out[(size_t)c * plane + (size_t)y * (size_t)W + (size_t)x] =
                        sy < 0 || sy >= H || sx < 0 || sx >= W
                            ? 0 : tmp[(size_t)c * plane + (size_t)sy * (size_t)W + (size_t)sx];
                }
        nb_free(tmp);
    }
    if (a->flip && nb_rng_uniform(r) < 0.5f) {
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++) {
                uint8_t *row = out + (size_t)c * plane + (size_t)y * (size_t)W;
                for (int x = 0; x < W / 2; x++) {
                    uint8_t t = row[x];
                    row[x] = row[W - 1 - x];
                    row[W - 1 - x] = t;
                }
            }
    }
    return NB_OK;
}

nb_status nb_augment_image(const nb_augment *a, uint64_t seed, int epoch, uint32_t index, int C,
                           int H, int W, const uint8_t *chw, uint8_t *out) {
    const size_t plane = (size_t)H * (size_t)W, sample = (size_t)C * plane;
    memcpy(out, chw, sample);
    if (!a || (!a->rrc && !a->flip && !a->crop_pad)) return NB_OK;
    nb_rng r;
    nb_augment_rng(&r, seed, epoch, index);
    if (a->rrc) {
        int top, left, h, w;
        nb_augment_rrc_box(&r, H, W, &top, &left, &h, &w);
        if (h != H || w != W || top || left) {
            /* The box, interleaved as a decoded image is, then cropped at
             * (0, 0) and resized back by the shared resized crop. */
            nb_image crop = {w, h, C, nb_alloc((size_t)w * (size_t)h * (size_t)C, "crop")};
            if (!crop.pixels) return NB_ERR_NOMEM;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int c = 0; c < C; c++)
                        crop.pixels[((size_t)y * (size_t)w + (size_t)x) * (size_t)C + (size_t)c] =
                            chw[(size_t)c * plane + (size_t)(top + y) * (size_t)W + (size_t)(left + x)];
            nb_status s = nb_image_resized_crop(&crop, 0, 0, h, w, C, H, W, out);
            nb_image_free(&crop);
            if (s) return s;
        }
    }
    return nb_augment_after_crop(a, &r, C, H, W, out);
}
