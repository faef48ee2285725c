/* test_augment.c — training augmentation: parsing --augment lists, each
 * transform's effect (flip mirrors, crop:P shifts with zeros, rrc keeps a
 * constant image constant and its draws vary), draws that depend only on
 * (seed, epoch, index), and training with augmentation that gives the same
 * bits at 1 and 2 threads and after a resume. */
#include "support.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { C = 2, H = 6, W = 8, PLANE = H * W, SAMPLE = C * PLANE };

static void ramp(uint8_t *px) {
    for (int i = 0; i < SAMPLE; i++) px[i] = (uint8_t)(i * 5 + 1);
}

static void test_parse(void **s) {
    (void)s;
    nb_augment a;
    assert_ok(nb_augment_parse("rrc,flip,crop:4", &a));
    assert_int_equal(a.rrc, 1);
    assert_int_equal(a.flip, 1);
    assert_int_equal(a.crop_pad, 4);
    assert_ok(nb_augment_parse("", &a));
    assert_int_equal(a.rrc + a.flip + a.crop_pad, 0);
    assert_int_equal(nb_augment_parse("flip,blur", &a), NB_ERR_ARG);
    assert_non_null(strstr(nb_last_error(), "unknown augmentation 'blur'"));
    assert_int_equal(nb_augment_parse("crop:0", &a), NB_ERR_ARG);
    assert_int_equal(nb_augment_parse("crop:x", &a), NB_ERR_ARG);
}

static bool is_mirror(const uint8_t *a, const uint8_t *b) {
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                if (a[c * PLANE + y * W + x] != b[c * PLANE + y * W + (W - 1 - x)]) return false;
    return true;
}

static void test_flip(void **s) {
    (void)s;
    uint8_t in[SAMPLE], out[SAMPLE];
    ramp(in);
    nb_augment a = {0, 0, 1};
    int flipped = 0;
    for (uint32_t i = 0; i < 400; i++) {
        assert_ok(nb_augment_image(&a, 7, 0, i, C, H, W, in, out));
        if (is_mirror(in, out)) flipped++;
        else assert_memory_equal(in, out, SAMPLE);
    }
    assert_in_range(flipped, 150, 250); /* p = 0.5 */
}

/* crop:P is a shift by -P..P in each direction, zeros coming in. */
static void test_padded_crop(void **s) {
    (void)s;
    uint8_t in[SAMPLE], out[SAMPLE];
    ramp(in);
    nb_augment a = {0, 2, 0};
    bool seen[5][5] = {{false}};
    for (uint32_t i = 0; i < 300; i++) {
        assert_ok(nb_augment_image(&a, 1, 3, i, C, H, W, in, out));
        int found = 0;
        for (int dy = -2; dy <= 2; dy++)
            for (int dx = -2; dx <= 2; dx++) {
                bool match = true;
                for (int c = 0; c < C && match; c++)
                    for (int y = 0; y < H && match; y++)
                        for (int x = 0; x < W && match; x++) {
                            int sy = y + dy, sx = x + dx;
                            uint8_t want = sy < 0 || sy >= H || sx < 0 || sx >= W
                                               ? 0 : in[c * PLANE + sy * W + sx];
                            match = out[c * PLANE + y * W + x] == want;
                        }
                if (match) {
                    seen[dy + 2][dx + 2] = true;
                    found++;
                }
            }
        assert_int_equal(found, 1);
    }
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 5; k++) assert_true(seen[i][k]);
}

static void test_rrc(void **s) {
    (void)s;
    uint8_t in[SAMPLE], out[SAMPLE], again[SAMPLE];
    nb_augment a = {1, 0, 0};
    /* Any crop of a constant image, resized, is the same constant. */
    memset(in, 77, sizeof in);
    for (uint32_t i = 0; i < 50; i++) {
        assert_ok(nb_augment_image(&a, 2, 0, i, C, H, W, in, out));
        for (int k = 0; k < SAMPLE; k++) assert_int_equal(out[k], 77);
    }
    /* On a ramp the crops differ from image to image and epoch to epoch,
     * and repeat exactly for the same (seed, epoch, index). */
    ramp(in);
    int changed = 0;
    for (uint32_t i = 0; i < 50; i++) {
        assert_ok(nb_augment_image(&a, 2, 0, i, C, H, W, in, out));
        assert_ok(nb_augment_image(&a, 2, 0, i, C, H, W, in, again));
        assert_memory_equal(out, again, SAMPLE);
        assert_ok(nb_augment_image(&a, 2, 1, i, C, H, W, in, again));
        changed += memcmp(out, again, SAMPLE) != 0;
    }
    assert_true(changed > 40);
    /* Nothing asked: a plain copy. */
    nb_augment none = {0, 0, 0};
    assert_ok(nb_augment_image(&none, 2, 0, 0, C, H, W, in, out));
    assert_memory_equal(in, out, SAMPLE);
}

/* ---- through nb_train ------------------------------------------------------------ */

enum { N = 40, S = 8 };

static nb_dataset make_data(void) {
    nb_dataset d = {N, 1, S, S, malloc(N * S * S), malloc(N * sizeof(int32_t)), NULL};
    for (int i = 0; i < N; i++) {
        d.labels[i] = i % 3;
        for (int p = 0; p < S * S; p++) d.images[i * S * S + p] = (uint8_t)((p * (i % 3 + 1) * 9 + i) & 0xff);
    }
    return d;
}

static nb_model *tiny_model(void) {
    const char *path = tmp_path("tiny.net");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("input 1 8 8\nconv2d out=3 kernel=3\nrelu\nflatten\nlinear out=3\n", f);
    fclose(f);
    nb_model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.seed = 5;
    nb_model *m = nb_model_create(path, &cfg);
    if (!m) fail_msg("%s", nb_last_error());
    return m;
}

/* Train `steps` steps (resuming from `resume` when set, checkpointing to
 * `checkpoint`), returning a copy of the weights. */
static float *train(const nb_dataset *d, int threads, long steps, const char *checkpoint,
                    const char *resume, size_t *n) {
    nb_set_threads(threads);
    nb_model *m = tiny_model();
    nb_optimizer_opts oo = nb_optimizer_defaults(NB_OPT_SGD);
    oo.lr = 0.05f;
    float *params;
    *n = nb_graph_params(nb_model_graph(m), &params, NULL);
    nb_optimizer *opt = nb_optimizer_new(&oo, *n);
    nb_augment aug = {1, 1, 1};
    nb_train_opts o = nb_train_defaults();
    o.batch = 16;
    o.steps = steps;
    o.seed = 9;
    o.augment = &aug;
    o.checkpoint = checkpoint;
    o.resume = resume;
    assert_ok(nb_train(m, opt, d, &o));
    float *copy = malloc(*n * sizeof *copy);
    memcpy(copy, params, *n * sizeof *copy);
    nb_optimizer_free(opt);
    nb_model_free(m);
    return copy;
}

static void test_training_is_reproducible(void **s) {
    (void)s;
    nb_dataset d = make_data();
    size_t n;
    /* 7 steps cross an epoch boundary (3 batches an epoch). */
    float *one = train(&d, 1, 7, NULL, NULL, &n);
    float *two = train(&d, 2, 7, NULL, NULL, &n);
    assert_memory_equal(one, two, n * sizeof *one);
    char ck[256];
    snprintf(ck, sizeof ck, "%s/aug.ckpt", tmpdir);
    free(train(&d, 2, 4, ck, NULL, &n));
    float *resumed = train(&d, 1, 7, NULL, ck, &n);
    assert_memory_equal(one, resumed, n * sizeof *one);
    /* And the augmentation did something: without it the weights differ. */
    nb_set_threads(1);
    nb_model *m = tiny_model();
    nb_optimizer_opts oo = nb_optimizer_defaults(NB_OPT_SGD);
    oo.lr = 0.05f;
    float *params;
    nb_graph_params(nb_model_graph(m), &params, NULL);
    nb_optimizer *opt = nb_optimizer_new(&oo, n);
    nb_train_opts o = nb_train_defaults();
    o.batch = 16;
    o.steps = 7;
    o.seed = 9;
    assert_ok(nb_train(m, opt, &d, &o));
    assert_true(memcmp(one, params, n * sizeof *one) != 0);
    nb_optimizer_free(opt);
    nb_model_free(m);
    free(one);
    free(two);
    free(resumed);
    free(d.images);
    free(d.labels);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),        cmocka_unit_test(test_flip),
        cmocka_unit_test(test_padded_crop),  cmocka_unit_test(test_rrc),
        cmocka_unit_test(test_training_is_reproducible),
    };
    return cmocka_run_group_tests_name("augment", tests, tmpdir_setup, tmpdir_teardown);
}
