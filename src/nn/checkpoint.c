/* checkpoint.c — a training run saved so it can resume exactly: one
 * safetensors file holding the weights under their names, the optimizer's
 * buffers as "__optim.buf0" and "__optim.buf1" (flat, one float per
 * parameter), and in the metadata the position in the run (epoch, batch in
 * the epoch, step), the optimizer's and the graph's step counts (the
 * schedule and the dropout masks depend on them), the model's seed (the
 * masks' other half) and the shuffle generator as the current epoch began,
 * from which that epoch's order is redrawn. */
#include "nn/nn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECKPOINT_VERSION "1"
#define MAX_META 32

static const char *const optim_names[2] = {"__optim.buf0", "__optim.buf1"};

/* The weights plus whichever optimizer buffers exist. */
static nb_named_tensor *checkpoint_tensors(const nb_model *m, nb_optimizer *opt, int *count) {
    nb_named_tensor *t = nb_model_tensors(m, 2, count);
    if (!t) return NULL;
    float *buf[2];
    nb_optimizer_state(opt, &buf[0], &buf[1]);
    size_t n = nb_graph_params(m->g, NULL, NULL);
    for (int k = 0; k < 2; k++) {
        if (!buf[k]) continue;
        nb_named_tensor *e = &t[(*count)++];
        e->name = optim_names[k];
        e->tensor.ndim = 1;
        e->tensor.shape[0] = (int)n;
        e->tensor.data = buf[k];
    }
    return t;
}

static int put(nb_meta *meta, int n, const char *key, const char *fmt, uint64_t value) {
    if (n >= MAX_META) return n;
    snprintf(meta[n].key, sizeof meta[n].key, "%s", key);
    snprintf(meta[n].value, sizeof meta[n].value, fmt, value);
    return n + 1;
}

nb_status nb_checkpoint_save(const char *path, const nb_model *m, nb_optimizer *opt,
                             const nb_train_state *st) {
    if (nb_graph_params(m->g, NULL, NULL) > INT32_MAX)
        return nb_fail(NB_ERR_ARG, "%s: too many parameters for one optimizer tensor", path);
    int count;
    nb_named_tensor *t = checkpoint_tensors(m, opt, &count);
    nb_meta *meta = nb_alloc(MAX_META * sizeof *meta, "checkpoint metadata");
    if (!t || !meta) {
        nb_free(t);
        nb_free(meta);
        return NB_ERR_NOMEM;
    }
    int n = nb_model_meta(m, meta, MAX_META);
    n = put(meta, n, "nabla.checkpoint", "%" PRIu64, 1);
    n = put(meta, n, "nabla.epoch", "%" PRIu64, (uint64_t)st->epoch);
    n = put(meta, n, "nabla.batch_in_epoch", "%" PRIu64, (uint64_t)st->batch_in_epoch);
    n = put(meta, n, "nabla.step", "%" PRIu64, (uint64_t)st->step);
    n = put(meta, n, "nabla.batch", "%" PRIu64, (uint64_t)st->batch);
    n = put(meta, n, "nabla.shuffle", "%" PRIu64, (uint64_t)st->shuffle);
    n = put(meta, n, "nabla.optimizer_steps", "%" PRIu64, nb_optimizer_steps(opt));
    n = put(meta, n, "nabla.graph_step", "%" PRIu64, nb_graph_step(m->g));
    n = put(meta, n, "nabla.rng0", "%016" PRIx64, st->epoch_rng.s[0]);
    n = put(meta, n, "nabla.rng1", "%016" PRIx64, st->epoch_rng.s[1]);
    n = put(meta, n, "nabla.seed", "%" PRIu64, m->seed);
    nb_status s = nb_safetensors_save(path, t, count, meta, n);
    nb_free(t);
    nb_free(meta);
    return s;
}

/* A metadata value as an unsigned integer in `base`; missing or malformed is
 * a format error naming the key. */
static nb_status get(const char *path, const nb_meta *meta, int n, const char *key, int base,
                     uint64_t max, uint64_t *out) {
    for (int i = 0; i < n; i++) {
        if (strcmp(meta[i].key, key)) continue;
        const char *v = meta[i].value;
        char *end;
        errno = 0;
        unsigned long long x = strtoull(v, &end, base);
        if (!*v || *v == '-' || *end || errno || x > max)
            return nb_fail(NB_ERR_FORMAT, "%s: checkpoint metadata %s is '%s', expected an integer "
                           "up to %" PRIu64, path, key, v, max);
        *out = x;
        return NB_OK;
    }
    return nb_fail(NB_ERR_FORMAT, "%s: not a nabla checkpoint: metadata %s is missing (weights "
                   "alone load with --init)", path, key);
}

nb_status nb_checkpoint_load(const char *path, nb_model *m, nb_optimizer *opt, nb_train_state *st) {
    nb_status s = nb_model_check_ready(m, "nb_checkpoint_load");
    if (s) return s;
    int count, n = 0;
    nb_named_tensor *t = checkpoint_tensors(m, opt, &count);
    nb_meta *meta = nb_alloc(MAX_META * sizeof *meta, "checkpoint metadata");
    if (!t || !meta) s = NB_ERR_NOMEM;
    if (!s) s = nb_safetensors_load(path, t, count, 0, meta, MAX_META, &n);
    /* Counts that index epochs and batches fit an int; the rest are 64-bit.
     * The generator's state is hexadecimal. */
    uint64_t v[11] = {0};
    static const char *const keys[11] = {"nabla.checkpoint", "nabla.epoch", "nabla.batch_in_epoch",
                                         "nabla.step", "nabla.batch", "nabla.shuffle",
                                         "nabla.optimizer_steps", "nabla.graph_step", "nabla.seed",
                                         "nabla.rng0", "nabla.rng1"};
    for (int i = 0; i < 11 && !s; i++)
        s = get(path, meta, n, keys[i], i >= 9 ? 16 : 10, i >= 6 ? UINT64_MAX : INT32_MAX, &v[i]);
    if (!s && v[0] != 1)
        s = nb_fail(NB_ERR_FORMAT, "%s: checkpoint version %" PRIu64 ", this nabla reads version "
                    CHECKPOINT_VERSION, path, v[0]);
    if (!s) s = nb_model_apply_meta(m, meta, n, path);
    nb_free(t);
    nb_free(meta);
    if (s) return s;
    st->epoch = (int)v[1];
    st->batch_in_epoch = (long)v[2];
    st->step = (long)v[3];
    st->batch = (int)v[4];
    st->shuffle = v[5] != 0;
    nb_optimizer_set_steps(opt, v[6]);
    nb_graph_set_step(m->g, v[7]);
    nb_model_set_seed(m, v[8]);
    st->epoch_rng.s[0] = v[9];
    st->epoch_rng.s[1] = v[10];
    return NB_OK;
}
