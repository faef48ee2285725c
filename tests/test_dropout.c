/* test_dropout.c — inverted dropout: identity in eval mode, the right
 * fraction zeroed and the survivors scaled by 1/(1-p) in train mode, one
 * mask per (seed, step) so forwards repeat within a step and change across
 * steps, a gradient check in train mode, and the check on p. */
#include "support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { COUNT = 100000 };

typedef struct {
    nb_graph *g;
    nb_node *x, *y;
} drop_graph;

static drop_graph make(float p, uint64_t seed) {
    drop_graph d;
    d.g = nb_graph_new();
    d.x = nb_input(d.g, "x", 2, (int[]){100, COUNT / 100});
    d.y = nb_dropout(d.g, d.x, p, seed);
    assert_non_null(d.y);
    float *ones = malloc(COUNT * sizeof(float));
    for (int i = 0; i < COUNT; i++) ones[i] = 1.0f;
    assert_ok(nb_feed(d.x, ones, 100));
    free(ones);
    return d;
}

static void test_eval_is_identity(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_graph *g = nb_graph_new();
    nb_node *x = random_input(g, "x", 3, (int[]){4, 5, 6}, -1, 1, &rng);
    nb_node *y = nb_dropout(g, x, 0.5f, 7);
    nb_set_training(g, 0);
    assert_ok(nb_forward(g, y));
    assert_memory_equal(nb_value(y)->data, nb_value(x)->data, 120 * sizeof(float));
    nb_graph_free(g);
}

static void test_train_statistics(void **s) {
    (void)s;
    const float ps[] = {0.1f, 0.3f, 0.5f, 0.9f};
    for (int k = 0; k < 4; k++) {
        drop_graph d = make(ps[k], 42 + k);
        assert_ok(nb_forward(d.g, d.y));
        const float *y = nb_value(d.y)->data;
        int zeros = 0;
        double sum = 0;
        const float kept = 1.0f / (1.0f - ps[k]);
        for (int i = 0; i < COUNT; i++) {
            if (y[i] == 0.0f) zeros++;
            else assert_float_equal(y[i], kept, 0);
            sum += y[i];
        }
        /* Binomial: the standard deviation of the fraction is under 0.0016. */
        assert_true(fabs((double)zeros / COUNT - ps[k]) < 0.01);
        assert_true(fabs(sum / COUNT - 1.0) < 0.05);
        nb_graph_free(d.g);
    }
}

static void test_p_zero_is_identity_in_train_mode(void **s) {
    (void)s;
    drop_graph d = make(0.0f, 3);
    assert_ok(nb_forward(d.g, d.y));
    for (int i = 0; i < COUNT; i++) assert_float_equal(nb_value(d.y)->data[i], 1.0f, 0);
    nb_graph_free(d.g);
}

static float *copy_value(const nb_node *n) {
    float *c = malloc(COUNT * sizeof(float));
    memcpy(c, nb_value(n)->data, COUNT * sizeof(float));
    return c;
}

static void test_mask_follows_seed_and_step(void **s) {
    (void)s;
    drop_graph a = make(0.5f, 99), b = make(0.5f, 99), other = make(0.5f, 100);
    assert_ok(nb_forward(a.g, a.y));
    float *first = copy_value(a.y);
    /* Same step: a second forward repeats the mask. */
    assert_ok(nb_forward(a.g, a.y));
    assert_memory_equal(nb_value(a.y)->data, first, COUNT * sizeof(float));
    /* Same seed and step in another graph: the same mask. */
    assert_ok(nb_forward(b.g, b.y));
    assert_memory_equal(nb_value(b.y)->data, first, COUNT * sizeof(float));
    /* Another seed: another mask. */
    assert_ok(nb_forward(other.g, other.y));
    assert_memory_not_equal(nb_value(other.y)->data, first, COUNT * sizeof(float));
    /* Another step: another mask; restoring the step restores it. */
    nb_graph_set_step(a.g, 1);
    assert_ok(nb_forward(a.g, a.y));
    assert_memory_not_equal(nb_value(a.y)->data, first, COUNT * sizeof(float));
    nb_graph_set_step(a.g, 0);
    assert_ok(nb_forward(a.g, a.y));
    assert_memory_equal(nb_value(a.y)->data, first, COUNT * sizeof(float));
    free(first);
    nb_graph_free(a.g), nb_graph_free(b.g), nb_graph_free(other.g);
}

/* A backward advances the step, so the next forward draws a new mask; the
 * backward itself uses the mask of its forward. */
static void test_backward_uses_its_forwards_mask(void **s) {
    (void)s;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 1, (int[]){1000});
    nb_requires_grad(x, 1);
    nb_node *y = nb_dropout(g, x, 0.4f, 5);
    nb_node *loss = nb_sum_all(g, y);
    float ones[1000];
    for (int i = 0; i < 1000; i++) ones[i] = 1.0f;
    assert_ok(nb_feed(x, ones, 1000));
    assert_ok(nb_forward(g, loss));
    assert_ok(nb_backward(g, loss));
    /* d(sum y)/dx = mask = y when x is all ones. */
    assert_memory_equal(nb_grad(x)->data, nb_value(y)->data, sizeof ones);
    float before[1000];
    memcpy(before, nb_value(y)->data, sizeof before);
    assert_ok(nb_forward(g, loss));
    assert_memory_not_equal(nb_value(y)->data, before, sizeof before);
    nb_graph_free(g);
}

static void test_gradcheck_train_mode(void **s) {
    (void)s;
    nb_rng rng;
    nb_rng_seed(&rng, 8);
    const float ps[] = {0.2f, 0.5f};
    for (int k = 0; k < 2; k++) {
        nb_graph *g = nb_graph_new();
        nb_node *x = random_input(g, "x", 4, (int[]){2, 3, 4, 5}, -1, 1, &rng);
        nb_requires_grad(x, 1);
        nb_node *loss = random_projection_loss(g, nb_dropout(g, x, ps[k], 11 + k), &rng);
        assert_gradcheck(g, loss, 1e-2, 1e-2);
        nb_graph_free(g);
    }
}

static void test_bad_p(void **s) {
    (void)s;
    const float bad[] = {1.0f, -0.1f, 1.5f, NAN};
    for (int k = 0; k < 4; k++) {
        nb_graph *g = nb_graph_new();
        nb_node *x = nb_input(g, "x", 1, (int[]){3});
        assert_null(nb_dropout(g, x, bad[k], 1));
        assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
        assert_non_null(strstr(nb_last_error(), "dropout"));
        assert_non_null(strstr(nb_last_error(), "0 <= p < 1"));
        nb_graph_free(g);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_is_identity),
        cmocka_unit_test(test_train_statistics),
        cmocka_unit_test(test_p_zero_is_identity_in_train_mode),
        cmocka_unit_test(test_mask_follows_seed_and_step),
        cmocka_unit_test(test_backward_uses_its_forwards_mask),
        cmocka_unit_test(test_gradcheck_train_mode),
        cmocka_unit_test(test_bad_p),
    };
    return cmocka_run_group_tests_name("dropout", tests, NULL, NULL);
}
