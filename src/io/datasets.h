/* datasets.h — the readers behind nb_dataset_open (dataset_open.c): CIFAR
 * binary files, image folders, and the helpers they share for class names
 * and for fitting images to the model's input. */
#ifndef NB_DATASETS_H
#define NB_DATASETS_H

#include "io/io.h"

#include <stdatomic.h>

/* CIFAR-10 (data_batch_1..5.bin or test_batch.bin) or CIFAR-100 (train.bin
 * or test.bin, fine labels unless coarse) from dir, as 3x32x32 images. */
nb_status nb_cifar_load(const char *dir, bool cifar100, bool test, bool coarse, nb_dataset *out,
                        nb_dataset_info *info);

/* The ImageFolder split dir/sub (sub is "train", "val" or "test"), its
 * classes the sorted folders of dir/train (or of dir/sub when there is no
 * train/), every image decoded and put
 * through the eval transform to o's input size. */
nb_status nb_folder_load(const char *dir, const char *sub, const nb_dataset_opts *o,
                         nb_dataset *out, nb_dataset_info *info);

/* info->class_names from n strings, or from a text file of one name a
 * line (a missing file leaves the names NULL; a file with a different count
 * of names than info->classes is an error). */
nb_status nb_class_names_copy(nb_dataset_info *info, const char *const *names, int n);
nb_status nb_class_names_read(nb_dataset_info *info, const char *path);

/* Bring an in-memory data set to o's channels and size (when set and
 * different): its images stay as they are, behind a source that puts each
 * sample through the transforms when it is read. */
nb_status nb_dataset_fit(nb_dataset *d, const nb_dataset_opts *o);

/* ---- sources (source.c) ------------------------------------------------------ */

/* Images that are not held at the sample size: files (paths) decoded when
 * read, or images held in memory at another size (stored). Read by any
 * number of threads at once; the cache is the only state they change. */
struct nb_image_source {
    char **paths;         /* count file paths, or NULL */
    uint8_t *stored;      /* count x stored_c x stored_h x stored_w bytes, or NULL */
    int stored_c, stored_h, stored_w;
    int count;
    int resize;           /* the eval transform's shorter side (0: default) */
    long max_pixels;
    bool skip_bad;        /* a bad file is left out of its batch (nb_loader) */
    /* Decoded files, kept while they fit in cache_budget bytes: a slot is
     * set once (compare-and-swap) and never changes until the data set is
     * freed. NULL: no cache. */
    _Atomic(nb_image *) *cache;
    size_t cache_budget;
    _Atomic size_t cache_used;
};

/* A source over n files (taking over paths and each string, on success). */
nb_status nb_source_files(char **paths, int n, const nb_dataset_opts *o, nb_image_source **out);
/* A source over n held C x H x W images (taking over the bytes, on success). */
nb_status nb_source_stored(uint8_t *images, int n, int C, int H, int W, const nb_dataset_opts *o,
                           nb_image_source **out);
void nb_source_free(nb_image_source *src);
/* Whether a status from nb_dataset_sample is a bad image that the data
 * set says to leave out (not out of memory, not a caller's error). */
bool nb_source_skips(const nb_image_source *src, nb_status s);

#endif
