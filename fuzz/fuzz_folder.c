/* fuzz_folder.c — any bytes as an image folder: the input is split at each
 * "\n--\n" into up to six files, placed by their first byte in
 * train/<class>/ or val/<class>/ under names with .jpg, .png or .pgm, then
 * opened through nb_dataset_open and read whole through an nb_loader, with
 * augmentation and with or without skipping bad images. */
#include "fuzz_common.h"

#include <sys/stat.h>

static const char sep[] = "\n--\n";

static void put(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (size) fwrite(data, 1, size, f);
    fclose(f);
}

/* Read the split whole; failures are expected, crashes and hangs are not. */
static void read_split(const char *dir, const char *split, int skip, int channels) {
    nb_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.channels = channels;
    o.height = o.width = 12;
    o.skip_bad_images = skip;
    o.max_pixels = 1 << 16;
    o.cache_bytes = skip ? 1 << 20 : 0;
    nb_dataset d;
    nb_dataset_info info;
    if (nb_dataset_open(dir, split, &o, &d, &info) != NB_OK) return;
    nb_augment aug;
    nb_augment_parse("rrc,flip,crop:2", &aug);
    nb_loader_opts lo = {.batch = 3, .augment = skip ? &aug : NULL, .seed = 1};
    nb_loader *l;
    if (nb_loader_new(&d, &lo, &l) == NB_OK) {
        const nb_batch *b;
        for (int epoch = 0; epoch < 2; epoch++)
            if (nb_loader_start(l, NULL, (size_t)d.count, epoch, 0) == NB_OK)
                while (nb_loader_next(l, &b) == NB_OK && b) {}
        nb_loader_free(l);
    }
    nb_dataset_free(&d);
    nb_dataset_info_free(&info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char root[256], path[512];
    snprintf(root, sizeof root, "/tmp/nabla-fuzz-folder-%ld", (long)getpid());
    static const char *const dirs[] = {"", "/train", "/val", "/train/a", "/train/b", "/val/a", "/val/b"};
    for (int i = 0; i < 7; i++) {
        snprintf(path, sizeof path, "%s%s", root, dirs[i]);
        mkdir(path, 0700);
    }
    static const char *const ext[] = {"jpg", "png", "pgm", "JPEG"};
    char written[6][512];
    int files = 0;
    size_t at = 0;
    while (files < 6 && at <= size) {
        const uint8_t *end = size - at >= 4 ? memmem(data + at, size - at, sep, 4) : NULL;
        size_t len = end ? (size_t)(end - (data + at)) : size - at;
        uint8_t tag = len ? data[at] : 0;
        snprintf(written[files], sizeof written[files], "%s/%s/%c/f%d.%s", root,
                 tag & 1 ? "val" : "train", tag & 2 ? 'b' : 'a', files, ext[(tag >> 2) & 3]);
        put(written[files], data + at, len);
        files++;
        if (!end) break;
        at += len + 4;
    }
    int skip = size && (data[size - 1] & 1);
    read_split(root, "train", skip, 1 + 2 * (size & 1));
    read_split(root, "test", !skip, 1);
    for (int i = 0; i < files; i++) unlink(written[i]);
    for (int i = 6; i >= 0; i--) {
        snprintf(path, sizeof path, "%s%s", root, dirs[i]);
        rmdir(path);
    }
    return 0;
}
