/* fuzz_checkpoint.c — any bytes as a checkpoint to resume from, and as
 * weights to load: a small model either resumes and finishes its run or
 * says why it cannot. The seeds in fuzz/corpus/checkpoint are real
 * checkpoints of this model, written by
 *     nabla train --model fuzz/corpus/netfile/tiny.net --data DIR --batch 4
 *         --optimizer adam --checkpoint FILE ...
 * on ten 4x4 MNIST-format images, so the fuzzer starts past the header. */
#include "fuzz_common.h"

static const char net[] = "input 1 4 4\nflatten\nlinear name=fc out=3\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_temp(data, size, ".ckpt");
    if (!path) return 0;
    static uint8_t images[10 * 16];
    static int32_t labels[10];
    for (int i = 0; i < 10 * 16; i++) images[i] = (uint8_t)(i * 37);
    for (int i = 0; i < 10; i++) labels[i] = i % 3;
    nb_dataset d = {10, 1, 4, 4, images, labels, NULL};
    nb_model_config cfg = {.seed = 1};
    nb_model *m = nb_model_parse(net, "tiny.net", &cfg);
    nb_optimizer_opts oo = nb_optimizer_defaults(NB_OPT_ADAM);
    nb_optimizer *opt = m ? nb_optimizer_new(&oo, nb_graph_params(nb_model_graph(m), NULL, NULL)) : NULL;
    if (opt) {
        nb_train_opts o = nb_train_defaults();
        o.epochs = 2;
        o.batch = 4;
        o.test = &d;
        o.resume = path;
        nb_train(m, opt, &d, &o);
        nb_model_load(m, path);
    }
    nb_optimizer_free(opt);
    nb_model_free(m);
    unlink(path);
    return 0;
}
