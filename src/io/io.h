/* io.h — file plumbing the readers and writers in src/io/ share: a whole
 * file read under a size limit, a byte stream that undoes gzip when the file
 * starts with gzip's magic, and an atomic writer (temporary file, fsync,
 * rename). Every failure sets one message that names the path. */
#ifndef NB_IO_H
#define NB_IO_H

#include "core/internal.h"

#include <stdio.h>

/* Read a whole regular file into a fresh buffer (free with nb_free). A file
 * larger than max_bytes is refused before anything is allocated; `what`
 * names the kind of file in that message ("image", "safetensors file"). */
nb_status nb_read_file(const char *path, size_t max_bytes, const char *what, uint8_t **data,
                       size_t *size);

/* A sequential reader of a file that may be gzip-compressed: gzip is
 * recognised by its magic bytes (1f 8b), not by the name, so plain files
 * read as they are. Decompression memory goes through nb_alloc. */
typedef struct nb_in nb_in;

nb_status nb_in_open(const char *path, nb_in **out);
/* Read up to n bytes; *got < n only at the end of the data. Corrupt or
 * truncated gzip data is NB_ERR_FORMAT naming the compressed byte offset. */
nb_status nb_in_read(nb_in *in, void *buf, size_t n, size_t *got);
/* Whether the file is gzip-compressed (so messages can say "decompressed"). */
bool nb_in_is_gzip(const nb_in *in);
void nb_in_close(nb_in *in);

/* An atomic write: data goes to a temporary file next to `path` (so the
 * rename stays on one file system), and only a complete, flushed and
 * fsynced file is renamed over the target. Until nb_atomic_commit succeeds
 * the previous file at `path` is untouched; nb_atomic_abort (or a failed
 * write or commit, which abort by themselves) removes the temporary. */
typedef struct nb_atomic_file {
    FILE *f;
    char *path, *tmp_path;
    char *dir; /* synced after the rename, so that it is durable too */
} nb_atomic_file;

nb_status nb_atomic_open(nb_atomic_file *af, const char *path);
/* On failure the write is aborted: af is closed and its temporary gone. */
nb_status nb_atomic_write(nb_atomic_file *af, const void *data, size_t n);
/* fflush, fsync, close, rename into place, fsync the directory. Aborts on
 * failure; either way af is finished afterwards. */
nb_status nb_atomic_commit(nb_atomic_file *af);
/* Safe to call on a finished or never-opened (zeroed) af. */
void nb_atomic_abort(nb_atomic_file *af);

/* JPEG bytes (from path, named in messages) into an 8-bit gray or RGB
 * image; more than max_pixels pixels (when > 0) is refused first. */
nb_status nb_jpeg_decode(const char *path, const uint8_t *data, size_t size, long max_pixels,
                         nb_image *out);

/* Pillow's convert("L") of an RGB image into a fresh *out. */
nb_status nb_image_to_gray(const nb_image *in, nb_image *out);

/* torchvision's resized_crop on a PIL image: the h x w box at (top, left)
 * of `in` (gray or RGB, interleaved), converted to `channels` (1: luma
 * first; 3: gray replicated), resized to width x height with Pillow's
 * bilinear filter, into chw as planes. */
nb_status nb_image_resized_crop(const nb_image *in, int top, int left, int h, int w, int channels,
                                int height, int width, uint8_t *chw);

/* The pieces of augment.c that a sample from a file (source.c) shares: the
 * generator of image `index` in `epoch`, RandomResizedCrop's box on an H x
 * W image, and the steps after the crop (crop:P, then flip), in place on a
 * C x H x W image. */
void nb_augment_rng(nb_rng *r, uint64_t seed, int epoch, uint32_t index);
void nb_augment_rrc_box(nb_rng *r, int H, int W, int *top, int *left, int *h, int *w);
nb_status nb_augment_after_crop(const nb_augment *a, nb_rng *r, int C, int H, int W, uint8_t *chw);

#endif
