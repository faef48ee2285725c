/* profile.c — reading a graph's per-node profile (nb_graph_profile): a
 * label for each node, its operation count, and the report `nabla train
 * --profile` prints. `nabla bench` builds its per-layer table on the same
 * helpers. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static double numel(const nb_node *n) { return (double)nb_tensor_numel(nb_value(n)); }

double cli_node_flops(const nb_node *n, double *backward) {
    const char *op = nb_node_op(n);
    const nb_node *x = nb_node_input(n, 0), *w = nb_node_input(n, 1);
    double fwd = 0.0, bwd = 0.0;
    /* Products: 2 per multiply-add. Backward makes one product for the
     * weights and, when the input needs it, one for the input's gradient. */
    double macs = -1.0;
    if (!strcmp(op, "conv2d") && w) {
        const nb_tensor *wt = nb_value(w);
        macs = numel(n) * wt->shape[1] * wt->shape[2] * wt->shape[3];
    } else if (!strcmp(op, "linear") && w) {
        macs = numel(n) * nb_value(w)->shape[1];
    } else if (!strcmp(op, "matmul") && x) {
        const nb_tensor *y = nb_value(n);
        /* op(A) is rows x k, so A holds rows*k elements either way. */
        macs = numel(n) * (numel(x) / (double)y->shape[0]);
    }
    if (macs >= 0.0) {
        fwd = 2.0 * macs;
        bwd = (w && nb_grad(w)->data ? fwd : 0.0) + (x && nb_grad(x)->data ? fwd : 0.0);
    } else if (x) {
        /* Everything else is memory-bound: one operation per input element. */
        fwd = numel(x);
        bwd = nb_grad(x)->data ? fwd : 0.0;
    }
    if (backward) *backward = bwd;
    return fwd;
}

/* The layer a parameter belongs to: "conv1" for "conv1.weight". */
static void param_prefix(const nb_node *p, char *out, size_t size) {
    snprintf(out, size, "%s", nb_node_name(p));
    char *dot = strrchr(out, '.');
    if (dot) *dot = '\0';
}

void cli_node_label(const nb_graph *g, const nb_node *n, char *out, size_t size) {
    const nb_node *w = nb_node_input(n, 1);
    if (w && !strcmp(nb_node_op(w), "param")) {
        param_prefix(w, out, size);
        return;
    }
    /* A parameterless op is named after the nearest layer with weights
     * upstream of it along its first input: "relu@conv1". */
    char layer[64] = "";
    for (const nb_node *up = nb_node_input(n, 0); up; up = nb_node_input(up, 0)) {
        const nb_node *uw = nb_node_input(up, 1);
        if (uw && !strcmp(nb_node_op(uw), "param")) {
            param_prefix(uw, layer, sizeof layer);
            break;
        }
    }
    (void)g;
    snprintf(out, size, "%s%s%s", nb_node_op(n), layer[0] ? "@" : "", layer);
}

void cli_profile_print(nb_graph *g, FILE *out) {
    int count = nb_graph_node_count(g);
    double total = 0.0;
    for (int i = 0; i < count; i++) {
        nb_node_profile p = nb_node_profile_of(nb_graph_node(g, i));
        total += p.forward_s + p.backward_s;
    }
    fprintf(out, "profile: %.3f s in operators\n", total);
    if (total <= 0.0) return;
    /* By operator: each name once, in order of first appearance. */
    fprintf(out, "  %-26s %10s %10s %10s %7s\n", "operator", "forward s", "backward s", "total s", "share");
    for (int i = 0; i < count; i++) {
        const char *op = nb_node_op(nb_graph_node(g, i));
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) seen = !strcmp(op, nb_node_op(nb_graph_node(g, j)));
        if (seen) continue;
        double f = 0.0, b = 0.0;
        for (int j = i; j < count; j++) {
            const nb_node *n = nb_graph_node(g, j);
            if (strcmp(op, nb_node_op(n))) continue;
            nb_node_profile p = nb_node_profile_of(n);
            f += p.forward_s, b += p.backward_s;
        }
        if (f + b <= 0.0) continue;
        fprintf(out, "  %-26s %10.3f %10.3f %10.3f %6.1f%%\n", op, f, b, f + b, 100.0 * (f + b) / total);
    }
    fprintf(out, "  %-26s %10s %10s %10s %7s %10s %10s\n", "node", "forward s", "backward s", "total s",
            "share", "fwd calls", "bwd calls");
    for (int i = 0; i < count; i++) {
        const nb_node *n = nb_graph_node(g, i);
        nb_node_profile p = nb_node_profile_of(n);
        if (p.forward_calls == 0 && p.backward_calls == 0) continue;
        char label[96];
        cli_node_label(g, n, label, sizeof label);
        fprintf(out, "  %-26s %10.3f %10.3f %10.3f %6.1f%% %10ld %10ld\n", label, p.forward_s,
                p.backward_s, p.forward_s + p.backward_s,
                100.0 * (p.forward_s + p.backward_s) / total, p.forward_calls, p.backward_calls);
    }
}
