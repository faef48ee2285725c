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
        return nb_fail(NB_ERR_NONFINITE, "model '%s': the loss is %g: training diverged (try a "
                       "lower learning rate)", m->name, (double)value);
    if ((s = nb_backward(m->g, m->loss))) return s;
    float *params, *grads;
    nb_graph_params(m->g, &params, &grads);
    if ((s = nb_optimizer_step(opt, params, grads))) return s;
    if (loss) *loss = value;
    return NB_OK;
}

nb_status nb_model_eval_batch(nb_model *m, const float *x, const float *labels, int batch, float *loss) {
    nb_status s = feed(m, x, labels, batch, "nb_model_eval_batch");
    if (s) return s;
    nb_set_training(m->g, 0);
    if ((s = nb_forward(m->g, labels ? m->loss : m->logits))) return s;
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
        if (d->labels[i] >= classes)
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

nb_status nb_evaluate(nb_model *m, const nb_dataset *d, int batch, nb_eval_result *result,
                      size_t *confusion) {
    nb_status s = nb_model_check_ready(m, "nb_evaluate");
    if (s || (s = check_data(m, d, "evaluation data"))) return s;
    if (batch == 0) batch = auto_batch(m);
    if (batch < 0) return nb_fail(NB_ERR_ARG, "nb_evaluate: batch %d, expected > 0 (or 0: automatic)", batch);
    if (d->channels > NB_MAX_CHANNELS)
        return nb_fail(NB_ERR_ARG, "nb_evaluate: %d channels, at most %d", d->channels, NB_MAX_CHANNELS);
    int classes = nb_model_classes(m);
    size_t sample = (size_t)d->channels * (size_t)d->height * (size_t)d->width;
    float *x = nb_alloc((size_t)batch * sample * sizeof(float), "evaluation batch");
    float *y = nb_alloc((size_t)batch * sizeof(float), "evaluation labels");
    if (!x || !y) s = NB_ERR_NOMEM;
    float mean[NB_MAX_CHANNELS], std[NB_MAX_CHANNELS];
    const float *pm, *ps;
    data_norm(m, d, mean, std, &pm, &ps);
    if (confusion) memset(confusion, 0, (size_t)classes * (size_t)classes * sizeof *confusion);
    double loss_sum = 0.0;
    size_t correct = 0;
    for (int first = 0; !s && first < d->count; first += batch) {
        int count = d->count - first < batch ? d->count - first : batch;
        nb_dataset_batch(d, NULL, (size_t)first, count, pm, ps, x, y);
        float loss;
        if ((s = nb_model_eval_batch(m, x, y, count, &loss))) break;
        loss_sum += (double)loss * count;
        const float *logits = nb_value(m->logits)->data;
        for (int i = 0; i < count; i++) {
            const float *row = logits + (size_t)i * (size_t)classes;
            int best = 0;
            for (int k = 1; k < classes; k++)
                if (row[k] > row[best]) best = k;
            int truth = (int)y[i];
            correct += best == truth;
            if (confusion) confusion[(size_t)truth * (size_t)classes + (size_t)best]++;
        }
    }
    nb_free(x);
    nb_free(y);
    if (s) return s;
    if (result) {
        result->n = (size_t)d->count;
        result->correct = correct;
        result->loss = loss_sum / d->count;
        result->accuracy = (double)correct / d->count;
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
    float *x, *y;
    const float *mean, *std;
    long per_epoch;   /* batches in an epoch, the last one partial */
} run;

/* Train through the rest of the current epoch, or until the step budget
 * ends it early; fills the report's training half. */
static nb_status train_epoch(run *r, nb_epoch_report *rep) {
    const nb_dataset *d = r->train;
    const nb_train_opts *o = r->o;
    nb_rng epoch_start = r->rng;
    if (o->shuffle) {
        nb_shuffle(r->order, (size_t)d->count, 1, &r->rng);
    } else {
        for (int i = 0; i < d->count; i++) r->order[i] = (uint32_t)i;
    }
    double t0 = now_seconds(), loss_sum = 0.0;
    size_t samples = 0;
    long b = r->st.batch_in_epoch;
    for (; b < r->per_epoch && !(o->steps && r->st.step >= o->steps); b++) {
        size_t first = (size_t)b * (size_t)o->batch;
        int count = (size_t)d->count - first < (size_t)o->batch ? (int)((size_t)d->count - first) : o->batch;
        nb_dataset_batch(d, r->order, first, count, r->mean, r->std, r->x, r->y);
        float loss;
        nb_status s = nb_model_train_step(r->m, r->opt, r->x, r->y, count, &loss);
        if (s) return nb_fail_prefix(s, "epoch %d, step %ld: ", r->st.epoch + 1, r->st.step + 1);
        loss_sum += (double)loss * count;
        samples += (size_t)count;
        r->st.step++;
    }
    rep->epoch = r->st.epoch + 1;
    rep->step = r->st.step;
    rep->samples = samples;
    rep->seconds = now_seconds() - t0;
    rep->train_loss = samples ? loss_sum / (double)samples : NAN;
    rep->images_per_s = rep->seconds > 0 ? (double)samples / rep->seconds : 0.0;
    if (b < r->per_epoch) {
        /* Stopped part-way: a resume reshuffles from the epoch's start. */
        r->st.batch_in_epoch = b;
        r->st.epoch_rng = epoch_start;
    } else {
        r->st.epoch++;
        r->st.batch_in_epoch = 0;
        r->st.epoch_rng = r->rng;
    }
    return NB_OK;
}

static nb_status run_loop(run *r) {
    const nb_train_opts *o = r->o;
    int epochs = o->steps ? (int)((o->steps + r->per_epoch - 1) / r->per_epoch) : o->epochs;
    for (;;) {
        if (o->steps ? r->st.step >= o->steps : r->st.epoch >= o->epochs) return NB_OK;
        nb_epoch_report rep;
        memset(&rep, 0, sizeof rep);
        rep.epochs = epochs;
        nb_status s = train_epoch(r, &rep);
        if (s) return s;
        rep.test_loss = rep.test_accuracy = NAN;
        if (o->test) {
            nb_eval_result e;
            if ((s = nb_evaluate(r->m, o->test, o->eval_batch, &e, NULL)))
                return nb_fail_prefix(s, "after epoch %d: ", rep.epoch);
            rep.test_loss = e.loss;
            rep.test_accuracy = e.accuracy;
        }
        rep.lr = nb_optimizer_lr(r->opt);
        if (o->checkpoint && (s = nb_checkpoint_save(o->checkpoint, r->m, r->opt, &r->st))) return s;
        if (o->on_epoch) o->on_epoch(&rep, o->user);
        /* A step budget that ended mid-epoch ends the run. */
        if (r->st.batch_in_epoch) return NB_OK;
    }
}

nb_status nb_train(nb_model *m, nb_optimizer *opt, const nb_dataset *train, const nb_train_opts *o) {
    nb_status s = check_opts(m, opt, o);
    if (s || (s = check_data(m, train, "training data"))) return s;
    if (o->test && (s = check_data(m, o->test, "test data"))) return s;
    if (train->channels > NB_MAX_CHANNELS)
        return nb_fail(NB_ERR_ARG, "nb_train: %d channels, at most %d", train->channels, NB_MAX_CHANNELS);
    run r;
    memset(&r, 0, sizeof r);
    r.m = m, r.opt = opt, r.train = train, r.o = o;
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
        if (saved.batch_in_epoch >= r.per_epoch)
            return nb_fail(NB_ERR_FORMAT, "%s: the checkpoint stopped at batch %ld of an epoch, but "
                           "this data set has %ld batches", o->resume, saved.batch_in_epoch, r.per_epoch);
        r.st = saved;
    }
    r.rng = r.st.epoch_rng;
    float mean[NB_MAX_CHANNELS], std[NB_MAX_CHANNELS];
    data_norm(m, train, mean, std, &r.mean, &r.std);
    size_t sample = (size_t)train->channels * (size_t)train->height * (size_t)train->width;
    r.order = nb_alloc((size_t)train->count * sizeof *r.order, "shuffle order");
    r.x = nb_alloc((size_t)o->batch * sample * sizeof(float), "training batch");
    r.y = nb_alloc((size_t)o->batch * sizeof(float), "training labels");
    s = r.order && r.x && r.y ? run_loop(&r) : NB_ERR_NOMEM;
    nb_free(r.order);
    nb_free(r.x);
    nb_free(r.y);
    return s;
}
