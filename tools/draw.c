/* draw.c — cairo helpers for nabla's pictures (see draw.h). */
#include "draw.h"
#include "cli.h"

#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void draw_finish(void) {
    cairo_debug_reset_static_data();
    FcFini();
}

cairo_t *draw_canvas(int w, int h) {
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cli_error("cannot make a %dx%d picture: %s", w, h,
                  cairo_status_to_string(cairo_surface_status(s)));
        cairo_surface_destroy(s);
        return NULL;
    }
    cairo_t *cr = cairo_create(s);
    cairo_surface_destroy(s); /* the context holds it */
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    return cr;
}

/* The PNG as cairo encodes it, gathered in memory so that it reaches the
 * disk in one atomic write. */
typedef struct png_bytes {
    unsigned char *data;
    size_t n, cap;
} png_bytes;

static cairo_status_t gather_png(void *closure, const unsigned char *data, unsigned int n) {
    png_bytes *b = closure;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->n + n) cap *= 2;
        unsigned char *grown = realloc(b->data, cap);
        if (!grown) return CAIRO_STATUS_NO_MEMORY;
        b->data = grown, b->cap = cap;
    }
    memcpy(b->data + b->n, data, n);
    b->n += n;
    return CAIRO_STATUS_SUCCESS;
}

bool draw_save_png(cairo_t *cr, const char *path) {
    cairo_surface_t *s = cairo_get_target(cr);
    cairo_surface_flush(s);
    png_bytes png = {NULL, 0, 0};
    cairo_status_t st = cairo_status(cr);
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_write_to_png_stream(s, gather_png, &png);
    cairo_destroy(cr);
    bool ok = st == CAIRO_STATUS_SUCCESS;
    if (!ok) cli_error("%s: cannot draw the picture: %s", path, cairo_status_to_string(st));
    else if (nb_file_write_atomic(path, png.data, png.n) != NB_OK) {
        cli_error("%s", nb_last_error());
        ok = false;
    }
    free(png.data);
    return ok;
}

void draw_text(cairo_t *cr, double x, double y, double size, bool bold, double ax, double ay,
               const char *text) {
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, text, &e);
    /* Place by the font's nominal height, so labels on one row line up
     * whatever letters they hold. */
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    double h = fe.ascent;
    cairo_move_to(cr, x - ax * e.x_advance, y - ay * h + h);
    cairo_show_text(cr, text);
}

static double nice_step(double range, int target) {
    double raw = range / target, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

void draw_nice_range(double *lo, double *hi) {
    if (!(*hi > *lo)) {
        double c = *lo;
        *lo = c - (fabs(c) > 0 ? fabs(c) * 0.1 : 1);
        *hi = c + (fabs(c) > 0 ? fabs(c) * 0.1 : 1);
    }
    double step = nice_step(*hi - *lo, 5);
    *lo = floor(*lo / step + 1e-9) * step;
    *hi = ceil(*hi / step - 1e-9) * step;
}

double draw_px(const draw_axes *a, double x) { return a->x + (x - a->x0) / (a->x1 - a->x0) * a->w; }
double draw_py(const draw_axes *a, double y) { return a->y + a->h - (y - a->y0) / (a->y1 - a->y0) * a->h; }

/* "%g" with no "-0". */
static void tick_label(double v, double step, char *buf, size_t size) {
    if (fabs(v) < step * 1e-6) v = 0;
    snprintf(buf, size, "%g", v);
}

void draw_axes_frame(cairo_t *cr, const draw_axes *a, const char *xlabel, const char *ylabel,
                     const char *title) {
    char buf[32];
    cairo_set_line_width(cr, 1);
    double xs = nice_step(a->x1 - a->x0, 6), ys = nice_step(a->y1 - a->y0, 5);
    /* Grid and tick labels. */
    for (double v = ceil(a->x0 / xs - 1e-9) * xs; v <= a->x1 + xs * 1e-9; v += xs) {
        double px = round(draw_px(a, v)) + 0.5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, px, a->y);
        cairo_line_to(cr, px, a->y + a->h);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, px, a->y + a->h);
        cairo_line_to(cr, px, a->y + a->h + 5);
        cairo_stroke(cr);
        tick_label(v, xs, buf, sizeof buf);
        draw_text(cr, px, a->y + a->h + 8, 12, false, 0.5, 0, buf);
    }
    for (double v = ceil(a->y0 / ys - 1e-9) * ys; v <= a->y1 + ys * 1e-9; v += ys) {
        double py = round(draw_py(a, v)) + 0.5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, a->x, py);
        cairo_line_to(cr, a->x + a->w, py);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, a->x - 5, py);
        cairo_line_to(cr, a->x, py);
        cairo_stroke(cr);
        tick_label(v, ys, buf, sizeof buf);
        draw_text(cr, a->x - 8, py, 12, false, 1, 0.5, buf);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, round(a->x) + 0.5, round(a->y) + 0.5, round(a->w), round(a->h));
    cairo_stroke(cr);
    if (xlabel) draw_text(cr, a->x + a->w / 2, a->y + a->h + 28, 13, false, 0.5, 0, xlabel);
    if (ylabel) {
        cairo_save(cr);
        cairo_translate(cr, a->x - 52, a->y + a->h / 2);
        cairo_rotate(cr, -1.5707963267948966); /* a quarter turn */
        draw_text(cr, 0, 0, 13, false, 0.5, 0.5, ylabel);
        cairo_restore(cr);
    }
    if (title) draw_text(cr, a->x + a->w / 2, a->y - 26, 15, true, 0.5, 0, title);
}

void draw_legend(cairo_t *cr, const draw_axes *a, int n, const draw_rgb *colors, bool bottom,
                 const char *const *names) {
    double row = 18, width = 0;
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 12);
    for (int i = 0; i < n; i++) {
        cairo_text_extents_t e;
        cairo_text_extents(cr, names[i], &e);
        if (e.x_advance > width) width = e.x_advance;
    }
    double bw = width + 46, bh = n * row + 8, bx = a->x + a->w - bw - 8,
           by = bottom ? a->y + a->h - bh - 8 : a->y + 8;
    cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
    cairo_rectangle(cr, bx, by, bw, bh);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    for (int i = 0; i < n; i++) {
        double y = by + 4 + row * i + row / 2;
        cairo_set_source_rgb(cr, colors[i].r, colors[i].g, colors[i].b);
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, bx + 6, y);
        cairo_line_to(cr, bx + 32, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        draw_text(cr, bx + 38, y, 12, false, 0, 0.5, names[i]);
    }
}

draw_rgb draw_heat(double t) {
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    /* White to a dark blue through a light one, evenly in perceived steps. */
    draw_rgb white = {1, 1, 1}, mid = {0.42, 0.68, 0.84}, dark = {0.03, 0.19, 0.42};
    draw_rgb a = t < 0.5 ? white : mid, b = t < 0.5 ? mid : dark;
    double u = t < 0.5 ? t * 2 : (t - 0.5) * 2;
    return (draw_rgb){a.r + (b.r - a.r) * u, a.g + (b.g - a.g) * u, a.b + (b.b - a.b) * u};
}
