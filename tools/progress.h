/* progress.h — the live progress bar of `nabla train` and `nabla eval`,
 * drawn on stderr from the library's nb_progress reports. */
#ifndef NABLA_PROGRESS_H
#define NABLA_PROGRESS_H

#include "nabla.h"

#include <stdbool.h>

typedef struct cli_progress {
    bool live;        /* stderr is a terminal and --quiet was not given */
    bool color;       /* live, and NO_COLOR is unset or empty */
    bool shown;       /* a bar is on the screen now */
    double last_draw; /* when it was last drawn (monotonic seconds) */
} cli_progress;

/* Live when stderr is a terminal (not TERM=dumb) and quiet is false. */
void cli_progress_init(cli_progress *p, bool quiet);
/* An nb_progress_fn (user: the cli_progress): redraws at most ten times a
 * second, and always at a phase's last batch. Costs one clock read a call
 * otherwise. Does nothing unless live. */
void cli_progress_update(const nb_progress *np, void *user);
/* Erase the bar, so that a line printed next starts clean. */
void cli_progress_clear(cli_progress *p);

#endif
