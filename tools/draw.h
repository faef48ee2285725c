/* draw.h — what nabla's pictures share, over cairo: a canvas written as
 * PNG, text placed by its anchor, axes with ticks, a legend and colour
 * maps. Used by `nabla plot` and `nabla eval --confusion/--errors`. */
#ifndef NABLA_DRAW_H
#define NABLA_DRAW_H

#include <cairo.h>
#include <stdbool.h>

typedef struct draw_rgb {
    double r, g, b;
} draw_rgb;

/* A white canvas of w x h pixels; NULL after a message. */
cairo_t *draw_canvas(int w, int h);
/* Write the canvas as PNG and free it. The file is written atomically
 * (nb_file_write_atomic): a failed write leaves the previous file at path
 * as it was. false after a message naming path. */
bool draw_save_png(cairo_t *cr, const char *path);

/* Release what cairo and fontconfig keep for the process (font caches), so
 * leak checkers see none: call once, after the last picture. */
void draw_finish(void);

/* Text at (x, y); ax, ay in [0, 1] place the anchor (0, 0: the text's top
 * left; 0.5, 0.5: its centre). */
void draw_text(cairo_t *cr, double x, double y, double size, bool bold, double ax, double ay,
               const char *text);

/* A plot area in pixels with its data ranges. */
typedef struct draw_axes {
    double x, y, w, h;          /* pixels, y down */
    double x0, x1, y0, y1;      /* data */
} draw_axes;

/* Pad [*lo, *hi] out to round tick values. */
void draw_nice_range(double *lo, double *hi);
/* Frame, grid, ticks with their values, axis labels and a title. */
void draw_axes_frame(cairo_t *cr, const draw_axes *a, const char *xlabel, const char *ylabel,
                     const char *title);
double draw_px(const draw_axes *a, double x);
double draw_py(const draw_axes *a, double y);
/* A legend box in the axes' top-right corner (bottom-right with bottom):
 * n entries of colour and name. */
void draw_legend(cairo_t *cr, const draw_axes *a, int n, const draw_rgb *colors, bool bottom,
                 const char *const *names);
/* A sequential colour map from white (t = 0) to dark blue (t = 1). */
draw_rgb draw_heat(double t);

#endif
