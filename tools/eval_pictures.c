/* eval_pictures.c — the pictures of `nabla eval` (see eval_pictures.h),
 * drawn with cairo through draw.h. */
#include "eval_pictures.h"
#include "cli.h"
#include "cli_data.h"
#include "draw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool eval_picture_path(const char *option, const char *path) {
    size_t n = strlen(path);
    if (n > 4 && !strcmp(path + n - 4, ".png")) return true;
    cli_error("%s %s: the picture is a PNG: give a .png file", option, path);
    return false;
}

/* Which names label the classes, and where a class has none, its number. */
typedef struct class_labels {
    const nb_model *m;
    const nb_dataset_info *info;
} class_labels;

static const char *class_label(const class_labels *l, int k, char *buf, size_t size) {
    const char *name = cli_class_name(l->m, l->info, k);
    if (name) return name;
    snprintf(buf, size, "%d", k);
    return buf;
}

/* ---- the confusion matrix ---------------------------------------------------- */

static bool draw_confusion(const char *path, const size_t *cm, int classes,
                           const class_labels *names, const char *title) {
    double cell = classes <= 10 ? 52 : classes <= 20 ? 30 : fmax(4.0, 640.0 / classes);
    bool numbers = classes <= 20, labels = classes <= 40;
    double left = labels ? 130 : 60, top = labels ? 130 : 70, grid = cell * classes;
    int w = (int)(left + grid + 120), h = (int)(top + grid + 60);
    /* Wide enough for the title over a few classes' grid (bold 16-pixel
     * letters are under 10 pixels wide). */
    if (w < 10 * (int)strlen(title) + 40) w = 10 * (int)strlen(title) + 40;
    cairo_t *cr = draw_canvas(w, h);
    if (!cr) return false;
    char buf[32];
    cairo_set_source_rgb(cr, 0, 0, 0);
    draw_text(cr, w / 2.0, 12, 16, true, 0.5, 0, title);
    for (int i = 0; i < classes; i++) {
        size_t row = 0;
        for (int j = 0; j < classes; j++) row += cm[(size_t)i * classes + j];
        for (int j = 0; j < classes; j++) {
            size_t c = cm[(size_t)i * classes + j];
            /* Shade by the share of the true class's samples (its recall on
             * the diagonal), so rare classes read as clearly as common ones. */
            double t = row ? (double)c / (double)row : 0;
            draw_rgb col = draw_heat(t);
            cairo_set_source_rgb(cr, col.r, col.g, col.b);
            cairo_rectangle(cr, left + j * cell, top + i * cell, cell, cell);
            cairo_fill(cr);
            if (numbers && c) {
                snprintf(buf, sizeof buf, "%zu", c);
                double g = t > 0.45 ? 1 : 0;
                cairo_set_source_rgb(cr, g, g, g);
                draw_text(cr, left + (j + 0.5) * cell, top + (i + 0.5) * cell, classes <= 10 ? 12 : 9,
                          i == j, 0.5, 0.5, buf);
            }
        }
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, left + 0.5, top + 0.5, grid, grid);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    if (labels)
        for (int k = 0; k < classes; k++) {
            const char *name = class_label(names, k, buf, sizeof buf);
            draw_text(cr, left - 6, top + (k + 0.5) * cell, 11, false, 1, 0.5, name);
            cairo_save(cr);
            cairo_translate(cr, left + (k + 0.5) * cell, top - 6);
            cairo_rotate(cr, -0.7853981633974483); /* names at 45 degrees */
            draw_text(cr, 0, 0, 11, false, 0, 0.5, name);
            cairo_restore(cr);
        }
    draw_text(cr, left + grid / 2, top + grid + 14, 13, false, 0.5, 0, "predicted class");
    cairo_save(cr);
    cairo_translate(cr, 16, top + grid / 2);
    cairo_rotate(cr, -1.5707963267948966);
    draw_text(cr, 0, 0, 13, false, 0.5, 0.5, "true class");
    cairo_restore(cr);
    /* Colour bar: the share of each true class's samples. */
    double bx = left + grid + 30, bh = fmin(grid, 240);
    for (int y = 0; y < (int)bh; y++) {
        draw_rgb col = draw_heat(1.0 - y / bh);
        cairo_set_source_rgb(cr, col.r, col.g, col.b);
        cairo_rectangle(cr, bx, top + y, 16, 1);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_rectangle(cr, bx + 0.5, top + 0.5, 16, bh);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    for (int p = 0; p <= 100; p += 25) {
        snprintf(buf, sizeof buf, "%d%%", p);
        draw_text(cr, bx + 22, top + bh * (1 - p / 100.0), 10, false, 0, 0.5, buf);
    }
    draw_text(cr, bx, top + bh + 8, 10, false, 0, 0, "of true class");
    return draw_save_png(cr, path);
}

/* ---- misclassified images --------------------------------------------------- */

#define ERROR_COLUMNS 8
#define ERROR_ROWS 5

typedef struct miss {
    int index, truth, pred;
    float prob;
} miss;

/* The first misclassified samples in file order, with their predictions. */
static int find_misses(nb_model *m, const nb_dataset *d, miss *out, int cap) {
    int classes = nb_model_classes(m), batch = 500;
    size_t sample = (size_t)d->channels * d->height * d->width;
    float *x = malloc((size_t)batch * sample * sizeof *x), *y = malloc((size_t)batch * sizeof *y);
    if (!x || !y) {
        free(x), free(y);
        cli_error("--errors: out of memory");
        return -1;
    }
    /* The model's normalisation, one value for all channels or one each. */
    const float *mm, *ms;
    int nc = nb_model_normalization(m, &mm, &ms);
    float mean[16], std[16];
    for (int c = 0; c < d->channels && c < 16 && nc; c++)
        mean[c] = mm[nc == 1 ? 0 : c], std[c] = ms[nc == 1 ? 0 : c];
    int found = 0;
    for (int first = 0; first < d->count && found < cap; first += batch) {
        int count = d->count - first < batch ? d->count - first : batch;
        const nb_tensor *p = NULL;
        if (!nb_dataset_batch(d, NULL, (size_t)first, count, nc ? mean : NULL, nc ? std : NULL, x, y))
            p = nb_model_predict(m, x, count);
        if (!p) {
            cli_error("--errors: %s", nb_last_error());
            found = -1;
            break;
        }
        for (int i = 0; i < count && found < cap; i++) {
            const float *row = p->data + (size_t)i * classes;
            int best = 0;
            for (int k = 1; k < classes; k++)
                if (row[k] > row[best]) best = k;
            if (best != (int)y[i]) out[found++] = (miss){first + i, (int)y[i], best, row[best]};
        }
    }
    free(x), free(y);
    return found;
}

/* One sample as a cairo image (grey or RGB from the dataset's bytes). */
static cairo_surface_t *sample_surface(const nb_dataset *d, int index) {
    int w = d->width, h = d->height, c = d->channels;
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) return s;
    cairo_surface_flush(s);
    unsigned char *px = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    /* The sample as the model saw it (a folder's image decoded and put
     * through the eval transform); blank if it cannot be read again. */
    uint8_t *img = calloc((size_t)c * w * h, 1);
    if (!img) return s;
    (void)nb_dataset_sample(d, (uint32_t)index, NULL, 0, 0, img);
    for (int r = 0; r < h; r++)
        for (int q = 0; q < w; q++) {
            size_t at = (size_t)r * w + q, plane = (size_t)w * h;
            uint32_t R = img[at], G = c >= 3 ? img[plane + at] : R, B = c >= 3 ? img[2 * plane + at] : R;
            ((uint32_t *)(px + (size_t)r * stride))[q] = R << 16 | G << 8 | B;
        }
    free(img);
    cairo_surface_mark_dirty(s);
    return s;
}

static bool draw_errors(const char *path, nb_model *m, const nb_dataset *d,
                        const class_labels *names, const char *title) {
    miss misses[ERROR_COLUMNS * ERROR_ROWS];
    int n = find_misses(m, d, misses, ERROR_COLUMNS * ERROR_ROWS);
    if (n < 0) return false;
    double img = 96, cw = 132, ch = img + 44, top = 50, left = 14;
    int rows = n ? (n + ERROR_COLUMNS - 1) / ERROR_COLUMNS : 1;
    int w = (int)(left * 2 + cw * ERROR_COLUMNS), h = (int)(top + ch * rows + 10);
    cairo_t *cr = draw_canvas(w, h);
    if (!cr) return false;
    char heading[512], buf[32], line[96];
    snprintf(heading, sizeof heading, "%s: the first %d misclassified", title, n);
    cairo_set_source_rgb(cr, 0, 0, 0);
    draw_text(cr, w / 2.0, 12, 16, true, 0.5, 0, heading);
    if (!n) draw_text(cr, w / 2.0, top + 20, 13, false, 0.5, 0, "none: every sample is right");
    for (int i = 0; i < n; i++) {
        double x = left + cw * (i % ERROR_COLUMNS) + (cw - img) / 2, y = top + ch * (i / ERROR_COLUMNS);
        cairo_surface_t *s = sample_surface(d, misses[i].index);
        cairo_save(cr);
        cairo_translate(cr, x, y);
        cairo_scale(cr, img / d->width, img / d->height);
        cairo_set_source_surface(cr, s, 0, 0);
        cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST); /* pixels, not blur */
        cairo_paint(cr);
        cairo_restore(cr);
        cairo_surface_destroy(s);
        double cx = x + img / 2;
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(line, sizeof line, "true: %s", class_label(names, misses[i].truth, buf, sizeof buf));
        draw_text(cr, cx, y + img + 4, 11, false, 0.5, 0, line);
        cairo_set_source_rgb(cr, 0.78, 0.1, 0.1);
        snprintf(line, sizeof line, "pred: %s %.0f%%", class_label(names, misses[i].pred, buf, sizeof buf),
                 100.0 * misses[i].prob);
        draw_text(cr, cx, y + img + 20, 11, false, 0.5, 0, line);
    }
    return draw_save_png(cr, path);
}

bool eval_pictures_draw(const eval_pictures *p, nb_model *m, const nb_dataset *d,
                        const nb_dataset_info *info, const size_t *confusion, const char *title) {
    class_labels names = {m, info};
    char heading[512];
    bool ok = true;
    if (p->confusion) {
        snprintf(heading, sizeof heading, "confusion matrix: %s", title);
        ok = draw_confusion(p->confusion, confusion, nb_model_classes(m), &names, heading);
    }
    if (ok && p->errors) ok = draw_errors(p->errors, m, d, &names, title);
    draw_finish();
    return ok;
}
