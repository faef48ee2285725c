/* checkpoint.c — a training run saved so it can resume exactly: one
 * safetensors file holding the weights under their names, the optimizer's
 * buffers as "__optim.buf0" and "__optim.buf1" (flat, one float per
 * parameter), and in the metadata the position in the run (epoch, batch in
 * the epoch, step), the optimizer's and the graph's step counts (the
 * schedule and the dropout masks depend on them), the model's seed (the
 * masks' other half), the shuffle generator as the current epoch began,
 * from which that epoch's order is redrawn, and the epoch's loss sum,
 * samples and skipped steps so far, so that its report does not depend on
 * where the run was resumed. The loss sum is kept as the bits of its double:
 * decimal would round it. */
#include "nn/nn.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECKPOINT_VERSION 2
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

/* A checkpoint is what a run falls back on, so one holding a NaN or an
 * infinity must never replace a good one: a run that diverged would carry
 * its ruin into every resume. */
static nb_status check_finite(const char *path, const nb_model *m, nb_optimizer *opt) {
    float *params, *buf[2];
    nb_graph_params(m->g, &params, NULL);
    nb_optimizer_state(opt, &buf[0], &buf[1]);
    nb_status s = nb_model_check_finite(m, params, "parameter ");
    if (!s && buf[0]) s = nb_model_check_finite(m, buf[0], "the optimizer's first buffer for ");
    if (!s && buf[1]) s = nb_model_check_finite(m, buf[1], "the optimizer's second buffer for ");
    if (s)
        return nb_fail_prefix(s, "%s: checkpoint not written, the previous one is kept: ", path);
    return NB_OK;
}

nb_status nb_checkpoint_save(const char *path, const nb_model *m, nb_optimizer *opt,
                             const nb_train_state *st) {
    if (nb_graph_params(m->g, NULL, NULL) > INT32_MAX)
        return nb_fail(NB_ERR_ARG, "%s: too many parameters for one optimizer tensor", path);
    nb_status s = check_finite(path, m, opt);
    if (s) return s;
    uint64_t loss_bits;
    memcpy(&loss_bits, &st->loss_sum, sizeof loss_bits);
    int count;
    nb_named_tensor *t = checkpoint_tensors(m, opt, &count);
    nb_meta *meta = nb_alloc(MAX_META * sizeof *meta, "checkpoint metadata");
    if (!t || !meta) {
        nb_free(t);
        nb_free(meta);
        return NB_ERR_NOMEM;
    }
    int n = nb_model_meta(m, meta, MAX_META);
    n = put(meta, n, "nabla.checkpoint", "%" PRIu64, CHECKPOINT_VERSION);
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
    n = put(meta, n, "nabla.epoch_samples", "%" PRIu64, (uint64_t)st->samples);
    n = put(meta, n, "nabla.epoch_skipped", "%" PRIu64, (uint64_t)st->skipped);
    n = put(meta, n, "nabla.epoch_bad_images", "%" PRIu64, (uint64_t)st->bad_images);
    n = put(meta, n, "nabla.epoch_loss_sum", "%016" PRIx64, loss_bits);
    s = nb_safetensors_save(path, t, count, meta, n);
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
    /* The metadata first (the header alone is read): a file that is no
     * checkpoint, or a malformed one, is refused before any weight is
     * overwritten, and named for what it is rather than for the optimizer
     * tensors it lacks. */
    nb_named_tensor none = {0};
    if (!s) s = nb_safetensors_load(path, &none, 0, 1, meta, MAX_META, &n);
    /* Counts that index epochs and batches fit an int; the rest are 64-bit.
     * The generator's state and the loss sum's bits are hexadecimal. */
    enum { N_KEYS = 14, FIRST_WIDE = 6, FIRST_HEX = 11 };
    uint64_t v[N_KEYS] = {0};
    static const char *const keys[N_KEYS] = {
        "nabla.checkpoint", "nabla.epoch", "nabla.batch_in_epoch", "nabla.step", "nabla.batch",
        "nabla.shuffle", "nabla.optimizer_steps", "nabla.graph_step", "nabla.seed",
        "nabla.epoch_samples", "nabla.epoch_skipped", "nabla.rng0", "nabla.rng1",
        "nabla.epoch_loss_sum"};
    /* The version first, so an older checkpoint is named as such rather
     * than by the first key it lacks. */
    for (int i = 0; i < N_KEYS && !s; i++) {
        s = get(path, meta, n, keys[i], i >= FIRST_HEX ? 16 : 10,
                i >= FIRST_WIDE ? UINT64_MAX : INT32_MAX, &v[i]);
        if (!s && i == 0 && v[0] != CHECKPOINT_VERSION)
            s = nb_fail(NB_ERR_FORMAT, "%s: checkpoint version %" PRIu64 ", this nabla reads "
                        "version %d", path, v[0], CHECKPOINT_VERSION);
    }
    /* Checkpoints from before bad images were left out of batches lack
     * their count: none were. */
    uint64_t bad_images = 0;
    for (int i = 0; !s && i < n; i++)
        if (!strcmp(meta[i].key, "nabla.epoch_bad_images"))
            s = get(path, meta, n, meta[i].key, 10, INT32_MAX, &bad_images);
    double loss_sum;
    memcpy(&loss_sum, &v[13], sizeof loss_sum);
    if (!s && !isfinite(loss_sum))
        s = nb_fail(NB_ERR_FORMAT, "%s: checkpoint metadata nabla.epoch_loss_sum is %g, expected "
                    "a finite sum of losses", path, loss_sum);
    if (!s) s = nb_safetensors_load(path, t, count, 0, NULL, 0, NULL);
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
    st->samples = (long)v[9];
    st->skipped = (long)v[10];
    st->bad_images = (long)bad_images;
    st->epoch_rng.s[0] = v[11];
    st->epoch_rng.s[1] = v[12];
    st->loss_sum = loss_sum;
    return NB_OK;
}
