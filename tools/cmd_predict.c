/* cmd_predict.c — `nabla predict`: the class and its probability for each
 * PNG or PGM image, read at the model's input size and channel count. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: nabla predict --model M --weights W [options] IMAGE...\n"
    "\n"
    "Classify PNG or PGM images. Each must have the model's input size (28x28\n"
    "for lenet5, mlp and logreg; 224x224 for alexnet); colour is converted to\n"
    "the model's channel count.\n"
    "\n"
    "  --model M        lenet5, alexnet, mlp, logreg or a network file\n"
    "  --weights W      the weights (.safetensors)\n"
    "  --json           one JSON object per image:\n"
    "                   {\"file\":..,\"class\":..,\"prob\":..,\"probs\":[..]}\n"
    "  --hidden H       mlp hidden width the weights were trained with\n"
    "  --classes N      output classes the weights were trained with\n"
    "  --normalize M,S  override the normalisation saved with the weights\n"
    "  --threads T      worker threads\n";

static void print_result(const char *file, const float *p, int classes, int json) {
    int best = 0;
    for (int k = 1; k < classes; k++)
        if (p[k] > p[best]) best = k;
    if (!json) {
        printf("%s: class %d (p = %.4f)\n", file, best, (double)p[best]);
        return;
    }
    printf("{\"file\":");
    cli_json_string(file);
    printf(",\"class\":%d,\"prob\":%.6g,\"probs\":[", best, (double)p[best]);
    for (int k = 0; k < classes; k++) printf("%s%.6g", k ? "," : "", (double)p[k]);
    printf("]}\n");
}

/* Classify each image on its own; a bad image is reported and skipped. */
static int predict(nb_model *m, char **files, int n, int json) {
    int shape[3];
    if (nb_model_input_shape(m, shape) != 3) {
        cli_error("predict: model '%s' takes a vector of %d features, not an image: give its "
                  "network file an 'input C H W' line", nb_model_name(m), shape[0]);
        return EXIT_USAGE;
    }
    int c = shape[0], h = shape[1], w = shape[2];
    if (c != 1 && c != 3) {
        cli_error("predict: model '%s' takes %d-channel input; images give 1 or 3 channels",
                  nb_model_name(m), c);
        return EXIT_USAGE;
    }
    const float *mean, *std;
    int norm = nb_model_normalization(m, &mean, &std);
    size_t plane = (size_t)h * (size_t)w;
    float *x = malloc((size_t)c * plane * sizeof *x);
    if (!x) {
        cli_error("out of memory for a %dx%dx%d image", c, h, w);
        return EXIT_RUNTIME;
    }
    int code = 0;
    for (int i = 0; i < n; i++) {
        if (nb_image_load(files[i], c, h, w, x)) {
            cli_error("%s", nb_last_error());
            code = EXIT_RUNTIME;
            continue;
        }
        for (int ch = 0; norm && ch < c; ch++)
            for (size_t k = 0; k < plane; k++)
                x[(size_t)ch * plane + k] = (x[(size_t)ch * plane + k] - mean[ch]) / std[ch];
        const nb_tensor *p = nb_model_predict(m, x, 1);
        if (!p) {
            cli_error("%s: %s", files[i], nb_last_error());
            code = EXIT_RUNTIME;
            continue;
        }
        print_result(files[i], p->data, p->shape[1], json);
    }
    free(x);
    return code;
}

int cmd_predict(int argc, char **argv) {
    cli_model_opts mo;
    memset(&mo, 0, sizeof mo);
    const char *weights = NULL;
    int json = 0, n_files = 0;
    char **files = calloc((size_t)argc, sizeof *files);
    if (!files) return EXIT_RUNTIME;
    cli_args a = {argc, argv, 1, "predict", NULL, NULL, help};
    const char *arg;
    int code = -1;
    while (code < 0 && cli_next(&a, &arg)) {
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(help, stdout);
            code = 0;
            break;
        }
        int r = cli_model_option(&a, &mo);
        if (r < 0) code = EXIT_USAGE;
        else if (r > 0) continue;
        else if (cli_is(&a, "--json")) json = 1, code = cli_flag(&a) ? -1 : EXIT_USAGE;
        else if (cli_is(&a, "--weights")) code = (weights = cli_value(&a)) ? -1 : EXIT_USAGE;
        else if (!a.name) files[n_files++] = argv[a.i - 1];
        else code = cli_unknown(&a, arg);
    }
    if (code < 0 && !weights) {
        cli_error("predict: --weights is required (the .safetensors file to use)");
        code = EXIT_USAGE;
    }
    if (code < 0 && !n_files) {
        cli_error("predict: no images given (nabla predict --model M --weights W IMAGE...)");
        code = EXIT_USAGE;
    }
    nb_model *m = code < 0 ? cli_open_model(&mo, &code) : NULL;
    if (m) {
        if (nb_model_load(m, weights)) {
            cli_error("%s", nb_last_error());
            code = EXIT_RUNTIME;
        } else {
            code = cli_normalize(m, &mo) ? predict(m, files, n_files, json) : EXIT_USAGE;
        }
        nb_model_free(m);
    }
    free(files);
    return code;
}
