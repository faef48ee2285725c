/* class_names.c — the names of a model's classes, and how they travel in a
 * weights file: metadata entries "nabla.classes.000", ".001", ... each
 * holding as many whole names as fit, one per line, in label order.
 * Checkpoints do not carry them (their metadata is the training state);
 * nb_model_save and nb_model_load do. */
#include "nn/nn.h"

#include <stdio.h>
#include <string.h>

#define META_CLASSES "nabla.classes."

static void free_names(nb_model *m) {
    for (int i = 0; i < m->n_class_names; i++) nb_free(m->class_names[i]);
    nb_free(m->class_names);
    m->class_names = NULL;
    m->n_class_names = 0;
}

void nb_model_free_class_names(nb_model *m) { free_names(m); }

nb_status nb_model_set_class_names(nb_model *m, int n, const char *const *names) {
    if (!m) return nb_fail(NB_ERR_ARG, "nb_model_set_class_names: NULL model");
    if (n == 0 || !names) {
        free_names(m);
        return NB_OK;
    }
    if (n != nb_model_classes(m))
        return nb_fail(NB_ERR_ARG, "model '%s' has %d classes, but %d class names were given",
                       m->name, nb_model_classes(m), n);
    for (int i = 0; i < n; i++) {
        size_t len = names[i] ? strlen(names[i]) : 0;
        if (!len || len > 200 || strchr(names[i], '\n'))
            return nb_fail(NB_ERR_ARG, "class name %d is empty, longer than 200 bytes or holds a "
                           "line break", i);
    }
    char **copy = nb_zalloc((size_t)n * sizeof *copy, "class names");
    if (!copy) return NB_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        if (!(copy[i] = nb_strdup(names[i], "class name"))) {
            for (int k = 0; k < i; k++) nb_free(copy[k]);
            nb_free(copy);
            return NB_ERR_NOMEM;
        }
    }
    free_names(m);
    m->class_names = copy;
    m->n_class_names = n;
    return NB_OK;
}

const char *nb_model_class_name(const nb_model *m, int k) {
    if (!m || k < 0 || k >= m->n_class_names) return NULL;
    return m->class_names[k];
}

int nb_model_class_meta(const nb_model *m, nb_meta *meta, int cap) {
    int n = 0;
    size_t used = 0;
    for (int i = 0; i < m->n_class_names; i++) {
        size_t len = strlen(m->class_names[i]);
        /* A fresh entry when this name (and its line break) would not fit. */
        if (n == 0 || used + len + 2 > sizeof meta->value) {
            if (n == cap) return -1;
            snprintf(meta[n].key, sizeof meta[n].key, META_CLASSES "%03d", n);
            meta[n].value[0] = '\0';
            used = 0;
            n++;
        }
        char *v = meta[n - 1].value;
        if (used) v[used++] = '\n';
        memcpy(v + used, m->class_names[i], len + 1);
        used += len;
    }
    return n;
}

nb_status nb_model_apply_class_meta(nb_model *m, const nb_meta *meta, int count, const char *path) {
    /* Entries in key order, names split at line breaks. */
    int classes = nb_model_classes(m), n = 0;
    char **names = NULL;
    nb_status s = NB_OK;
    for (int part = 0; !s; part++) {
        char key[64];
        snprintf(key, sizeof key, META_CLASSES "%03d", part);
        const nb_meta *e = NULL;
        for (int i = 0; i < count; i++)
            if (!strcmp(meta[i].key, key)) e = &meta[i];
        if (!e) break;
        if (!names && !(names = nb_zalloc((size_t)classes * sizeof *names, "class names")))
            return NB_ERR_NOMEM;
        const char *p = e->value;
        while (*p && !s) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            if (n == classes) {
                s = nb_fail(NB_ERR_FORMAT, "%s: metadata names more than the model's %d classes",
                            path, classes);
                break;
            }
            char *name = nb_alloc(len + 1, "class name");
            if (!name) {
                s = NB_ERR_NOMEM;
                break;
            }
            memcpy(name, p, len);
            name[len] = '\0';
            names[n++] = name;
            p += len + (nl ? 1 : 0);
        }
    }
    if (!s && names && n != classes)
        s = nb_fail(NB_ERR_FORMAT, "%s: metadata names %d classes, the model has %d", path, n,
                    classes);
    if (!s && names) s = nb_model_set_class_names(m, n, (const char *const *)names);
    for (int i = 0; i < n; i++) nb_free(names[i]);
    nb_free(names);
    return s;
}
