/* dropout.c — inverted dropout: in train mode each element is zeroed with
 * probability p and the survivors are scaled by 1/(1-p), so the expected
 * value is unchanged and eval mode is the identity.
 *
 * The mask is drawn from a generator seeded by (seed, graph step), not from
 * a stream that advances with each forward: a forward and its backward see
 * the same mask, repeated forwards within one step (a gradient check) do
 * too, and restoring the step on resume repeats a run exactly. The mask,
 * holding 0 or 1/(1-p) per element, goes to aux for backward. */
#include "core/internal.h"

#include <string.h>

static nb_status infer_dropout(nb_node *n) {
    const float p = n->attr.dropout.p;
    if (!(p >= 0.0f && p < 1.0f))
        return nb_fail(NB_ERR_ARG, "dropout%s%s: p = %g, expected 0 <= p < 1", n->name[0] ? " " : "",
                       n->name, (double)p);
    n->value.ndim = n->in[0]->value.ndim;
    memcpy(n->value.shape, n->in[0]->value.shape, sizeof n->value.shape);
    /* Kept in eval mode too (as ones), so a backward after an eval forward
     * still finds a mask that matches the values it saw. */
    n->aux_bytes = nb_tensor_numel(&n->value) * sizeof(float);
    n->workspace_bytes = 0;
    return NB_OK;
}

/* Distinct (seed, step) pairs give unrelated streams: the step goes through
 * an odd multiplier, so nearby steps differ in their high bits, and the
 * seeding itself (splitmix64) scrambles the rest. */
static void seed_for_step(nb_rng *rng, uint64_t seed, uint64_t step) {
    nb_rng_seed(rng, seed ^ (step * 0xD1B54A32D192ED03ULL));
}

static void forward_dropout(nb_node *n) {
    const float *x = n->in[0]->value.data;
    float *y = n->value.data, *mask = n->aux;
    const size_t count = nb_tensor_numel(&n->value);
    const float p = n->attr.dropout.p;
    if (!n->graph->training || p == 0.0f) {
        memcpy(y, x, count * sizeof(float));
        for (size_t i = 0; i < count; i++) mask[i] = 1.0f;
        return;
    }
    nb_rng rng;
    seed_for_step(&rng, n->attr.dropout.seed, n->graph->step);
    const float keep_scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < count; i++) {
        mask[i] = nb_rng_uniform(&rng) < p ? 0.0f : keep_scale;
        y[i] = x[i] * mask[i];
    }
}

static void backward_dropout(nb_node *n) {
    if (!n->in[0]->needs_grad) return;
    const float *dy = n->grad.data, *mask = n->aux;
    float *dx = n->in[0]->grad.data;
    const size_t count = nb_tensor_numel(&n->value);
    for (size_t i = 0; i < count; i++) dx[i] += dy[i] * mask[i];
}

static const nb_op_def dropout_def = {NB_OP_DROPOUT, "dropout", false, infer_dropout,
                                      forward_dropout, backward_dropout, false, false};

nb_node *nb_dropout(nb_graph *g, nb_node *x, float p, uint64_t seed) {
    nb_op_attr attr = {.dropout = {p, seed}};
    return nb_node_new_op(g, &dropout_def, &x, 1, &attr);
}
