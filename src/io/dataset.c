/* dataset.c — MNIST-style datasets (two IDX files per split) and the
 * shuffle that orders an epoch. Batches are made by loader.c. */
#include "io/datasets.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>

enum { NB_MNIST_CLASSES = 10 };

void nb_dataset_free(nb_dataset *d) {
    if (!d) return;
    nb_free(d->images);
    nb_free(d->labels);
    nb_source_free(d->source);
    memset(d, 0, sizeof *d);
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Find {dir}/{split}-{kind}-ubyte as .gz first (how the files are
 * distributed), then plain (how many people unpack them). */
static nb_status find_file(const char *dir, const char *split, const char *kind, char *path,
                           size_t size) {
    int n = snprintf(path, size, "%s/%s-%s-ubyte.gz", dir, split, kind);
    if (n < 0 || (size_t)n >= size)
        return nb_fail(NB_ERR_ARG, "data directory name too long: %s", dir);
    if (file_exists(path)) return NB_OK;
    char plain[4096];
    size_t len = (size_t)n - 3;
    if (len >= sizeof plain) return nb_fail(NB_ERR_ARG, "data directory name too long: %s", dir);
    memcpy(plain, path, len);
    plain[len] = '\0';
    if (file_exists(plain)) {
        memcpy(path, plain, len + 1);
        return NB_OK;
    }
    return nb_fail(NB_ERR_IO,
                   "%s: not found (nor %s): install the dataset with `apt-get install "
                   "dataset-fashion-mnist` or point --data DIR at a directory holding the "
                   "MNIST-format files",
                   path, plain);
}

nb_status nb_dataset_load_mnist(const char *dir, const char *split, nb_dataset *out) {
    if (!dir || !split || !out)
        return nb_fail(NB_ERR_ARG, "nb_dataset_load_mnist: dir, split and out must not be NULL");
    if (!split[0] || strchr(split, '/'))
        return nb_fail(NB_ERR_ARG,
                       "dataset split '%s' is not a plain name like \"train\" or \"t10k\"", split);
    char img_path[4096], lbl_path[4096];
    nb_status s = find_file(dir, split, "images-idx3", img_path, sizeof img_path);
    if (!s) s = find_file(dir, split, "labels-idx1", lbl_path, sizeof lbl_path);
    if (s) return s;

    nb_idx img = {0}, lbl = {0};
    s = nb_idx_read(img_path, &img);
    if (s) return s;
    /* [count, height, width] (one channel, as MNIST), or [count, channels,
     * height, width] for colour images (AlexNet's 3 x 224 x 224). */
    if (img.ndim != 3 && img.ndim != 4) {
        s = nb_fail(NB_ERR_FORMAT, "%s: images must be 3-D [count, height, width] or 4-D [count, "
                    "channels, height, width], the file has %d dimension%s", img_path, img.ndim,
                    img.ndim == 1 ? "" : "s");
        goto fail;
    }
    s = nb_idx_read(lbl_path, &lbl);
    if (s) goto fail;
    if (lbl.ndim != 1) {
        s = nb_fail(NB_ERR_FORMAT, "%s: labels must be 1-D [count], the file has %d dimensions",
                    lbl_path, lbl.ndim);
        goto fail;
    }
    if (lbl.dims[0] != img.dims[0]) {
        s = nb_fail(NB_ERR_FORMAT, "%s has %d images but %s has %d labels", img_path, img.dims[0],
                    lbl_path, lbl.dims[0]);
        goto fail;
    }
    for (int i = 0; i < lbl.dims[0]; i++) {
        if (lbl.data[i] >= NB_MNIST_CLASSES) {
            s = nb_fail(NB_ERR_FORMAT, "%s: label %d at index %d (byte offset %d) is not below %d",
                        lbl_path, lbl.data[i], i, 8 + i, NB_MNIST_CLASSES);
            goto fail;
        }
    }
    int32_t *labels = nb_alloc((size_t)lbl.dims[0] * sizeof *labels + 1, "labels");
    if (!labels) {
        s = NB_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0; i < lbl.dims[0]; i++) labels[i] = lbl.data[i];
    nb_idx_free(&lbl);
    /* The dataset takes over the images. */
    memset(out, 0, sizeof *out);
    out->count = img.dims[0];
    out->channels = img.ndim == 4 ? img.dims[1] : 1;
    out->height = img.dims[img.ndim - 2];
    out->width = img.dims[img.ndim - 1];
    out->images = img.data;
    out->labels = labels;
    return NB_OK;
fail:
    nb_idx_free(&img);
    nb_idx_free(&lbl);
    return s;
}

void nb_shuffle(uint32_t *order, size_t n, int reset, nb_rng *rng) {
    if (reset)
        for (size_t i = 0; i < n; i++) order[i] = (uint32_t)i;
    /* Fisher-Yates, from the back: each position takes a uniform pick of
     * the ones not yet fixed, so every permutation is equally likely.
     * Indices are u32, so no real order is longer than UINT32_MAX. */
    size_t top = n > UINT32_MAX ? UINT32_MAX : n;
    for (size_t i = top; i > 1; i--) {
        size_t j = nb_rng_below(rng, (uint32_t)i);
        uint32_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}
