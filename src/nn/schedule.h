/* schedule.h — the learning-rate schedules, as the optimizer sees them. The
 * public side is nb_schedule_kind and the schedule fields of
 * nb_optimizer_opts in nabla.h. */
#ifndef NB_SCHEDULE_H
#define NB_SCHEDULE_H

#include "nabla.h"

/* Check the fields opts->schedule reads (and the schedule kind itself);
 * NB_ERR_ARG with a message naming the first bad field and its value. */
nb_status nb_schedule_check(const nb_optimizer_opts *opts);

/* The learning rate for the update that follows `step` completed updates
 * (so step 0 gives opts->lr). Double, because torch's schedulers compute in
 * Python floats and the optimizer derives its per-step constants from it. */
double nb_schedule_lr(const nb_optimizer_opts *opts, uint64_t step);

#endif
