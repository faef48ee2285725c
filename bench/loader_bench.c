/* loader_bench.c — the loader's throughput in images/s: an image folder's
 * train/ split read through nb_loader for whole epochs (decode, the
 * transform to C x S x S, the augmentation, normalisation), no model.
 * bench/loader_compare.py runs it beside torchvision's DataLoader.
 *
 *     ./build/bench/loader_bench DIR [--workers W] [--threads T] [--batch B]
 *         [--size S] [--channels C] [--augment LIST] [--epochs E] [--cache] [--json]
 *
 * Defaults: 1 worker, 1 thread, batch 32, 3x224x224, rrc,flip, 1 epoch.
 * --json prints {"images_per_s": ..., "images": ..., "seconds": ...}. */
#include "nabla.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: loader_bench DIR [--workers W] [--threads T] [--batch B] [--size S] "
                        "[--channels C] [--augment LIST] [--epochs E] [--cache] [--json]\n");
        return 2;
    }
    const char *dir = argv[1], *augment = "rrc,flip";
    int workers = 1, threads = 1, batch = 32, size = 224, channels = 3, epochs = 1, json = 0, cache = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--cache")) cache = 1;
        else if (v && !strcmp(a, "--workers")) workers = atoi(v), i++;
        else if (v && !strcmp(a, "--threads")) threads = atoi(v), i++;
        else if (v && !strcmp(a, "--batch")) batch = atoi(v), i++;
        else if (v && !strcmp(a, "--size")) size = atoi(v), i++;
        else if (v && !strcmp(a, "--channels")) channels = atoi(v), i++;
        else if (v && !strcmp(a, "--augment")) augment = v, i++;
        else if (v && !strcmp(a, "--epochs")) epochs = atoi(v), i++;
        else {
            fprintf(stderr, "loader_bench: unknown option %s\n", a);
            return 2;
        }
    }
    /* As the nabla command does: freed image buffers stay in the heap
     * rather than going back to the kernel after every image. */
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
    nb_set_threads(threads);
    nb_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.channels = channels;
    o.height = o.width = size;
    o.cache_bytes = cache ? (size_t)1 << 32 : 0;
    nb_dataset d;
    nb_augment aug;
    nb_loader *l = NULL;
    /* torchvision's ImageNet normalisation, as a recipe would use it. */
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    nb_loader_opts lo = {.batch = batch, .workers = workers, .augment = *augment ? &aug : NULL,
                         .seed = 1, .mean = channels == 3 ? mean : NULL, .std = channels == 3 ? std : NULL};
    if (nb_dataset_open(dir, "train", &o, &d, NULL) || (*augment && nb_augment_parse(augment, &aug)) ||
        nb_loader_new(&d, &lo, &l)) {
        fprintf(stderr, "loader_bench: %s\n", nb_last_error());
        return 1;
    }
    uint32_t *order = malloc((size_t)d.count * sizeof *order);
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    long images = 0;
    double t0 = now();
    for (int e = 0; e < epochs; e++) {
        nb_shuffle(order, (size_t)d.count, 1, &rng);
        const nb_batch *b;
        if (nb_loader_start(l, order, (size_t)d.count, e, 0)) break;
        while (nb_loader_next(l, &b) == NB_OK && b) images += b->count;
    }
    double seconds = now() - t0;
    if (images < (long)d.count * epochs) {
        fprintf(stderr, "loader_bench: %s\n", nb_last_error());
        return 1;
    }
    if (json)
        printf("{\"images_per_s\": %.1f, \"images\": %ld, \"seconds\": %.3f}\n", images / seconds, images, seconds);
    else
        printf("%ld images in %.2f s: %.0f images/s (%d workers, %d threads, batch %d, %dx%dx%d, %s)\n",
               images, seconds, images / seconds, workers, threads, batch, channels, size, size,
               *augment ? augment : "no augmentation");
    free(order);
    nb_loader_free(l);
    nb_dataset_free(&d);
    return 0;
}
