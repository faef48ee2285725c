/* cmd_eval.c — `nabla eval`: loss, accuracy and confusion matrix of saved
 * weights on a test set. */
#include "cli.h"
#include "cli_data.h"
#include "eval_pictures.h"
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: nabla eval --model M --weights W [options]\n"
    "\n"
    "Evaluate weights on a data set: mean cross-entropy loss, top-1 and top-5\n"
    "accuracy, the accuracy of each class (named by the weights' class names,\n"
    "else the data's) and, up to 20 classes, the confusion matrix (rows: true\n"
    "class, columns: predicted class).\n"
    "\n"
    "  --model M        lenet5, alexnet, resnet18, mlp, logreg or a network file\n"
    "  --weights W      the weights (.safetensors)\n"
    "  --data DIR       MNIST IDX files, CIFAR-10/100 binaries or an image folder\n"
    "                   (default " NB_FASHION_MNIST_DIR ")\n"
    "  --split S        test (default; t10k or val also name it) or train\n"
    "  --labels L       CIFAR-100: fine (default) or coarse\n"
    "  --resize S       folder images: shorter side to S before the centre crop\n"
    "  --skip-bad-images  leave corrupt images out (counted) instead of stopping\n"
    "  --cache            keep decoded folder images in memory (up to half of it)\n"
    "  --max-pixels N   refuse larger images (default 89478485)\n"
    "  --batch B        batch size (default: about 16 MB of input, at most 1000)\n"
    "  --json           print one JSON object: {\"loss\":..,\"accuracy\":..,\"n\":..,...}\n"
    "  --quiet          no live progress bar on a terminal\n"
    "  --confusion F.png  draw the confusion matrix as a heat map\n"
    "  --errors F.png   draw the first misclassified images with their labels\n"
    "  --hidden H       mlp hidden width the weights were trained with\n"
    "  --classes N      output classes the weights were trained with\n"
    "  --normalize M,S  override the normalisation saved with the weights\n"
    "  --threads T      worker threads\n";

/* Confusion matrices are printed up to this many classes. */
#define MAX_PRINTED_CLASSES 20

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

static void print_per_class(const nb_model *m, const nb_dataset_info *info, const size_t *cm,
                            int classes) {
    printf("per class (true class: accuracy, images)\n");
    for (int i = 0; i < classes; i++) {
        size_t n = 0;
        for (int j = 0; j < classes; j++) n += cm[(size_t)i * (size_t)classes + (size_t)j];
        if (!n) continue;
        const char *name = cli_class_name(m, info, i);
        printf("  %3d %-20s %6.2f%%  %zu\n", i, name ? name : "",
               100.0 * (double)cm[(size_t)i * (size_t)classes + (size_t)i] / (double)n, n);
    }
}

static void print_json(const nb_model *m, const nb_dataset_info *info, const nb_eval_result *r,
                       const size_t *cm, int classes) {
    printf("{\"loss\":%.6g,\"accuracy\":%.6g,\"top5\":%.6g,\"n\":%zu,\"correct\":%zu", r->loss,
           r->accuracy, r->top5, r->n, r->correct);
    printf(",\"per_class\":[");
    for (int i = 0, first = 1; i < classes; i++) {
        size_t n = 0;
        for (int j = 0; j < classes; j++) n += cm[(size_t)i * (size_t)classes + (size_t)j];
        if (!n) continue;
        printf("%s{\"class\":%d", first ? "" : ",", i);
        first = 0;
        const char *name = cli_class_name(m, info, i);
        if (name) {
            printf(",\"name\":");
            cli_json_string(name);
        }
        printf(",\"n\":%zu,\"accuracy\":%.6g}", n,
               (double)cm[(size_t)i * (size_t)classes + (size_t)i] / (double)n);
    }
    printf("]");
    if (classes <= MAX_PRINTED_CLASSES) {
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


static int evaluate(nb_model *m, const char *dir, const char *split, const cli_data_opts *dopts,
                    long batch, int json, bool quiet, const eval_pictures *pictures) {
    nb_dataset d = {0};
    nb_dataset_info info;
    int failed = cli_open_data(dir, split, m, dopts, json != 0, &d, &info);
    if (failed) return failed;
    int classes = nb_model_classes(m);
    /* "test" whatever the layout calls it (t10k, val/, test/). */
    const char *split_name = strcmp(split, "train") ? "test" : "train";
    size_t *cm = calloc((size_t)classes * (size_t)classes, sizeof *cm);
    nb_eval_result r;
    cli_progress bar;
    cli_progress_init(&bar, quiet);
    nb_status s = cm ? nb_evaluate_progress(m, &d, (int)batch, &r, cm, cli_progress_update, &bar) : NB_ERR_NOMEM;
    cli_progress_clear(&bar);
    if (!cm) cli_error("out of memory for a %d x %d confusion matrix", classes, classes);
    int code = 0;
    if (s) {
        if (cm) cli_error("%s", nb_last_error());
        code = s == NB_ERR_SHAPE || s == NB_ERR_ARG ? EXIT_USAGE : EXIT_RUNTIME;
    } else if (json) {
        print_json(m, &info, &r, cm, classes);
    } else {
        printf("%s on %s (%s split): loss %.4f  accuracy %.2f%% (%zu/%zu)", nb_model_name(m), dir,
               split_name, r.loss, 100.0 * r.accuracy, r.correct, r.n);
        /* With five classes or fewer every label is in the top five. */
        if (classes > 5) printf("  top-5 %.2f%%", 100.0 * r.top5);
        printf("\n");
        print_per_class(m, &info, cm, classes);
        if (classes <= MAX_PRINTED_CLASSES) print_confusion(cm, classes);
    }
    if (!code && (pictures->confusion || pictures->errors)) {
        char title[256];
        snprintf(title, sizeof title, "%s on the %s split (accuracy %.2f%%)", nb_model_name(m), split_name,
                 100.0 * r.accuracy);
        if (!eval_pictures_draw(pictures, m, &d, &info, cm, title)) code = EXIT_RUNTIME;
    }
    free(cm);
    nb_dataset_free(&d);
    nb_dataset_info_free(&info);
    return code;
}

int cmd_eval(int argc, char **argv) {
    cli_model_opts mo;
    memset(&mo, 0, sizeof mo);
    const char *weights = NULL, *data = NB_FASHION_MNIST_DIR, *split = "test";
    cli_data_opts dopts;
    memset(&dopts, 0, sizeof dopts);
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
        if (r == 0) r = cli_data_option(&a, &dopts);
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
    if (strcmp(split, "t10k") && strcmp(split, "test") && strcmp(split, "val") &&
        strcmp(split, "train")) {
        cli_error("--split: '%s': expected test (or t10k, val) or train", split);
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
        code = cli_normalize(m, &mo) ? evaluate(m, data, split, &dopts, batch, json, quiet, &pictures) : EXIT_USAGE;
    }
    nb_model_free(m);
    return code;
}
