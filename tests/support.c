/* support.c — shared test helpers. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "support.h"

#include <dirent.h>
#include <ftw.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void fill_uniform(float *x, size_t n, float lo, float hi, nb_rng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * nb_rng_uniform(rng);
}

void fill_away_from_zero(float *x, size_t n, nb_rng *rng) {
    for (size_t i = 0; i < n; i++) {
        float m = 0.1f + 0.9f * nb_rng_uniform(rng);
        x[i] = (nb_rng_u32(rng) & 1) ? m : -m;
    }
}

void random_shape(int *shape, int ndim, int lo, int hi, nb_rng *rng) {
    for (int i = 0; i < ndim; i++) shape[i] = lo + (int)nb_rng_below(rng, (uint32_t)(hi - lo + 1));
}

static size_t numel(int ndim, const int *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

nb_node *random_input(nb_graph *g, const char *name, int ndim, const int *shape, float lo, float hi,
                      nb_rng *rng) {
    nb_node *x = nb_input(g, name, ndim, shape);
    if (!x) return NULL;
    size_t n = numel(ndim, shape);
    float *data = malloc(n * sizeof(float));
    fill_uniform(data, n, lo, hi, rng);
    nb_status s = nb_feed(x, data, shape[0]);
    free(data);
    return s ? NULL : x;
}

nb_node *random_param(nb_graph *g, const char *name, int ndim, const int *shape, float lo, float hi,
                      nb_rng *rng) {
    nb_node *p = nb_param(g, name, ndim, shape);
    if (p) fill_uniform(nb_value(p)->data, numel(ndim, shape), lo, hi, rng);
    return p;
}

nb_node *random_projection_loss(nb_graph *g, nb_node *y, nb_rng *rng) {
    if (!y) return NULL;
    const nb_tensor *t = nb_value(y);
    size_t n = nb_tensor_numel(t);
    float *r = malloc(n * sizeof(float));
    fill_uniform(r, n, -1.0f, 1.0f, rng);
    nb_node *c = nb_const(g, "projection", t->ndim, t->shape, r);
    free(r);
    return nb_sum_all(g, nb_mul(g, y, c));
}

void assert_gradcheck(nb_graph *g, nb_node *loss, double eps, double tol) {
    if (!loss) print_error("graph build failed: %s\n", nb_last_error());
    assert_non_null(loss);
    nb_gradcheck_result r;
    nb_status s = nb_gradcheck(g, loss, eps, &r);
    if (s) print_error("gradcheck failed to run: %s\n", nb_last_error());
    assert_int_equal(s, NB_OK);
    if (r.max_rel_error > tol || r.max_abs_grad == 0.0)
        print_error("gradcheck: worst relative error %.3g at %s[%zu] (analytic %.6g, numeric %.6g), "
                    "%zu elements, max |grad| %.3g\n",
                    r.max_rel_error, r.worst_node ? nb_node_name(r.worst_node) : "?", r.worst_index,
                    r.worst_analytic, r.worst_numeric, r.checked, r.max_abs_grad);
    assert_true(r.checked > 0);
    assert_true(r.max_abs_grad > 0.0);
    assert_true(r.max_rel_error <= tol);
}

/* ---- temporary directory ---------------------------------------------------- */

char tmpdir[64];

int tmpdir_setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nabla-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st, (void)type;
    if (ftw->level == 0) return 0; /* keep tmpdir itself */
    return remove(path);
}

void tmpdir_clear(void) { nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

int tmpdir_teardown(void **state) {
    (void)state;
    tmpdir_clear();
    return rmdir(tmpdir);
}

const char *tmp_path(const char *name) {
    static char paths[4][192];
    static int k;
    k = (k + 1) % 4;
    snprintf(paths[k], sizeof paths[k], "%s/%s", tmpdir, name);
    return paths[k];
}

void tmp_mkdirs(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    for (char *p = path + strlen(tmpdir) + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    mkdir(path, 0755);
}

void write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

const char *tmp_write(const char *rel, const void *data, size_t len) {
    const char *path = tmp_path(rel);
    write_bytes(path, data, len);
    return path;
}

void assert_no_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot list %s", dir);
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp.")) fail_msg("temporary file left behind in %s: %s", dir, e->d_name);
    closedir(d);
}

uint8_t *read_bytes(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

void tmp_write_pgm(const char *rel, int w, int h, uint8_t value) {
    assert_true(w > 0 && h > 0 && w * h <= 64 * 64);
    uint8_t buf[64 + 64 * 64];
    int head = snprintf((char *)buf, 64, "P5\n%d %d\n255\n", w, h);
    memset(buf + head, value, (size_t)(w * h));
    tmp_write(rel, buf, (size_t)head + (size_t)(w * h));
}

/* ---- counting allocator ------------------------------------------------------- */

long alloc_budget = -1, live_allocs;

void *counting_malloc(size_t n) {
    if (alloc_budget == 0) return NULL;
    if (alloc_budget > 0) alloc_budget--;
    void *p = malloc(n);
    if (p) live_allocs++;
    return p;
}

void *counting_realloc(void *p, size_t n) {
    if (alloc_budget == 0) return NULL;
    if (alloc_budget > 0) alloc_budget--;
    void *q = realloc(p, n);
    if (q && !p) live_allocs++;
    return q;
}

void counting_free(void *p) {
    if (p) live_allocs--;
    free(p);
}

/* ---- thread counts --------------------------------------------------------- */

int test_threads(int n) {
    const char *cap = getenv("NB_TEST_MAX_THREADS");
    int most = cap && *cap ? atoi(cap) : 0;
    return most >= 1 && n > most ? most : n;
}

/* ---- the nabla command --------------------------------------------------------- */

char nabla_path[256];
char out_text[1 << 16], err_text[1 << 16];

int nabla_setup(void **state) {
    const char *build = getenv("BUILD");
    snprintf(nabla_path, sizeof nabla_path, "%s/nabla", build && *build ? build : "build");
    if (access(nabla_path, X_OK) != 0) return -1;
    return tmpdir_setup(state);
}

static void slurp(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

int run_nabla(const char *fmt, ...) {
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s >%s/out 2>%s/err </dev/null", nabla_path, args, tmpdir, tmpdir);
    int status = system(cmd);
    char path[256]; /* not tmp_path: the caller may hold its results */
    snprintf(path, sizeof path, "%s/out", tmpdir);
    slurp(path, out_text, sizeof out_text);
    snprintf(path, sizeof path, "%s/err", tmpdir);
    slurp(path, err_text, sizeof err_text);
    if (strstr(err_text, "Sanitizer")) print_error("nabla %s:\n%s\n", args, err_text);
    assert_null(strstr(err_text, "Sanitizer"));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void expect(const char *text, const char *needle) {
    if (!strstr(text, needle)) {
        const char *other = text == out_text ? err_text : text == err_text ? out_text : NULL;
        print_error("expected '%s' in:\n%s\n", needle, text);
        if (other) print_error("(the other stream:\n%s)\n", other);
    }
    assert_non_null(strstr(text, needle));
}

int run_nabla_tty(const char *env, const char *fmt, ...) {
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    /* util-linux script(1) gives the command a pseudo-terminal for stdin,
     * stdout and stderr, and logs what the terminal shows; -e passes on the
     * command's exit code. */
    snprintf(cmd, sizeof cmd, "env TERM=xterm %s script -qec '%s %s' %s/tty >/dev/null 2>&1 </dev/null",
             env ? env : "", nabla_path, args, tmpdir);
    int status = system(cmd);
    char path[256];
    snprintf(path, sizeof path, "%s/tty", tmpdir);
    slurp(path, out_text, sizeof out_text);
    err_text[0] = '\0';
    if (strstr(out_text, "Sanitizer")) print_error("nabla %s:\n%s\n", args, out_text);
    assert_null(strstr(out_text, "Sanitizer"));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- shell checks ------------------------------------------------------------ */

void assert_script_passes(const char *script) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh %s %s >%s/log 2>&1", script, tmpdir, tmpdir);
    int status = system(cmd);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        char log[16384] = "";
        char path[256];
        snprintf(path, sizeof path, "%s/log", tmpdir);
        FILE *f = fopen(path, "r");
        if (f) {
            log[fread(log, 1, sizeof log - 1, f)] = '\0';
            fclose(f);
        }
        print_error("%s failed:\n%s\n", script, log);
    }
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
