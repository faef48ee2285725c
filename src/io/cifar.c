/* cifar.c — the CIFAR-10 and CIFAR-100 binary files as users download
 * them. A CIFAR-10 record is 1 label byte then 3072 pixel bytes (the R, G
 * and B planes of a 32x32 image); CIFAR-100's has 2 label bytes, coarse
 * then fine. Files are validated like IDX: a whole number of records and
 * every label in range, or a message with the file and byte offset. */
#include "io/datasets.h"

#include <string.h>

enum { CIFAR_SIDE = 32, CIFAR_PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE };

/* The biggest real file is CIFAR-100's train.bin, 154 MB. */
#define CIFAR_MAX_FILE ((size_t)1 << 30)

static const char *const cifar10_names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                              "dog", "frog", "horse", "ship", "truck"};

/* Append the records of one file to d (grown with nb_realloc). */
static nb_status append_file(const char *path, int label_bytes, int label_index, int classes,
                             nb_dataset *d) {
    uint8_t *data;
    size_t size;
    nb_status s = nb_read_file(path, CIFAR_MAX_FILE, "CIFAR file", &data, &size);
    if (s) return s;
    const size_t record = (size_t)label_bytes + CIFAR_PIXELS;
    if (size == 0 || size % record) {
        s = nb_fail(NB_ERR_FORMAT, "%s: %zu bytes is not a whole number of %zu-byte CIFAR-%d "
                    "records (%zu records and %zu bytes over%s)", path, size, record,
                    label_bytes == 1 ? 10 : 100, size / record, size % record,
                    label_bytes == 1 ? "; a CIFAR-100 file has 3074-byte records"
                                     : "; a CIFAR-10 file has 3073-byte records");
        nb_free(data);
        return s;
    }
    const size_t n = size / record;
    if ((size_t)d->count + n > (size_t)INT32_MAX) {
        nb_free(data);
        return nb_fail(NB_ERR_FORMAT, "%s: too many records", path);
    }
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < label_bytes; k++) {
            uint8_t v = data[i * record + (size_t)k];
            int limit = label_bytes == 1 ? 10 : k == 0 ? 20 : 100;
            if (v >= limit) {
                s = nb_fail(NB_ERR_FORMAT, "%s: %slabel %u of record %zu (byte offset %zu) is not "
                            "below %d", path, label_bytes == 1 ? "" : k == 0 ? "coarse " : "fine ",
                            v, i, i * record + (size_t)k, limit);
                nb_free(data);
                return s;
            }
        }
    }
    (void)classes;
    size_t total = (size_t)d->count + n;
    uint8_t *images = nb_realloc(d->images, total * CIFAR_PIXELS, "CIFAR images");
    if (!images) {
        nb_free(data);
        return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    }
    d->images = images;
    int32_t *labels = nb_realloc(d->labels, total * sizeof *labels, "CIFAR labels");
    if (!labels) {
        nb_free(data);
        return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    }
    d->labels = labels;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *rec = data + i * record;
        d->labels[(size_t)d->count + i] = rec[label_index];
        memcpy(d->images + ((size_t)d->count + i) * CIFAR_PIXELS, rec + label_bytes, CIFAR_PIXELS);
    }
    d->count = (int)total;
    nb_free(data);
    return NB_OK;
}

nb_status nb_cifar_load(const char *dir, bool cifar100, bool test, bool coarse, nb_dataset *out,
                        nb_dataset_info *info) {
    nb_dataset d;
    memset(&d, 0, sizeof d);
    d.channels = 3;
    d.height = d.width = CIFAR_SIDE;
    char path[4096];
    nb_status s = NB_OK;
    if (!cifar100) {
        for (int k = test ? 0 : 1; !s && k <= (test ? 0 : 5); k++) {
            if (test) snprintf(path, sizeof path, "%s/test_batch.bin", dir);
            else snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, k);
            s = append_file(path, 1, 0, 10, &d);
        }
        info->classes = 10;
        if (!s) s = nb_class_names_copy(info, cifar10_names, 10);
    } else {
        snprintf(path, sizeof path, "%s/%s.bin", dir, test ? "test" : "train");
        s = append_file(path, 2, coarse ? 0 : 1, coarse ? 20 : 100, &d);
        info->classes = coarse ? 20 : 100;
        /* cifar-100-binary ships the names next to the data. */
        snprintf(path, sizeof path, "%s/%s_label_names.txt", dir, coarse ? "coarse" : "fine");
        if (!s) s = nb_class_names_read(info, path);
    }
    if (s) {
        nb_dataset_free(&d);
        return s;
    }
    *out = d;
    return NB_OK;
}
