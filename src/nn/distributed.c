/* distributed.c — data-parallel training over MPI: the communicator, each
 * rank's shard of a batch, the gradient reduction (buckets of the gradient
 * block, each reduced with a nonblocking allreduce as soon as backward has
 * finished with its parameters), the checks that every rank holds the same
 * data and the same weights, and a watchdog that ends the job when a
 * collective waits too long. The only file of the library that includes
 * mpi.h; built without MPI (NB_HAVE_MPI undefined) it keeps the queries and
 * the shard arithmetic, and nb_dist_init says how to get MPI. */
#include "nn/nn.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rank r of n takes positions [count r / n, count (r + 1) / n): contiguous,
 * in rank order, sizes differing by at most one. */
void nb_dist_shard(const nb_dist *d, long count, long *first, long *n) {
    long long r = nb_dist_rank(d), size = nb_dist_size(d);
    long lo = (long)(count * r / size), hi = (long)(count * (r + 1) / size);
    *first = lo;
    *n = hi - lo;
}

/* Environment variables the launchers set in every process they start:
 * Open MPI's mpirun, PMIx-based launchers (srun, prterun) and MPICH's. */
static long launched_size(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return strtol(v, NULL, 10);
    }
    return getenv("PMIX_RANK") ? 2 : 1; /* a PMIx rank with no size: assume a job */
}

int nb_dist_launched(void) { return launched_size() > 1; }

#ifndef NB_HAVE_MPI

int nb_dist_available(void) { return 0; }

nb_dist *nb_dist_init(int *argc, char ***argv) {
    (void)argc, (void)argv;
    nb_fail(NB_ERR_ARG, "this nabla was built without MPI, so it cannot train data-parallel: install "
            "Open MPI (apt-get install libopenmpi-dev openmpi-bin) and rebuild (make MPI=1)");
    return NULL;
}

nb_dist *nb_dist_from_comm(const void *mpi_comm) { return (void)mpi_comm, nb_dist_init(NULL, NULL); }
void nb_dist_free(nb_dist *d) { (void)d; }
void nb_dist_abort(nb_dist *d, int code) { (void)d, (void)code; }
int nb_dist_rank(const nb_dist *d) { return (void)d, 0; }
int nb_dist_size(const nb_dist *d) { return (void)d, 1; }
nb_status nb_dist_set_timeout(nb_dist *d, double seconds) { return (void)d, (void)seconds, NB_OK; }
nb_status nb_dist_set_reduce(nb_dist *d, nb_dist_reduce how, size_t bucket_bytes) {
    return (void)d, (void)how, (void)bucket_bytes, NB_OK;
}
nb_status nb_dist_check_weights(nb_dist *d, nb_model *m, const char *when) {
    return (void)d, (void)m, (void)when, NB_OK;
}
nb_status nb_dist_check_data(nb_dist *d, const nb_dataset *data, const char *what) {
    return (void)d, (void)data, (void)what, NB_OK;
}
nb_status nb_dist_sum(nb_dist *d, double *v, int n, const char *what) {
    return (void)d, (void)v, (void)n, (void)what, NB_OK;
}
void nb_dist_begin_backward(nb_dist *d, nb_graph *g, double weight) { (void)d, (void)g, (void)weight; }
nb_status nb_dist_end_backward(nb_dist *d, nb_graph *g) { return (void)d, (void)g, NB_OK; }
nb_status nb_dist_broadcast_buffers(nb_dist *d, nb_graph *g) { return (void)d, (void)g, NB_OK; }

#else

#include <mpi.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

/* One bucket: the gradients [first, first + count) of the block, made of
 * whole parameters; ready once backward has run every node at or after
 * ready_at (-1: only when backward is over). */
typedef struct bucket {
    size_t first, count;
    int ready_at;
} bucket;

struct nb_dist {
    MPI_Comm comm;
    int rank, size;
    bool finalize;        /* nb_dist_init initialised MPI: nb_dist_free finalises it */
    bool thread_multiple; /* the watchdog may call MPI_Abort */
    nb_dist_reduce how;
    size_t bucket_bytes;
    /* The backward in progress: its graph, the weight its gradients are
     * scaled by (local samples / global samples), its buckets and their
     * requests, and how many are started and known complete. */
    nb_graph *g;
    double weight;
    bucket *buckets;
    MPI_Request *requests;
    int n_buckets, buckets_cap, started, completed;
    int *final_at; /* per node id: the backward after which the parameter's gradient is final */
    size_t final_cap;
    /* The watchdog: a thread that ends the job when one wait (what, since
     * waiting_since) lasts longer than timeout seconds. */
    pthread_t watchdog;
    bool watchdog_running, quit;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    double timeout, waiting_since;
    const char *waiting_for;
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int nb_dist_available(void) { return 1; }
int nb_dist_rank(const nb_dist *d) { return d ? d->rank : 0; }
int nb_dist_size(const nb_dist *d) { return d ? d->size : 1; }

void nb_dist_abort(nb_dist *d, int code) {
    if (d && d->size > 1) MPI_Abort(d->comm, code);
}

/* A wait for the other ranks that never ends means one of them is stuck
 * (a dead host, a network that dropped): MPI offers no timeout of its own,
 * and MPI_Abort is the one way to end every process of the job. Without
 * MPI_THREAD_MULTIPLE this thread may not call MPI; a process that exits
 * without finalising makes mpirun end the job just the same. */
static void *watchdog_main(void *arg) {
    nb_dist *d = arg;
    pthread_mutex_lock(&d->lock);
    while (!d->quit) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&d->wake, &d->lock, &until);
        if (d->quit || !d->waiting_for || now_seconds() - d->waiting_since <= d->timeout) continue;
        fprintf(stderr, "nabla: rank %d of %d: %s waited more than %g s for the other ranks "
                "(--mpi-timeout): a rank is stuck or gone; ending the job\n", d->rank, d->size,
                d->waiting_for, d->timeout);
        fflush(stderr);
        if (d->thread_multiple) MPI_Abort(d->comm, 1);
        _exit(1);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

static void wait_begin(nb_dist *d, const char *what) {
    pthread_mutex_lock(&d->lock);
    d->waiting_for = what;
    d->waiting_since = now_seconds();
    pthread_mutex_unlock(&d->lock);
}

static void wait_end(nb_dist *d) {
    pthread_mutex_lock(&d->lock);
    d->waiting_for = NULL;
    pthread_mutex_unlock(&d->lock);
}

/* MPI's own errors come back as codes (MPI_ERRORS_RETURN on our
 * communicator) and leave as messages naming the call. */
static nb_status mpi_check(const nb_dist *d, int rc, const char *what) {
    if (rc == MPI_SUCCESS) return NB_OK;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    return nb_fail(NB_ERR_IO, "rank %d of %d: %s failed: %.*s", d->rank, d->size, what, len, text);
}

static nb_dist *dist_new(MPI_Comm from, bool finalize) {
    nb_dist *d = nb_alloc(sizeof *d, "MPI communicator");
    if (!d) return NULL;
    memset(d, 0, sizeof *d);
    if (MPI_Comm_dup(from, &d->comm) != MPI_SUCCESS) {
        nb_free(d);
        nb_fail(NB_ERR_IO, "MPI_Comm_dup failed");
        return NULL;
    }
    MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(d->comm, &d->rank);
    MPI_Comm_size(d->comm, &d->size);
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    d->thread_multiple = level == MPI_THREAD_MULTIPLE;
    d->finalize = finalize;
    d->how = NB_DIST_OVERLAP;
    d->bucket_bytes = (size_t)1 << 20;
    d->timeout = 300.0;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->wake, NULL);
    d->watchdog_running = pthread_create(&d->watchdog, NULL, watchdog_main, d) == 0;
    return d;
}

nb_dist *nb_dist_init(int *argc, char ***argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int provided;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
            nb_fail(NB_ERR_IO, "MPI_Init_thread failed");
            return NULL;
        }
    }
    return dist_new(MPI_COMM_WORLD, !initialized);
}

nb_dist *nb_dist_from_comm(const void *mpi_comm) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!mpi_comm || !initialized) {
        nb_fail(NB_ERR_ARG, "nb_dist_from_comm: %s",
                mpi_comm ? "MPI is not initialised" : "NULL communicator");
        return NULL;
    }
    return dist_new(*(const MPI_Comm *)mpi_comm, false);
}

void nb_dist_free(nb_dist *d) {
    if (!d) return;
    if (d->watchdog_running) {
        pthread_mutex_lock(&d->lock);
        d->quit = true;
        pthread_cond_signal(&d->wake);
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->watchdog, NULL);
    }
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->wake);
    MPI_Comm_free(&d->comm);
    nb_free(d->buckets);
    nb_free(d->requests);
    nb_free(d->final_at);
    bool finalize = d->finalize;
    nb_free(d);
    if (finalize) MPI_Finalize();
}

nb_status nb_dist_set_timeout(nb_dist *d, double seconds) {
    if (!d) return NB_OK;
    if (!(seconds > 0) || !isfinite(seconds))
        return nb_fail(NB_ERR_ARG, "nb_dist_set_timeout: %g seconds, expected a positive number",
                       seconds);
    pthread_mutex_lock(&d->lock);
    d->timeout = seconds;
    pthread_mutex_unlock(&d->lock);
    return NB_OK;
}

nb_status nb_dist_set_reduce(nb_dist *d, nb_dist_reduce how, size_t bucket_bytes) {
    if (!d) return NB_OK;
    if (how != NB_DIST_OVERLAP && how != NB_DIST_AFTER_BACKWARD && how != NB_DIST_ONE_BLOCK)
        return nb_fail(NB_ERR_ARG, "nb_dist_set_reduce: unknown reduction %d", (int)how);
    if (bucket_bytes < sizeof(float))
        return nb_fail(NB_ERR_ARG, "nb_dist_set_reduce: buckets of %zu bytes, expected at least %zu",
                       bucket_bytes, sizeof(float));
    d->how = how;
    d->bucket_bytes = bucket_bytes;
    return NB_OK;
}

/* ---- collectives under the watchdog ------------------------------------- */

nb_status nb_dist_sum(nb_dist *d, double *v, int n, const char *what) {
    if (!d || d->size == 1) return NB_OK;
    wait_begin(d, what);
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, d->comm);
    wait_end(d);
    return mpi_check(d, rc, what);
}

/* Every rank's n values, gathered into all (size * n), for a check that
 * names the ranks that differ. */
static nb_status gather(nb_dist *d, const uint64_t *mine, int n, uint64_t *all, const char *what) {
    wait_begin(d, what);
    int rc = MPI_Allgather(mine, n, MPI_UINT64_T, all, n, MPI_UINT64_T, d->comm);
    wait_end(d);
    return mpi_check(d, rc, what);
}

/* The ranks whose n values differ from rank 0's, as "1, 3", and the first
 * of them (-1: none). */
static int differing_ranks(const nb_dist *d, const uint64_t *all, int n, char *list, size_t size) {
    int first = -1;
    size_t len = 0;
    list[0] = '\0';
    for (int r = 1; r < d->size; r++) {
        if (!memcmp(all + (size_t)r * n, all, (size_t)n * sizeof *all)) continue;
        if (first < 0) first = r;
        if (len < size) len += (size_t)snprintf(list + len, size - len, "%s%d", len ? ", " : "", r);
    }
    return first;
}

nb_status nb_dist_check_data(nb_dist *d, const nb_dataset *data, const char *what) {
    if (!d || d->size == 1) return NB_OK;
    uint64_t mine[4] = {(uint64_t)data->count, (uint64_t)data->channels, (uint64_t)data->height,
                        (uint64_t)data->width};
    uint64_t *all = nb_alloc((size_t)d->size * sizeof mine, "the ranks' data sizes");
    if (!all) return NB_ERR_NOMEM;
    nb_status s = gather(d, mine, 4, all, "comparing the ranks' data");
    char list[256];
    int r = s ? -1 : differing_ranks(d, all, 4, list, sizeof list);
    if (r >= 0) {
        const uint64_t *o = all + (size_t)r * 4;
        s = nb_fail(NB_ERR_ARG, "%s differ between ranks: rank %d has %" PRIu64 " images of %" PRIu64
                    "x%" PRIu64 "x%" PRIu64 ", rank 0 has %" PRIu64 " of %" PRIu64 "x%" PRIu64 "x%" PRIu64
                    " (ranks that differ from rank 0: %s); every rank must load the same data", what,
                    r, o[0], o[1], o[2], o[3], all[0], all[1], all[2], all[3], list);
    }
    nb_free(all);
    return s;
}

/* FNV-1a over the block's 32-bit words: any bit that differs shows. */
static void checksum(const float *x, size_t n, uint64_t *out) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, &x[i], sizeof w);
        h = (h ^ w) * 1099511628211ull;
    }
    *out = h;
}

nb_status nb_dist_check_weights(nb_dist *d, nb_model *m, const char *when) {
    if (!d || d->size == 1) return NB_OK;
    float *params;
    size_t n = nb_graph_params(m->g, &params, NULL);
    uint64_t mine;
    checksum(params, n, &mine);
    uint64_t *all = nb_alloc((size_t)d->size * sizeof mine, "the ranks' weight checksums");
    if (!all) return NB_ERR_NOMEM;
    nb_status s = gather(d, &mine, 1, all, "comparing the ranks' weights");
    char list[256];
    int r = s ? -1 : differing_ranks(d, all, 1, list, sizeof list);
    if (r >= 0) {
        s = nb_fail(NB_ERR_STATE, "model '%s': the weights differ between ranks %s: ranks %s differ "
                    "from rank 0 (parameter hash %016" PRIx64 " on rank 0, %016" PRIx64 " on rank %d); "
                    "data-parallel training keeps them identical, so a rank computed differently",
                    m->name, when, list, all[0], all[r], r);
    }
    nb_free(all);
    return s;
}

nb_status nb_dist_broadcast_buffers(nb_dist *d, nb_graph *g) {
    if (!d || d->size == 1) return NB_OK;
    for (int i = 0; i < g->n_nodes; i++) {
        nb_node *n = g->nodes[i];
        if (n->kind != NB_NODE_BUFFER || !n->value.data) continue;
        size_t count = nb_tensor_numel(&n->value);
        wait_begin(d, "broadcasting rank 0's batch norm statistics");
        int rc = MPI_Bcast(n->value.data, (int)count, MPI_FLOAT, 0, d->comm);
        wait_end(d);
        nb_status s = mpi_check(d, rc, "MPI_Bcast of the buffers");
        if (s) return s;
    }
    return NB_OK;
}

/* ---- the gradient reduction ------------------------------------------------ */

/* Buckets of about bucket_bytes, whole parameters each, from the end of the
 * block (the last layers, whose gradients backward finishes first) to its
 * start; each ready after the backward of the earliest node that reads one
 * of its parameters. Worked out for every backward: the plan (which nodes
 * the loss reaches) may change between calls. */
static nb_status plan_buckets(nb_dist *d, nb_graph *g) {
    if ((size_t)g->n_nodes > d->final_cap) {
        int *f = nb_realloc(d->final_at, (size_t)g->n_nodes * sizeof *f, "gradient readiness");
        if (!f) return NB_ERR_NOMEM;
        d->final_at = f;
        d->final_cap = (size_t)g->n_nodes;
    }
    /* -1: no node reads it (its gradient is zeroed as backward ends). */
    for (int i = 0; i < g->n_nodes; i++) d->final_at[i] = -1;
    /* A rank that has run no forward yet has no plan: its buckets wait for
     * the end, in the same order as everyone's. */
    bool planned = g->reach && g->reach_cap >= (size_t)g->n_nodes;
    for (int i = planned ? g->n_nodes - 1 : -1; i >= 0; i--) {
        nb_node *n = g->nodes[i];
        if (!g->reach[i] || n->kind != NB_NODE_OP || !n->needs_grad || n->op->is_view) continue;
        for (int k = 0; k < n->n_in; k++) {
            nb_node *p = nb_grad_owner(n->in[k]);
            if (p->kind == NB_NODE_PARAM) d->final_at[p->id] = i;
        }
    }
    size_t per_bucket = d->bucket_bytes / sizeof(float);
    d->n_buckets = 0;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        nb_node *p = g->nodes[i];
        if (p->kind != NB_NODE_PARAM) continue;
        size_t count = nb_tensor_numel(&p->value);
        bucket *b = d->n_buckets ? &d->buckets[d->n_buckets - 1] : NULL;
        if (!b || b->count >= per_bucket) {
            if (d->n_buckets == d->buckets_cap) {
                int cap = d->buckets_cap ? 2 * d->buckets_cap : 16;
                bucket *nb = nb_realloc(d->buckets, (size_t)cap * sizeof *nb, "gradient buckets");
                if (!nb) return NB_ERR_NOMEM;
                d->buckets = nb;
                MPI_Request *rq = nb_realloc(d->requests, (size_t)cap * sizeof *rq, "MPI requests");
                if (!rq) return NB_ERR_NOMEM;
                d->requests = rq;
                d->buckets_cap = cap;
            }
            b = &d->buckets[d->n_buckets++];
            b->first = p->param_offset + count;
            b->count = 0;
            b->ready_at = d->final_at[p->id];
        }
        b->first -= count;
        b->count += count;
        if (d->final_at[p->id] < b->ready_at) b->ready_at = d->final_at[p->id];
    }
    return NB_OK;
}

static void scale(float *x, size_t n, float w) {
    if (w == 1.0f) return;
    for (size_t i = 0; i < n; i++) x[i] *= w;
}

/* Start bucket `started`: scale its gradients by this rank's share of the
 * batch, then sum them over the ranks in place. Buckets start in index
 * order on every rank, as MPI requires of collectives. */
static void start_bucket(nb_dist *d) {
    const bucket *b = &d->buckets[d->started];
    float *grads;
    nb_graph_params(d->g, NULL, &grads);
    scale(grads + b->first, b->count, (float)d->weight);
    MPI_Iallreduce(MPI_IN_PLACE, grads + b->first, (int)b->count, MPI_FLOAT, MPI_SUM, d->comm,
                   &d->requests[d->started]);
    d->started++;
}

/* Whether every parameter of bucket k has its final gradient after the
 * backward of node `done` (-1: after the whole pass). */
static bool bucket_ready(const nb_dist *d, int k, int done) {
    const bucket *b = &d->buckets[k];
    if (done >= 0 && (b->ready_at < 0 || done > b->ready_at)) return false;
    return true;
}

static void after_node(void *user, int node_id) {
    nb_dist *d = user;
    if (d->how == NB_DIST_OVERLAP || node_id < 0)
        while (d->started < d->n_buckets && bucket_ready(d, d->started, node_id)) start_bucket(d);
    /* MPI moves a nonblocking collective along only inside MPI calls. */
    if (d->completed < d->started) {
        int flag = 0;
        MPI_Test(&d->requests[d->completed], &flag, MPI_STATUS_IGNORE);
        if (flag) d->completed++;
    }
}

void nb_dist_begin_backward(nb_dist *d, nb_graph *g, double weight) {
    d->g = g;
    d->weight = weight;
    d->started = d->completed = 0;
    d->n_buckets = 0;
    if (d->size == 1) return;
    if (d->how != NB_DIST_ONE_BLOCK && !plan_buckets(d, g)) {
        g->after_backward = after_node;
        g->after_backward_user = d;
    }
}

nb_status nb_dist_end_backward(nb_dist *d, nb_graph *g) {
    g->after_backward = NULL;
    g->after_backward_user = NULL;
    if (d->size == 1) return NB_OK;
    float *grads;
    size_t n = nb_graph_params(g, NULL, &grads);
    int rc = MPI_SUCCESS;
    if (d->how == NB_DIST_ONE_BLOCK || !d->n_buckets) {
        scale(grads, n, (float)d->weight);
        wait_begin(d, "the gradient allreduce");
        rc = MPI_Allreduce(MPI_IN_PLACE, grads, (int)n, MPI_FLOAT, MPI_SUM, d->comm);
        wait_end(d);
        return mpi_check(d, rc, "MPI_Allreduce of the gradients");
    }
    /* A rank with no samples this step ran no backward: its zero gradients
     * go into every bucket, in the same order as everyone's. */
    while (d->started < d->n_buckets) start_bucket(d);
    wait_begin(d, "the gradient allreduce");
    rc = MPI_Waitall(d->n_buckets - d->completed, d->requests + d->completed, MPI_STATUSES_IGNORE);
    wait_end(d);
    return mpi_check(d, rc, "MPI_Iallreduce of the gradients");
}

#endif
