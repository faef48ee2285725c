/* model.c — the sequential model: layers appended to one graph, the head
 * (labels, logits, probabilities, loss) and PyTorch's default init. Saving
 * and loading the weights is in weights.c.
 *
 * Each layer function checks its arguments, creates the layer's parameters
 * and operator nodes on the model's graph, and moves the head forward. The
 * graph keeps the first build error; the model keeps it too, so a failed
 * layer makes every later call fail with the same message's status. */
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nb_model *nb_model_new(const char *name, int ndim, const int *sample_shape, uint64_t seed) {
    if ((ndim != 1 && ndim != 3) || !sample_shape) {
        nb_fail(NB_ERR_SHAPE, "model '%s': input has %d dimensions, expected 3 (C H W) or 1 "
                "(features)", name ? name : "", ndim);
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (sample_shape[i] <= 0 || sample_shape[i] > 1 << 20) {
            nb_fail(NB_ERR_SHAPE, "model '%s': input dimension %d is %d, expected 1 to %d",
                    name ? name : "", i, sample_shape[i], 1 << 20);
            return NULL;
        }
    nb_model *m = nb_zalloc(sizeof *m, "model");
    if (!m) return NULL;
    snprintf(m->name, sizeof m->name, "%s", name ? name : "model");
    m->seed = seed;
    m->in_ndim = ndim;
    memcpy(m->in_shape, sample_shape, (size_t)ndim * sizeof(int));
    m->g = nb_graph_new();
    /* The graph starts with batch 1; the batch follows whatever is fed. */
    int shape[NB_MAX_DIMS] = {1, 0, 0, 0};
    memcpy(shape + 1, sample_shape, (size_t)ndim * sizeof(int));
    if (m->g) m->input = nb_input(m->g, "input", ndim + 1, shape);
    if (!m->input) {
        nb_model_free(m);
        return NULL;
    }
    m->head = m->input;
    return m;
}

void nb_model_free(nb_model *m) {
    if (!m) return;
    nb_graph_free(m->g);
    nb_free(m->layers);
    nb_model_free_class_names(m);
    nb_free(m);
}

/* ---- layers ------------------------------------------------------------ */

static nb_status model_fail(nb_model *m, nb_status s) {
    if (m->status == NB_OK) m->status = s;
    return s;
}

/* Check the model can take a layer, reserve its record and name it. */
static nb_status begin_layer(nb_model *m, const char *kind, const char *name, nb_layer **out) {
    if (!m) return nb_fail(NB_ERR_ARG, "%s: NULL model", kind);
    if (m->status)
        return nb_fail(m->status, "model '%s': a previous layer failed; build the model again",
                       m->name);
    if (m->finished)
        return nb_fail(NB_ERR_STATE, "model '%s': %s added after nb_model_finish", m->name, kind);
    if (m->n_layers == m->layers_cap) {
        int cap = m->layers_cap ? 2 * m->layers_cap : 16;
        nb_layer *p = nb_realloc(m->layers, (size_t)cap * sizeof *p, "model layers");
        if (!p) return model_fail(m, NB_ERR_NOMEM);
        m->layers = p;
        m->layers_cap = cap;
    }
    nb_layer *L = &m->layers[m->n_layers];
    memset(L, 0, sizeof *L);
    L->kind = kind;
    if (name && name[0]) {
        if (strlen(name) >= NB_LAYER_NAME)
            return model_fail(m, nb_fail(NB_ERR_ARG, "model '%s': %s name '%s' is longer than %d "
                                         "characters", m->name, kind, name, NB_LAYER_NAME - 1));
        snprintf(L->name, sizeof L->name, "%s", name);
    } else {
        snprintf(L->name, sizeof L->name, "%d", m->n_layers);
    }
    *out = L;
    return NB_OK;
}

/* "model 'lenet5': layer 3 (conv2d conv1)" for messages: room for a model
 * name, a kind and a layer name at their longest. */
#define LABEL_SIZE 192

static const char *layer_label(const nb_model *m, const nb_layer *L, char *buf, size_t size) {
    snprintf(buf, size, "model '%s': layer %d (%s %s)", m->name, (int)(L - m->layers), L->kind,
             L->name);
    return buf;
}

/* Commit the layer whose output is `out`; NULL means the graph refused it,
 * and its message gets the layer's name in front. */
static nb_status end_layer(nb_model *m, nb_layer *L, nb_node *out) {
    char label[LABEL_SIZE];
    if (!out) {
        nb_status s = nb_graph_status(m->g);
        if (s == NB_OK) s = NB_ERR_ARG;
        return model_fail(m, nb_fail_prefix(s, "%s: ", layer_label(m, L, label, sizeof label)));
    }
    L->out = out;
    m->head = out;
    m->n_layers++;
    return NB_OK;
}

static nb_status layer_arg_fail(nb_model *m, nb_layer *L, const char *fmt, int value) {
    char label[LABEL_SIZE], what[128];
    snprintf(what, sizeof what, fmt, value);
    return model_fail(m, nb_fail(NB_ERR_ARG, "%s: %s", layer_label(m, L, label, sizeof label), what));
}

/* Create "<layer>.<suffix>" as a parameter; refuses a name already taken. */
static nb_node *layer_param(nb_model *m, nb_layer *L, const char *suffix, int ndim, const int *shape) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", L->name, suffix);
    for (int i = 0; i < nb_graph_param_count(m->g); i++)
        if (!strcmp(nb_node_name(nb_graph_param(m->g, i)), name)) {
            char label[LABEL_SIZE];
            model_fail(m, nb_fail(NB_ERR_ARG, "%s: parameter name '%s' is already used by an "
                                  "earlier layer", layer_label(m, L, label, sizeof label), name));
            return NULL;
        }
    return nb_param(m->g, name, ndim, shape);
}

/* Features per sample of the head: what a linear layer reads. */
static int head_features(const nb_model *m) {
    const nb_tensor *t = nb_value(m->head);
    size_t n = 1;
    for (int i = 1; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n > (size_t)1 << 30 ? -1 : (int)n;
}

nb_status nb_model_linear(nb_model *m, const char *name, int out_features, int bias) {
    nb_layer *L;
    nb_status s = begin_layer(m, "linear", name, &L);
    if (s) return s;
    if (out_features <= 0) return layer_arg_fail(m, L, "out features %d, expected > 0", out_features);
    int in = head_features(m);
    if (in <= 0) return layer_arg_fail(m, L, "input has %d features", in);
    L->fan_in = in;
    L->weight = layer_param(m, L, "weight", 2, (int[]){out_features, in});
    if (L->weight && bias) L->bias = layer_param(m, L, "bias", 1, (int[]){out_features});
    if (!L->weight || (bias && !L->bias)) return end_layer(m, L, NULL);
    return end_layer(m, L, nb_linear(m->g, m->head, L->weight, L->bias));
}

/* The head must be [N, C, H, W] for the spatial layers. */
static nb_status need_image(nb_model *m, nb_layer *L) {
    const nb_tensor *t = nb_value(m->head);
    if (t->ndim == 4) return NB_OK;
    char label[LABEL_SIZE], sh[64];
    return model_fail(m, nb_fail(NB_ERR_SHAPE, "%s: input is %s, expected [N, C, H, W] (a "
                                 "spatial layer cannot follow flatten or linear)",
                                 layer_label(m, L, label, sizeof label),
                                 nb_shape_str(t, sh, sizeof sh)));
}

static nb_status check_window(nb_model *m, nb_layer *L, int kh, int kw, int sh, int sw, int ph,
                              int pw) {
    if (kh <= 0 || kw <= 0) return layer_arg_fail(m, L, "kernel %d, expected > 0", kh <= 0 ? kh : kw);
    if (sh <= 0 || sw <= 0) return layer_arg_fail(m, L, "stride %d, expected > 0", sh <= 0 ? sh : sw);
    if (ph < 0 || pw < 0) return layer_arg_fail(m, L, "padding %d, expected >= 0", ph < 0 ? ph : pw);
    return NB_OK;
}

nb_status nb_model_conv2d(nb_model *m, const char *name, int out_channels, int kernel_h,
                          int kernel_w, int stride_h, int stride_w, int pad_h, int pad_w, int bias) {
    nb_layer *L;
    nb_status s = begin_layer(m, "conv2d", name, &L);
    if (s || (s = need_image(m, L))) return s;
    if (out_channels <= 0) return layer_arg_fail(m, L, "out channels %d, expected > 0", out_channels);
    if ((s = check_window(m, L, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w))) return s;
    int c = nb_value(m->head)->shape[1];
    L->fan_in = c * kernel_h * kernel_w;
    L->weight = layer_param(m, L, "weight", 4, (int[]){out_channels, c, kernel_h, kernel_w});
    if (L->weight && bias) L->bias = layer_param(m, L, "bias", 1, (int[]){out_channels});
    if (!L->weight || (bias && !L->bias)) return end_layer(m, L, NULL);
    return end_layer(m, L, nb_conv2d(m->g, m->head, L->weight, L->bias, stride_h, stride_w, pad_h,
                                     pad_w));
}

static nb_status pool(nb_model *m, const char *kind, int kh, int kw, int sh, int sw, int ph, int pw) {
    nb_layer *L;
    nb_status s = begin_layer(m, kind, NULL, &L);
    if (s || (s = need_image(m, L))) return s;
    if (sh == 0) sh = kh; /* PyTorch: the stride defaults to the kernel */
    if (sw == 0) sw = kw;
    if ((s = check_window(m, L, kh, kw, sh, sw, ph, pw))) return s;
    nb_node *out = kind[0] == 'm' ? nb_maxpool2d(m->g, m->head, kh, kw, sh, sw, ph, pw)
                                  : nb_avgpool2d(m->g, m->head, kh, kw, sh, sw, ph, pw);
    return end_layer(m, L, out);
}

nb_status nb_model_maxpool2d(nb_model *m, int kernel_h, int kernel_w, int stride_h, int stride_w,
                             int pad_h, int pad_w) {
    return pool(m, "maxpool2d", kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w);
}

nb_status nb_model_avgpool2d(nb_model *m, int kernel_h, int kernel_w, int stride_h, int stride_w,
                             int pad_h, int pad_w) {
    return pool(m, "avgpool2d", kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w);
}

nb_status nb_model_adaptive_avgpool2d(nb_model *m, int out_h, int out_w) {
    nb_layer *L;
    nb_status s = begin_layer(m, "adaptive_avgpool2d", NULL, &L);
    if (s || (s = need_image(m, L))) return s;
    if (out_h <= 0 || out_w <= 0)
        return layer_arg_fail(m, L, "output size %d, expected > 0", out_h <= 0 ? out_h : out_w);
    return end_layer(m, L, nb_adaptive_avgpool2d(m->g, m->head, out_h, out_w));
}

/* PyTorch's BatchNorm2d/1d defaults: momentum 0.1, eps 1e-5, affine, with
 * running statistics; weight 1, bias 0, mean 0, var 1 (nb_model_init). */
static nb_status batchnorm(nb_model *m, const char *kind, const char *name, bool spatial) {
    nb_layer *L;
    nb_status s = begin_layer(m, kind, name, &L);
    if (s) return s;
    const nb_tensor *t = nb_value(m->head);
    if (spatial ? t->ndim != 4 : (t->ndim != 2 && t->ndim != 3)) {
        char label[LABEL_SIZE], sh[64];
        return model_fail(m, nb_fail(NB_ERR_SHAPE, "%s: input is %s, expected %s", layer_label(m, L,
                                     label, sizeof label), nb_shape_str(t, sh, sizeof sh),
                                     spatial ? "[N, C, H, W] (batchnorm1d follows linear)"
                                             : "[N, features] (batchnorm2d follows conv2d)"));
    }
    int c = t->shape[1];
    L->weight = layer_param(m, L, "weight", 1, &c);
    if (L->weight) L->bias = layer_param(m, L, "bias", 1, &c);
    char mean[64], var[64];
    snprintf(mean, sizeof mean, "%s.running_mean", L->name);
    snprintf(var, sizeof var, "%s.running_var", L->name);
    snprintf(L->batches_name, sizeof L->batches_name, "%s.num_batches_tracked", L->name);
    if (L->bias) L->running_mean = nb_buffer(m->g, mean, 1, &c, NULL);
    if (L->running_mean) L->running_var = nb_buffer(m->g, var, 1, &c, NULL);
    if (!L->running_var) return end_layer(m, L, NULL);
    nb_node *out = (spatial ? nb_batchnorm2d : nb_batchnorm1d)(m->g, m->head, L->weight, L->bias,
                                                                L->running_mean, L->running_var,
                                                                0.1f, 1e-5f);
    return end_layer(m, L, out);
}

nb_status nb_model_batchnorm2d(nb_model *m, const char *name) {
    return batchnorm(m, "batchnorm2d", name, true);
}

nb_status nb_model_batchnorm1d(nb_model *m, const char *name) {
    return batchnorm(m, "batchnorm1d", name, false);
}

/* ---- branches ------------------------------------------------------------ */

nb_node *nb_model_head(const nb_model *m) { return m ? m->head : NULL; }

/* Only the input or an earlier layer's output: anything else could come from
 * another model, or from inside a layer. */
static bool is_layer_output(const nb_model *m, const nb_node *node) {
    if (node == m->input) return true;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].out == node) return true;
    return false;
}

nb_status nb_model_set_head(nb_model *m, nb_node *node) {
    if (!m) return nb_fail(NB_ERR_ARG, "nb_model_set_head: NULL model");
    if (m->status)
        return nb_fail(m->status, "model '%s': a previous layer failed; build the model again",
                       m->name);
    if (m->finished)
        return nb_fail(NB_ERR_STATE, "model '%s': nb_model_set_head after nb_model_finish", m->name);
    if (!node || !is_layer_output(m, node))
        return model_fail(m, nb_fail(NB_ERR_ARG, "model '%s': nb_model_set_head: node '%s' is not "
                                     "the input or a layer output of this model", m->name,
                                     node ? nb_node_name(node) : "(null)"));
    m->head = node;
    return NB_OK;
}

/* "[N, 16, 28, 28]": a layer's shape with the batch as N, for messages
 * about a network rather than one batch. */
static const char *sample_shape_str(const nb_tensor *t, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "[N");
    for (int d = 1; d < t->ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, ", %d", t->shape[d]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

nb_status nb_model_add(nb_model *m, const char *name, nb_node *other) {
    nb_layer *L;
    nb_status s = begin_layer(m, "add", name, &L);
    if (s) return s;
    char label[LABEL_SIZE];
    if (!other || !is_layer_output(m, other))
        return model_fail(m, nb_fail(NB_ERR_ARG, "%s: node '%s' is not the input or a layer output "
                                     "of this model", layer_label(m, L, label, sizeof label),
                                     other ? nb_node_name(other) : "(null)"));
    const nb_tensor *a = nb_value(m->head), *b = nb_value(other);
    bool same = a->ndim == b->ndim;
    for (int d = 1; same && d < a->ndim; d++) same = a->shape[d] == b->shape[d];
    if (!same) {
        char sa[96], sb[96];
        return model_fail(m, nb_fail(NB_ERR_SHAPE, "%s: cannot add %s and %s (the shapes must be "
                                     "equal; a projection shortcut conv2d/batchnorm2d makes them so)",
                                     layer_label(m, L, label, sizeof label),
                                     sample_shape_str(a, sa, sizeof sa),
                                     sample_shape_str(b, sb, sizeof sb)));
    }
    return end_layer(m, L, nb_add(m->g, m->head, other));
}

typedef nb_node *(*unary_op)(nb_graph *, nb_node *);

static nb_status unary(nb_model *m, const char *kind, unary_op op) {
    nb_layer *L;
    nb_status s = begin_layer(m, kind, NULL, &L);
    if (s) return s;
    return end_layer(m, L, op(m->g, m->head));
}

nb_status nb_model_relu(nb_model *m) { return unary(m, "relu", nb_relu); }
nb_status nb_model_sigmoid(nb_model *m) { return unary(m, "sigmoid", nb_sigmoid); }
nb_status nb_model_tanh(nb_model *m) { return unary(m, "tanh", nb_tanh); }
nb_status nb_model_softmax(nb_model *m) { return unary(m, "softmax", nb_softmax); }
nb_status nb_model_flatten(nb_model *m) { return unary(m, "flatten", nb_flatten); }

/* Each dropout layer gets its own stream, fixed by the model's seed and the
 * layer's position, so two layers never share a mask. */
static uint64_t dropout_seed(uint64_t seed, int layer) {
    return seed * 0x9e3779b97f4a7c15ULL + (uint64_t)layer + 1;
}

nb_status nb_model_dropout(nb_model *m, float p) {
    nb_layer *L;
    nb_status s = begin_layer(m, "dropout", NULL, &L);
    if (s) return s;
    if (!(p >= 0.0f && p < 1.0f)) {
        char label[LABEL_SIZE];
        return model_fail(m, nb_fail(NB_ERR_ARG, "%s: probability %g, expected 0 <= p < 1",
                                     layer_label(m, L, label, sizeof label), (double)p));
    }
    /* p = 0 is the identity: no node, so nothing to draw or scale. */
    if (p == 0.0f) return end_layer(m, L, m->head);
    return end_layer(m, L, nb_dropout(m->g, m->head, p, dropout_seed(m->seed, m->n_layers)));
}

void nb_model_set_seed(nb_model *m, uint64_t seed) {
    m->seed = seed;
    for (int i = 0; i < m->n_layers; i++) {
        nb_node *out = m->layers[i].out;
        if (!strcmp(m->layers[i].kind, "dropout") && !strcmp(nb_node_op(out), "dropout"))
            out->attr.dropout.seed = dropout_seed(seed, i);
    }
}

/* ---- the head and init ----------------------------------------------------- */

nb_status nb_model_finish(nb_model *m) {
    if (!m) return nb_fail(NB_ERR_ARG, "nb_model_finish: NULL model");
    if (m->status) return nb_fail(m->status, "model '%s': a layer failed; build it again", m->name);
    if (m->finished) return NB_OK;
    if (m->n_layers == 0)
        return model_fail(m, nb_fail(NB_ERR_ARG, "model '%s' has no layers", m->name));
    /* A final softmax yields the probabilities; the loss takes its input,
     * the logits, so the softmax is never applied twice. */
    const nb_layer *last = &m->layers[m->n_layers - 1];
    bool ends_in_softmax = !strcmp(last->kind, "softmax");
    m->logits = ends_in_softmax ? (m->n_layers > 1 ? m->layers[m->n_layers - 2].out : m->input)
                                : m->head;
    const nb_tensor *t = nb_value(m->logits);
    if (t->ndim != 2) {
        char sh[64];
        return model_fail(m, nb_fail(NB_ERR_SHAPE, "model '%s': the network's output is %s; a "
                                     "classifier must end in [N, classes] (add flatten and linear)",
                                     m->name, nb_shape_str(t, sh, sizeof sh)));
    }
    m->probs = ends_in_softmax ? m->head : nb_softmax(m->g, m->logits);
    m->labels = nb_input(m->g, "labels", 1, (int[]){1});
    m->loss = nb_softmax_cross_entropy(m->g, m->logits, m->labels);
    if (!m->probs || !m->loss) return model_fail(m, nb_fail_prefix(nb_graph_status(m->g), "model '%s': ", m->name));
    m->finished = true;
    nb_model_init(m, m->seed);
    return NB_OK;
}

void nb_model_init(nb_model *m, uint64_t seed) {
    if (!m) return;
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    /* torch.nn.Linear and Conv2d's reset_parameters: kaiming_uniform with
     * a = sqrt(5) gives the weight the bound 1/sqrt(fan_in), and the bias
     * uses the same bound. Drawn in parameter order, weight before bias. */
    for (int i = 0; i < m->n_layers; i++) {
        const nb_layer *L = &m->layers[i];
        if (L->running_mean) {
            /* BatchNorm's reset_parameters and reset_running_stats: they
             * draw nothing, so the layers after it see the same stream. */
            const int c = nb_value(L->weight)->shape[0];
            for (int k = 0; k < c; k++) {
                nb_value(L->weight)->data[k] = 1.0f;
                nb_value(L->bias)->data[k] = 0.0f;
                nb_value(L->running_mean)->data[k] = 0.0f;
                nb_value(L->running_var)->data[k] = 1.0f;
            }
            nb_batchnorm_set_batches(L->out, 0);
            continue;
        }
        if (!L->weight) continue;
        float bound = 1.0f / sqrtf((float)L->fan_in);
        nb_node *params[2] = {L->weight, L->bias};
        for (int k = 0; k < 2; k++) {
            if (!params[k]) continue;
            const nb_tensor *t = nb_value(params[k]);
            size_t n = nb_tensor_numel(t);
            for (size_t j = 0; j < n; j++) t->data[j] = (2.0f * nb_rng_uniform(&rng) - 1.0f) * bound;
        }
    }
}

nb_status nb_model_check_ready(const nb_model *m, const char *who) {
    if (!m) return nb_fail(NB_ERR_ARG, "%s: NULL model", who);
    if (m->status) return nb_fail(m->status, "%s: model '%s' failed to build", who, m->name);
    if (!m->finished)
        return nb_fail(NB_ERR_STATE, "%s: call nb_model_finish on model '%s' first", who, m->name);
    return NB_OK;
}

/* ---- accessors ------------------------------------------------------------- */

nb_graph *nb_model_graph(const nb_model *m) { return m ? m->g : NULL; }
const char *nb_model_name(const nb_model *m) { return m ? m->name : ""; }
nb_node *nb_model_input(const nb_model *m) { return m ? m->input : NULL; }
nb_node *nb_model_labels(const nb_model *m) { return m ? m->labels : NULL; }
nb_node *nb_model_logits(const nb_model *m) { return m ? m->logits : NULL; }
nb_node *nb_model_probs(const nb_model *m) { return m ? m->probs : NULL; }
nb_node *nb_model_loss(const nb_model *m) { return m ? m->loss : NULL; }

int nb_model_input_shape(const nb_model *m, int *shape) {
    if (!m) return 0;
    if (shape) memcpy(shape, m->in_shape, (size_t)m->in_ndim * sizeof(int));
    return m->in_ndim;
}

int nb_model_classes(const nb_model *m) {
    return m && m->logits ? nb_value(m->logits)->shape[1] : 0;
}
