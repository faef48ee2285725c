/* train_lenet5.c — the library's network API in one page: build LeNet-5,
 * train it for a few hundred steps on Fashion-MNIST with SGD and momentum,
 * evaluate it, and save the weights under PyTorch's names.
 *
 *     ./build/examples/train_lenet5 [DATA_DIR [STEPS [OUT.safetensors]]]
 */
#include <nabla.h>

#include <stdio.h>
#include <stdlib.h>

static void report(const nb_epoch_report *r, void *user) {
    (void)user;
    printf("epoch %d: %zu images, train loss %.4f, test accuracy %.2f%%, %.0f images/s\n",
           r->epoch, r->samples, r->train_loss, 100.0 * r->test_accuracy, r->images_per_s);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : NB_FASHION_MNIST_DIR;
    long steps = argc > 2 ? atol(argv[2]) : 300;
    nb_dataset train = {0}, test = {0};
    nb_model *model = NULL;
    nb_optimizer *opt = NULL;
    int code = 1;

    if (nb_dataset_load_mnist(dir, "train", &train) || nb_dataset_load_mnist(dir, "t10k", &test))
        goto fail;
    /* The built-in LeNet-5, initialised as PyTorch would (seed 1). The same
     * network could come from a file: nb_model_parse_file("examples/lenet5.net", &cfg). */
    nb_model_config cfg = {.seed = 1};
    model = nb_model_create("lenet5", &cfg);
    if (!model) goto fail;

    /* Every parameter sits in one block, so the optimizer is one loop. */
    nb_optimizer_opts o = nb_optimizer_defaults(NB_OPT_SGD);
    o.lr = 0.05f;
    o.momentum = 0.9f;
    opt = nb_optimizer_new(&o, nb_graph_params(nb_model_graph(model), NULL, NULL));
    if (!opt) goto fail;

    nb_train_opts t = nb_train_defaults(); /* batch 64, shuffled each epoch */
    t.steps = steps;
    t.test = &test;
    t.on_epoch = report;
    if (nb_train(model, opt, &train, &t)) goto fail;

    nb_eval_result r;
    if (nb_evaluate(model, &test, 1000, &r, NULL)) goto fail;
    printf("test: loss %.4f, accuracy %.2f%% (%zu of %zu)\n", r.loss, 100.0 * r.accuracy,
           r.correct, r.n);
    if (argc > 3) {
        if (nb_model_save(model, argv[3])) goto fail;
        printf("saved %s\n", argv[3]);
    }
    code = 0;
fail:
    if (code) fprintf(stderr, "train_lenet5: %s\n", nb_last_error());
    nb_optimizer_free(opt);
    nb_model_free(model);
    nb_dataset_free(&train);
    nb_dataset_free(&test);
    return code;
}
