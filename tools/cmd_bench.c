/* cmd_bench.c — `nabla bench`: training and inference speed of a model on
 * synthetic data, and where the time goes, layer by layer.
 *
 * Random inputs of the model's size and random labels; SGD with momentum
 * 0.9, as bench/torch_peer.py trains PyTorch's copy of the model. A few
 * warm-up steps grow every buffer; then rounds of timed steps (the median
 * round is reported), then one profiled round per mode for the per-layer
 * table, then a count of the allocations a steady-state step makes. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static const char help[] =
    "usage: nabla bench --model lenet5|alexnet|resnet18|mlp|logreg|FILE [options]\n"
    "\n"
    "Time training steps (forward, backward, SGD update) and inference\n"
    "batches on random data of the model's input size, and report images per\n"
    "second, then each layer's forward and backward time, GFLOP/s and share\n"
    "of the measured FMA peak.\n"
    "\n"
    "  --model M      a built-in model or a network file (default lenet5)\n"
    "  --batch B      batch size (default 64)\n"
    "  --threads T    worker threads (default 1)\n"
    "  --steps N      timed training steps and inference batches per round\n"
    "                 (default: about 0.4 s of training, twice as many batches)\n"
    "  --rounds R     timed rounds; the median is reported (default 5)\n"
    "  --peak G       FMA peak of one core in GFLOP/s (default: measured)\n"
    "  --classes N    output classes (default 10; alexnet, resnet18 1000)\n"
    "  --no-layers    skip the per-layer profile\n"
    "  --isa T        run SIMD target T (avx512, avx2, neon, generic; default: the best\n"
    "                 this CPU has, or NABLA_ISA's); one the CPU lacks is refused\n"
    "  --json         print one JSON object instead of the table\n";

typedef struct bench_args {
    cli_model_opts mo;
    long batch, steps, rounds;
    float peak;
    bool json, layers;
} bench_args;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- counting allocations ----------------------------------------------------- */

static long alloc_calls;
static void *count_malloc(size_t n) { alloc_calls++; return malloc(n); }
static void *count_realloc(void *p, size_t n) { alloc_calls++; return realloc(p, n); }
static void count_free(void *p) { free(p); }

/* ---- the workload --------------------------------------------------------------- */

typedef struct workload {
    nb_model *m;
    nb_optimizer *opt;
    float *x, *y;
    int batch;
} workload;

typedef enum { MODE_TRAIN, MODE_FWDBWD, MODE_INFER } mode;

/* Forward and backward without the update: what a framework's
 * "forward + backward" benchmark times. */
static nb_status fwdbwd(workload *w) {
    nb_graph *g = nb_model_graph(w->m);
    nb_node *loss = nb_model_loss(w->m);
    nb_status s = nb_feed(nb_model_input(w->m), w->x, w->batch);
    if (!s) s = nb_feed(nb_model_labels(w->m), w->y, w->batch);
    nb_set_training(g, 1);
    if (!s) s = nb_forward(g, loss);
    if (!s) s = nb_backward(g, loss);
    return s;
}

/* Steps of a mode; a diverged loss (random labels, a long run) only
 * re-initialises the weights: the work per step is the same. */
static int run_steps(workload *w, mode md, long steps) {
    for (long i = 0; i < steps; i++) {
        nb_status s = md == MODE_TRAIN ? nb_model_train_step(w->m, w->opt, w->x, w->y, w->batch, NULL)
                      : md == MODE_FWDBWD ? fwdbwd(w)
                                          : nb_model_eval_batch(w->m, w->x, NULL, w->batch, NULL);
        if (s == NB_ERR_NONFINITE) {
            nb_model_init(w->m, 1);
            continue;
        }
        if (s) {
            cli_error("bench: %s", nb_last_error());
            return -1;
        }
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds per step over the rounds. */
static double time_steps(workload *w, mode md, long steps, long rounds) {
    double t[64];
    if (rounds > 64) rounds = 64;
    for (long r = 0; r < rounds; r++) {
        double t0 = now();
        if (run_steps(w, md, steps)) return -1.0;
        t[r] = (now() - t0) / (double)steps;
    }
    qsort(t, (size_t)rounds, sizeof *t, cmp_double);
    return t[rounds / 2];
}

/* ---- the per-layer table ---------------------------------------------------------- */

typedef struct layer_row {
    const nb_node *node;
    char label[64], shape[48];
    double fwd_s, bwd_s, inf_s;        /* per step */
    double fwd_flops, bwd_flops;       /* per step */
} layer_row;

static bool listed(const nb_node *n) {
    const char *op = nb_node_op(n);
    return strcmp(op, "input") && strcmp(op, "param") && strcmp(op, "const") &&
           strcmp(op, "reshape") && strcmp(op, "flatten");
}

static double gflops(double flops, double s) { return s > 0.0 ? flops / s * 1e-9 : 0.0; }

/* ---- options ---------------------------------------------------------------------- */

static int bench_option(cli_args *a, bench_args *b) {
    const char *v;
    long n;
    if (cli_is(a, "--json")) return cli_flag(a) ? (b->json = true, 1) : -1;
    if (cli_is(a, "--no-layers")) return cli_flag(a) ? (b->layers = false, 1) : -1;
    if (cli_is(a, "--isa")) {
        if (!(v = cli_value(a))) return -1;
        if (nb_isa_set(v) != NB_OK) {
            cli_error("--isa: %s", nb_last_error());
            return -1;
        }
        return 1;
    }
    static const char *const valued[] = {"--batch", "--steps", "--rounds", "--peak"};
    int k = -1;
    for (int i = 0; i < 4; i++)
        if (cli_is(a, valued[i])) k = i;
    if (k < 0) return 0;
    if (!(v = cli_value(a))) return -1;
    switch (k) {
    case 0: if (!cli_int("--batch", v, 1, 1 << 20, &n)) return -1; b->batch = n; return 1;
    case 1: if (!cli_int("--steps", v, 1, 1L << 30, &n)) return -1; b->steps = n; return 1;
    case 2: if (!cli_int("--rounds", v, 1, 64, &n)) return -1; b->rounds = n; return 1;
    default: return cli_float("--peak", v, 1e-3, 1e9, &b->peak) ? 1 : -1;
    }
}

static void print_json(const bench_args *b, const workload *w, double train_s, double fb_s, double infer_s,
                       long steps, long train_allocs, long infer_allocs, const layer_row *rows,
                       int n_rows, double other_train, double other_infer, double peak) {
    int threads = nb_get_threads();
    printf("{\"model\": ");
    cli_json_string(nb_model_name(w->m));
    printf(", \"isa\": \"%s\", \"batch\": %d, \"threads\": %d, \"steps\": %ld, \"rounds\": %ld", nb_isa_name(),
           w->batch, threads, steps, b->rounds);
    printf(", \"train_images_per_s\": %.1f, \"infer_images_per_s\": %.1f", w->batch / train_s,
           w->batch / infer_s);
    printf(", \"fwdbwd_images_per_s\": %.1f", w->batch / fb_s);
    printf(", \"train_ms_per_step\": %.4f, \"fwdbwd_ms_per_step\": %.4f, \"infer_ms_per_batch\": %.4f",
           1e3 * train_s, 1e3 * fb_s, 1e3 * infer_s);
    printf(", \"allocs_per_train_step\": %ld, \"allocs_per_infer_batch\": %ld", train_allocs, infer_allocs);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf(", \"peak_rss_kb\": %ld, \"fma_peak_gflops\": %.2f", ru.ru_maxrss, peak);
    printf(", \"layers\": [");
    for (int i = 0; i < n_rows; i++) {
        const layer_row *r = &rows[i];
        printf("%s{\"name\": ", i ? ", " : "");
        cli_json_string(r->label);
        printf(", \"op\": ");
        cli_json_string(nb_node_op(r->node));
        printf(", \"shape\": ");
        cli_json_string(r->shape);
        double pk = peak * threads;
        printf(", \"fwd_ms\": %.4f, \"fwd_gflops\": %.2f, \"fwd_peak_pct\": %.1f", 1e3 * r->fwd_s,
               gflops(r->fwd_flops, r->fwd_s), 100.0 * gflops(r->fwd_flops, r->fwd_s) / pk);
        printf(", \"bwd_ms\": %.4f, \"bwd_gflops\": %.2f, \"bwd_peak_pct\": %.1f", 1e3 * r->bwd_s,
               gflops(r->bwd_flops, r->bwd_s), 100.0 * gflops(r->bwd_flops, r->bwd_s) / pk);
        printf(", \"infer_ms\": %.4f, \"infer_gflops\": %.2f, \"infer_peak_pct\": %.1f}",
               1e3 * r->inf_s, gflops(r->fwd_flops, r->inf_s),
               100.0 * gflops(r->fwd_flops, r->inf_s) / pk);
    }
    printf("], \"other_train_ms\": %.4f, \"other_infer_ms\": %.4f}\n", 1e3 * other_train,
           1e3 * other_infer);
}

static void print_table(const workload *w, double train_s, double fb_s, double infer_s, long steps,
                        long train_allocs, long infer_allocs, const layer_row *rows, int n_rows,
                        double other_train, double other_infer, double peak) {
    int threads = nb_get_threads();
    printf("%s, batch %d, %d thread%s, %ld step%s per round; FMA peak %.1f GFLOP/s per core (%s)\n",
           nb_model_name(w->m), w->batch, threads, threads == 1 ? "" : "s", steps, steps == 1 ? "" : "s", peak,
           nb_isa_name());
    printf("training:  %10.1f images/s  (%.3f ms per step)\n", w->batch / train_s, 1e3 * train_s);
    printf("  forward and backward only: %.1f images/s (%.3f ms)\n", w->batch / fb_s, 1e3 * fb_s);
    printf("inference: %10.1f images/s  (%.3f ms per batch)\n", w->batch / infer_s, 1e3 * infer_s);
    printf("allocations per steady-state step: %ld training, %ld inference\n", train_allocs, infer_allocs);
    if (!n_rows) return;
    printf("\nper layer, ms per step (GFLOP/s, %% of %d-core peak; pooling and activations count one\n"
           "operation per input element; convolutions count the direct form's multiply-adds, so a\n"
           "Winograd layer can pass 100%%):\n", threads);
    printf("  %-26s %-16s %26s %26s %26s\n", "layer", "output", "train forward", "train backward",
           "inference forward");
    double pk = peak * threads;
    for (int i = 0; i < n_rows; i++) {
        const layer_row *r = &rows[i];
        double gf = gflops(r->fwd_flops, r->fwd_s), gb = gflops(r->bwd_flops, r->bwd_s);
        double gi = gflops(r->fwd_flops, r->inf_s);
        printf("  %-26s %-16s %8.3f (%6.1f, %5.1f%%) %8.3f (%6.1f, %5.1f%%) %8.3f (%6.1f, %5.1f%%)\n",
               r->label, r->shape, 1e3 * r->fwd_s, gf, 100.0 * gf / pk, 1e3 * r->bwd_s, gb,
               100.0 * gb / pk, 1e3 * r->inf_s, gi, 100.0 * gi / pk);
    }
    printf("  %-26s %-16s %8.3f %26s %8.3f\n", "other", "(update, feed)", 1e3 * other_train, "",
           1e3 * other_infer);
}

int cmd_bench(int argc, char **argv) {
    bench_args b;
    memset(&b, 0, sizeof b);
    b.batch = 64;
    b.rounds = 5;
    b.layers = true;
    b.mo.model = "lenet5";
    b.mo.threads = 1;
    cli_args a = {argc, argv, 1, "bench", NULL, NULL, help};
    const char *arg;
    while (cli_next(&a, &arg)) {
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(help, stdout);
            return 0;
        }
        int r = cli_model_option(&a, &b.mo);
        if (r == 0) r = bench_option(&a, &b);
        if (r < 0) return EXIT_USAGE;
        if (r == 0) return cli_unknown(&a, arg);
    }
    int code;
    nb_model *m = cli_open_model(&b.mo, &code);
    if (!m) return code;
    /* The peak is measured while the other threads are idle. */
    double peak = b.peak > 0 ? b.peak : nb_isa_fma_peak_gflops(0.2);
    int shape[3];
    int ndim = nb_model_input_shape(m, shape);
    size_t sample = 1;
    for (int i = 0; i < ndim; i++) sample *= (size_t)shape[i];
    workload w = {m, NULL, NULL, NULL, (int)b.batch};
    nb_optimizer_opts oo = nb_optimizer_defaults(NB_OPT_SGD);
    oo.lr = 0.01f;
    oo.momentum = 0.9f;
    w.opt = nb_optimizer_new(&oo, nb_graph_params(nb_model_graph(m), NULL, NULL));
    w.x = malloc((size_t)b.batch * sample * sizeof(float));
    w.y = malloc((size_t)b.batch * sizeof(float));
    layer_row *rows = calloc((size_t)nb_graph_node_count(nb_model_graph(m)), sizeof *rows);
    code = EXIT_RUNTIME;
    if (!w.opt || !w.x || !w.y || !rows) {
        cli_error("bench: %s", w.opt ? "out of memory" : nb_last_error());
        goto done;
    }
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    for (size_t i = 0; i < (size_t)b.batch * sample; i++) w.x[i] = nb_rng_uniform(&rng);
    int classes = nb_model_classes(m);
    for (long i = 0; i < b.batch; i++) w.y[i] = (float)nb_rng_below(&rng, (uint32_t)classes);

    /* Warm up both modes (buffers, caches, the thread pool), and size the
     * rounds from the warm-up's pace when --steps is not given. */
    double t0 = now();
    if (run_steps(&w, MODE_TRAIN, 3) || run_steps(&w, MODE_INFER, 3)) goto done;
    double per_step = (now() - t0) / 3.0;
    long steps = b.steps ? b.steps : (long)ceil(0.4 / per_step);
    if (!b.steps && steps < 2) steps = 2;
    if (!b.steps && steps > 5000) steps = 5000;
    /* Inference batches take about a third of a training step: twice as
     * many, unless the user said how many. */
    const long infer_steps = b.steps ? steps : 2 * steps;
    double train_s = time_steps(&w, MODE_TRAIN, steps, b.rounds);
    double fb_s = train_s > 0 ? time_steps(&w, MODE_FWDBWD, steps, b.rounds) : -1.0;
    double infer_s = fb_s > 0 ? time_steps(&w, MODE_INFER, infer_steps, b.rounds) : -1.0;
    if (infer_s <= 0) goto done;

    /* Allocations of steady-state steps, through the library's allocator. */
    nb_set_allocator(count_malloc, count_realloc, count_free);
    alloc_calls = 0;
    int failed = run_steps(&w, MODE_TRAIN, 4);
    long train_allocs = (alloc_calls + 3) / 4;
    alloc_calls = 0;
    failed = failed || run_steps(&w, MODE_INFER, 4);
    long infer_allocs = (alloc_calls + 3) / 4;
    nb_set_allocator(NULL, NULL, NULL);
    if (failed) goto done;

    int n_rows = 0;
    double other_train = 0.0, other_infer = 0.0;
    if (b.layers) {
        nb_graph *g = nb_model_graph(m);
        long psteps = steps;
        nb_graph_profile(g, 1);
        t0 = now();
        if (run_steps(&w, MODE_TRAIN, psteps)) goto done;
        double train_total = (now() - t0) / (double)psteps;
        for (int i = 0; i < nb_graph_node_count(g); i++) {
            nb_node *n = nb_graph_node(g, i);
            if (!listed(n)) continue;
            layer_row *r = &rows[n_rows++];
            nb_node_profile p = nb_node_profile_of(n);
            r->node = n;
            cli_node_label(g, n, r->label, sizeof r->label);
            nb_shape_str(nb_value(n), r->shape, sizeof r->shape);
            r->fwd_s = p.forward_s / (double)psteps;
            r->bwd_s = p.backward_s / (double)psteps;
            r->fwd_flops = cli_node_flops(n, &r->bwd_flops);
            other_train += -r->fwd_s - r->bwd_s;
        }
        other_train += train_total;
        nb_graph_profile(g, 1);
        t0 = now();
        if (run_steps(&w, MODE_INFER, infer_steps)) goto done;
        double infer_total = (now() - t0) / (double)infer_steps;
        other_infer = infer_total;
        for (int i = 0; i < n_rows; i++) {
            rows[i].inf_s = nb_node_profile_of(rows[i].node).forward_s / (double)infer_steps;
            other_infer -= rows[i].inf_s;
        }
        nb_graph_profile(g, 0);
    }
    if (b.json)
        print_json(&b, &w, train_s, fb_s, infer_s, steps, train_allocs, infer_allocs, rows, n_rows,
                   other_train, other_infer, peak);
    else
        print_table(&w, train_s, fb_s, infer_s, steps, train_allocs, infer_allocs, rows, n_rows,
                    other_train, other_infer, peak);
    code = 0;
done:
    free(rows);
    free(w.x);
    free(w.y);
    nb_optimizer_free(w.opt);
    nb_model_free(m);
    return code;
}
