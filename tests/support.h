/* support.h — what the tests share: cmocka, random tensors, and a gradient
 * check assertion that also refuses vacuous (all-zero) gradients. */
#ifndef NB_TEST_SUPPORT_H
#define NB_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nabla.h"

#if defined(__GNUC__)
#define NB_TEST_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define NB_TEST_PRINTF(f, a)
#endif

/* Fill with uniform values in [lo, hi) from a fixed-seed stream. */
void fill_uniform(float *x, size_t n, float lo, float hi, nb_rng *rng);
/* Fill away from the kink at 0: |x| in [0.1, 1), random sign. */
void fill_away_from_zero(float *x, size_t n, nb_rng *rng);
/* A random shape of ndim dims, each in [lo, hi]. */
void random_shape(int *shape, int ndim, int lo, int hi, nb_rng *rng);

/* An input node fed with random values (fill = uniform in [lo, hi)). */
nb_node *random_input(nb_graph *g, const char *name, int ndim, const int *shape, float lo, float hi,
                      nb_rng *rng);
/* A parameter initialised uniformly in [lo, hi). */
nb_node *random_param(nb_graph *g, const char *name, int ndim, const int *shape, float lo, float hi,
                      nb_rng *rng);

/* J = sum(y * R) with R a fixed random constant: a scalar loss whose
 * gradient reaches every element of y with a different weight. */
nb_node *random_projection_loss(nb_graph *g, nb_node *y, nb_rng *rng);

/* Run nb_gradcheck and assert max relative error <= tol and a nonzero
 * gradient; on failure prints where the worst error was. */
void assert_gradcheck(nb_graph *g, nb_node *loss, double eps, double tol);

/* ---- a temporary directory per test program ----------------------------
 * tmpdir_setup and tmpdir_teardown are cmocka group fixtures. */
extern char tmpdir[64];
int tmpdir_setup(void **state);
int tmpdir_teardown(void **state);
/* Remove everything inside tmpdir, keeping the directory. */
void tmpdir_clear(void);
/* tmpdir/name; the last four results stay valid. */
const char *tmp_path(const char *name);
/* mkdir -p tmpdir/rel. */
void tmp_mkdirs(const char *rel);
/* Write len bytes to path (tmp_write: to tmpdir/rel, returning tmp_path(rel)),
 * failing the test on any error. */
void write_bytes(const char *path, const void *data, size_t len);
const char *tmp_write(const char *rel, const void *data, size_t len);
/* Fails the test if an atomic write left a "*.tmp.*" file in dir. */
void assert_no_temporaries(const char *dir);
/* A whole file into a malloc'ed buffer (the caller frees it); fails the
 * test when it cannot be read. */
uint8_t *read_bytes(const char *path, size_t *len);
/* tmpdir/rel: a w x h binary PGM (w * h <= 4096) whose every pixel is value. */
void tmp_write_pgm(const char *rel, int w, int h, uint8_t value);

/* ---- allocation failures --------------------------------------------------
 * An allocator for nb_set_allocator that fails every allocation once
 * alloc_budget reaches 0 (-1: never) and counts the blocks alive in
 * live_allocs, so a failure path that leaks shows even without ASan. */
extern long alloc_budget, live_allocs;
void *counting_malloc(size_t n);
void *counting_realloc(void *p, size_t n);
void counting_free(void *p);

/* ---- thread counts ---------------------------------------------------------
 * test_threads(n) is the thread count a test that compares thread counts
 * should set for n: n itself, or at most NB_TEST_MAX_THREADS where that is
 * set. scripts/test-arm64.sh sets it to 1 because under qemu-user a guest's
 * first pthread_create hangs; a "1 vs 2 threads" test then checks that a
 * second run gives the same bits, and its checks against the reference
 * loops still run. */
int test_threads(int n);

/* ---- running the nabla command ---------------------------------------------
 * nabla_setup is a group fixture: tmpdir_setup, then nabla_path becomes
 * $BUILD/nabla (build/ by default). run_nabla runs "nabla ARGS" with no
 * input, captures stdout and stderr into out_text and err_text, fails the
 * test on a sanitizer report (a leak on an error path exits like the error
 * itself), and returns the exit code. */
extern char nabla_path[256];
extern char out_text[1 << 16], err_text[1 << 16];
int nabla_setup(void **state);
int run_nabla(const char *fmt, ...) NB_TEST_PRINTF(1, 2);
/* Fail the test unless needle is in text; for out_text or err_text the
 * message shows the other stream too. */
void expect(const char *text, const char *needle);
/* run_nabla(...), asserting its exit code and that needle is in stream. */
#define EXPECT_RUN(code, stream, needle, ...)                                                   \
    do {                                                                                        \
        int rc_ = run_nabla(__VA_ARGS__);                                                       \
        if (rc_ != (code)) print_error("exit %d, expected %d; stderr:\n%s\n", rc_, (code), err_text); \
        assert_int_equal(rc_, (code));                                                          \
        expect(stream, needle);                                                                 \
    } while (0)
/* run_nabla in a pseudo-terminal (script(1)), with env ("NO_COLOR=1", may be
 * NULL) set: out_text gets what the terminal shows, stdout and stderr
 * together (single quotes in ARGS are not allowed). */
int run_nabla_tty(const char *env, const char *fmt, ...) NB_TEST_PRINTF(2, 3);

/* Run `sh SCRIPT tmpdir` from the repository root and fail the test, with
 * the script's output (its last 16 KB), unless it exits 0. */
void assert_script_passes(const char *script);

/* Assert a status is NB_OK, printing nb_last_error() if not. */
#define assert_ok(expr)                                                        \
    do {                                                                       \
        nb_status s_ = (expr);                                                 \
        if (s_ != NB_OK) print_error("%s: %s\n", #expr, nb_last_error());      \
        assert_int_equal(s_, NB_OK);                                           \
    } while (0)

#endif
