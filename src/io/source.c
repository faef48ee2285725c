/* source.c — samples that are not held at the model's input size: image
 * files decoded as they are read (an image folder), or images held at
 * another size (CIFAR for a bigger model). Each sample goes through
 * torchvision's pipeline on the image as decoded: RandomResizedCrop to the
 * sample size when training asks for it, otherwise Resize + CenterCrop,
 * then the crop and flip that work at the sample size. Decoded files may be
 * kept in a cache that any thread fills; what a sample is never depends on
 * whether it came from the cache. */
#include "io/datasets.h"

#include <string.h>

static nb_status source_new(int n, const nb_dataset_opts *o, nb_image_source **out) {
    nb_image_source *src = nb_zalloc(sizeof *src, "image source");
    if (!src) return NB_ERR_NOMEM;
    src->count = n;
    src->resize = o->resize;
    src->max_pixels = o->max_pixels;
    src->skip_bad = o->skip_bad_images != 0;
    atomic_init(&src->cache_used, 0);
    *out = src;
    return NB_OK;
}

nb_status nb_source_files(char **paths, int n, const nb_dataset_opts *o, nb_image_source **out) {
    nb_status s = source_new(n, o, out);
    if (s) return s;
    nb_image_source *src = *out;
    src->paths = paths;
    if (o->cache_bytes > 0) {
        src->cache = nb_alloc((size_t)n * sizeof *src->cache, "image cache");
        if (!src->cache) {
            src->paths = NULL; /* still the caller's: taken over only on success */
            nb_source_free(src);
            *out = NULL;
            return NB_ERR_NOMEM;
        }
        for (int i = 0; i < n; i++) atomic_init(&src->cache[i], NULL);
        src->cache_budget = o->cache_bytes;
    }
    return NB_OK;
}

nb_status nb_source_stored(uint8_t *images, int n, int C, int H, int W, const nb_dataset_opts *o,
                           nb_image_source **out) {
    nb_status s = source_new(n, o, out);
    if (s) return s;
    (*out)->stored = images;
    (*out)->stored_c = C, (*out)->stored_h = H, (*out)->stored_w = W;
    return NB_OK;
}

void nb_source_free(nb_image_source *src) {
    if (!src) return;
    for (int i = 0; src->paths && i < src->count; i++) nb_free(src->paths[i]);
    nb_free(src->paths);
    for (int i = 0; src->cache && i < src->count; i++) {
        nb_image *im = atomic_load(&src->cache[i]);
        if (im) {
            nb_image_free(im);
            nb_free(im);
        }
    }
    nb_free((void *)src->cache);
    nb_free(src->stored);
    nb_free(src);
}

bool nb_source_skips(const nb_image_source *src, nb_status s) {
    return src && src->skip_bad && (s == NB_ERR_IO || s == NB_ERR_FORMAT || s == NB_ERR_SHAPE);
}

/* Keep a decoded image when the budget has room and no other thread has
 * kept it first; true when the cache took it over. */
static bool cache_keep(nb_image_source *src, uint32_t i, const nb_image *im) {
    size_t bytes = (size_t)im->width * (size_t)im->height * (size_t)im->channels + sizeof *im;
    size_t used = atomic_fetch_add(&src->cache_used, bytes);
    if (used + bytes <= src->cache_budget) {
        nb_image *kept = nb_alloc(sizeof *kept, "cached image");
        if (kept) {
            *kept = *im;
            nb_image *expected = NULL;
            if (atomic_compare_exchange_strong(&src->cache[i], &expected, kept)) return true;
            nb_free(kept);
        }
    }
    atomic_fetch_sub(&src->cache_used, bytes);
    return false;
}

/* Image i as decoded (interleaved); *borrowed says the cache owns it. */
static nb_status source_image(nb_image_source *src, uint32_t i, nb_image *im, bool *borrowed) {
    *borrowed = false;
    if (src->stored) {
        const int C = src->stored_c;
        const size_t plane = (size_t)src->stored_h * (size_t)src->stored_w;
        im->width = src->stored_w, im->height = src->stored_h, im->channels = C;
        im->pixels = nb_alloc(plane * (size_t)C, "image");
        if (!im->pixels) return NB_ERR_NOMEM;
        const uint8_t *chw = src->stored + (size_t)i * plane * (size_t)C;
        for (size_t p = 0; p < plane; p++)
            for (int c = 0; c < C; c++) im->pixels[p * (size_t)C + (size_t)c] = chw[(size_t)c * plane + p];
        return NB_OK;
    }
    if (src->cache) {
        nb_image *hit = atomic_load_explicit(&src->cache[i], memory_order_acquire);
        if (hit) {
            *im = *hit;
            *borrowed = true;
            return NB_OK;
        }
    }
    nb_status s = nb_image_decode(src->paths[i], src->max_pixels, im);
    if (s) return s;
    if (src->cache && cache_keep(src, i, im)) *borrowed = true;
    return NB_OK;
}

nb_status nb_dataset_sample(const nb_dataset *d, uint32_t index, const nb_augment *a,
                            uint64_t seed, int epoch, uint8_t *chw) {
    if (!d || !chw) return nb_fail(NB_ERR_ARG, "nb_dataset_sample: NULL data set or output");
    if (index >= (uint32_t)d->count)
        return nb_fail(NB_ERR_ARG, "nb_dataset_sample: sample %u of a data set of %d", index,
                       d->count);
    const int C = d->channels, H = d->height, W = d->width;
    const size_t sample = (size_t)C * (size_t)H * (size_t)W;
    nb_image_source *src = d->source;
    if (!src) return nb_augment_image(a, seed, epoch, index, C, H, W, d->images + index * sample, chw);
    if (a && !a->rrc && !a->flip && !a->crop_pad) a = NULL;
    nb_image im;
    bool borrowed;
    nb_status s = source_image(src, index, &im, &borrowed);
    if (s) return s;
    nb_rng r;
    if (a) nb_augment_rng(&r, seed, epoch, index);
    if (a && a->rrc) {
        int top, left, h, w;
        nb_augment_rrc_box(&r, im.height, im.width, &top, &left, &h, &w);
        s = nb_image_resized_crop(&im, top, left, h, w, C, H, W, chw);
    } else {
        s = nb_image_eval_transform(&im, C, H, W, src->resize, chw);
    }
    if (!borrowed) nb_image_free(&im);
    if (!s && a) s = nb_augment_after_crop(a, &r, C, H, W, chw);
    if (s && src->paths && s != NB_ERR_NOMEM) return nb_fail_prefix(s, "%s: ", src->paths[index]);
    return s;
}
