/* test_loader.c — nb_loader over image folders written here and over held
 * bytes: the same batches, bit for bit, with 0 to 3 workers and any ring
 * depth; shards that make up the batch; resuming part-way; a worker's
 * failure coming back on its own batch; the cache giving the same bits; a
 * folder's memory not growing with its image count; and nb_train's weights
 * not depending on the workers. */
#include "support.h"
#include "io/datasets.h" /* the cache's use, to see that it was filled */

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void write_pgm(const char *path, int w, int h, nb_rng *rng) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fprintf(f, "P5\n%d %d\n255\n", w, h);
    for (int i = 0; i < w * h; i++) fputc((int)nb_rng_below(rng, 256), f);
    assert_int_equal(fclose(f), 0);
}

/* n images of assorted sizes in three classes, under tmpdir/NAME/train. */
static const char *write_folder(const char *name, int n, int side) {
    static char root[512];
    char path[1024];
    snprintf(root, sizeof root, "%s/%s", tmpdir, name);
    mkdir(root, 0755);
    snprintf(path, sizeof path, "%s/train", root);
    mkdir(path, 0755);
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    for (int c = 0; c < 3; c++) {
        snprintf(path, sizeof path, "%s/train/class%d", root, c);
        mkdir(path, 0755);
    }
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/train/class%d/%04d.pgm", root, i % 3, i);
        int w = side ? side : 20 + i % 7, h = side ? side : 17 + i % 5;
        write_pgm(path, w, h, &rng);
    }
    return root;
}

static nb_dataset open_folder(const char *root, int size, size_t cache) {
    nb_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.channels = 1;
    o.height = o.width = size;
    o.cache_bytes = cache;
    nb_dataset d;
    assert_ok(nb_dataset_open(root, "train", &o, &d, NULL));
    return d;
}

/* An epoch's batches, one after another: x then y of each. */
typedef struct epoch_bits {
    float *data;
    size_t n;
    long batches;
} epoch_bits;

static epoch_bits run_epoch(const nb_dataset *d, const nb_loader_opts *o, const uint32_t *order,
                            int epoch, long first) {
    nb_loader *l;
    assert_ok(nb_loader_new(d, o, &l));
    size_t sample = (size_t)d->channels * d->height * d->width;
    epoch_bits e = {malloc(((size_t)d->count + 1) * (sample + 1) * sizeof(float)), 0, 0};
    assert_ok(nb_loader_start(l, order, (size_t)d->count, epoch, first));
    const nb_batch *b;
    while (nb_loader_next(l, &b) == NB_OK && b) {
        assert_int_equal(b->index, first + e.batches);
        memcpy(e.data + e.n, b->x, (size_t)b->count * sample * sizeof(float));
        e.n += (size_t)b->count * sample;
        memcpy(e.data + e.n, b->y, (size_t)b->count * sizeof(float));
        e.n += (size_t)b->count;
        e.batches++;
    }
    nb_loader_free(l);
    return e;
}

static void expect_same(const epoch_bits *a, const epoch_bits *b, const char *what) {
    if (a->n != b->n || memcmp(a->data, b->data, a->n * sizeof(float)))
        fail_msg("%s: the batches differ (%zu and %zu floats)", what, a->n, b->n);
}

static uint32_t *shuffled(int n, uint64_t seed) {
    uint32_t *order = malloc((size_t)n * sizeof *order);
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    nb_shuffle(order, (size_t)n, 1, &rng);
    return order;
}

static void test_same_batches_any_workers(void **s) {
    (void)s;
    const char *root = write_folder("mixed", 40, 0);
    nb_dataset d = open_folder(root, 16, 0);
    assert_int_equal(d.count, 40);
    uint32_t *order = shuffled(d.count, 3);
    nb_augment aug;
    assert_ok(nb_augment_parse("rrc,flip,crop:2", &aug));
    const float mean[1] = {0.5f}, std[1] = {0.25f};
    nb_loader_opts o = {.batch = 7, .augment = &aug, .seed = 11, .mean = mean, .std = std};
    epoch_bits base = run_epoch(&d, &o, order, 2, 0);
    assert_int_equal(base.batches, 6);
    static const int workers[] = {1, 2, 3}, rings[] = {0, 1, 5};
    for (int w = 0; w < 3; w++) {
        o.workers = test_threads(workers[w]) > 1 ? workers[w] : 0;
        o.prefetch = rings[w];
        epoch_bits e = run_epoch(&d, &o, order, 2, 0);
        expect_same(&base, &e, "workers");
        free(e.data);
    }
    /* Another epoch draws other augmentations. */
    o.workers = 0;
    epoch_bits other = run_epoch(&d, &o, order, 3, 0);
    assert_int_equal(other.n, base.n);
    assert_true(memcmp(other.data, base.data, base.n * sizeof(float)) != 0);
    free(other.data);
    free(base.data);
    free(order);
    nb_dataset_free(&d);
}

/* Shards of every batch, put side by side, are the batch; resuming at
 * batch 2 gives batches 2 onwards. */
static void test_shards_and_resume(void **s) {
    (void)s;
    const char *root = write_folder("shards", 23, 0);
    nb_dataset d = open_folder(root, 12, 0);
    nb_loader_opts o = {.batch = 8};
    epoch_bits whole = run_epoch(&d, &o, NULL, 0, 0);
    size_t sample = 144;
    nb_loader *parts[3];
    for (int k = 0; k < 3; k++) {
        nb_loader_opts ok = o;
        ok.shard = k, ok.shards = 3;
        ok.workers = test_threads(2) > 1 ? 1 : 0;
        assert_ok(nb_loader_new(&d, &ok, &parts[k]));
        assert_ok(nb_loader_start(parts[k], NULL, (size_t)d.count, 0, 0));
    }
    size_t at = 0;
    for (int batch = 0; batch < 3; batch++) {
        int got = 0, width = batch < 2 ? 8 : 7;
        float y[8];
        for (int k = 0; k < 3; k++) {
            const nb_batch *b;
            assert_ok(nb_loader_next(parts[k], &b));
            assert_non_null(b);
            assert_int_equal(b->global_count, width);
            assert_memory_equal(b->x, whole.data + at + (size_t)got * sample, (size_t)b->count * sample * 4);
            memcpy(y + got, b->y, (size_t)b->count * 4);
            got += b->count;
        }
        assert_int_equal(got, width);
        assert_memory_equal(y, whole.data + at + (size_t)width * sample, (size_t)width * 4);
        at += (size_t)width * (sample + 1);
    }
    for (int k = 0; k < 3; k++) nb_loader_free(parts[k]);
    epoch_bits tail = run_epoch(&d, &o, NULL, 0, 2);
    assert_int_equal(tail.batches, 1);
    assert_memory_equal(tail.data, whole.data + 2 * 8 * (sample + 1), tail.n * 4);
    free(tail.data);
    free(whole.data);
    nb_dataset_free(&d);
}

/* A bad file stops the batch it is in, with its path; earlier batches
 * come out whole, and freeing the loader does not wait on anything. */
static void test_worker_failure(void **s) {
    (void)s;
    const char *root = write_folder("bad", 12, 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/train/class2/0008.pgm", root);
    FILE *f = fopen(path, "wb");
    fputs("P5\n20 20\n255\nshort", f);
    fclose(f);
    nb_dataset d = open_folder(root, 12, 0);
    nb_loader_opts o = {.batch = 4, .workers = test_threads(2) > 1 ? 2 : 0};
    nb_loader *l;
    assert_ok(nb_loader_new(&d, &o, &l));
    assert_ok(nb_loader_start(l, NULL, (size_t)d.count, 0, 0));
    const nb_batch *b;
    /* File order is by class: class2's 0008.pgm is sample 10, in batch 2. */
    for (int k = 0; k < 2; k++) {
        assert_ok(nb_loader_next(l, &b));
        assert_non_null(b);
    }
    assert_int_equal(nb_loader_next(l, &b), NB_ERR_FORMAT);
    assert_non_null(strstr(nb_last_error(), "class2/0008.pgm"));
    nb_loader_free(l);
    nb_dataset_free(&d);
}

/* Cached or not, the same bits; the second epoch reads the cache. */
static void test_cache_same_bits(void **s) {
    (void)s;
    const char *root = write_folder("cache", 30, 0);
    nb_dataset plain = open_folder(root, 16, 0), cached = open_folder(root, 16, (size_t)1 << 24);
    nb_augment aug;
    assert_ok(nb_augment_parse("rrc,flip", &aug));
    nb_loader_opts o = {.batch = 9, .augment = &aug, .seed = 2, .workers = test_threads(2) > 1 ? 2 : 0};
    for (int epoch = 0; epoch < 2; epoch++) {
        epoch_bits a = run_epoch(&plain, &o, NULL, epoch, 0), b = run_epoch(&cached, &o, NULL, epoch, 0);
        expect_same(&a, &b, "cache");
        free(a.data);
        free(b.data);
    }
    assert_true(atomic_load(&cached.source->cache_used) > 30 * 17 * 20);
    assert_int_equal(atomic_load(&plain.source->cache_used), 0);
    nb_dataset_free(&plain);
    nb_dataset_free(&cached);
}

/* ---- memory: bytes alive, counted by a thread-safe allocator ------------- */

static _Atomic size_t live_bytes, peak_bytes;

static void *sized_malloc(size_t n) {
    size_t *p = malloc(n + 16);
    if (!p) return NULL;
    *p = n;
    size_t now = atomic_fetch_add(&live_bytes, n) + n, peak = atomic_load(&peak_bytes);
    while (now > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, now)) {}
    return (char *)p + 16;
}

static void sized_free(void *q) {
    if (!q) return;
    size_t *p = (size_t *)((char *)q - 16);
    atomic_fetch_sub(&live_bytes, *p);
    free(p);
}

static void *sized_realloc(void *q, size_t n) {
    void *r = sized_malloc(n);
    if (r && q) {
        size_t old = *(size_t *)((char *)q - 16);
        memcpy(r, q, old < n ? old : n);
        sized_free(q);
    }
    return r;
}

static size_t epoch_peak(const char *root) {
    nb_set_allocator(sized_malloc, sized_realloc, sized_free);
    atomic_store(&live_bytes, 0);
    atomic_store(&peak_bytes, 0);
    nb_dataset d = open_folder(root, 64, 0);
    nb_loader_opts o = {.batch = 16, .workers = test_threads(2) > 1 ? 2 : 0};
    nb_loader *l;
    assert_ok(nb_loader_new(&d, &o, &l));
    assert_ok(nb_loader_start(l, NULL, (size_t)d.count, 0, 0));
    const nb_batch *b;
    while (nb_loader_next(l, &b) == NB_OK && b) {}
    nb_loader_free(l);
    nb_dataset_free(&d);
    nb_set_allocator(NULL, NULL, NULL);
    return atomic_load(&peak_bytes);
}

/* Ten times the images, held decoded, would be 360 x 4 KB more; the
 * folder's list of paths is all that grows. */
static void test_memory_bounded(void **s) {
    (void)s;
    size_t small = epoch_peak(write_folder("few", 40, 64));
    size_t big = epoch_peak(write_folder("many", 400, 64));
    if (big > small + 100000)
        fail_msg("peak %zu bytes for 40 images, %zu for 400: memory grows with the folder", small, big);
}

/* Train the tiny net on d for `steps` steps in all, with `workers`,
 * optionally writing a checkpoint or resuming one; returns the weights. */
static float *train_steps(const nb_dataset *d, long steps, int workers, const char *checkpoint,
                          const char *resume, size_t *n) {
    nb_augment aug;
    assert_ok(nb_augment_parse("rrc,flip", &aug));
    nb_model_config cfg = {.classes = 3, .seed = 4};
    nb_model *m = nb_model_parse("input 1 16 16\nflatten\nlinear out=3\n", "tiny.net", &cfg);
    assert_non_null(m);
    nb_optimizer_opts oo = nb_optimizer_defaults(NB_OPT_SGD);
    oo.lr = 0.05f;
    *n = nb_graph_params(nb_model_graph(m), NULL, NULL);
    nb_optimizer *opt = nb_optimizer_new(&oo, *n);
    nb_train_opts t = nb_train_defaults();
    t.steps = steps;
    t.batch = 8;
    t.augment = &aug;
    t.workers = test_threads(workers) > 1 ? workers : 0;
    t.test = d;
    t.checkpoint = checkpoint;
    t.checkpoint_every = checkpoint ? steps : 0;
    t.resume = resume;
    assert_ok(nb_train(m, opt, d, &t));
    float *p, *w = malloc(*n * sizeof(float));
    nb_graph_params(nb_model_graph(m), &p, NULL);
    memcpy(w, p, *n * sizeof(float));
    nb_optimizer_free(opt);
    nb_model_free(m);
    return w;
}

/* nb_train's weights do not depend on the workers, and a run resumed
 * mid-epoch (with other workers) ends where the straight one does. */
static void test_train_any_workers(void **s) {
    (void)s;
    const char *root = write_folder("train", 60, 0);
    nb_dataset d = open_folder(root, 16, 0);
    size_t n;
    float *straight = train_steps(&d, 16, 0, NULL, NULL, &n);
    float *threaded = train_steps(&d, 16, 2, NULL, NULL, &n);
    assert_memory_equal(straight, threaded, n * sizeof(float));
    const char *ckpt = tmp_path("tiny.ckpt.safetensors");
    free(train_steps(&d, 5, 2, ckpt, NULL, &n));
    float *resumed = train_steps(&d, 16, 1, NULL, ckpt, &n);
    assert_memory_equal(straight, resumed, n * sizeof(float));
    free(straight);
    free(threaded);
    free(resumed);
    nb_dataset_free(&d);
}

static void test_bad_options(void **s) {
    (void)s;
    const char *root = write_folder("opts", 3, 8);
    nb_dataset d = open_folder(root, 8, 0);
    nb_loader *l;
    nb_loader_opts o = {.batch = 0};
    assert_int_equal(nb_loader_new(&d, &o, &l), NB_ERR_ARG);
    o.batch = 2, o.workers = -1;
    assert_int_equal(nb_loader_new(&d, &o, &l), NB_ERR_ARG);
    o.workers = 0, o.shard = 3, o.shards = 2;
    assert_int_equal(nb_loader_new(&d, &o, &l), NB_ERR_ARG);
    assert_non_null(strstr(nb_last_error(), "shard 3 of 2"));
    o.shard = o.shards = 0;
    assert_ok(nb_loader_new(&d, &o, &l));
    assert_int_equal(nb_loader_start(l, NULL, 3, 0, 5), NB_ERR_ARG);
    nb_loader_free(l);
    nb_dataset_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_batches_any_workers),
        cmocka_unit_test(test_shards_and_resume),
        cmocka_unit_test(test_worker_failure),
        cmocka_unit_test(test_cache_same_bits),
        cmocka_unit_test(test_memory_bounded),
        cmocka_unit_test(test_train_any_workers),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests_name("loader", tests, tmpdir_setup, tmpdir_teardown);
}
