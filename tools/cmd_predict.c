/* cmd_predict.c — `nabla predict`: the class and its probability for each
 * PNG, JPEG or PGM image, brought to the model's input size and channel
 * count by the eval transform (resize the shorter side, centre crop). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: nabla predict --model M --weights W [options] IMAGE...\n"
    "\n"
    "Classify PNG, JPEG or PGM images. An image of the model's input size (28x28\n"
    "for lenet5, mlp and logreg; 224x224 for alexnet) is used as it is; others\n"
    "have their shorter side resized (see --resize) and the centre cropped, as\n"
    "torchvision's Resize + CenterCrop. Colour is converted to the model's\n"
    "channel count.\n"
    "\n"
    "  --model M        lenet5, alexnet, resnet18, mlp, logreg or a network file\n"
    "  --weights W      the weights (.safetensors)\n"
    "  --resize S       shorter side before the crop (default round(size / 0.875))\n"
    "  --top K          print the K most probable classes (default 1)\n"
    "  --json           one JSON object per image: {\"file\":..,\"class\":..,\n"
    "                   \"name\":.. (when the weights name their classes),\n"
    "                   \"prob\":..,\"probs\":[..]}, and with --top K \"top\":[..]\n"
    "  --hidden H       mlp hidden width the weights were trained with\n"
    "  --classes N      output classes the weights were trained with\n"
    "  --normalize M,S  override the normalisation saved with the weights\n"
    "  --threads T      worker threads\n";

/* The top most probable classes, best first (ties to the lower index). */
static void rank(const float *p, int classes, int top, int *order) {
    for (int t = 0; t < top; t++) {
        int best = -1;
        for (int k = 0; k < classes; k++) {
            bool taken = false;
            for (int u = 0; u < t; u++) taken |= order[u] == k;
            if (!taken && (best < 0 || p[k] > p[best])) best = k;
        }
        order[t] = best;
    }
}

static void print_class(const nb_model *m, int k, double p) {
    const char *name = nb_model_class_name(m, k);
    if (name) printf("%s (p = %.4f)", name, p);
    else printf("class %d (p = %.4f)", k, p);
}

static void print_result(const nb_model *m, const char *file, const float *p, int classes,
                         int top, int json) {
    int order[64] = {0};
    if (top > classes) top = classes;
    rank(p, classes, top, order);
    int best = order[0];
    if (!json) {
        printf("%s: ", file);
        for (int t = 0; t < top; t++) {
            if (t) printf(", ");
            print_class(m, order[t], (double)p[order[t]]);
        }
        printf("\n");
        return;
    }
    printf("{\"file\":");
    cli_json_string(file);
    printf(",\"class\":%d", best);
    if (nb_model_class_name(m, best)) {
        printf(",\"name\":");
        cli_json_string(nb_model_class_name(m, best));
    }
    printf(",\"prob\":%.6g,\"probs\":[", (double)p[best]);
    for (int k = 0; k < classes; k++) printf("%s%.6g", k ? "," : "", (double)p[k]);
    printf("]");
    if (top > 1) {
        printf(",\"top\":[");
        for (int t = 0; t < top; t++) {
            printf("%s{\"class\":%d", t ? "," : "", order[t]);
            if (nb_model_class_name(m, order[t])) {
                printf(",\"name\":");
                cli_json_string(nb_model_class_name(m, order[t]));
            }
            printf(",\"prob\":%.6g}", (double)p[order[t]]);
        }
        printf("]");
    }
    printf("}\n");
}

/* Classify each image on its own; a bad image is reported and skipped. */
static int predict(nb_model *m, char **files, int n, int resize, int top, int json) {
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
    uint8_t *px = malloc((size_t)c * plane);
    if (!x || !px) {
        free(x);
        free(px);
        cli_error("out of memory for a %dx%dx%d image", c, h, w);
        return EXIT_RUNTIME;
    }
    int code = 0;
    for (int i = 0; i < n; i++) {
        nb_image im;
        nb_status s = nb_image_decode(files[i], 0, &im);
        if (!s) s = nb_image_eval_transform(&im, c, h, w, resize, px);
        nb_image_free(&im);
        if (s) {
            cli_error("%s", nb_last_error());
            code = EXIT_RUNTIME;
            continue;
        }
        /* Divided, as nb_dataset_batch does, so a pixel is the same float. */
        for (size_t k = 0; k < (size_t)c * plane; k++) x[k] = (float)px[k] / 255.0f;
        for (int ch = 0; norm && ch < c; ch++)
            for (size_t k = 0; k < plane; k++)
                x[(size_t)ch * plane + k] = (x[(size_t)ch * plane + k] - mean[ch]) / std[ch];
        const nb_tensor *p = nb_model_predict(m, x, 1);
        if (!p) {
            cli_error("%s: %s", files[i], nb_last_error());
            code = EXIT_RUNTIME;
            continue;
        }
        print_result(m, files[i], p->data, p->shape[1], top, json);
    }
    free(x);
    free(px);
    return code;
}

int cmd_predict(int argc, char **argv) {
    cli_model_opts mo;
    memset(&mo, 0, sizeof mo);
    const char *weights = NULL;
    int json = 0, n_files = 0;
    long resize = 0, top = 1;
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
        else if (cli_is(&a, "--top")) {
            const char *v = cli_value(&a);
            code = v && cli_int("--top", v, 1, 64, &top) ? -1 : EXIT_USAGE;
        } else if (cli_is(&a, "--resize")) {
            const char *v = cli_value(&a);
            code = v && cli_int("--resize", v, 1, 1 << 16, &resize) ? -1 : EXIT_USAGE;
        }
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
            code = cli_normalize(m, &mo) ? predict(m, files, n_files, (int)resize, (int)top, json) : EXIT_USAGE;
        }
        nb_model_free(m);
    }
    free(files);
    return code;
}
