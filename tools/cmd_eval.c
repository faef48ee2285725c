/* cmd_eval.c — `nabla eval`: loss, accuracy and confusion matrix of saved
 * weights on a test set. */
#include "cli.h"
#include "eval_pictures.h"
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: nabla eval --model M --weights W [options]\n"
    "\n"
    "Evaluate weights on MNIST-format data: mean cross-entropy loss, accuracy\n"
    "and the confusion matrix (rows: true class, columns: predicted class).\n"
    "\n"
    "  --model M        lenet5, alexnet, mlp, logreg or a network file\n"
    "  --weights W      the weights (.safetensors)\n"
    "  --data DIR       data directory (default " NB_FASHION_MNIST_DIR ")\n"
    "  --split S        t10k (default) or train\n"
    "  --batch B        batch size (default: about 16 MB of input, at most 1000)\n"
    "  --json           print one JSON object: {\"loss\":..,\"accuracy\":..,\"n\":..,...}\n"
    "  --quiet          no live progress bar on a terminal\n"
    "  --confusion F.png  draw the confusion matrix as a heat map\n"
    "  --errors F.png   draw the first misclassified images with their labels\n"
    "  --hidden H       mlp hidden width the weights were trained with\n"
    "  --classes N      output classes the weights were trained with\n"
    "  --normalize M,S  override the normalisation saved with the weights\n"
    "  --threads T      worker threads\n";

static void print_confusion(const size_t *cm, int classes) {
    printf("confusion matrix (rows: true class, columns: predicted class)\n      ");
    for (int j = 0; j < classes; j++) printf(" %5d", j);
    printf("\n");
    for (int i = 0; i < classes; i++) {
        printf("  %3d ", i);
        for (int j = 0; j < classes; j++) printf(" %5zu", cm[(size_t)i * (size_t)classes + (size_t)j]);
        printf("\n");
    }
}

static void print_json(const nb_eval_result *r, const size_t *cm, int classes) {
    printf("{\"loss\":%.6g,\"accuracy\":%.6g,\"n\":%zu,\"correct\":%zu", r->loss, r->accuracy, r->n,
           r->correct);
    if (cm) {
        printf(",\"confusion\":[");
        for (int i = 0; i < classes; i++) {
            printf("%s[", i ? "," : "");
            for (int j = 0; j < classes; j++)
                printf("%s%zu", j ? "," : "", cm[(size_t)i * (size_t)classes + (size_t)j]);
            printf("]");
        }
        printf("]");
    }
    printf("}\n");
}

/* Confusion matrices are printed up to this many classes. */
#define MAX_PRINTED_CLASSES 20

static int evaluate(nb_model *m, const char *dir, const char *split, long batch, int json,
                    bool quiet, const eval_pictures *pictures) {
    nb_dataset d = {0};
    if (nb_dataset_load_mnist(dir, split, &d)) {
        cli_error("%s", nb_last_error());
        return EXIT_RUNTIME;
    }
    int classes = nb_model_classes(m);
    size_t *cm = classes <= MAX_PRINTED_CLASSES || pictures->confusion
                     ? calloc((size_t)classes * (size_t)classes, sizeof *cm) : NULL;
    nb_eval_result r;
    cli_progress bar;
    cli_progress_init(&bar, quiet);
    nb_status s = nb_evaluate_progress(m, &d, (int)batch, &r, cm, cli_progress_update, &bar);
    cli_progress_clear(&bar);
    int code = 0;
    if (s) {
        cli_error("%s", nb_last_error());
        code = s == NB_ERR_SHAPE || s == NB_ERR_ARG ? EXIT_USAGE : EXIT_RUNTIME;
    } else if (json) {
        print_json(&r, cm, classes);
    } else {
        printf("%s on %s/%s: loss %.4f  accuracy %.2f%% (%zu/%zu)\n", nb_model_name(m), dir, split,
               r.loss, 100.0 * r.accuracy, r.correct, r.n);
        if (cm && classes <= MAX_PRINTED_CLASSES) print_confusion(cm, classes);
    }
    if (!code && (pictures->confusion || pictures->errors)) {
        char title[256];
        snprintf(title, sizeof title, "%s on %s (accuracy %.2f%%)", nb_model_name(m), split,
                 100.0 * r.accuracy);
        if (!eval_pictures_draw(pictures, m, &d, dir, cm, title)) code = EXIT_RUNTIME;
    }
    free(cm);
    nb_dataset_free(&d);
    return code;
}

int cmd_eval(int argc, char **argv) {
    cli_model_opts mo;
    memset(&mo, 0, sizeof mo);
    const char *weights = NULL, *data = NB_FASHION_MNIST_DIR, *split = "t10k";
    long batch = 0; /* the library picks */
    int json = 0;
    bool quiet = false;
    eval_pictures pictures = {NULL, NULL};
    cli_args a = {argc, argv, 1, "eval", NULL, NULL, help};
    const char *arg, *v;
    while (cli_next(&a, &arg)) {
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(help, stdout);
            return 0;
        }
        int r = cli_model_option(&a, &mo);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        if (cli_is(&a, "--json")) {
            if (!cli_flag(&a)) return EXIT_USAGE;
            json = 1;
        } else if (cli_is(&a, "--confusion") || cli_is(&a, "--errors")) {
            bool confusion = cli_is(&a, "--confusion");
            if (!(v = cli_value(&a)) || !eval_picture_path(confusion ? "--confusion" : "--errors", v))
                return EXIT_USAGE;
            *(confusion ? &pictures.confusion : &pictures.errors) = v;
        } else if (cli_is(&a, "--quiet")) {
            if (!cli_flag(&a)) return EXIT_USAGE;
            quiet = true;
        } else if (cli_is(&a, "--weights") || cli_is(&a, "--data") || cli_is(&a, "--split") ||
                   cli_is(&a, "--batch")) {
            if (!(v = cli_value(&a))) return EXIT_USAGE;
            if (cli_is(&a, "--weights")) weights = v;
            else if (cli_is(&a, "--data")) data = v;
            else if (cli_is(&a, "--split")) split = v;
            else if (!cli_int("--batch", v, 1, 1 << 20, &batch)) return EXIT_USAGE;
        } else {
            return cli_unknown(&a, arg);
        }
    }
    if (strcmp(split, "t10k") && strcmp(split, "train")) {
        cli_error("--split: '%s': expected t10k or train", split);
        return EXIT_USAGE;
    }
    if (!weights) {
        cli_error("eval: --weights is required (the .safetensors file to evaluate)");
        return EXIT_USAGE;
    }
    int code;
    nb_model *m = cli_open_model(&mo, &code);
    if (!m) return code;
    if (nb_model_load(m, weights)) {
        cli_error("%s", nb_last_error());
        code = EXIT_RUNTIME;
    } else {
        code = cli_normalize(m, &mo) ? evaluate(m, data, split, batch, json, quiet, &pictures) : EXIT_USAGE;
    }
    nb_model_free(m);
    return code;
}
