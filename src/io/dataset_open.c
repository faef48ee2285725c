/* dataset_open.c — one entry for every data set layout (nb_dataset_open):
 * it looks for MNIST IDX files, CIFAR-10 and CIFAR-100 binaries and an
 * ImageFolder tree, in that order, loads the first it finds, and otherwise
 * fails with a message listing all it looked for. Also the class names a
 * data set carries, and fitting in-memory images to the model's input. */
#include "io/datasets.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const nb_fashion_mnist_classes[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                  "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                                                  "Ankle boot"};

static bool exists(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

nb_status nb_class_names_copy(nb_dataset_info *info, const char *const *names, int n) {
    info->class_names = nb_zalloc((size_t)n * sizeof *info->class_names, "class names");
    if (!info->class_names) return NB_ERR_NOMEM;
    for (int i = 0; i < n; i++)
        if (!(info->class_names[i] = nb_strdup(names[i], "class name"))) return NB_ERR_NOMEM;
    return NB_OK;
}

void nb_dataset_info_free(nb_dataset_info *info) {
    if (!info) return;
    for (int i = 0; info->class_names && i < info->classes; i++) nb_free(info->class_names[i]);
    nb_free(info->class_names);
    info->class_names = NULL;
}

nb_status nb_class_names_read(nb_dataset_info *info, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return NB_OK;
    uint8_t *raw;
    size_t size;
    nb_status s = nb_read_file(path, (size_t)1 << 20, "class name list", &raw, &size);
    if (s) return s;
    /* A terminated copy, so each line can end in place. */
    char *text = nb_alloc(size + 1, "class name list");
    if (!text) {
        nb_free(raw);
        return NB_ERR_NOMEM;
    }
    memcpy(text, raw, size);
    text[size] = '\0';
    nb_free(raw);
    const char *names[256];
    int n = 0;
    char *p = text, *end = text + size;
    /* One name a line; blank lines (the file's last) and CRs are not names. */
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end;
        char *e = stop;
        while (e > p && (e[-1] == '\r' || e[-1] == ' ')) e--;
        if (e > p) {
            if (n == 256) {
                n++;
                break;
            }
            *e = '\0';
            names[n++] = p;
        }
        p = stop + 1;
    }
    if (n != info->classes)
        s = nb_fail(NB_ERR_FORMAT, "%s: %s%d class names, expected %d (one a line)", path,
                    n > 256 ? "more than " : "", n > 256 ? 256 : n, info->classes);
    else
        s = nb_class_names_copy(info, names, n);
    nb_free(text);
    return s;
}

nb_status nb_dataset_fit(nb_dataset *d, const nb_dataset_opts *o) {
    const int C = o->channels ? o->channels : d->channels;
    const int H = o->height ? o->height : d->height;
    const int W = o->width ? o->width : d->width;
    if (C == d->channels && H == d->height && W == d->width) return NB_OK;
    if ((d->channels != 1 && d->channels != 3) || (C != 1 && C != 3))
        return nb_fail(NB_ERR_SHAPE, "cannot convert %d-channel images to %d channels (1 or 3)",
                       d->channels, C);
    /* The images stay as they are (60,000 CIFAR images at 3x224x224 would
     * be 9 GB); each sample is transformed when it is read, so a random
     * resized crop sees the image itself. */
    nb_status s = nb_source_stored(d->images, d->count, d->channels, d->height, d->width, o,
                                   &d->source);
    if (s) return s;
    d->images = NULL;
    d->channels = C;
    d->height = H;
    d->width = W;
    return NB_OK;
}

/* ---- finding the layout ---------------------------------------------------- */

static bool names_fashion(const char *dir) {
    for (const char *p = dir; *p; p++) {
        const char *w = "fashion";
        size_t k = 0;
        while (w[k] && p[k] && (p[k] | 0x20) == w[k]) k++;
        if (!w[k]) return true;
    }
    return false;
}

static const char looked_for[] =
    "looked for MNIST IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "t10k-...), CIFAR-10 (data_batch_1.bin .. data_batch_5.bin, test_batch.bin, also under "
    "cifar-10-batches-bin/), CIFAR-100 (train.bin, test.bin, also under cifar-100-binary/) and "
    "an image folder (train/<class>/<image>, val/<class>/<image> or test/<class>/<image>)";

nb_status nb_dataset_open(const char *dir, const char *split, const nb_dataset_opts *opts,
                          nb_dataset *out, nb_dataset_info *info) {
    if (!dir || !split || !out)
        return nb_fail(NB_ERR_ARG, "nb_dataset_open: dir, split and out must not be NULL");
    memset(out, 0, sizeof *out);
    if (info) memset(info, 0, sizeof *info);
    bool test = !strcmp(split, "test") || !strcmp(split, "t10k") || !strcmp(split, "val");
    if (!test && strcmp(split, "train"))
        return nb_fail(NB_ERR_ARG, "dataset split '%s': expected \"train\" or \"test\"", split);
    nb_dataset_opts defaults;
    memset(&defaults, 0, sizeof defaults);
    const nb_dataset_opts *o = opts ? opts : &defaults;
    nb_dataset_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return nb_fail(NB_ERR_IO, "%s: no such data directory", dir);
    char sub[4096];
    nb_dataset d;
    memset(&d, 0, sizeof d);
    nb_status s;
    if (exists(dir, "train-images-idx3-ubyte.gz") || exists(dir, "train-images-idx3-ubyte") ||
        exists(dir, "t10k-images-idx3-ubyte.gz") || exists(dir, "t10k-images-idx3-ubyte")) {
        info->kind = NB_DATA_MNIST;
        snprintf(info->layout, sizeof info->layout, "MNIST IDX files");
        s = nb_dataset_load_mnist(dir, test ? "t10k" : "train", &d);
        info->classes = 10;
        /* IDX files carry no names: a classes.txt beside them gives them,
         * and a directory named for Fashion-MNIST (as Debian's is) has its. */
        if (!s) {
            char names[4096];
            snprintf(names, sizeof names, "%s/classes.txt", dir);
            s = nb_class_names_read(info, names);
            if (!s && !info->class_names && names_fashion(dir))
                s = nb_class_names_copy(info, nb_fashion_mnist_classes, 10);
        }
    } else if (exists(dir, "data_batch_1.bin") || exists(dir, "test_batch.bin") ||
               exists(dir, "cifar-10-batches-bin/data_batch_1.bin")) {
        const char *at = exists(dir, "cifar-10-batches-bin") && !exists(dir, "data_batch_1.bin")
                             ? "/cifar-10-batches-bin" : "";
        snprintf(sub, sizeof sub, "%s%s", dir, at);
        info->kind = NB_DATA_CIFAR10;
        snprintf(info->layout, sizeof info->layout, "CIFAR-10 binary files");
        s = nb_cifar_load(sub, false, test, false, &d, info);
    } else if ((exists(dir, "train.bin") || exists(dir, "test.bin")) ||
               exists(dir, "cifar-100-binary/train.bin")) {
        const char *at = exists(dir, "train.bin") || exists(dir, "test.bin") ? "" : "/cifar-100-binary";
        snprintf(sub, sizeof sub, "%s%s", dir, at);
        info->kind = NB_DATA_CIFAR100;
        snprintf(info->layout, sizeof info->layout, "CIFAR-100 binary files (%s labels)",
                 o->coarse_labels ? "coarse" : "fine");
        s = nb_cifar_load(sub, true, test, o->coarse_labels != 0, &d, info);
    } else if (exists(dir, "train") || exists(dir, "val") || exists(dir, "test")) {
        info->kind = NB_DATA_FOLDER;
        const char *part = !test ? "train" : exists(dir, "val") ? "val" : "test";
        if (!test && !exists(dir, "train"))
            return nb_fail(NB_ERR_FORMAT, "%s: the image folder has no train/ to train on (only "
                           "%s/)", dir, exists(dir, "val") ? "val" : "test");
        if (test && !exists(dir, part))
            return nb_fail(NB_ERR_FORMAT, "%s: the image folder has train/ but neither val/ nor "
                           "test/ to evaluate on", dir);
        s = nb_folder_load(dir, part, o, &d, info);
        if (!s)
            snprintf(info->layout, sizeof info->layout, "image folder (%s/, %d classes)", part,
                     info->classes);
    } else {
        return nb_fail(NB_ERR_FORMAT, "%s: no data set found: %s", dir, looked_for);
    }
    /* CIFAR's 3x32x32 images are fitted to the model like a folder's;
     * IDX data stays as it is, and a model of another size says so. */
    if (!s && (info->kind == NB_DATA_CIFAR10 || info->kind == NB_DATA_CIFAR100))
        s = nb_dataset_fit(&d, o);
    if (s) {
        nb_dataset_free(&d);
        nb_dataset_info_free(info);
        return s;
    }
    if (info == &local) nb_dataset_info_free(info);
    *out = d;
    return NB_OK;
}
