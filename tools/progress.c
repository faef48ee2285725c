/* progress.c — one status line, redrawn in place with a carriage return:
 *
 *   epoch 2/10 [=========>          ] 412/938  5123 img/s  loss 0.4123  0:42 left
 *
 * It goes to stderr (results stay on stdout, so a pipe of them is clean)
 * and only when stderr is a terminal: a log file gets the plain per-epoch
 * lines and no control characters. */
#include "progress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define REDRAW_SECONDS 0.1

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_init(cli_progress *p, bool quiet) {
    memset(p, 0, sizeof *p);
    const char *term = getenv("TERM");
    p->live = !quiet && isatty(STDERR_FILENO) && !(term && !strcmp(term, "dumb"));
    /* no-color.org: set and not empty means no colour. */
    const char *no_color = getenv("NO_COLOR");
    p->color = p->live && !(no_color && *no_color);
}

static int terminal_columns(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) return ws.ws_col;
    return 80;
}

/* "1:02:03" or "2:03". */
static void format_duration(double s, char *out, size_t size) {
    if (!isfinite(s) || s < 0) {
        snprintf(out, size, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(out, size, "%ld:%02ld", t / 60, t % 60);
}

static void draw(cli_progress *p, const nb_progress *np) {
    char head[32], tail[160], left[32];
    if (np->phase == NB_PHASE_TRAIN) snprintf(head, sizeof head, "epoch %d/%d", np->epoch, np->epochs);
    else snprintf(head, sizeof head, "%s", np->epoch ? "test" : "eval");
    bool last = np->done >= np->total;
    format_duration(last ? np->seconds : np->seconds_left, left, sizeof left);
    int n = snprintf(tail, sizeof tail, " %ld/%ld  %.0f img/s", np->done, np->total, np->images_per_s);
    if (!isnan(np->loss) && n > 0 && (size_t)n < sizeof tail)
        n += snprintf(tail + n, sizeof tail - (size_t)n, "  loss %.4f", np->loss);
    if (n > 0 && (size_t)n < sizeof tail)
        snprintf(tail + n, sizeof tail - (size_t)n, last ? "  %s" : "  %s left", left);
    /* The bar takes what the text leaves of the line, within reason. */
    int width = terminal_columns() - (int)strlen(head) - (int)strlen(tail) - 4;
    if (width > 40) width = 40;
    if (width < 0) width = 0;
    int filled = np->total > 0 ? (int)((double)width * (double)np->done / (double)np->total) : 0;
    char bar[48];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '=' : i == filled ? '>' : ' ';
    bar[width] = '\0';
    /* \r to the line's start, \033[K clears what a longer line left. */
    if (width > 0)
        fprintf(stderr, "\r%s [%s%s%s]%s\033[K", head, p->color ? "\033[32m" : "", bar,
                p->color ? "\033[0m" : "", tail);
    else
        fprintf(stderr, "\r%s%s\033[K", head, tail);
    fflush(stderr);
    p->shown = true;
}

void cli_progress_update(const nb_progress *np, void *user) {
    cli_progress *p = user;
    if (!p || !p->live) return;
    double now = now_seconds();
    if (np->done < np->total && now - p->last_draw < REDRAW_SECONDS) return;
    p->last_draw = now;
    draw(p, np);
}

void cli_progress_clear(cli_progress *p) {
    if (!p || !p->shown) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->shown = false;
}
