/* mpi_overlap.c — data-parallel training steps per second, with the
 * gradient buckets reduced while backward runs (overlap), the same buckets
 * reduced after it, and one allreduce of the whole block after it; and,
 * started alone, the same steps in one process, the baseline of the
 * scaling figures (bench/mpi_scaling.sh runs them all).
 *
 *     mpirun -np 2 ./build/bench/mpi_overlap [lenet5|alexnet] [steps] [global batch]
 *     OMP_NUM_THREADS=2 ./build/bench/mpi_overlap lenet5
 *
 * Defaults: lenet5, 30 steps, batch 64 (alexnet: 6 steps, batch 16, at
 * 224x224). Synthetic images: the speed does not depend on what they show.
 * The first step is a warm-up and not timed. Rank 0 prints one line a mode:
 *     lenet5 2 ranks x 1 thread, overlap: 41.2 steps/s, 2637 images/s
 */
#include "nabla.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct timing {
    long steps;
    double first, last; /* seconds into training after the first step, and after the last */
} timing;

static void on_progress(const nb_progress *p, void *user) {
    timing *t = user;
    if (p->phase != NB_PHASE_TRAIN) return;
    if (p->step == 1) t->first = p->seconds;
    if (p->step == t->steps) t->last = p->seconds;
}

/* steps/s over steps 2..steps of a fresh model, or a negative number. */
static double measure(const char *model, const nb_dataset *data, int batch, long steps,
                      nb_dist *dist) {
    nb_model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.classes = 10;
    nb_model *m = nb_model_create(model, &cfg);
    if (!m) return -1;
    nb_optimizer_opts oo = nb_optimizer_defaults(NB_OPT_SGD);
    oo.lr = 0.001f;
    oo.momentum = 0.9f;
    nb_optimizer *opt = nb_optimizer_new(&oo, nb_graph_params(nb_model_graph(m), NULL, NULL));
    timing t = {steps, 0, 0};
    nb_train_opts o = nb_train_defaults();
    o.steps = steps;
    o.batch = batch;
    o.shuffle = 0;
    o.on_progress = on_progress;
    o.user = &t;
    o.distributed = dist;
    nb_status s = opt ? nb_train(m, opt, data, &o) : NB_ERR_NOMEM;
    if (s) fprintf(stderr, "mpi_overlap: %s\n", nb_last_error());
    nb_optimizer_free(opt);
    nb_model_free(m);
    return s || t.last <= t.first ? -1 : (double)(steps - 1) / (t.last - t.first);
}

int main(int argc, char **argv) {
    const char *model = argc > 1 ? argv[1] : "lenet5";
    bool alexnet = !strcmp(model, "alexnet");
    long steps = argc > 2 ? atol(argv[2]) : alexnet ? 6 : 30;
    int batch = argc > 3 ? atoi(argv[3]) : alexnet ? 16 : 64;
    if (steps < 2 || batch < 1) {
        fprintf(stderr, "usage: mpi_overlap [lenet5|alexnet] [steps >= 2] [global batch]\n");
        return 2;
    }
    nb_dist *dist = NULL;
    if (nb_dist_launched() && !(dist = nb_dist_init(&argc, &argv))) {
        fprintf(stderr, "mpi_overlap: %s\n", nb_last_error());
        return 1;
    }
    int side = alexnet ? 224 : 28, channels = alexnet ? 3 : 1;
    size_t sample = (size_t)channels * side * side;
    nb_dataset data = {batch * (int)steps, channels, side, side, NULL, NULL, NULL};
    data.images = malloc((size_t)data.count * sample);
    data.labels = malloc((size_t)data.count * sizeof *data.labels);
    if (!data.images || !data.labels) return 1;
    uint32_t x = 12345;
    for (size_t i = 0; i < (size_t)data.count * sample; i++)
        data.images[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 24);
    for (int i = 0; i < data.count; i++) data.labels[i] = i % 10;
    int ranks = nb_dist_size(dist), threads = nb_get_threads();
    static const char *const names[] = {"overlap", "after-backward", "one-block"};
    int code = 0;
    for (int k = 0; k < (dist ? 3 : 1); k++) {
        nb_dist_set_reduce(dist, (nb_dist_reduce)k, (size_t)1 << 20);
        double rate = measure(model, &data, batch, steps, dist);
        if (rate < 0) code = 1;
        if (nb_dist_rank(dist) == 0)
            printf("%s %d rank%s x %d thread%s, %s: %.2f steps/s, %.0f images/s\n", model, ranks,
                   ranks == 1 ? "" : "s", threads, threads == 1 ? "" : "s",
                   dist ? names[k] : "one process", rate, rate * batch);
        fflush(stdout);
    }
    free(data.images);
    free(data.labels);
    nb_dist_free(dist);
    return code;
}
