/* train.c — running a model: one training step, evaluation of a batch and of
 * a data set, prediction, and the training loop with its per-epoch report
 * and checkpoints. */
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Labels are class indices stored as floats; anything else would index out
 * of the logits inside the loss. */
static nb_status check_labels(const nb_model *m, const float *labels, int batch) {
    int classes = nb_model_classes(m);
    for (int i = 0; i < batch; i++) {
        float y = labels[i];
        if (!(y >= 0.0f && y < (float)classes && y == floorf(y)))
            return nb_fail(NB_ERR_ARG, "model '%s': label %g of sample %d is not a class index "
                           "0..%d", m->name, (double)y, i, classes - 1);
    }
    return NB_OK;
}

static nb_status feed(nb_model *m, const float *x, const float *labels, int batch, const char *who) {
    nb_status s = nb_model_check_ready(m, who);
    if (s) return s;
    if (!x) return nb_fail(NB_ERR_ARG, "%s: NULL input", who);
    if (batch <= 0) return nb_fail(NB_ERR_ARG, "%s: batch %d, expected > 0", who, batch);
    if (labels && (s = check_labels(m, labels, batch))) return s;
    if ((s = nb_feed(m->input, x, batch))) return s;
    return labels ? nb_feed(m->labels, labels, batch) : NB_OK;
}

/* ---- non-finite values ----------------------------------------------------- */

/* A float block summed in double cannot overflow (FLT_MAX times any count
 * that fits in memory stays far below DBL_MAX), so the sum is finite exactly
 * when every element is: NaNs and infinities carry through it. Four partial
 * sums keep the additions from waiting on one another. */
static bool block_is_finite(const float *x, size_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i];
        s1 += x[i + 1];
        s2 += x[i + 2];
        s3 += x[i + 3];
    }
    for (; i < n; i++) s0 += x[i];
    return isfinite(s0 + s1 + s2 + s3);
}

/* printf's %g writes a NaN with its sign bit set as "-nan"; the sign of a
 * NaN means nothing, so messages say "nan", "inf" or "-inf". */
static const char *nonfinite_name(float x) { return isnan(x) ? "nan" : x > 0 ? "inf" : "-inf"; }

nb_status nb_model_check_finite(const nb_model *m, const float *block, const char *what) {
    if (block_is_finite(block, nb_graph_params(m->g, NULL, NULL))) return NB_OK;
    for (int i = 0; i < nb_graph_param_count(m->g); i++) {
        const nb_node *p = nb_graph_param(m->g, i);
        const float *x = block + p->param_offset;
        size_t n = nb_tensor_numel(&p->value);
        for (size_t k = 0; k < n; k++)
            if (!isfinite(x[k]))
                return nb_fail(NB_ERR_NONFINITE, "%s%s is not finite (element %zu is %s)", what,
                               p->name, k, nonfinite_name(x[k]));
    }
    return NB_OK; /* not reached: the parameters tile the block */
}

/* ---- steps and batches ------------------------------------------------------ */

nb_status nb_model_train_step(nb_model *m, nb_optimizer *opt, const float *x, const float *labels,
                              int batch, float *loss) {
    if (!opt || !labels)
        return nb_fail(NB_ERR_ARG, "nb_model_train_step: NULL %s", opt ? "labels" : "optimizer");
    nb_status s = feed(m, x, labels, batch, "nb_model_train_step");
    if (s) return s;
    nb_set_training(m->g, 1);
    if ((s = nb_forward(m->g, m->loss))) return s;
    float value = nb_value(m->loss)->data[0];
    if (!isfinite(value))
        return nb_fail(NB_ERR_NONFINITE, "model '%s': the loss is %s: training diverged (try a "
                       "lower learning rate)", m->name, nonfinite_name(value));
    if ((s = nb_backward(m->g, m->loss))) return s;
    float *params, *grads;
    nb_graph_params(m->g, &params, &grads);
    /* A NaN or an infinity in one gradient would spread through the update
     * into the weights (and Adam's moments) for good: stop before it does. */
    if ((s = nb_model_check_finite(m, grads, "the gradient of ")))
        return nb_fail_prefix(s, "model '%s': ", m->name);
    if ((s = nb_optimizer_step(opt, params, grads))) return s;
    if (loss) *loss = value;
    return NB_OK;
}

nb_status nb_model_eval_batch(nb_model *m, const float *x, const float *labels, int batch, float *loss) {
    nb_status s = feed(m, x, labels, batch, "nb_model_eval_batch");
    if (s) return s;
    nb_set_training(m->g, 0);
    /* Evaluation reports the plain cross-entropy: label smoothing shapes
     * the training target only. */
    const float smoothing = m->loss->attr.scalar;
    m->loss->attr.scalar = 0.0f;
    s = nb_forward(m->g, labels ? m->loss : m->logits);
    m->loss->attr.scalar = smoothing;
    if (s) return s;
    if (labels && loss) *loss = nb_value(m->loss)->data[0];
    return NB_OK;
}

const nb_tensor *nb_model_predict(nb_model *m, const float *x, int batch) {
    if (feed(m, x, NULL, batch, "nb_model_predict")) return NULL;
    nb_set_training(m->g, 0);
    return nb_forward(m->g, m->probs) ? NULL : nb_value(m->probs);
}

/* ---- data sets ------------------------------------------------------------- */

/* The data must have the model's input size (a features input takes any
 * image of that many pixels) and labels below its class count. */
static nb_status check_data(const nb_model *m, const nb_dataset *d, const char *what) {
    if (!d || d->count <= 0) return nb_fail(NB_ERR_ARG, "%s: no samples", what);
    const int *in = m->in_shape;
    long pixels = (long)d->channels * d->height * d->width;
    bool fits = m->in_ndim == 3 ? in[0] == d->channels && in[1] == d->height && in[2] == d->width
                                : in[0] == pixels;
    if (!fits) {
        char want[64];
        if (m->in_ndim == 3) snprintf(want, sizeof want, "%dx%dx%d", in[0], in[1], in[2]);
        else snprintf(want, sizeof want, "%d features", in[0]);
        return nb_fail(NB_ERR_SHAPE, "%s are %dx%dx%d images, but model '%s' takes %s inputs: "
                       "train and evaluate a model on data of its input size", what, d->channels,
                       d->height, d->width, m->name, want);
    }
    int classes = nb_model_classes(m);
    for (int i = 0; i < d->count; i++)
        if (d->labels[i] < 0 || d->labels[i] >= classes)
            return nb_fail(NB_ERR_ARG, "%s: sample %d has label %d, but model '%s' has %d classes "
                           "(0..%d)", what, i, d->labels[i], m->name, classes, classes - 1);
    return NB_OK;
}

/* The model's normalisation for the data set's channels (a one-channel
 * normalisation of a features input applies to every channel). */
static void data_norm(const nb_model *m, const nb_dataset *d, float *mean, float *std,
                      const float **pm, const float **ps) {
    const float *mm, *ms;
    int nc = nb_model_normalization(m, &mm, &ms);
    *pm = *ps = NULL;
    if (!nc) return;
    for (int c = 0; c < d->channels && c < NB_MAX_CHANNELS; c++) {
        mean[c] = mm[nc == 1 ? 0 : c];
        std[c] = ms[nc == 1 ? 0 : c];
    }
    *pm = mean;
    *ps = std;
}

/* Batches of about 16 MB of input: 1000 Fashion-MNIST images, 27 of
 * AlexNet's, whose activations are larger still. */
static int auto_batch(const nb_model *m) {
    size_t sample = 1;
    for (int i = 0; i < m->in_ndim; i++) sample *= (size_t)m->in_shape[i];
    size_t b = ((size_t)1 << 22) / sample;
    return b < 1 ? 1 : b > 1000 ? 1000 : (int)b;
}

/* The error of the ranks that did not fail when `failed` others did; each
 * failed rank reports its own error. */
static nb_status ranks_failed(nb_dist *dist, double failed, const char *what) {
    return nb_fail(NB_ERR_STATE, "%s failed on %.0f of %d ranks (each prints its own error)", what, failed,
                   nb_dist_size(dist));
}

/* Where an evaluation reports: a callback, and the epoch and step of the
 * run it belongs to (zero outside training). */
typedef struct eval_progress {
    nb_progress_fn fn;
    void *user;
    int epoch, epochs;
    long step;
} eval_progress;

static nb_status evaluate(nb_model *m, const nb_dataset *d, int batch, int workers,
                          nb_eval_result *result, size_t *confusion, const eval_progress *ep,
                          nb_dist *dist);

nb_status nb_evaluate(nb_model *m, const nb_dataset *d, int batch, nb_eval_result *result,
                      size_t *confusion) {
    return evaluate(m, d, batch, 0, result, confusion, NULL, NULL);
}

nb_status nb_evaluate_progress(nb_model *m, const nb_dataset *d, int batch, nb_eval_result *result,
                               size_t *confusion, nb_progress_fn fn, void *user) {
    eval_progress ep = {fn, user, 0, 0, 0};
    return evaluate(m, d, batch, 0, result, confusion, &ep, NULL);
}

/* Fill the parts of a progress report that follow from counts and time. */
static void progress_rates(nb_progress *p, size_t samples_now, long done_now, double seconds) {
    p->seconds = seconds;
    p->images_per_s = seconds > 0 ? (double)samples_now / seconds : 0.0;
    p->seconds_left = done_now > 0 ? seconds / (double)done_now * (double)(p->total - p->done) : NAN;
}

/* Evaluation batches come from a loader like training's (workers > 0:
 * made ahead on threads), in file order, without augmentation. With
 * `dist`, each rank evaluates its shard of every batch and the counts are
 * summed over the ranks (the confusion matrix is not). */
static nb_status evaluate(nb_model *m, const nb_dataset *d, int batch, int workers,
                          nb_eval_result *result, size_t *confusion, const eval_progress *ep,
                          nb_dist *dist) {
    nb_status s = nb_model_check_ready(m, "nb_evaluate");
    if (s || (s = check_data(m, d, "evaluation data"))) return s;
    if (batch == 0) batch = auto_batch(m);
    if (batch < 0) return nb_fail(NB_ERR_ARG, "nb_evaluate: batch %d, expected > 0 (or 0: automatic)", batch);
    if (d->channels > NB_MAX_CHANNELS)
        return nb_fail(NB_ERR_ARG, "nb_evaluate: %d channels, at most %d", d->channels, NB_MAX_CHANNELS);
    int classes = nb_model_classes(m);
    float mean[NB_MAX_CHANNELS], std[NB_MAX_CHANNELS];
    nb_loader_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.batch = batch;
    lo.workers = workers;
    lo.shard = nb_dist_rank(dist);
    lo.shards = nb_dist_size(dist);
    data_norm(m, d, mean, std, &lo.mean, &lo.std);
    nb_loader *l = NULL;
    /* A data set that skips bad images may leave some out: the counts are
     * of the samples evaluated. */
    if (!(s = nb_loader_new(d, &lo, &l))) s = nb_loader_start(l, NULL, (size_t)d->count, 0, 0);
    if (confusion) memset(confusion, 0, (size_t)classes * (size_t)classes * sizeof *confusion);
    double loss_sum = 0.0;
    size_t n = 0, correct = 0, top5 = 0;
    const long batches = (d->count + batch - 1) / batch;
    double t0 = now_seconds();
    const nb_batch *b;
    while (!s && !(s = nb_loader_next(l, &b)) && b) {
        if (b->count == 0) continue;
        float loss;
        if ((s = nb_model_eval_batch(m, b->x, b->y, b->count, &loss))) break;
        loss_sum += (double)loss * b->count;
        n += (size_t)b->count;
        const float *logits = nb_value(m->logits)->data;
        for (int i = 0; i < b->count; i++) {
            const float *row = logits + (size_t)i * (size_t)classes;
            int best = 0;
            for (int k = 1; k < classes; k++)
                if (row[k] > row[best]) best = k;
            int truth = (int)b->y[i];
            correct += best == truth;
            /* In the top 5 when fewer than 5 logits beat the label's (ties
             * go to the lower index, as the top-1 pick does). */
            int above = 0;
            for (int k = 0; k < classes; k++)
                above += row[k] > row[truth] || (row[k] == row[truth] && k < truth);
            top5 += above < 5;
            if (confusion) confusion[(size_t)truth * (size_t)classes + (size_t)best]++;
        }
        if (ep && ep->fn) {
            nb_progress p = {NB_PHASE_EVAL, ep->epoch, ep->epochs, b->index + 1, batches, ep->step,
                             n, loss_sum / (double)n, 0, 0, 0, 0.0f};
            progress_rates(&p, p.samples, p.done, now_seconds() - t0);
            ep->fn(&p, ep->user);
        }
    }
    nb_loader_free(l);
    if (dist) {
        /* Every rank joins the sum, a failed one too, so that one rank's
         * error (an image it could not read) ends the others' evaluation
         * now rather than at the watchdog. */
        double sums[5] = {loss_sum, (double)n, (double)correct, (double)top5, s != NB_OK};
        nb_status summed = nb_dist_sum(dist, sums, 5, "the test-set evaluation");
        if (s) return s;
        if (summed) return summed;
        if (sums[4] > 0) return ranks_failed(dist, sums[4], "the test-set evaluation");
        loss_sum = sums[0], n = (size_t)sums[1], correct = (size_t)sums[2], top5 = (size_t)sums[3];
    }
    if (!s && n == 0) s = nb_fail(NB_ERR_FORMAT, "evaluation data: every image is bad");
    if (s) return s;
    if (result) {
        result->n = n;
        result->correct = correct;
        result->loss = loss_sum / (double)n;
        result->accuracy = (double)correct / (double)n;
        result->top5_correct = top5;
        result->top5 = (double)top5 / (double)n;
    }
    return NB_OK;
}

/* ---- the training loop ---------------------------------------------------------- */

nb_train_opts nb_train_defaults(void) {
    nb_train_opts o;
    memset(&o, 0, sizeof o);
    o.epochs = 10;
    o.batch = 64;
    o.shuffle = 1;
    return o;
}

static nb_status check_opts(const nb_model *m, const nb_optimizer *opt, const nb_train_opts *o) {
    nb_status s = nb_model_check_ready(m, "nb_train");
    if (s) return s;
    if (!opt || !o) return nb_fail(NB_ERR_ARG, "nb_train: NULL %s", opt ? "options" : "optimizer");
    if (o->batch <= 0) return nb_fail(NB_ERR_ARG, "nb_train: batch %d, expected > 0", o->batch);
    if (o->steps < 0 || o->epochs < 0 || (o->steps == 0 && o->epochs == 0))
        return nb_fail(NB_ERR_ARG, "nb_train: %d epochs and %ld steps; give a positive number of "
                       "one of them", o->epochs, o->steps);
    if (o->eval_batch < 0) return nb_fail(NB_ERR_ARG, "nb_train: eval batch %d, expected >= 0", o->eval_batch);
    if (o->checkpoint_every < 0)
        return nb_fail(NB_ERR_ARG, "nb_train: checkpoint every %ld steps, expected >= 0 (0: after "
                       "every epoch)", o->checkpoint_every);
    return NB_OK;
}

/* Everything the loop carries between epochs. */
typedef struct run {
    nb_model *m;
    nb_optimizer *opt;
    const nb_dataset *train;
    const nb_train_opts *o;
    nb_train_state st;
    nb_rng rng;       /* the shuffle generator, running */
    uint32_t *order;
    nb_loader *loader; /* the training batches: shuffled, augmented, normalised */
    long per_epoch;   /* batches in an epoch, the last one partial */
    nb_dist *dist;    /* data-parallel ranks, or NULL */
    bool stop_agreed; /* data-parallel: some rank was asked to stop (summed each step) */
} run;

/* Data-parallel ranks stop together, at the step after the one where any
 * of them saw the flag: one rank leaving alone would leave the rest
 * waiting for it. */
static bool stop_requested(const run *r) {
    return r->dist ? r->stop_agreed : r->o->stop && *r->o->stop;
}

/* The step budget, or the epochs, all done. */
static bool run_done(const run *r) {
    const nb_train_opts *o = r->o;
    return o->steps ? r->st.step >= o->steps : r->st.epoch >= o->epochs;
}

/* Data-parallel: every rank holds the same state; rank 0 writes it. */
static nb_status save_checkpoint(run *r, const char *path) {
    if (nb_dist_rank(r->dist) != 0) return NB_OK;
    return nb_checkpoint_save(path, r->m, r->opt, &r->st);
}

static int planned_epochs(const run *r) {
    const nb_train_opts *o = r->o;
    return o->steps ? (int)((o->steps + r->per_epoch - 1) / r->per_epoch) : o->epochs;
}

/* After a step: where the epoch stands, for nb_train_opts.on_progress.
 * steps_now and trained count this call's steps and samples, so the speed
 * and the time left hold for a resumed epoch too. */
static void report_step(const run *r, long steps_now, size_t trained, double seconds) {
    const nb_train_state *st = &r->st;
    long end = r->per_epoch;
    if (r->o->steps && r->o->steps - st->step < end - st->batch_in_epoch)
        end = st->batch_in_epoch + (r->o->steps - st->step); /* the budget ends this epoch early */
    nb_progress p = {NB_PHASE_TRAIN, st->epoch + 1, planned_epochs(r), st->batch_in_epoch, end,
                     st->step, (size_t)st->samples,
                     st->samples ? st->loss_sum / (double)st->samples : NAN, 0, 0, 0,
                     nb_optimizer_lr(r->opt)};
    progress_rates(&p, trained, steps_now, seconds);
    r->o->on_progress(&p, r->o->user);
}

/* Data-parallel: fail loudly if a rank's weights drifted from rank 0's. */
static nb_status check_ranks(run *r, const char *when) {
    char text[160];
    snprintf(text, sizeof text, "%s %ld", when, r->st.step);
    return nb_dist_check_weights(r->dist, r->m, text);
}

/* One data-parallel step: this rank's b->count samples of a global batch
 * of b->global_count go forward and backward, the gradients are summed over the ranks
 * as backward runs (nb_dist_begin_backward), and every rank makes the same
 * update. The loss and the finite checks are the global batch's, so every
 * rank takes the same branch. *loss_sum and *kept: the global batch's loss
 * sum and its samples (fewer than global_count where bad images were left
 * out). `failed` (b may then be NULL): this rank could not read its batch;
 * it still joins the step's sums, as does a rank whose forward or backward
 * fails, so that the others learn of it at once and stop with an error
 * instead of waiting in their next sum until the watchdog ends the job. */
static nb_status dist_train_step(run *r, const nb_batch *b, nb_status failed, double *loss_sum, long *kept) {
    const int mine = failed ? 0 : b->count, count = failed ? 1 : b->global_count;
    nb_model *m = r->m;
    float *params, *grads;
    size_t n = nb_graph_params(m->g, &params, &grads);
    /* The losses, a stop asked for, the samples trained on, ranks failed. */
    double sums[4] = {0.0, r->o->stop && *r->o->stop, mine, 0.0};
    nb_status s = failed;
    bool began = false;
    if (mine && !(s = feed(m, b->x, b->y, mine, "nb_train"))) {
        nb_set_training(m->g, 1);
        if (!(s = nb_forward(m->g, m->loss))) {
            sums[0] = (double)nb_value(m->loss)->data[0] * mine;
            nb_dist_begin_backward(r->dist, m->g, (double)mine / count);
            began = true;
            s = nb_backward(m->g, m->loss);
        }
    }
    if (!began) {
        /* Nothing to learn from (or a failure before backward); the sums
         * still need this rank's zeros, and the dropout masks its step. */
        memset(grads, 0, n * sizeof *grads);
        nb_graph_set_step(m->g, nb_graph_step(m->g) + 1);
        nb_dist_begin_backward(r->dist, m->g, 0.0);
    }
    nb_status ended = nb_dist_end_backward(r->dist, m->g);
    sums[3] = s != NB_OK;
    nb_status summed = ended ? ended : nb_dist_sum(r->dist, sums, 4, "the loss allreduce");
    if (s) return s;
    if (summed) return summed;
    if (sums[3] > 0) return ranks_failed(r->dist, sums[3], "the training step");
    r->stop_agreed = sums[1] > 0;
    *loss_sum = sums[0];
    *kept = (long)sums[2];
    if (!isfinite(sums[0]))
        return nb_fail(NB_ERR_NONFINITE, "model '%s': the loss is %s: training diverged (try a "
                       "lower learning rate)", m->name, nonfinite_name((float)sums[0]));
    if ((s = nb_model_check_finite(m, grads, "the gradient of ")))
        return nb_fail_prefix(s, "model '%s': ", m->name);
    return nb_optimizer_step(r->opt, params, grads);
}

/* Train through the rest of the current epoch, or until the step budget
 * ends it early or a stop is requested. The shuffle is redrawn from the
 * epoch's starting generator, so a resumed epoch sees the same order. On
 * return st.batch_in_epoch says how far it got; the epoch stays open (its
 * evaluation and report are the caller's). *seconds and *trained time and
 * count this call's own samples. */
static nb_status train_epoch(run *r, double *seconds, size_t *trained) {
    const nb_dataset *d = r->train;
    const nb_train_opts *o = r->o;
    r->rng = r->st.epoch_rng;
    if (o->shuffle) {
        nb_shuffle(r->order, (size_t)d->count, 1, &r->rng);
    } else {
        for (int i = 0; i < d->count; i++) r->order[i] = (uint32_t)i;
    }
    nb_train_state *st = &r->st;
    nb_status s = nb_loader_start(r->loader, r->order, (size_t)d->count, st->epoch, st->batch_in_epoch);
    if (s) return s;
    double t0 = now_seconds();
    *trained = 0;
    long steps_now = 0;
    while (st->batch_in_epoch < r->per_epoch && !(o->steps && st->step >= o->steps) &&
           !stop_requested(r)) {
        const nb_batch *b;
        if ((s = nb_loader_next(r->loader, &b)) || !b) {
            s = nb_fail_prefix(s ? s : NB_ERR_ARG, "epoch %d, step %ld: reading the batch: ", st->epoch + 1,
                               st->step + 1);
            double unused_loss;
            long unused_kept;
            /* The other ranks are in this step's sums: join them, failed. */
            if (r->dist) dist_train_step(r, NULL, s, &unused_loss, &unused_kept);
            return s;
        }
        st->bad_images += b->bad;
        double loss_sum = 0.0;
        long kept = b->count;
        if (r->dist) {
            /* Every rank steps, its shard empty or not. */
            s = dist_train_step(r, b, NB_OK, &loss_sum, &kept);
        } else if (b->count) {
            float loss;
            s = nb_model_train_step(r->m, r->opt, b->x, b->y, b->count, &loss);
            loss_sum = (double)loss * b->count;
        }
        /* A batch whose every image was bad has nothing to train on. */
        if (s == NB_ERR_NONFINITE && o->skip_nonfinite) {
            st->skipped++;
        } else if (s) {
            return nb_fail_prefix(s, "epoch %d, step %ld: ", st->epoch + 1, st->step + 1);
        } else if (kept) {
            st->loss_sum += loss_sum;
            st->samples += kept;
            *trained += (size_t)kept;
        }
        st->step++;
        st->batch_in_epoch++;
        if (o->on_progress) report_step(r, ++steps_now, *trained, now_seconds() - t0);
        if (o->checkpoint && o->checkpoint_every > 0 && st->step % o->checkpoint_every == 0 &&
            (s = save_checkpoint(r, o->checkpoint)))
            return s;
        if (r->dist && st->step % NB_DIST_CHECK_EVERY == 0 && (s = check_ranks(r, "after step")))
            return s;
    }
    *seconds = now_seconds() - t0;
    return NB_OK;
}

/* Close a finished epoch: the next one starts from the generator as it is
 * after this epoch's shuffle, with nothing counted yet. */
static void close_epoch(run *r) {
    r->st.epoch++;
    r->st.batch_in_epoch = 0;
    r->st.epoch_rng = r->rng;
    r->st.loss_sum = 0.0;
    r->st.samples = 0;
    r->st.skipped = 0;
    r->st.bad_images = 0;
}

/* Stopped on request: save where the run stands, so nothing done is lost. */
static nb_status stop_run(run *r) {
    const nb_train_opts *o = r->o;
    const char *path = o->checkpoint ? o->checkpoint : o->stop_checkpoint;
    const nb_train_state *st = &r->st;
    if (!path)
        return nb_fail(NB_ERR_STOPPED, "stopped after step %ld (epoch %d, batch %ld of %ld); no "
                       "checkpoint was asked for", st->step, st->epoch + 1, st->batch_in_epoch,
                       r->per_epoch);
    nb_status s = save_checkpoint(r, path);
    if (s)
        return nb_fail_prefix(s, "stopped after step %ld, but the checkpoint was not written: ",
                              st->step);
    return nb_fail(NB_ERR_STOPPED, "stopped after step %ld (epoch %d, batch %ld of %ld); "
                   "checkpoint written to %s", st->step, st->epoch + 1, st->batch_in_epoch,
                   r->per_epoch, path);
}

static nb_status run_loop(run *r) {
    const nb_train_opts *o = r->o;
    int epochs = planned_epochs(r);
    while (!run_done(r) || r->st.batch_in_epoch) {
        nb_epoch_report rep;
        memset(&rep, 0, sizeof rep);
        size_t trained;
        nb_status s = train_epoch(r, &rep.seconds, &trained);
        if (s) return s;
        /* Checked again here: the evaluation may take a while, and a stop
         * that came during the last step should not wait for it. */
        if (stop_requested(r)) return stop_run(r);
        const nb_train_state *st = &r->st;
        rep.epochs = epochs;
        rep.epoch = st->epoch + 1;
        rep.step = st->step;
        rep.samples = (size_t)st->samples;
        rep.skipped = st->skipped;
        rep.bad_images = st->bad_images;
        rep.train_loss = st->samples ? st->loss_sum / (double)st->samples : NAN;
        rep.images_per_s = rep.seconds > 0 ? (double)trained / rep.seconds : 0.0;
        rep.test_loss = rep.test_accuracy = rep.test_top5 = NAN;
        if (o->test) {
            nb_eval_result e;
            eval_progress ep = {o->on_progress, o->user, rep.epoch, epochs, st->step};
            if ((s = nb_dist_broadcast_buffers(r->dist, r->m->g)) ||
                (s = evaluate(r->m, o->test, o->eval_batch, o->workers, &e, NULL, &ep, r->dist)))
                return nb_fail_prefix(s, "after epoch %d: ", rep.epoch);
            rep.test_loss = e.loss;
            rep.test_accuracy = e.accuracy;
            if (nb_model_classes(r->m) > 5) rep.test_top5 = e.top5;
        }
        rep.lr = nb_optimizer_lr(r->opt);
        /* Report, then checkpoint: a run killed between the two repeats the
         * report when resumed, rather than losing it. */
        if (o->on_epoch) o->on_epoch(&rep, o->user);
        bool complete = st->batch_in_epoch == r->per_epoch;
        if (complete) close_epoch(r);
        if (o->checkpoint && (o->checkpoint_every <= 0 || run_done(r)) &&
            (s = save_checkpoint(r, o->checkpoint)))
            return s;
        /* A step budget that ended mid-epoch ends the run. */
        if (!complete) return NB_OK;
    }
    return NB_OK;
}

nb_status nb_train(nb_model *m, nb_optimizer *opt, const nb_dataset *train, const nb_train_opts *o) {
    nb_status s = check_opts(m, opt, o);
    if (s || (s = check_data(m, train, "training data"))) return s;
    if (o->test && (s = check_data(m, o->test, "test data"))) return s;
    if (train->channels > NB_MAX_CHANNELS)
        return nb_fail(NB_ERR_ARG, "nb_train: %d channels, at most %d", train->channels, NB_MAX_CHANNELS);
    nb_dist *dist = o->distributed;
    if ((s = nb_dist_check_data(dist, train, "the training data")) ||
        (o->test && (s = nb_dist_check_data(dist, o->test, "the test data"))))
        return s;
    run r;
    memset(&r, 0, sizeof r);
    r.m = m, r.opt = opt, r.train = train, r.o = o, r.dist = dist;
    r.per_epoch = (train->count + o->batch - 1) / o->batch;
    r.st.batch = o->batch;
    r.st.shuffle = o->shuffle != 0;
    nb_rng_seed(&r.st.epoch_rng, o->seed);
    if (o->resume) {
        nb_train_state saved;
        if ((s = nb_checkpoint_load(o->resume, m, opt, &saved))) return s;
        if (saved.batch != o->batch || saved.shuffle != r.st.shuffle)
            return nb_fail(NB_ERR_ARG, "%s: the checkpoint was written with batch %d and %s; resume "
                           "with the same settings (got batch %d and %s)", o->resume, saved.batch,
                           saved.shuffle ? "shuffling" : "no shuffle", o->batch,
                           o->shuffle ? "shuffling" : "no shuffle");
        /* batch_in_epoch may equal the epoch's batch count: trained, but
         * not yet evaluated and reported. */
        if (saved.batch_in_epoch > r.per_epoch)
            return nb_fail(NB_ERR_FORMAT, "%s: the checkpoint stopped at batch %ld of an epoch, but "
                           "this data set has %ld batches", o->resume, saved.batch_in_epoch, r.per_epoch);
        if (saved.skipped > saved.batch_in_epoch || saved.samples > saved.batch_in_epoch * o->batch)
            return nb_fail(NB_ERR_FORMAT, "%s: the checkpoint counts %ld samples and %ld skipped "
                           "steps in %ld batches of %d", o->resume, saved.samples, saved.skipped,
                           saved.batch_in_epoch, o->batch);
        r.st = saved;
    }
    float *params;
    nb_graph_params(m->g, &params, NULL);
    if ((s = nb_model_check_finite(m, params, "parameter ")))
        return nb_fail_prefix(s, "model '%s': cannot train from weights that are not finite: ",
                              m->name);
    if ((s = check_ranks(&r, "before training (the same seed, --init or --resume on every "
                             "rank?), at step")))
        return s;
    if (o->workers < 0)
        return nb_fail(NB_ERR_ARG, "nb_train: %d workers, expected >= 0", o->workers);
    float mean[NB_MAX_CHANNELS], std[NB_MAX_CHANNELS];
    nb_loader_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.batch = o->batch;
    lo.workers = o->workers;
    lo.augment = o->augment;
    lo.seed = o->seed;
    /* Data-parallel: this rank reads its shard of every global batch. */
    lo.shard = nb_dist_rank(dist);
    lo.shards = nb_dist_size(dist);
    data_norm(m, train, mean, std, &lo.mean, &lo.std);
    r.order = nb_alloc((size_t)train->count * sizeof *r.order, "shuffle order");
    s = r.order ? nb_loader_new(train, &lo, &r.loader) : NB_ERR_NOMEM;
    if (!s) s = run_loop(&r);
    nb_loader_free(r.loader);
    nb_free(r.order);
    /* An update can overflow with every gradient finite (a learning rate
     * far too large); such weights must not be taken for a result. */
    if (!s && (s = nb_model_check_finite(m, params, "parameter ")))
        return nb_fail_prefix(s, "model '%s': training ended with weights that are not finite "
                              "(lower the learning rate): ", m->name);
    if (!s && dist) s = check_ranks(&r, "at the end, step");
    return s;
}
