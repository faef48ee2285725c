/* weights.c — a model's weights as safetensors under PyTorch's names, and
 * the input normalisation that travels with them in the metadata. */
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- normalisation ----------------------------------------------------------- */

static int input_channels(const nb_model *m) { return m->in_ndim == 3 ? m->in_shape[0] : 1; }

nb_status nb_model_set_normalization(nb_model *m, int channels, const float *mean, const float *std) {
    if (!m) return nb_fail(NB_ERR_ARG, "nb_model_set_normalization: NULL model");
    if (channels == 0) {
        m->norm_channels = 0;
        return NB_OK;
    }
    if (channels != input_channels(m) || !mean || !std)
        return nb_fail(NB_ERR_ARG, "model '%s': normalisation for %d channels, but its input has %d",
                       m->name, channels, input_channels(m));
    for (int c = 0; c < channels; c++)
        if (!isfinite(mean[c]) || !(std[c] > 0.0f) || !isfinite(std[c]))
            return nb_fail(NB_ERR_ARG, "model '%s': normalisation of channel %d: mean %g, std %g; "
                           "expected a finite mean and a positive std", m->name, c,
                           (double)mean[c], (double)std[c]);
    m->norm_channels = channels;
    memcpy(m->mean, mean, (size_t)channels * sizeof(float));
    memcpy(m->std, std, (size_t)channels * sizeof(float));
    return NB_OK;
}

int nb_model_normalization(const nb_model *m, const float **mean, const float **std) {
    if (!m || !m->norm_channels) {
        if (mean) *mean = NULL;
        if (std) *std = NULL;
        return 0;
    }
    if (mean) *mean = m->mean;
    if (std) *std = m->std;
    return m->norm_channels;
}

/* ---- weights as safetensors ----------------------------------------------------- */

nb_named_tensor *nb_model_tensors(const nb_model *m, int extra, int *count) {
    int n = nb_graph_param_count(m->g), buffers = 0;
    for (int i = 0; i < m->n_layers; i++) buffers += m->layers[i].running_mean ? 3 : 0;
    nb_named_tensor *t = nb_zalloc((size_t)(n + buffers + extra) * sizeof *t, "tensor list");
    if (!t) return NULL;
    for (int i = 0; i < n; i++) {
        const nb_node *p = nb_graph_param(m->g, i);
        t[i].name = nb_node_name(p);
        t[i].tensor = *nb_value(p);
    }
    /* PyTorch's state_dict order: a layer's parameters, then its buffers;
     * nabla keeps all parameters first (one block), which a name-keyed
     * format does not mind. num_batches_tracked is a 0-dim I64 there. */
    for (int i = 0; i < m->n_layers; i++) {
        nb_layer *L = &m->layers[i];
        if (!L->running_mean) continue;
        t[n].name = nb_node_name(L->running_mean);
        t[n++].tensor = *nb_value(L->running_mean);
        t[n].name = nb_node_name(L->running_var);
        t[n++].tensor = *nb_value(L->running_var);
        t[n].name = L->batches_name;
        t[n].tensor.ndim = 0;
        t[n++].i64 = &L->out->attr.batchnorm.batches;
    }
    *count = n;
    return t;
}

#define META_NORMALIZE "nabla.normalize"

static int add_meta(nb_meta *meta, int n, int cap, const char *key, const char *value) {
    if (n >= cap) return n;
    snprintf(meta[n].key, sizeof meta[n].key, "%s", key);
    snprintf(meta[n].value, sizeof meta[n].value, "%s", value);
    return n + 1;
}

int nb_model_meta(const nb_model *m, nb_meta *meta, int cap) {
    /* "format": "pt" lets PyTorch-side tools take the file as a state dict. */
    int n = add_meta(meta, 0, cap, "format", "pt");
    n = add_meta(meta, n, cap, "nabla.model", m->name);
    n = add_meta(meta, n, cap, "nabla.version", NB_VERSION);
    if (m->norm_channels) {
        /* "mean0,...,std0,...": the same list --normalize takes. */
        char v[sizeof meta->value];
        size_t used = 0;
        for (int i = 0; i < 2 * m->norm_channels && used < sizeof v; i++) {
            float x = i < m->norm_channels ? m->mean[i] : m->std[i - m->norm_channels];
            used += (size_t)snprintf(v + used, sizeof v - used, "%s%.9g", i ? "," : "", (double)x);
        }
        n = add_meta(meta, n, cap, META_NORMALIZE, v);
    }
    return n;
}

nb_status nb_model_apply_meta(nb_model *m, const nb_meta *meta, int count, const char *path) {
    for (int i = 0; i < count; i++) {
        if (strcmp(meta[i].key, META_NORMALIZE)) continue;
        float v[2 * NB_MAX_CHANNELS];
        int n = 0;
        const char *p = meta[i].value;
        char *end;
        while (n < 2 * NB_MAX_CHANNELS) {
            v[n++] = strtof(p, &end);
            if (end == p) break;
            p = end;
            if (*p != ',') break;
            p++;
        }
        if (end == meta[i].value || *end != '\0' || n % 2 || n / 2 != input_channels(m))
            return nb_fail(NB_ERR_FORMAT, "%s: metadata %s is '%s', expected %d means then %d stds",
                           path, META_NORMALIZE, meta[i].value, input_channels(m), input_channels(m));
        nb_status s = nb_model_set_normalization(m, n / 2, v, v + n / 2);
        if (s) return nb_fail_prefix(s, "%s: ", path);
    }
    return NB_OK;
}

nb_status nb_model_save(const nb_model *m, const char *path) {
    nb_status s = nb_model_check_ready(m, "nb_model_save");
    if (s) return s;
    int count;
    nb_named_tensor *t = nb_model_tensors(m, 0, &count);
    if (!t) return NB_ERR_NOMEM;
    /* The class names' entries follow the model's own. */
    enum { MODEL_META = 8, CLASS_META = 160 };
    nb_meta *meta = nb_alloc((MODEL_META + CLASS_META) * sizeof *meta, "metadata");
    if (!meta) {
        nb_free(t);
        return NB_ERR_NOMEM;
    }
    int n_meta = nb_model_meta(m, meta, MODEL_META);
    int n_class = nb_model_class_meta(m, meta + n_meta, CLASS_META);
    if (n_class < 0)
        s = nb_fail(NB_ERR_ARG, "%s: the %d class names take more than %d metadata entries of "
                    "%zu bytes", path, m->n_class_names, CLASS_META, sizeof meta->value);
    else
        s = nb_safetensors_save(path, t, count, meta, n_meta + n_class);
    nb_free(t);
    nb_free(meta);
    return s;
}

/* Whether `path` is a checkpoint written by nb_train: its metadata alone is
 * read (asking for no tensor, with the others allowed). A file that cannot
 * be read is not one, and the full load names what is wrong with it; but
 * running out of memory must not pass for that, or the load would go on to
 * report a checkpoint's optimizer tensors as unexpected. */
static nb_status is_checkpoint(const char *path, nb_meta *meta, int cap, bool *yes) {
    nb_named_tensor none;
    int n = 0;
    *yes = false;
    nb_status s = nb_safetensors_load(path, &none, 0, 1, meta, cap, &n);
    if (s) return s == NB_ERR_NOMEM ? s : NB_OK;
    for (int i = 0; i < n; i++)
        if (!strcmp(meta[i].key, "nabla.checkpoint")) *yes = true;
    return NB_OK;
}

nb_status nb_model_load(nb_model *m, const char *path) {
    nb_status s = nb_model_check_ready(m, "nb_model_load");
    if (s) return s;
    int count, n_meta = 0;
    nb_named_tensor *t = nb_model_tensors(m, 0, &count);
    enum { MAX_META = 200 }; /* the model's entries and the class names' */
    nb_meta *meta = nb_alloc(MAX_META * sizeof *meta, "metadata");
    if (!t || !meta) s = NB_ERR_NOMEM;
    /* A checkpoint's optimizer tensors are the only extras allowed. */
    bool extra = false;
    if (!s) s = is_checkpoint(path, meta, MAX_META, &extra);
    if (!s) s = nb_safetensors_load(path, t, count, extra, meta, MAX_META, &n_meta);
    if (!s) s = nb_model_apply_meta(m, meta, n_meta, path);
    if (!s) s = nb_model_apply_class_meta(m, meta, n_meta, path);
    nb_free(t);
    nb_free(meta);
    return s;
}
