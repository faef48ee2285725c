/* cli.c — option parsing and model opening shared by the subcommands. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_error(const char *fmt, ...) {
    /* One write per message: stderr is unbuffered, and several ranks of an
     * MPI job share it, so pieces written apart would interleave. */
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "nabla: %s\n", line);
}

/* ---- argv ------------------------------------------------------------------ */

bool cli_next(cli_args *a, const char **arg) {
    if (a->i >= a->argc) return false;
    const char *s = a->argv[a->i++];
    *arg = s;
    a->name = NULL;
    a->value = NULL;
    if (strncmp(s, "--", 2) || !s[2]) return true;
    /* Keep "--name" and "=value" apart without writing into argv. */
    static char name[64];
    const char *eq = strchr(s, '=');
    size_t len = eq ? (size_t)(eq - s) : strlen(s);
    if (len >= sizeof name) len = sizeof name - 1;
    memcpy(name, s, len);
    name[len] = '\0';
    a->name = name;
    a->value = eq ? eq + 1 : NULL;
    return true;
}

bool cli_is(const cli_args *a, const char *name) { return a->name && !strcmp(a->name, name); }

const char *cli_value(cli_args *a) {
    if (a->value) return a->value;
    if (a->i >= a->argc) {
        cli_error("%s: option %s needs a value (see nabla %s --help)", a->cmd, a->name, a->cmd);
        return NULL;
    }
    return a->argv[a->i++];
}

bool cli_flag(cli_args *a) {
    if (!a->value) return true;
    cli_error("%s: option %s takes no value", a->cmd, a->name);
    return false;
}

/* Levenshtein distance, for suggestions; words past 63 bytes never match. */
static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63) return 1 << 20;
    int row[64];
    for (size_t j = 0; j <= m; j++) row[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[m];
}

const char *cli_nearest(const char *word, const char *const *candidates, int n) {
    const char *best = NULL;
    int best_d = 1 << 20;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(word, candidates[i]);
        if (d < best_d) best = candidates[i], best_d = d;
    }
    /* Near enough: a slip of one or two characters, fewer for short words. */
    int len = (int)strlen(word), allowed = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    return best_d <= allowed ? best : NULL;
}

/* The "--name" options a help text lists, into names (each up to 31 bytes). */
static int help_options(const char *help, char names[][32], int cap) {
    int n = 0;
    for (const char *p = help; (p = strstr(p, "--")) && n < cap; p += 2) {
        if (p > help && p[-1] != ' ' && p[-1] != '[' && p[-1] != '\n') continue;
        size_t len = 2;
        while (p[len] && (isalnum((unsigned char)p[len]) || p[len] == '-')) len++;
        if (len <= 2 || len >= 32) continue;
        memcpy(names[n], p, len);
        names[n][len] = '\0';
        bool seen = false;
        for (int i = 0; i < n; i++) seen = seen || !strcmp(names[i], names[n]);
        if (!seen) n++;
    }
    return n;
}

int cli_unknown(const cli_args *a, const char *arg) {
    if (a->name && a->help) {
        char names[96][32];
        const char *list[96];
        int n = help_options(a->help, names, 96);
        for (int i = 0; i < n; i++) list[i] = names[i];
        const char *near = cli_nearest(a->name, list, n);
        if (near) {
            cli_error("%s: unknown option '%s'; did you mean %s? (see nabla %s --help)", a->cmd,
                      a->name, near, a->cmd);
            return EXIT_USAGE;
        }
    }
    if (a->name) cli_error("%s: unknown option '%s' (see nabla %s --help)", a->cmd, a->name, a->cmd);
    else cli_error("%s: unexpected argument '%s' (see nabla %s --help)", a->cmd, arg, a->cmd);
    return EXIT_USAGE;
}

/* ---- values ------------------------------------------------------------------ */

bool cli_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || isspace((unsigned char)*s) || *end || errno) {
        cli_error("%s: '%s' is not an integer", opt, s);
        return false;
    }
    if (v < lo || v > hi) {
        cli_error("%s: %ld is out of range (%ld to %ld)", opt, v, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_float(const char *opt, const char *s, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || isspace((unsigned char)*s) || *end || errno || !isfinite(v)) {
        cli_error("%s: '%s' is not a number", opt, s);
        return false;
    }
    if (v < lo || v > hi) {
        cli_error("%s: %g is out of range (%g to %g)", opt, v, lo, hi);
        return false;
    }
    *out = (float)v;
    return true;
}

bool cli_u64(const char *opt, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!isdigit((unsigned char)*s) || *end || errno) {
        cli_error("%s: '%s' is not a non-negative integer", opt, s);
        return false;
    }
    *out = v;
    return true;
}

/* ---- the model options ----------------------------------------------------------- */

int cli_model_option(cli_args *a, cli_model_opts *o) {
    static const char *const names[] = {"--model", "--hidden", "--classes", "--seed", "--normalize",
                                        "--threads"};
    int k = -1;
    for (int i = 0; i < 6; i++)
        if (cli_is(a, names[i])) k = i;
    if (k < 0) return 0;
    const char *v = cli_value(a);
    if (!v) return -1;
    long n;
    switch (k) {
    case 0: o->model = v; return 1;
    case 1: if (!cli_int("--hidden", v, 1, 1 << 20, &n)) return -1; o->cfg.hidden = (int)n; return 1;
    case 2: if (!cli_int("--classes", v, 2, 1 << 20, &n)) return -1; o->cfg.classes = (int)n; return 1;
    case 3: return cli_u64("--seed", v, &o->cfg.seed) ? 1 : -1;
    case 4: o->normalize = v; return 1;
    default: if (!cli_int("--threads", v, 1, 1024, &n)) return -1; o->threads = (int)n; return 1;
    }
}

/* "MEAN,STD" for every channel, or C means then C stds. */
static bool parse_normalize(const char *s, int channels, float *mean, float *std) {
    /* torchvision's ImageNet statistics (transforms.Normalize in its
     * reference recipes). */
    if (!strcmp(s, "imagenet")) {
        static const float in_mean[3] = {0.485f, 0.456f, 0.406f}, in_std[3] = {0.229f, 0.224f, 0.225f};
        if (channels != 3) {
            cli_error("--normalize imagenet: the model takes %d channel%s, ImageNet's mean and "
                      "std are for 3 (RGB)", channels, channels == 1 ? "" : "s");
            return false;
        }
        memcpy(mean, in_mean, sizeof in_mean);
        memcpy(std, in_std, sizeof in_std);
        return true;
    }
    float v[16];
    int n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno || !isfinite(x) || n == 16) break;
        v[n++] = (float)x;
        p = end;
        if (*p != ',') break;
        p++;
    }
    if (*p || (n != 2 && n != 2 * channels)) {
        cli_error("--normalize: '%s': expected MEAN,STD or %d means then %d stds, comma-separated",
                  s, channels, channels);
        return false;
    }
    for (int c = 0; c < channels; c++) {
        mean[c] = n == 2 ? v[0] : v[c];
        std[c] = n == 2 ? v[1] : v[channels + c];
        if (!(std[c] > 0.0f)) {
            cli_error("--normalize: '%s': a standard deviation must be positive", s);
            return false;
        }
    }
    return true;
}

int cli_status_code(nb_status s) { return s == NB_ERR_ARG ? EXIT_USAGE : EXIT_RUNTIME; }

nb_model *cli_open_model(const cli_model_opts *o, int *code) {
    if (!o->model) {
        cli_error("no model: give --model logreg|mlp|lenet5|alexnet|resnet18|FILE");
        *code = EXIT_USAGE;
        return NULL;
    }
    if (o->threads) nb_set_threads(o->threads);
    nb_model *m = nb_model_create(o->model, &o->cfg);
    if (!m) {
        cli_error("%s", nb_last_error());
        /* A name that is neither built in nor a file is a usage mistake. */
        *code = strncmp(nb_last_error(), "unknown model", 13) ? EXIT_RUNTIME : EXIT_USAGE;
        return NULL;
    }
    return m;
}

bool cli_normalize(nb_model *m, const cli_model_opts *o) {
    if (!o->normalize) return true;
    int shape[3];
    int channels = nb_model_input_shape(m, shape) == 3 ? shape[0] : 1;
    float mean[8], std[8];
    if (channels > 8) {
        cli_error("--normalize: at most 8 channels, the model has %d", channels);
        return false;
    }
    if (!parse_normalize(o->normalize, channels, mean, std)) return false;
    if (nb_model_set_normalization(m, channels, mean, std)) {
        cli_error("--normalize: %s", nb_last_error());
        return false;
    }
    return true;
}

void cli_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}
