/* cli_data.h — the data options train and eval share (--data's layouts
 * are found by nb_dataset_open): CIFAR-100's label set, bad images, the
 * pixel limit and the eval resize. */
#ifndef NABLA_CLI_DATA_H
#define NABLA_CLI_DATA_H

#include "cli.h"

typedef struct cli_data_opts {
    nb_dataset_opts ds;
} cli_data_opts;

/* --labels fine|coarse, --skip-bad-images, --cache, --max-pixels N, --resize S:
 * 1 handled, 0 not one of them, -1 a bad value (message printed). */
int cli_data_option(cli_args *a, cli_data_opts *o);

/* Open split "train" or "test" of dir at model m's input size, printing
 * (unless quiet) "data: LAYOUT in DIR: N images, K classes" to stdout. On
 * failure prints the message and returns the exit code, else 0. */
int cli_open_data(const char *dir, const char *split, const nb_model *m, const cli_data_opts *o,
                  bool quiet, nb_dataset *d, nb_dataset_info *info);

/* The name of class k: the weights' class names when they carry them,
 * else the data set's (folder names, CIFAR's, a classes.txt beside IDX
 * files, Fashion-MNIST's for its directory), else NULL. */
const char *cli_class_name(const nb_model *m, const nb_dataset_info *info, int k);

#endif
