/* datasets.h — the readers behind nb_dataset_open (dataset_open.c): CIFAR
 * binary files, image folders, and the helpers they share for class names
 * and for fitting images to the model's input. */
#ifndef NB_DATASETS_H
#define NB_DATASETS_H

#include "io/io.h"

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
 * different) through nb_image_eval_transform, image by image. */
nb_status nb_dataset_fit(nb_dataset *d, const nb_dataset_opts *o);

#endif
