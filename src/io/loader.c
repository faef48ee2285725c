/* loader.c — batches of normalised floats from a data set: filled on the
 * calling thread's OpenMP team when asked for (nb_dataset_batch, and a
 * loader without workers), or ahead of time by worker threads into a ring
 * of batch buffers (nb_loader). Batch k of an epoch always goes to ring
 * slot k % depth and holds the same samples, drawn the same way, so the
 * workers' number and timing change nothing but when it is ready.
 *
 * The ring's slots move EMPTY -> FILLING (a worker took batch k) -> READY
 * -> (returned by nb_loader_next) -> EMPTY at the next call. A worker takes
 * batch k only when its slot is EMPTY, so at most `depth` batches exist at
 * once: memory is bounded by the ring, whatever the data set's size. */
#include "io/datasets.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* ---- filling one batch ---------------------------------------------------------- */

/* What a batch is made from: the data, the samples' order and the draws. */
typedef struct fill_spec {
    const nb_dataset *d;
    const nb_augment *augment;
    uint64_t seed;
    int epoch;
    const float *lut; /* channels x 256: a byte's normalised float */
} fill_spec;

static void build_lut(int C, const float *mean, const float *std, float *lut) {
    /* A pixel has 256 values, so normalising is a lookup, computed exactly
     * as (v/255 - mean) / std would be. */
    for (int c = 0; c < C; c++)
        for (int v = 0; v < 256; v++) {
            float f = (float)v / 255.0f;
            lut[c * 256 + v] = (mean && std) ? (f - mean[c]) / std[c] : f;
        }
}

static void normalise(const fill_spec *f, const uint8_t *bytes, float *x) {
    const nb_dataset *d = f->d;
    const size_t plane = (size_t)d->height * (size_t)d->width;
    for (int c = 0; c < d->channels; c++) {
        const float *lut = f->lut + c * 256;
        for (size_t i = 0; i < plane; i++) x[(size_t)c * plane + i] = lut[bytes[(size_t)c * plane + i]];
    }
}

/* One sample into x and *y: held bytes without augmentation are read in
 * place (bytes may then be NULL), everything else goes through
 * nb_dataset_sample into bytes. */
static nb_status fill_sample(const fill_spec *f, uint32_t idx, uint8_t *bytes, float *x, float *y) {
    const nb_dataset *d = f->d;
    if (idx >= (uint32_t)d->count)
        return nb_fail(NB_ERR_ARG, "sample %u of a data set of %d", idx, d->count);
    const size_t sample = (size_t)d->channels * (size_t)d->height * (size_t)d->width;
    const uint8_t *src = d->images ? d->images + idx * sample : NULL;
    if (!src || f->augment) {
        nb_status s = nb_dataset_sample(d, idx, f->augment, f->seed, f->epoch, bytes);
        if (s) return s;
        src = bytes;
    }
    normalise(f, src, x);
    *y = (float)d->labels[idx];
    return NB_OK;
}

/* Samples order[first .. first+count-1] into x and y, on this thread or on
 * the OpenMP team (each sample into its own slot, so the result is the
 * same). A bad image the data set skips is left out and counted in *bad;
 * the rest close up, in order, and *kept says how many remain. bytes holds
 * count samples' bytes. Messages are per thread, so a failure on the team
 * is redone here for its message. */
static nb_status fill_batch(const fill_spec *f, const uint32_t *order, size_t first, int count,
                            bool team, bool skip, uint8_t *bytes, float *x, float *y, int *kept,
                            long *bad) {
    const nb_dataset *d = f->d;
    const size_t sample = (size_t)d->channels * (size_t)d->height * (size_t)d->width;
    const nb_image_source *src = d->source;
    nb_status first_bad = NB_OK;
    int n = 0;
    *bad = 0;
    if (!team) {
        for (int b = 0; b < count; b++) {
            size_t pos = first + (size_t)b;
            uint32_t idx = order ? order[pos] : (uint32_t)pos;
            nb_status s = fill_sample(f, idx, bytes ? bytes + (size_t)n * sample : NULL,
                                      x + (size_t)n * sample, y + n);
            if (s && skip && nb_source_skips(src, s)) {
                (*bad)++;
                continue;
            }
            if (s) return s;
            n++;
        }
        *kept = n;
        return NB_OK;
    }
    nb_status *status = nb_alloc((size_t)count * sizeof *status, "batch status");
    if (!status) return NB_ERR_NOMEM;
    /* Threads only when there is work for them: small held images take
     * less time to copy than a parallel region takes to start. */
    const bool heavy = src || f->augment || (size_t)count * sample >= ((size_t)1 << 20);
#pragma omp parallel for schedule(dynamic, 4) if (heavy)
    for (int b = 0; b < count; b++) {
        size_t pos = first + (size_t)b;
        uint32_t idx = order ? order[pos] : (uint32_t)pos;
        status[b] = fill_sample(f, idx, bytes ? bytes + (size_t)b * sample : NULL, x + (size_t)b * sample,
                                y + b);
    }
    for (int b = 0; b < count && !first_bad; b++) {
        if (!status[b]) {
            if (n != b) {
                memmove(x + (size_t)n * sample, x + (size_t)b * sample, sample * sizeof *x);
                y[n] = y[b];
            }
            n++;
        } else if (skip && nb_source_skips(src, status[b])) {
            (*bad)++;
        } else {
            size_t pos = first + (size_t)b;
            uint32_t idx = order ? order[pos] : (uint32_t)pos;
            first_bad = fill_sample(f, idx, bytes, x + (size_t)b * sample, y + b);
            if (!first_bad) first_bad = nb_fail(status[b], "sample %u failed on a worker thread", idx);
        }
    }
    nb_free(status);
    *kept = n;
    return first_bad;
}

nb_status nb_dataset_batch(const nb_dataset *d, const uint32_t *order, size_t first, int count,
                           const float *mean, const float *std, float *x, float *labels) {
    if (!d || !x || count < 0) return nb_fail(NB_ERR_ARG, "nb_dataset_batch: NULL data set or batch");
    if (d->channels > NB_MAX_CHANNELS)
        return nb_fail(NB_ERR_ARG, "nb_dataset_batch: %d channels, at most %d", d->channels,
                       NB_MAX_CHANNELS);
    const size_t sample = (size_t)d->channels * (size_t)d->height * (size_t)d->width;
    float lut[NB_MAX_CHANNELS * 256];
    build_lut(d->channels, mean, std, lut);
    fill_spec f = {d, NULL, 0, 0, lut};
    float *y = labels ? labels : nb_alloc((size_t)count * sizeof *y + 1, "batch labels");
    uint8_t *bytes = d->images ? NULL : nb_alloc((size_t)count * sample + 1, "batch bytes");
    nb_status s = y && (d->images || bytes) ? NB_OK : NB_ERR_NOMEM;
    int kept;
    long bad;
    if (!s) s = fill_batch(&f, order, first, count, true, false, bytes, x, y, &kept, &bad);
    nb_free(bytes);
    if (!labels) nb_free(y);
    return s;
}

/* ---- the loader ------------------------------------------------------------------ */

enum slot_state { SLOT_EMPTY, SLOT_FILLING, SLOT_READY };

typedef struct slot {
    enum slot_state state;
    nb_batch batch;
    float *x, *y;
    uint8_t *bytes;
    nb_status status;
    char message[512]; /* the worker's message, raised again by nb_loader_next */
} slot;

struct nb_loader {
    const nb_dataset *d;
    nb_loader_opts o;
    nb_augment augment; /* a copy: the caller's may go away */
    float lut[NB_MAX_CHANNELS * 256];
    size_t sample;
    int depth;
    slot *ring;
    pthread_t *threads;
    int started; /* threads running */
    pthread_mutex_t mu;
    pthread_cond_t changed;
    /* The epoch, under mu. */
    const uint32_t *order;
    size_t n;
    int epoch;
    long next_fill, next_take, end; /* batches: to hand out, to return, the epoch's count */
    long held;                      /* the batch the caller holds, or -1 */
    int filling;                    /* workers busy on a batch */
    bool stop;
};

/* Batch k's positions in the order: this shard's part of them, and the
 * whole batch's size. */
static void batch_range(const nb_loader *l, long k, size_t *first, int *count, int *global) {
    size_t lo = (size_t)k * (size_t)l->o.batch;
    size_t hi = lo + (size_t)l->o.batch < l->n ? lo + (size_t)l->o.batch : l->n;
    *global = (int)(hi - lo);
    int shards = l->o.shards > 1 ? l->o.shards : 1, shard = shards > 1 ? l->o.shard : 0;
    size_t a = lo + (hi - lo) * (size_t)shard / (size_t)shards;
    size_t b = lo + (hi - lo) * (size_t)(shard + 1) / (size_t)shards;
    *first = a;
    *count = (int)(b - a);
}

static void fill_slot(nb_loader *l, slot *sl, long k, const uint32_t *order, int epoch, bool team) {
    size_t first;
    int count, global;
    batch_range(l, k, &first, &count, &global);
    fill_spec f = {l->d, l->o.augment ? &l->augment : NULL, l->o.seed, epoch, l->lut};
    int kept = 0;
    long bad = 0;
    sl->status = fill_batch(&f, order, first, count, team, true, sl->bytes, sl->x, sl->y, &kept, &bad);
    if (sl->status) snprintf(sl->message, sizeof sl->message, "%s", nb_last_error());
    sl->batch = (nb_batch){sl->x, sl->y, kept, global, k, bad};
}

static void *worker(void *arg) {
    nb_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && !(l->next_fill < l->end && l->ring[l->next_fill % l->depth].state == SLOT_EMPTY))
            pthread_cond_wait(&l->changed, &l->mu);
        if (l->stop) break;
        long k = l->next_fill++;
        slot *sl = &l->ring[k % l->depth];
        sl->state = SLOT_FILLING;
        const uint32_t *order = l->order;
        int epoch = l->epoch;
        l->filling++;
        pthread_mutex_unlock(&l->mu);
        fill_slot(l, sl, k, order, epoch, false);
        pthread_mutex_lock(&l->mu);
        sl->state = SLOT_READY;
        l->filling--;
        pthread_cond_broadcast(&l->changed);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

nb_status nb_loader_new(const nb_dataset *d, const nb_loader_opts *o, nb_loader **out) {
    if (!d || !o || !out) return nb_fail(NB_ERR_ARG, "nb_loader_new: NULL argument");
    *out = NULL;
    if (o->batch <= 0) return nb_fail(NB_ERR_ARG, "nb_loader_new: batch %d, expected > 0", o->batch);
    if (o->workers < 0 || o->workers > 256)
        return nb_fail(NB_ERR_ARG, "nb_loader_new: %d workers, expected 0 to 256", o->workers);
    if (o->prefetch < 0) return nb_fail(NB_ERR_ARG, "nb_loader_new: prefetch %d, expected >= 0", o->prefetch);
    if (o->shards > 1 && (o->shard < 0 || o->shard >= o->shards))
        return nb_fail(NB_ERR_ARG, "nb_loader_new: shard %d of %d", o->shard, o->shards);
    if (d->channels <= 0 || d->channels > NB_MAX_CHANNELS)
        return nb_fail(NB_ERR_ARG, "nb_loader_new: %d channels, expected 1 to %d", d->channels,
                       NB_MAX_CHANNELS);
    nb_loader *l = nb_zalloc(sizeof *l, "loader");
    if (!l) return NB_ERR_NOMEM;
    l->d = d;
    l->o = *o;
    if (o->augment) l->augment = *o->augment;
    build_lut(d->channels, o->mean, o->std, l->lut);
    l->sample = (size_t)d->channels * (size_t)d->height * (size_t)d->width;
    l->depth = o->prefetch > 0 ? o->prefetch : o->workers + 2;
    if (o->workers == 0) l->depth = 1;
    l->held = -1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->changed, NULL);
    nb_status s = NB_OK;
    l->ring = nb_zalloc((size_t)l->depth * sizeof *l->ring, "loader ring");
    if (!l->ring) s = NB_ERR_NOMEM;
    size_t floats = (size_t)o->batch * l->sample;
    for (int i = 0; !s && i < l->depth; i++) {
        slot *sl = &l->ring[i];
        sl->x = nb_alloc(floats * sizeof(float), "loader batch");
        sl->y = nb_alloc((size_t)o->batch * sizeof(float), "loader labels");
        sl->bytes = nb_alloc((size_t)o->batch * l->sample, "loader bytes");
        if (!sl->x || !sl->y || !sl->bytes) s = NB_ERR_NOMEM;
    }
    if (!s && o->workers) {
        l->threads = nb_alloc((size_t)o->workers * sizeof *l->threads, "loader threads");
        if (!l->threads) s = NB_ERR_NOMEM;
    }
    for (int i = 0; !s && i < o->workers; i++) {
        if (pthread_create(&l->threads[i], NULL, worker, l) != 0)
            s = nb_fail(NB_ERR_NOMEM, "nb_loader_new: cannot start worker thread %d of %d", i + 1,
                        o->workers);
        else
            l->started++;
    }
    if (s) {
        nb_loader_free(l);
        return s;
    }
    *out = l;
    return NB_OK;
}

nb_status nb_loader_start(nb_loader *l, const uint32_t *order, size_t n, int epoch, long first_batch) {
    if (!l) return nb_fail(NB_ERR_ARG, "nb_loader_start: NULL loader");
    if (n > (size_t)l->d->count && !order)
        return nb_fail(NB_ERR_ARG, "nb_loader_start: %zu samples of a data set of %d", n, l->d->count);
    long end = (long)((n + (size_t)l->o.batch - 1) / (size_t)l->o.batch);
    if (first_batch < 0 || first_batch > end)
        return nb_fail(NB_ERR_ARG, "nb_loader_start: batch %ld of an epoch of %ld", first_batch, end);
    pthread_mutex_lock(&l->mu);
    /* Workers still on the last epoch's batches finish them first: they
     * read its order, which the caller may now change. */
    while (l->filling) pthread_cond_wait(&l->changed, &l->mu);
    for (int i = 0; i < l->depth; i++) l->ring[i].state = SLOT_EMPTY;
    l->order = order;
    l->n = n;
    l->epoch = epoch;
    l->next_fill = l->next_take = first_batch;
    l->end = end;
    l->held = -1;
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->mu);
    return NB_OK;
}

nb_status nb_loader_next(nb_loader *l, const nb_batch **out) {
    if (!l || !out) return nb_fail(NB_ERR_ARG, "nb_loader_next: NULL argument");
    *out = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->held >= 0) {
        l->ring[l->held % l->depth].state = SLOT_EMPTY;
        l->held = -1;
        pthread_cond_broadcast(&l->changed);
    }
    if (l->next_take >= l->end) {
        pthread_mutex_unlock(&l->mu);
        return NB_OK;
    }
    long k = l->next_take++;
    slot *sl = &l->ring[k % l->depth];
    if (!l->o.workers) {
        /* No workers: this call fills it, on the OpenMP team. */
        const uint32_t *order = l->order;
        int epoch = l->epoch;
        pthread_mutex_unlock(&l->mu);
        fill_slot(l, sl, k, order, epoch, true);
        pthread_mutex_lock(&l->mu);
    } else {
        while (!(sl->state == SLOT_READY && sl->batch.index == k))
            pthread_cond_wait(&l->changed, &l->mu);
    }
    l->held = k;
    pthread_mutex_unlock(&l->mu);
    if (sl->status) return nb_fail(sl->status, "%s", sl->message);
    *out = &sl->batch;
    return NB_OK;
}

void nb_loader_free(nb_loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->started; i++) pthread_join(l->threads[i], NULL);
    for (int i = 0; l->ring && i < l->depth; i++) {
        nb_free(l->ring[i].x);
        nb_free(l->ring[i].y);
        nb_free(l->ring[i].bytes);
    }
    nb_free(l->ring);
    nb_free(l->threads);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->changed);
    nb_free(l);
}
