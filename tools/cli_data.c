/* cli_data.c — the data options of train and eval, and opening a data set
 * at a model's input size. */
#include "cli_data.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

int cli_data_option(cli_args *a, cli_data_opts *o) {
    if (cli_is(a, "--skip-bad-images")) return cli_flag(a) ? (o->ds.skip_bad_images = 1, 1) : -1;
    if (cli_is(a, "--cache")) {
        if (!cli_flag(a)) return -1;
        /* Half of physical memory: the rest is the model's and the system's. */
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        o->ds.cache_bytes = pages > 0 && page > 0 ? (size_t)pages / 2 * (size_t)page : (size_t)1 << 30;
        return 1;
    }
    static const char *const names[] = {"--labels", "--max-pixels", "--resize"};
    int k = -1;
    for (int i = 0; i < 3; i++)
        if (cli_is(a, names[i])) k = i;
    if (k < 0) return 0;
    const char *v = cli_value(a);
    if (!v) return -1;
    long n;
    switch (k) {
    case 0:
        if (!strcmp(v, "fine") || !strcmp(v, "coarse")) {
            o->ds.coarse_labels = !strcmp(v, "coarse");
            return 1;
        }
        cli_error("--labels: '%s': expected fine or coarse (CIFAR-100's label sets)", v);
        return -1;
    case 1:
        if (!cli_int("--max-pixels", v, 1, 1L << 40, &n)) return -1;
        o->ds.max_pixels = n;
        return 1;
    default:
        if (!cli_int("--resize", v, 1, 1 << 16, &n)) return -1;
        o->ds.resize = (int)n;
        return 1;
    }
}

/* C x H x W for the model: its image input, or for a vector of features
 * the square gray (or colour) image with that many values. */
static bool input_image(const nb_model *m, int *c, int *h, int *w) {
    int shape[3];
    if (nb_model_input_shape(m, shape) == 3) {
        *c = shape[0], *h = shape[1], *w = shape[2];
        return true;
    }
    for (int ch = 1; ch <= 3; ch += 2) {
        int side = (int)lround(sqrt((double)shape[0] / ch));
        if (side > 0 && ch * side * side == shape[0]) {
            *c = ch, *h = *w = side;
            return true;
        }
    }
    return false;
}

int cli_open_data(const char *dir, const char *split, const nb_model *m, const cli_data_opts *o,
                  bool quiet, nb_dataset *d, nb_dataset_info *info) {
    nb_dataset_opts ds = o->ds;
    if (!input_image(m, &ds.channels, &ds.height, &ds.width)) ds.channels = ds.height = ds.width = 0;
    if (nb_dataset_open(dir, split, &ds, d, info)) {
        cli_error("%s", nb_last_error());
        return EXIT_RUNTIME;
    }
    if (!quiet) {
        printf("data: %s in %s: %d %s images, %d classes", info->layout, dir, d->count, split,
               info->classes);
        if (info->ignored) printf("; %ld other files ignored", info->ignored);
        printf("\n");
    }
    return 0;
}

const char *cli_class_name(const nb_model *m, const nb_dataset_info *info, int k) {
    const char *name = nb_model_class_name(m, k);
    if (!name && info && info->class_names && k >= 0 && k < info->classes) name = info->class_names[k];
    return name;
}
