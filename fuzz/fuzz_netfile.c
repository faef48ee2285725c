/* fuzz_netfile.c — any text as a network file must build a model or name
 * the line that is wrong. A model that builds and is small then takes a
 * training step and a prediction, so that every network the parser accepts
 * is one the operators can run. Allocations over 16 MB are refused (the
 * library reports them as out of memory): a file asking for a vast layer
 * exercises that path instead of exhausting the fuzzer's memory. */
#include "fuzz_common.h"

#define CAP ((size_t)16 << 20)

static void *capped_malloc(size_t n) { return n > CAP ? NULL : malloc(n); }
static void *capped_realloc(void *p, size_t n) { return n > CAP ? NULL : realloc(p, n); }

/* Small enough that a step stays quick under the sanitizers: an input of at
 * most 1024 values and at most 20,000 parameters. */
static void exercise(nb_model *m) {
    int shape[3] = {1, 1, 1};
    int nd = nb_model_input_shape(m, shape);
    size_t sample = 1;
    for (int i = 0; i < nd; i++) sample *= (size_t)shape[i];
    size_t n_params = nb_graph_params(nb_model_graph(m), NULL, NULL);
    if (sample > 1024 || n_params > 20000) return;
    float *x = malloc(2 * sample * sizeof *x);
    if (!x) return;
    for (size_t i = 0; i < 2 * sample; i++) x[i] = (float)(i % 7) * 0.25f - 0.5f;
    float y[2] = {0.0f, nb_model_classes(m) > 1 ? 1.0f : 0.0f};
    nb_optimizer_opts oo = nb_optimizer_defaults(NB_OPT_SGD);
    nb_optimizer *opt = nb_optimizer_new(&oo, n_params);
    if (opt) nb_model_train_step(m, opt, x, y, 2, NULL);
    nb_model_predict(m, x, 1);
    nb_optimizer_free(opt);
    free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    nb_set_allocator(capped_malloc, capped_realloc, free);
    nb_model_config cfg = {.seed = 1};
    nb_model *m = nb_model_parse(text, "fuzz.net", &cfg);
    if (m) exercise(m);
    nb_model_free(m);
    nb_set_allocator(NULL, NULL, NULL);
    free(text);
    return 0;
}
