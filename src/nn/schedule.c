/* schedule.c — learning-rate schedules as closed forms of the step count.
 *
 * The step is the number of completed optimizer updates (one per batch, not
 * per epoch), so the k-th update (k from 0) uses the value at step k. This is
 * what torch gives when scheduler.step() follows every optimizer.step().
 * Closed forms rather than torch's recursive updates, so a resumed run only
 * needs the step count; they agree with torch to float precision. */
#include "nn/schedule.h"

#include "core/internal.h"

#include <math.h>

static const char *schedule_name(nb_schedule_kind kind) {
    switch (kind) {
    case NB_SCHED_CONSTANT: return "constant";
    case NB_SCHED_STEP: return "step";
    case NB_SCHED_COSINE: return "cosine";
    case NB_SCHED_INV: return "inv";
    }
    return "unknown";
}

nb_status nb_schedule_check(const nb_optimizer_opts *o) {
    const char *name = schedule_name(o->schedule);
    if (o->warmup_steps < 0)
        return nb_fail(NB_ERR_ARG, "optimizer: warmup_steps must be >= 0, got %ld", o->warmup_steps);
    switch (o->schedule) {
    case NB_SCHED_CONSTANT:
        return NB_OK;
    case NB_SCHED_STEP:
        if (o->step_size <= 0)
            return nb_fail(NB_ERR_ARG, "optimizer: step_size must be > 0 for the %s schedule, got %d",
                           name, o->step_size);
        /* gamma 0 would zero the lr after the first decay: surely a field
         * left unset rather than a wish. */
        if (!isfinite(o->gamma) || o->gamma <= 0)
            return nb_fail(NB_ERR_ARG, "optimizer: gamma must be finite and > 0 for the %s schedule, got %g",
                           name, (double)o->gamma);
        return NB_OK;
    case NB_SCHED_COSINE:
        if (o->total_steps <= 0)
            return nb_fail(NB_ERR_ARG, "optimizer: total_steps must be > 0 for the %s schedule, got %ld",
                           name, o->total_steps);
        /* It anneals from lr down to min_lr; a min_lr above lr would make it
         * a warm-up, which is not what the name promises. */
        if (!isfinite(o->min_lr) || o->min_lr < 0 || o->min_lr > o->lr)
            return nb_fail(NB_ERR_ARG, "optimizer: min_lr must be in [0, lr = %g] for the %s schedule, got %g",
                           (double)o->lr, name, (double)o->min_lr);
        return NB_OK;
    case NB_SCHED_INV:
        /* gamma 0 or power 0 make it constant: again an unset field. */
        if (!isfinite(o->gamma) || o->gamma <= 0)
            return nb_fail(NB_ERR_ARG, "optimizer: gamma must be finite and > 0 for the %s schedule, got %g",
                           name, (double)o->gamma);
        if (!isfinite(o->power) || o->power <= 0)
            return nb_fail(NB_ERR_ARG, "optimizer: power must be finite and > 0 for the %s schedule, got %g",
                           name, (double)o->power);
        return NB_OK;
    }
    return nb_fail(NB_ERR_ARG, "optimizer: schedule %d is not a nb_schedule_kind", (int)o->schedule);
}

double nb_schedule_lr(const nb_optimizer_opts *o, uint64_t step) {
    double lr = o->lr;
    if (o->warmup_steps > 0) {
        const double w = (double)o->warmup_steps;
        if (step < (uint64_t)o->warmup_steps) return lr * (1.0 / w + (1.0 - 1.0 / w) * (double)step / w);
        step -= (uint64_t)o->warmup_steps;
    }
    switch (o->schedule) {
    case NB_SCHED_CONSTANT:
        return lr;
    case NB_SCHED_STEP:
        return lr * pow(o->gamma, (double)(step / (uint64_t)o->step_size));
    case NB_SCHED_COSINE: {
        /* Held at min_lr once annealed, where torch's CosineAnnealingLR
         * would start climbing back (it is periodic). */
        double min_lr = o->min_lr;
        if (step >= (uint64_t)o->total_steps) return min_lr;
        const double pi = 3.14159265358979323846;
        return min_lr + (lr - min_lr) * (1 + cos(pi * (double)step / (double)o->total_steps)) / 2;
    }
    case NB_SCHED_INV:
        return lr * pow(1 + (double)o->gamma * (double)step, -(double)o->power);
    }
    return lr; /* unreachable: nb_schedule_check rejected other kinds */
}
