/* folder.c — torchvision's ImageFolder layout: DIR/train/<class>/<file>,
 * the classes the sorted names of train/'s folders, the label a class's
 * index. Files are found as ImageFolder finds them (every folder under the
 * class, sorted by folder path and then by name) and kept when their name
 * ends in .jpg, .jpeg, .png or .pgm in any case; the rest are counted.
 * Nothing is decoded here: the data set keeps the paths (source.c), and
 * each image is read when a batch needs it. */
#include "io/datasets.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

static void names_free(name_list *l) {
    for (size_t i = 0; i < l->n; i++) nb_free(l->v[i]);
    nb_free(l->v);
    memset(l, 0, sizeof *l);
}

static nb_status names_push(name_list *l, const char *s) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = nb_realloc(l->v, cap * sizeof *v, "file list");
        if (!v) return NB_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = nb_strdup(s, "file name"))) return NB_ERR_NOMEM;
    l->n++;
    return NB_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* a/b into buf, or an error when it does not fit. */
static nb_status join(char *buf, size_t size, const char *a, const char *b) {
    int n = snprintf(buf, size, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= size) return nb_fail(NB_ERR_ARG, "path too long: %s/%s", a, b);
    return NB_OK;
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Sorted names of the entries of `path` that are folders (dirs) or not. */
static nb_status list_dir(const char *path, bool dirs, name_list *out) {
    DIR *dp = opendir(path);
    if (!dp) return nb_fail(NB_ERR_IO, "%s: cannot open the folder", path);
    nb_status s = NB_OK;
    struct dirent *e;
    char full[4096];
    while (!s && (e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if ((s = join(full, sizeof full, path, e->d_name))) break;
        if (is_dir(full) == dirs) s = names_push(out, e->d_name);
    }
    closedir(dp);
    if (!s && out->n) qsort(out->v, out->n, sizeof *out->v, cmp_str);
    return s;
}

static bool image_name(const char *name) {
    static const char *const ext[] = {".jpg", ".jpeg", ".png", ".pgm"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        size_t k = strlen(ext[i]);
        if (n > k && !strcasecmp(name + n - k, ext[i])) return true;
    }
    return false;
}

/* Every folder at or under `root`, sorted by path as os.walk's sorted
 * output is. */
static nb_status walk_dirs(const char *root, int depth, name_list *out) {
    if (depth > 32) return nb_fail(NB_ERR_IO, "%s: folders nest more than 32 deep", root);
    nb_status s = names_push(out, root);
    name_list sub = {0};
    if (!s) s = list_dir(root, true, &sub);
    char full[4096];
    for (size_t i = 0; !s && i < sub.n; i++) {
        if (!(s = join(full, sizeof full, root, sub.v[i]))) s = walk_dirs(full, depth + 1, out);
    }
    names_free(&sub);
    return s;
}

/* The image files of one class folder, in ImageFolder's order. */
static nb_status class_files(const char *class_dir, name_list *files, long *ignored) {
    name_list dirs = {0};
    nb_status s = walk_dirs(class_dir, 0, &dirs);
    if (!s) qsort(dirs.v, dirs.n, sizeof *dirs.v, cmp_str);
    char full[4096];
    for (size_t d = 0; !s && d < dirs.n; d++) {
        name_list names = {0};
        s = list_dir(dirs.v[d], false, &names);
        for (size_t i = 0; !s && i < names.n; i++) {
            if (!image_name(names.v[i])) {
                (*ignored)++;
                continue;
            }
            if (!(s = join(full, sizeof full, dirs.v[d], names.v[i]))) s = names_push(files, full);
        }
        names_free(&names);
    }
    names_free(&dirs);
    return s;
}

nb_status nb_folder_load(const char *dir, const char *sub, const nb_dataset_opts *o,
                         nb_dataset *out, nb_dataset_info *info) {
    if (o->channels <= 0 || o->height <= 0 || o->width <= 0)
        return nb_fail(NB_ERR_ARG, "%s: an image folder needs the model's input size to load "
                       "its images at (channels, height and width)", dir);
    char train_dir[4096], split_dir[4096], path[4096];
    nb_status s = join(train_dir, sizeof train_dir, dir, "train");
    if (!s) s = join(split_dir, sizeof split_dir, dir, sub);
    if (s) return s;
    /* The classes are train/'s; a tree with only val/ (an evaluation set)
     * has its own, as torchvision's ImageFolder on that folder would. */
    if (!is_dir(train_dir)) memcpy(train_dir, split_dir, sizeof train_dir);
    nb_dataset d;
    memset(&d, 0, sizeof d);
    name_list classes = {0}, present = {0}, files = {0};
    int32_t *labels = NULL;
    s = list_dir(train_dir, true, &classes);
    if (!s && classes.n == 0)
        s = nb_fail(NB_ERR_FORMAT, "%s: no class folders (expected %s/<class>/<image>)", train_dir,
                    train_dir);
    if (!s && classes.n > (size_t)INT32_MAX)
        s = nb_fail(NB_ERR_FORMAT, "%s: %zu class folders, too many", train_dir, classes.n);
    if (!s) s = list_dir(split_dir, true, &present);
    size_t cap = 0;
    for (size_t c = 0; !s && c < present.n; c++) {
        void *hit = bsearch(&present.v[c], classes.v, classes.n, sizeof *classes.v, cmp_str);
        if (!hit) {
            s = nb_fail(NB_ERR_FORMAT, "%s/%s: class '%s' is not a class of %s (its classes are "
                        "the folders there)", split_dir, present.v[c], present.v[c], train_dir);
            break;
        }
        int32_t label = (int32_t)((char **)hit - classes.v);
        size_t before = files.n;
        long ignored = 0;
        if (!(s = join(path, sizeof path, split_dir, present.v[c])))
            s = class_files(path, &files, &ignored);
        info->ignored += ignored;
        if (!s && files.n == before)
            s = nb_fail(NB_ERR_FORMAT, "%s: empty class folder: no .jpg, .jpeg, .png or .pgm "
                        "files%s", path, ignored ? " (other files are ignored)" : "");
        if (!s && files.n > cap) {
            size_t grow = files.cap;
            int32_t *l = nb_realloc(labels, grow * sizeof *labels, "folder labels");
            if (!l) s = NB_ERR_NOMEM;
            else labels = l, cap = grow;
        }
        for (size_t i = before; !s && i < files.n; i++) labels[i] = label;
    }
    if (!s && files.n == 0)
        s = nb_fail(NB_ERR_FORMAT, "%s: no class folders with images", split_dir);
    if (!s && files.n > (size_t)INT32_MAX)
        s = nb_fail(NB_ERR_FORMAT, "%s: %zu images, too many", split_dir, files.n);
    if (!s) {
        /* The data set takes over the paths and the labels. */
        d.count = (int)files.n;
        d.channels = o->channels;
        d.height = o->height;
        d.width = o->width;
        s = nb_source_files(files.v, d.count, o, &d.source);
        if (!s) {
            memset(&files, 0, sizeof files);
            d.labels = labels;
            labels = NULL;
        }
    }
    if (!s) {
        info->classes = (int)classes.n;
        s = nb_class_names_copy(info, (const char *const *)classes.v, (int)classes.n);
    }
    names_free(&classes);
    names_free(&present);
    names_free(&files);
    nb_free(labels);
    if (s) {
        nb_dataset_free(&d);
        return s;
    }
    *out = d;
    return NB_OK;
}
