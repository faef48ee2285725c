/* optimizer.c — SGD (momentum, Nesterov), Adam and AdamW over the flat
 * parameter and gradient blocks, with clipping by global L2 norm.
 *
 * The update rules are torch.optim's single-tensor ones (torch 1.13), with
 * the same operation order: the scalar constants (bias corrections, step
 * size, 1 - beta, ...) are computed in double, as torch does in Python, and
 * rounded to float once; the per-element arithmetic is float, as in torch's
 * CPU kernels. tests/test_optimizer.c holds the results against torch's.
 *
 * Every update loop is elementwise, so splitting it over OpenMP threads
 * cannot change a result. The one reduction, the gradient norm, is summed
 * in fixed blocks in a fixed order, so it does not depend on the thread
 * count either. */
#include "core/internal.h"
#include "nn/schedule.h"

#include <math.h>
#include <string.h>

/* Below this many parameters a loop is not worth waking the thread team. */
#define PARALLEL_MIN 32768
/* The unit of work a thread takes from an update loop: long enough that the
 * call per chunk is noise, short enough to balance across threads. */
#define CHUNK 4096
/* The gradient norm is a sum of per-block partial sums, each block summed
 * serially: the order is fixed by the block size, not by the threads. */
#define NORM_BLOCK 16384
/* Each block keeps this many running sums (element i goes to i % LANES), so
 * the loop vectorizes without reassociating anything. */
#define NORM_LANES 8

struct nb_optimizer {
    nb_optimizer_opts opts;
    size_t n;
    uint64_t steps;   /* completed updates: what the schedule is evaluated at */
    float *buf0;      /* SGD: momentum buffer; Adam/AdamW: first moment m */
    float *buf1;      /* Adam/AdamW: second moment v */
    double *partial;  /* clipping: one partial sum of squares per block */
    /* Ranges [begin, end) of the block that take no weight decay, sorted
     * and disjoint (nb_optimizer_no_decay). */
    size_t (*no_decay)[2];
    int n_no_decay;
};

nb_optimizer_opts nb_optimizer_defaults(nb_optimizer_kind kind) {
    nb_optimizer_opts o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.lr = kind == NB_OPT_SGD ? 0.01f : 0.001f;
    o.beta1 = 0.9f;
    o.beta2 = 0.999f;
    o.eps = 1e-8f;
    o.weight_decay = kind == NB_OPT_ADAMW ? 0.01f : 0.0f;
    o.schedule = NB_SCHED_CONSTANT;
    /* StepLR's default decay. step_size, total_steps and power have no
     * sensible default and stay 0, so choosing a schedule without setting
     * them is reported by nb_optimizer_new rather than silently running. */
    o.gamma = 0.1f;
    return o;
}

static const char *kind_name(nb_optimizer_kind kind) {
    switch (kind) {
    case NB_OPT_SGD: return "SGD";
    case NB_OPT_ADAM: return "Adam";
    case NB_OPT_ADAMW: return "AdamW";
    }
    return "unknown";
}

/* Fields a kind does not read (momentum for Adam, betas for SGD) are not
 * checked, so one opts struct can be reused across kinds. */
static nb_status check_opts(const nb_optimizer_opts *o) {
    if (o->kind != NB_OPT_SGD && o->kind != NB_OPT_ADAM && o->kind != NB_OPT_ADAMW)
        return nb_fail(NB_ERR_ARG, "optimizer: kind %d is not a nb_optimizer_kind", (int)o->kind);
    const char *kind = kind_name(o->kind);
    if (!isfinite(o->lr) || o->lr < 0)
        return nb_fail(NB_ERR_ARG, "optimizer: lr must be finite and >= 0, got %g", (double)o->lr);
    if (!isfinite(o->weight_decay) || o->weight_decay < 0)
        return nb_fail(NB_ERR_ARG, "optimizer: weight_decay must be finite and >= 0, got %g",
                       (double)o->weight_decay);
    if (!isfinite(o->clip_norm) || o->clip_norm < 0)
        return nb_fail(NB_ERR_ARG, "optimizer: clip_norm must be finite and >= 0 (0 turns clipping off), got %g",
                       (double)o->clip_norm);
    if (o->kind == NB_OPT_SGD) {
        /* NaN fails both comparisons, so it is caught here too. */
        if (!(o->momentum >= 0 && o->momentum < 1))
            return nb_fail(NB_ERR_ARG, "optimizer: momentum must be in [0, 1) for %s, got %g", kind,
                           (double)o->momentum);
        if (o->nesterov && o->momentum == 0)
            return nb_fail(NB_ERR_ARG, "optimizer: nesterov = %d needs momentum > 0 for %s, got momentum %g",
                           o->nesterov, kind, (double)o->momentum);
    } else {
        if (!(o->beta1 >= 0 && o->beta1 < 1))
            return nb_fail(NB_ERR_ARG, "optimizer: beta1 must be in [0, 1) for %s, got %g", kind,
                           (double)o->beta1);
        if (!(o->beta2 >= 0 && o->beta2 < 1))
            return nb_fail(NB_ERR_ARG, "optimizer: beta2 must be in [0, 1) for %s, got %g", kind,
                           (double)o->beta2);
        if (!isfinite(o->eps) || o->eps <= 0)
            return nb_fail(NB_ERR_ARG, "optimizer: eps must be finite and > 0 for %s, got %g", kind,
                           (double)o->eps);
    }
    return nb_schedule_check(o);
}

nb_optimizer *nb_optimizer_new(const nb_optimizer_opts *opts, size_t n_params) {
    if (!opts) {
        nb_fail(NB_ERR_ARG, "nb_optimizer_new: opts is NULL (start from nb_optimizer_defaults)");
        return NULL;
    }
    if (check_opts(opts) != NB_OK) return NULL;
    if (n_params == 0) {
        nb_fail(NB_ERR_ARG, "nb_optimizer_new: n_params is 0: no trainable parameters to optimize");
        return NULL;
    }
    size_t bytes;
    if (!nb_mul_size(n_params, sizeof(float), &bytes)) {
        nb_fail(NB_ERR_ARG, "nb_optimizer_new: n_params %zu is too large", n_params);
        return NULL;
    }
    nb_optimizer *opt = nb_zalloc(sizeof *opt, "optimizer");
    if (!opt) return NULL;
    opt->opts = *opts;
    opt->n = n_params;
    /* Zeroed state is Adam's m = v = 0; SGD's momentum buffer is instead
     * set from the first gradient (see sgd_step), as torch does. */
    bool need0 = opts->kind != NB_OPT_SGD || opts->momentum > 0;
    bool need1 = opts->kind != NB_OPT_SGD;
    if (need0 && !(opt->buf0 = nb_zalloc(bytes, "optimizer state"))) goto fail;
    if (need1 && !(opt->buf1 = nb_zalloc(bytes, "optimizer state"))) goto fail;
    if (opts->clip_norm > 0) {
        size_t blocks = (n_params + NORM_BLOCK - 1) / NORM_BLOCK;
        if (!(opt->partial = nb_alloc(blocks * sizeof(double), "gradient norm blocks"))) goto fail;
    }
    return opt;
fail:
    nb_optimizer_free(opt);
    return NULL;
}

void nb_optimizer_free(nb_optimizer *opt) {
    if (!opt) return;
    nb_free(opt->no_decay);
    nb_free(opt->buf0);
    nb_free(opt->buf1);
    nb_free(opt->partial);
    nb_free(opt);
}

/* sqrt(sum g^2) over the n gradients, in double. */
static double grad_norm(const float *g, size_t n, double *partial) {
    long blocks = (long)((n + NORM_BLOCK - 1) / NORM_BLOCK);
#pragma omp parallel for schedule(static) if (parallel: n >= PARALLEL_MIN)
    for (long b = 0; b < blocks; b++) {
        size_t lo = (size_t)b * NORM_BLOCK;
        size_t hi = lo + NORM_BLOCK < n ? lo + NORM_BLOCK : n;
        double lane[NORM_LANES] = {0};
        size_t i = lo;
        for (; i + NORM_LANES <= hi; i += NORM_LANES)
            for (int j = 0; j < NORM_LANES; j++) {
                double x = g[i + j];
                lane[j] += x * x;
            }
        for (; i < hi; i++) {
            double x = g[i];
            lane[0] += x * x;
        }
        double s = 0;
        for (int j = 0; j < NORM_LANES; j++) s += lane[j];
        partial[b] = s;
    }
    double total = 0;
    for (long b = 0; b < blocks; b++) total += partial[b];
    return sqrt(total);
}

/* ---- update kernels --------------------------------------------------------
 * Plain loops over n elements with restrict pointers; run_chunks hands them
 * contiguous chunks on the threads. Each element is updated on its own, so
 * neither the chunking nor the thread count can change a result.
 *
 * VECTORIZE asks GCC for `omp simd`: its -O2 cost model will not vectorize a
 * loop of unknown length unasked. clang vectorizes these loops by itself and
 * turns a simd request it cannot meet (as at -O1 under the sanitizers) into
 * a warning, fatal with -Werror, so clang is not asked. `omp simd` reorders
 * nothing within an element, so results are the same either way. */
#if defined(_OPENMP) && defined(__GNUC__) && !defined(__clang__)
#define VECTORIZE _Pragma("omp simd")
#else
#define VECTORIZE
#endif

/* The step's constants, each computed in double and rounded to float once,
 * as torch does with its Python-float hyperparameters. */
typedef struct step_consts {
    float neg_lr;      /* SGD: -lr */
    float wd;          /* weight decay added to the gradient (SGD, Adam; 0 for AdamW) */
    float momentum;    /* SGD */
    float decay;       /* AdamW: 1 - lr wd; Adam: 1 */
    float beta1, beta2, one_minus_beta1, one_minus_beta2;
    float bias2_sqrt;  /* sqrt(1 - beta2^t) */
    float eps;
    float neg_step;    /* -lr / (1 - beta1^t) */
    float scale;       /* clipping: max_norm / (norm + 1e-6) */
} step_consts;

/* Unused buffers are NULL and never touched. */
typedef void (*update_kernel)(size_t n, float *restrict p, float *restrict g, float *restrict b0,
                              float *restrict b1, const step_consts *k);

static void run_chunks(update_kernel kernel, size_t n, float *p, float *g, float *b0, float *b1,
                       const step_consts *k) {
    long chunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (parallel: n >= PARALLEL_MIN)
    for (long c = 0; c < chunks; c++) {
        size_t lo = (size_t)c * CHUNK, len = n - lo < CHUNK ? n - lo : CHUNK;
        kernel(len, p ? p + lo : NULL, g + lo, b0 ? b0 + lo : NULL, b1 ? b1 + lo : NULL, k);
    }
}

/* g = scale g. */
static void scale_kernel(size_t n, float *restrict p, float *restrict g, float *restrict b0,
                         float *restrict b1, const step_consts *k) {
    (void)p, (void)b0, (void)b1;
    float c = k->scale;
VECTORIZE
    for (size_t i = 0; i < n; i++) g[i] *= c;
}

/* SGD without momentum: p = p - lr (g + wd p). */
static void sgd_kernel(size_t n, float *restrict p, float *restrict g, float *restrict b0,
                       float *restrict b1, const step_consts *k) {
    (void)b0, (void)b1;
    float neg_lr = k->neg_lr, wd = k->wd;
VECTORIZE
    for (size_t i = 0; i < n; i++) p[i] += neg_lr * (g[i] + wd * p[i]);
}

/* SGD with momentum; buf is b0: buf = momentum buf + d; p = p - lr buf.
 * Nesterov is its own kernel rather than a select in this one, which GCC
 * -O2 would not vectorize. */
static void momentum_kernel(size_t n, float *restrict p, float *restrict g, float *restrict buf,
                            float *restrict b1, const step_consts *k) {
    (void)b1;
    float neg_lr = k->neg_lr, wd = k->wd, mom = k->momentum;
VECTORIZE
    for (size_t i = 0; i < n; i++) {
        float b = mom * buf[i] + (g[i] + wd * p[i]);
        buf[i] = b;
        p[i] += neg_lr * b;
    }
}

/* Nesterov: the same buffer update, then p = p - lr (d + momentum buf). */
static void nesterov_kernel(size_t n, float *restrict p, float *restrict g, float *restrict buf,
                            float *restrict b1, const step_consts *k) {
    (void)b1;
    float neg_lr = k->neg_lr, wd = k->wd, mom = k->momentum;
VECTORIZE
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        float b = mom * buf[i] + d;
        buf[i] = b;
        p[i] += neg_lr * (d + mom * b);
    }
}

/* Adam and AdamW; m is b0, v is b1. Adam's decay of 1 multiplies p by
 * exactly 1 and AdamW's wd of 0 adds exactly 0 (p finite), so one kernel
 * serves both. Not VECTORIZE'd: sqrtf's errno path (never taken, v >= 0)
 * keeps GCC from vectorizing it unless the build has -fno-math-errno. */
static void adam_kernel(size_t n, float *restrict p, float *restrict g, float *restrict m,
                        float *restrict v, const step_consts *k) {
    float decay = k->decay, wd = k->wd, b1 = k->beta1, b2 = k->beta2;
    float c1 = k->one_minus_beta1, c2 = k->one_minus_beta2;
    float bias2_sqrt = k->bias2_sqrt, eps = k->eps, neg_step = k->neg_step;
    for (size_t i = 0; i < n; i++) {
        float pi = p[i] * decay;
        float gi = g[i] + wd * pi;
        float mi = m[i] * b1 + c1 * gi;
        float vi = v[i] * b2 + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bias2_sqrt + eps;
        p[i] = pi + neg_step * mi / denom;
    }
}

/* ---- the steps -------------------------------------------------------------- */

/* run_chunks over the block in segments: the ranges excluded from weight
 * decay with `plain` (wd 0, no decoupled decay), the rest with `k`. Every
 * element is updated on its own, so the split changes no result. */
static void run_segments(const nb_optimizer *opt, update_kernel kernel, float *p, float *g,
                         float *b0, float *b1, const step_consts *k, const step_consts *plain) {
    size_t at = 0;
    for (int r = 0; r <= opt->n_no_decay; r++) {
        size_t lo = r < opt->n_no_decay ? opt->no_decay[r][0] : opt->n;
        size_t hi = r < opt->n_no_decay ? opt->no_decay[r][1] : opt->n;
        if (lo > at)
            run_chunks(kernel, lo - at, p + at, g + at, b0 ? b0 + at : NULL, b1 ? b1 + at : NULL, k);
        if (hi > lo)
            run_chunks(kernel, hi - lo, p + lo, g + lo, b0 ? b0 + lo : NULL, b1 ? b1 + lo : NULL, plain);
        at = hi;
    }
}

nb_status nb_optimizer_no_decay(nb_optimizer *opt, size_t begin, size_t end) {
    if (!opt) return nb_fail(NB_ERR_ARG, "nb_optimizer_no_decay: optimizer is NULL");
    if (begin > end || end > opt->n)
        return nb_fail(NB_ERR_ARG, "nb_optimizer_no_decay: range [%zu, %zu) is not within the %zu "
                       "parameters", begin, end, opt->n);
    if (begin == end) return NB_OK;
    for (int r = 0; r < opt->n_no_decay; r++)
        if (begin < opt->no_decay[r][1] && opt->no_decay[r][0] < end)
            return nb_fail(NB_ERR_ARG, "nb_optimizer_no_decay: range [%zu, %zu) overlaps [%zu, %zu)",
                           begin, end, opt->no_decay[r][0], opt->no_decay[r][1]);
    size_t (*p)[2] = nb_realloc(opt->no_decay, (size_t)(opt->n_no_decay + 1) * sizeof *p,
                                "optimizer decay ranges");
    if (!p) return NB_ERR_NOMEM;
    opt->no_decay = p;
    int at = opt->n_no_decay++;
    while (at > 0 && p[at - 1][0] > begin) {
        p[at][0] = p[at - 1][0], p[at][1] = p[at - 1][1];
        at--;
    }
    p[at][0] = begin, p[at][1] = end;
    return NB_OK;
}

/* torch.nn.utils.clip_grad_norm_: scale by max / (norm + 1e-6) when that is
 * below 1. torch multiplies by the coefficient clamped to 1 every time;
 * skipping the multiply by 1 changes nothing. A NaN or infinite norm is
 * reported instead of spreading NaN into every parameter. */
static nb_status clip_grads(nb_optimizer *opt, float *g) {
    double total = grad_norm(g, opt->n, opt->partial);
    if (!isfinite(total))
        return nb_fail(NB_ERR_NONFINITE,
                       "optimizer: gradient L2 norm is %g before step %llu: no update made (check the loss "
                       "and the learning rate)",
                       total, (unsigned long long)opt->steps + 1);
    double coef = (double)opt->opts.clip_norm / (total + 1e-6);
    if (coef >= 1) return NB_OK;
    step_consts k = {.scale = (float)coef};
    run_chunks(scale_kernel, opt->n, NULL, g, NULL, NULL, &k);
    return NB_OK;
}

/* torch.optim.SGD with dampening 0:
 *   d = g + wd p
 *   buf = d on the first step, else momentum buf + d
 *   d = nesterov ? d + momentum buf : buf
 *   p = p - lr d */
static void sgd_step(nb_optimizer *opt, double lr, float *p, float *g) {
    const nb_optimizer_opts *o = &opt->opts;
    step_consts k = {.neg_lr = (float)-lr, .wd = o->weight_decay, .momentum = o->momentum};
    step_consts plain = k;
    plain.wd = 0.0f;
    if (o->momentum == 0) {
        run_segments(opt, sgd_kernel, p, g, NULL, NULL, &k, &plain);
        return;
    }
    /* torch creates the buffer as a copy of the first d; from a zeroed
     * buffer, momentum * 0 + d is exactly d, so the kernels need no
     * first-step case. A resumed optimizer (steps set > 0) keeps the buffer
     * it was given. */
    if (opt->steps == 0) memset(opt->buf0, 0, opt->n * sizeof *opt->buf0);
    run_segments(opt, o->nesterov ? nesterov_kernel : momentum_kernel, p, g, opt->buf0, NULL, &k,
                 &plain);
}

/* torch.optim.Adam / AdamW (single-tensor), at step t = steps + 1:
 *   AdamW: p = p (1 - lr wd)          Adam: g = g + wd p
 *   m = beta1 m + (1 - beta1) g
 *   v = beta2 v + (1 - beta2) g g
 *   denom = sqrt(v) / sqrt(1 - beta2^t) + eps
 *   p = p - (lr / (1 - beta1^t)) m / denom */
static void adam_step(nb_optimizer *opt, double lr, float *p, float *g) {
    const nb_optimizer_opts *o = &opt->opts;
    double t = (double)(opt->steps + 1);
    double beta1 = o->beta1, beta2 = o->beta2;
    bool decoupled = o->kind == NB_OPT_ADAMW;
    step_consts k = {
        .wd = decoupled ? 0.0f : o->weight_decay,
        .decay = decoupled ? (float)(1 - lr * o->weight_decay) : 1.0f,
        .beta1 = o->beta1,
        .beta2 = o->beta2,
        .one_minus_beta1 = (float)(1 - beta1),
        .one_minus_beta2 = (float)(1 - beta2),
        .bias2_sqrt = (float)sqrt(1 - pow(beta2, t)),
        .eps = o->eps,
        .neg_step = (float)-(lr / (1 - pow(beta1, t))),
    };
    step_consts plain = k;
    plain.wd = 0.0f;
    plain.decay = 1.0f;
    run_segments(opt, adam_kernel, p, g, opt->buf0, opt->buf1, &k, &plain);
}

nb_status nb_optimizer_step(nb_optimizer *opt, float *params, float *grads) {
    if (!opt) return nb_fail(NB_ERR_ARG, "nb_optimizer_step: optimizer is NULL");
    if (!params || !grads)
        return nb_fail(NB_ERR_ARG, "nb_optimizer_step: %s is NULL", !params ? "params" : "grads");
    if (opt->opts.clip_norm > 0) {
        nb_status s = clip_grads(opt, grads);
        if (s != NB_OK) return s;
    }
    double lr = nb_schedule_lr(&opt->opts, opt->steps);
    if (opt->opts.kind == NB_OPT_SGD) sgd_step(opt, lr, params, grads);
    else adam_step(opt, lr, params, grads);
    opt->steps++;
    return NB_OK;
}

float nb_optimizer_lr(const nb_optimizer *opt) {
    return opt ? (float)nb_schedule_lr(&opt->opts, opt->steps) : 0.0f;
}

uint64_t nb_optimizer_steps(const nb_optimizer *opt) { return opt ? opt->steps : 0; }

void nb_optimizer_state(nb_optimizer *opt, float **buf0, float **buf1) {
    if (buf0) *buf0 = opt ? opt->buf0 : NULL;
    if (buf1) *buf1 = opt ? opt->buf1 : NULL;
}

void nb_optimizer_set_steps(nb_optimizer *opt, uint64_t steps) {
    if (opt) opt->steps = steps;
}
