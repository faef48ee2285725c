/* cmd_summary.c — `nabla summary`: the layer table of a model, in the manner
 * of torchinfo and Darknet: each layer's name, operator, output shape,
 * parameters and multiply-adds for one image, then the totals. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: nabla summary --model M [--input CxHxW] [--json]\n"
    "\n"
    "Print each layer of a model with its output shape for one image, its\n"
    "parameter count and its multiply-adds, then the totals.\n"
    "\n"
    "  --model M        lenet5, alexnet, resnet18, mlp, logreg or a network file\n"
    "  --input CxHxW    the image size to build the model for (default: the\n"
    "                   model's own, e.g. 3x224x224 for alexnet)\n"
    "  --json           print one JSON object instead of the table\n"
    "  --hidden H       mlp hidden width (default 128)\n"
    "  --classes N      output classes (default 10; alexnet 1000)\n";

/* "3x224x224" */
static bool parse_input(const char *s, int *shape) {
    char tail;
    if (sscanf(s, "%dx%dx%d%c", &shape[0], &shape[1], &shape[2], &tail) == 3 && shape[0] > 0 &&
        shape[1] > 0 && shape[2] > 0 && shape[0] <= 4096 && shape[1] <= 65536 && shape[2] <= 65536)
        return true;
    cli_error("--input: '%s': expected CxHxW, e.g. 3x224x224", s);
    return false;
}

/* Multiply-adds of one forward at the current shapes (cli_node_flops counts
 * two operations per multiply-add for the products, and the memory-bound
 * ops, which torchinfo does not count, are left out). */
static double node_macs(const nb_node *n) {
    const char *op = nb_node_op(n);
    if (strcmp(op, "conv2d") && strcmp(op, "linear") && strcmp(op, "matmul")) return 0.0;
    return cli_node_flops(n, NULL) / 2.0;
}

static size_t node_params(const nb_node *n) {
    size_t total = 0;
    for (int i = 0; nb_node_input(n, i); i++) {
        const nb_node *in = nb_node_input(n, i);
        if (!strcmp(nb_node_op(in), "param")) total += nb_tensor_numel(nb_value(in));
    }
    return total;
}

static bool is_layer(const nb_node *n) {
    const char *op = nb_node_op(n);
    return strcmp(op, "param") && strcmp(op, "input") && strcmp(op, "const");
}

/* "1,234,567" */
static const char *grouped(double v, char *buf, size_t size) {
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", v);
    size_t n = strlen(digits), o = 0;
    for (size_t i = 0; i < n && o + 2 < size; i++) {
        if (i && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* One row of the summary: a layer's output node and what it costs. */
typedef struct layer_row {
    const char *label, *op;
    const nb_tensor *output;
    size_t params;
    double macs;
} layer_row;

typedef void (*row_fn)(const layer_row *row, int index);

/* Call fn for each layer among the first last + 1 nodes, in order, and sum
 * their parameters and multiply-adds. */
static void for_each_layer(nb_model *m, int last, row_fn fn, size_t *params, double *macs) {
    nb_graph *g = nb_model_graph(m);
    char label[64];
    int count = 0;
    *params = 0, *macs = 0;
    for (int i = 0; i <= last; i++) {
        nb_node *n = nb_graph_node(g, i);
        if (!is_layer(n)) continue;
        cli_node_label(g, n, label, sizeof label);
        layer_row row = {label, nb_node_op(n), nb_value(n), node_params(n), node_macs(n)};
        *params += row.params;
        *macs += row.macs;
        fn(&row, count++);
    }
}

static void table_row(const layer_row *r, int index) {
    (void)index;
    char shape[64], a[32], b[32];
    printf("%-20s %-18s %-20s %12s %16s\n", r->label, r->op, nb_shape_str(r->output, shape, sizeof shape),
           r->params ? grouped((double)r->params, a, sizeof a) : "-",
           r->macs > 0 ? grouped(r->macs, b, sizeof b) : "-");
}

static void print_table(nb_model *m, int last) {
    char a[32], b[32];
    int in_shape[3], nd = nb_model_input_shape(m, in_shape);
    printf("%s: input ", nb_model_name(m));
    for (int i = 0; i < nd; i++) printf("%s%d", i ? "x" : "", in_shape[i]);
    printf("\n\n%-20s %-18s %-20s %12s %16s\n", "layer", "type", "output shape", "params", "mult-adds");
    double macs;
    size_t params;
    for_each_layer(m, last, table_row, &params, &macs);
    printf("\ntotal params: %s (%.2f MB as float32)\n", grouped((double)params, a, sizeof a),
           (double)params * 4.0 / 1e6);
    printf("total mult-adds per image: %s (%.2f M)\n", grouped(macs, b, sizeof b), macs / 1e6);
}

static void json_row(const layer_row *r, int index) {
    printf("%s{\"name\":", index ? "," : "");
    cli_json_string(r->label);
    printf(",\"type\":");
    cli_json_string(r->op);
    printf(",\"output\":[");
    for (int d = 0; d < r->output->ndim; d++) printf("%s%d", d ? "," : "", r->output->shape[d]);
    printf("],\"params\":%zu,\"mult_adds\":%.0f}", r->params, r->macs);
}

static void print_json(nb_model *m, int last) {
    int in_shape[3], nd = nb_model_input_shape(m, in_shape);
    printf("{\"model\":");
    cli_json_string(nb_model_name(m));
    printf(",\"input\":[");
    for (int i = 0; i < nd; i++) printf("%s%d", i ? "," : "", in_shape[i]);
    printf("],\"layers\":[");
    double macs;
    size_t params;
    for_each_layer(m, last, json_row, &params, &macs);
    printf("],\"params\":%zu,\"mult_adds\":%.0f}\n", params, macs);
}

int cmd_summary(int argc, char **argv) {
    cli_model_opts mo;
    memset(&mo, 0, sizeof mo);
    int json = 0;
    cli_args a = {argc, argv, 1, "summary", NULL, NULL, help};
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
        } else if (cli_is(&a, "--input")) {
            if (!(v = cli_value(&a)) || !parse_input(v, mo.cfg.input)) return EXIT_USAGE;
        } else {
            return cli_unknown(&a, arg);
        }
    }
    int code;
    nb_model *m = cli_open_model(&mo, &code);
    if (!m) return code;
    /* One image through the network sets every shape to a batch of one. */
    int shape[3], nd = nb_model_input_shape(m, shape);
    size_t sample = 1;
    for (int i = 0; i < nd; i++) sample *= (size_t)shape[i];
    float *x = calloc(sample, sizeof *x);
    if (!x || !nb_model_predict(m, x, 1)) {
        cli_error("%s", x ? nb_last_error() : "out of memory");
        free(x);
        nb_model_free(m);
        return EXIT_RUNTIME;
    }
    free(x);
    /* The layers end at the logits; the head (labels, loss, softmax of the
     * logits) is not part of the network. */
    nb_graph *g = nb_model_graph(m);
    int last = 0;
    for (int i = 0; i < nb_graph_node_count(g); i++)
        if (nb_graph_node(g, i) == nb_model_logits(m)) last = i;
    if (json) print_json(m, last);
    else print_table(m, last);
    nb_model_free(m);
    return 0;
}
