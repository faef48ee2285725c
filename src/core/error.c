/* error.c — the thread's last error message, allocation through a
 * replaceable allocator, and the thread-count setting. */
#include "core/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static _Thread_local char last_error[1024];

const char *nb_last_error(void) { return last_error[0] ? last_error : "no error"; }

const char *nb_status_name(nb_status status) {
    switch (status) {
    case NB_OK: return "ok";
    case NB_ERR_ARG: return "bad argument";
    case NB_ERR_SHAPE: return "shape error";
    case NB_ERR_NOMEM: return "out of memory";
    case NB_ERR_IO: return "I/O error";
    case NB_ERR_FORMAT: return "malformed file";
    case NB_ERR_NONFINITE: return "non-finite value";
    case NB_ERR_STATE: return "call out of order";
    case NB_ERR_STOPPED: return "stopped on request";
    }
    return "unknown status";
}

nb_status nb_fail(nb_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

nb_status nb_fail_prefix(nb_status status, const char *fmt, ...) {
    char prefix[512], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t used = strlen(prefix);
    if (used >= sizeof last_error) used = sizeof last_error - 1;
    memcpy(last_error, prefix, used);
    size_t rest = strnlen(old, sizeof old - 1);
    if (rest > sizeof last_error - 1 - used) rest = sizeof last_error - 1 - used;
    memcpy(last_error + used, old, rest);
    last_error[used + rest] = '\0';
    return status;
}

/* ---- allocation ---------------------------------------------------------- */

static nb_malloc_fn user_malloc;
static nb_realloc_fn user_realloc;
static nb_free_fn user_free;

void nb_set_allocator(nb_malloc_fn m, nb_realloc_fn r, nb_free_fn f) {
    if (m && r && f) {
        user_malloc = m, user_realloc = r, user_free = f;
    } else {
        user_malloc = NULL, user_realloc = NULL, user_free = NULL;
    }
}

void *nb_alloc(size_t bytes, const char *what) {
    if (bytes == 0) bytes = 1;
    void *p = user_malloc ? user_malloc(bytes) : malloc(bytes);
    if (!p) nb_fail(NB_ERR_NOMEM, "out of memory: %zu bytes for %s", bytes, what);
    return p;
}

void *nb_zalloc(size_t bytes, const char *what) {
    void *p = nb_alloc(bytes, what);
    if (p) memset(p, 0, bytes);
    return p;
}

void *nb_realloc(void *ptr, size_t bytes, const char *what) {
    if (bytes == 0) bytes = 1;
    void *p = user_realloc ? user_realloc(ptr, bytes) : realloc(ptr, bytes);
    if (!p) nb_fail(NB_ERR_NOMEM, "out of memory: %zu bytes for %s", bytes, what);
    return p;
}

void nb_free(void *ptr) {
    if (!ptr) return;
    if (user_free) user_free(ptr);
    else free(ptr);
}

char *nb_strdup(const char *s, const char *what) {
    size_t n = strlen(s) + 1;
    char *p = nb_alloc(n, what);
    if (p) memcpy(p, s, n);
    return p;
}

bool nb_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

/* ---- threads ------------------------------------------------------------- */

void nb_set_threads(int threads) {
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}

int nb_get_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
