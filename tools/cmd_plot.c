/* cmd_plot.c — `nabla plot LOG --out curves.png`: the training curves of a
 * --log file, drawn with cairo: loss (train and test) and test accuracy
 * (top-1, and top-5 where the log has it) against epoch, side by side. */
#include "cli.h"
#include "draw.h"
#include "metrics_log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: nabla plot LOG --out FILE.png [--title T] [--width W]\n"
    "\n"
    "Draw the curves of a `nabla train --log` file (.csv or .jsonl): train and\n"
    "test loss, and test accuracy (and top-5 accuracy where the log has it)\n"
    "against epoch.\n"
    "\n"
    "  --out FILE.png   the picture to write\n"
    "  --title T        its title (default: the log's file name)\n"
    "  --width W        width in pixels (default 1100; the height follows)\n";

static const draw_rgb train_color = {0.12, 0.47, 0.71}, test_color = {0.85, 0.37, 0.01},
                      step_color = {0.65, 0.78, 0.89}, top5_color = {0.17, 0.63, 0.17};

/* One series: a polyline through (x[i], y[i]) where y is finite. */
static void plot_line(cairo_t *cr, const draw_axes *a, const double *x, const double *y, size_t n,
                      draw_rgb c, double width, bool dots) {
    cairo_save(cr);
    cairo_rectangle(cr, a->x, a->y, a->w, a->h);
    cairo_clip(cr);
    cairo_set_source_rgb(cr, c.r, c.g, c.b);
    cairo_set_line_width(cr, width);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    bool open = false;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) continue;
        if (open) cairo_line_to(cr, draw_px(a, x[i]), draw_py(a, y[i]));
        else cairo_move_to(cr, draw_px(a, x[i]), draw_py(a, y[i])), open = true;
    }
    cairo_stroke(cr);
    if (dots)
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(y[i])) continue;
            cairo_arc(cr, draw_px(a, x[i]), draw_py(a, y[i]), 3.5, 0, 6.283185307179586);
            cairo_fill(cr);
        }
    cairo_restore(cr);
}

static void range_of(const double *v, size_t n, double *lo, double *hi) {
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            if (v[i] < *lo) *lo = v[i];
            if (v[i] > *hi) *hi = v[i];
        }
}

static int plot(const char *log_path, const char *out, const char *title, int width) {
    metrics_record *r;
    size_t n;
    if (!metrics_log_read(log_path, &r, &n)) return EXIT_RUNTIME;
    /* Epoch records make the curves; step records, where there are any,
     * show the train loss between them. */
    size_t ne = 0, ns = 0;
    double *ex = calloc(n + 1, sizeof *ex), *etrain = calloc(n + 1, sizeof *ex),
           *etest = calloc(n + 1, sizeof *ex), *eacc = calloc(n + 1, sizeof *ex),
           *etop5 = calloc(n + 1, sizeof *ex), *sx = calloc(n + 1, sizeof *ex), *strain = calloc(n + 1, sizeof *ex);
    int code = 0;
    if (!ex || !etrain || !etest || !eacc || !etop5 || !sx || !strain) {
        cli_error("plot: out of memory");
        code = EXIT_RUNTIME;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (r[i].epoch_record) {
            ex[ne] = r[i].epoch, etrain[ne] = r[i].train_loss, etest[ne] = r[i].test_loss;
            etop5[ne] = 100.0 * r[i].test_top5;
            eacc[ne++] = 100.0 * r[i].test_accuracy;
        } else {
            sx[ns] = r[i].epoch, strain[ns++] = r[i].train_loss;
        }
    }
    if (!ne && !ns) {
        cli_error("%s: no records to plot (write one with nabla train --log %s)", log_path, log_path);
        code = EXIT_RUNTIME;
        goto done;
    }
    double xlo = 0, xhi = 1;
    range_of(ex, ne, &xlo, &xhi);
    range_of(sx, ns, &xlo, &xhi);
    double llo = INFINITY, lhi = -INFINITY, alo = INFINITY, ahi = -INFINITY;
    range_of(etrain, ne, &llo, &lhi);
    range_of(etest, ne, &llo, &lhi);
    range_of(strain, ns, &llo, &lhi);
    range_of(eacc, ne, &alo, &ahi);
    double t5lo = INFINITY, t5hi = -INFINITY;
    range_of(etop5, ne, &t5lo, &t5hi);
    bool have_top5 = isfinite(t5lo);
    if (have_top5) range_of(etop5, ne, &alo, &ahi);
    if (!isfinite(llo)) llo = 0, lhi = 1;
    bool have_acc = isfinite(alo);
    if (!have_acc) alo = 0, ahi = 100;
    /* A margin, so that no point sits on the frame. */
    double lpad = 0.05 * (lhi - llo), apad = 0.05 * (ahi - alo);
    llo -= lpad, lhi += lpad, alo -= apad, ahi += apad;
    if (llo < 0 || (llo > 0 && llo < 0.3 * lhi)) llo = 0; /* loss from 0 when that costs little room */
    draw_nice_range(&llo, &lhi);
    draw_nice_range(&alo, &ahi);
    if (ahi > 100) ahi = 100;
    draw_nice_range(&xlo, &xhi);

    int height = width * 9 / 22;
    cairo_t *cr = draw_canvas(width, height);
    if (!cr) {
        code = EXIT_RUNTIME;
        goto done;
    }
    char heading[512];
    if (!title) {
        const char *slash = strrchr(log_path, '/');
        snprintf(heading, sizeof heading, "training curves: %s", slash ? slash + 1 : log_path);
        title = heading;
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    draw_text(cr, width / 2.0, 12, 17, true, 0.5, 0, title);
    double pw = (width - 220) / 2.0, top = 72, ph = height - top - 70;
    draw_axes loss = {80, top, pw, ph, xlo, xhi, llo, lhi};
    draw_axes acc = {80 + pw + 100, top, pw, ph, xlo, xhi, alo, ahi};
    draw_axes_frame(cr, &loss, "epoch", "cross-entropy loss", "loss");
    draw_axes_frame(cr, &acc, "epoch", "test accuracy (%)", "accuracy");
    /* The train loss over steps, from the run's start. */
    if (ns) {
        double *x = calloc(ns + 1, sizeof *x), *y = calloc(ns + 1, sizeof *y);
        if (x && y) {
            memcpy(x, sx, ns * sizeof *x);
            memcpy(y, strain, ns * sizeof *y);
            plot_line(cr, &loss, x, y, ns, step_color, 1.2, false);
        }
        free(x), free(y);
    }
    plot_line(cr, &loss, ex, etrain, ne, train_color, 2.2, true);
    plot_line(cr, &loss, ex, etest, ne, test_color, 2.2, true);
    const char *names[3];
    draw_rgb colors[3];
    int k = 0;
    names[k] = "train loss (epoch)", colors[k++] = train_color;
    if (ns) names[k] = "train loss (steps)", colors[k++] = step_color;
    names[k] = "test loss", colors[k++] = test_color;
    draw_legend(cr, &loss, k, colors, false, names);
    if (have_acc) {
        if (have_top5) plot_line(cr, &acc, ex, etop5, ne, top5_color, 2.2, true);
        plot_line(cr, &acc, ex, eacc, ne, test_color, 2.2, true);
        /* The last epoch's figure, at its point; the legend goes low, clear
         * of curves that rise. */
        char last[32];
        for (size_t i = ne; i-- > 0;)
            if (isfinite(eacc[i])) {
                snprintf(last, sizeof last, "%.2f%%", eacc[i]);
                cairo_set_source_rgb(cr, 0, 0, 0);
                draw_text(cr, draw_px(&acc, ex[i]) - 6, draw_py(&acc, eacc[i]) + 8, 12, true, 1, 0, last);
                break;
            }
        const draw_rgb acc_colors[2] = {test_color, top5_color};
        draw_legend(cr, &acc, have_top5 ? 2 : 1, acc_colors, true,
                    (const char *const[]){"test accuracy", "test top-5 accuracy"});
    } else {
        cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
        draw_text(cr, acc.x + acc.w / 2, acc.y + acc.h / 2, 13, false, 0.5, 0.5,
                  "no test set in this log");
    }
    if (!draw_save_png(cr, out)) code = EXIT_RUNTIME;
done:
    free(ex), free(etrain), free(etest), free(eacc), free(etop5), free(sx), free(strain);
    free(r);
    return code;
}

int cmd_plot(int argc, char **argv) {
    const char *log = NULL, *out = NULL, *title = NULL;
    long width = 1100;
    cli_args a = {argc, argv, 1, "plot", NULL, NULL, help};
    const char *arg, *v;
    while (cli_next(&a, &arg)) {
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(help, stdout);
            return 0;
        }
        if (!a.name && !log) {
            log = arg;
        } else if (cli_is(&a, "--out") || cli_is(&a, "--title") || cli_is(&a, "--width")) {
            if (!(v = cli_value(&a))) return EXIT_USAGE;
            if (cli_is(&a, "--out")) out = v;
            else if (cli_is(&a, "--title")) title = v;
            else if (!cli_int("--width", v, 400, 8000, &width)) return EXIT_USAGE;
        } else {
            return cli_unknown(&a, arg);
        }
    }
    if (!log || !out) {
        cli_error("plot: give the log and --out FILE.png (nabla plot train.csv --out curves.png)");
        return EXIT_USAGE;
    }
    size_t n = strlen(out);
    if (n < 5 || strcmp(out + n - 4, ".png")) {
        cli_error("--out %s: the picture is a PNG: give a .png file", out);
        return EXIT_USAGE;
    }
    int code = plot(log, out, title, (int)width);
    draw_finish();
    return code;
}
