/* isa.c — which target's kernels run: the best the CPU supports, or the
 * one the environment variable NABLA_ISA or nb_isa_set names.
 *
 * Every file of src/kernels/targets/ is built once per target of the
 * build's architecture (the Makefile's ISA_TARGETS), each build with its
 * own table, nb_isa_<target>. Support is checked here at run time: the
 * compiler's __builtin_cpu_supports also checks that the OS saves the wide
 * registers (XGETBV), which a raw CPUID test would miss. NEON is part of
 * every AArch64 CPU. */
#include "kernels/isa.h"

#include "core/internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
extern const nb_isa nb_isa_avx512, nb_isa_avx2, nb_isa_generic;
static const nb_isa *const targets[] = {&nb_isa_avx512, &nb_isa_avx2, &nb_isa_generic}; /* best first */
#elif defined(__aarch64__)
extern const nb_isa nb_isa_neon, nb_isa_generic;
static const nb_isa *const targets[] = {&nb_isa_neon, &nb_isa_generic};
#else
extern const nb_isa nb_isa_generic;
static const nb_isa *const targets[] = {&nb_isa_generic};
#endif
#define TARGET_COUNT ((int)(sizeof targets / sizeof targets[0]))

static int cpu_supports(const nb_isa *t) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (!strcmp(t->name, "avx512")) return __builtin_cpu_supports("avx512f");
    if (!strcmp(t->name, "avx2")) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    (void)t;
    return 1; /* neon on AArch64, generic everywhere */
}

static const nb_isa *find(const char *name) {
    for (int i = 0; i < TARGET_COUNT; i++)
        if (!strcmp(targets[i]->name, name)) return targets[i];
    return NULL;
}

static const nb_isa *best(void) {
    for (int i = 0; i < TARGET_COUNT; i++)
        if (cpu_supports(targets[i])) return targets[i];
    return targets[TARGET_COUNT - 1];
}

/* "avx2, generic": the targets this build has (all = 0) or this CPU runs. */
static void list_targets(char *buf, size_t size, int all) {
    buf[0] = '\0';
    for (int i = 0; i < TARGET_COUNT; i++) {
        if (!all && !cpu_supports(targets[i])) continue;
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s", used ? ", " : "", targets[i]->name);
    }
}

/* Why `name` cannot run here, or "" when it can. */
static void refusal(const char *name, char *why, size_t size) {
    char list[64];
    const nb_isa *t = find(name);
    why[0] = '\0';
    if (!t) {
        list_targets(list, sizeof list, 1);
        snprintf(why, size, "unknown SIMD target '%s' (this build has: %s)", name, list);
    } else if (!cpu_supports(t)) {
        list_targets(list, sizeof list, 0);
        snprintf(why, size, "SIMD target '%s' is not supported by this CPU (it runs: %s)", name, list);
    }
}

static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;
static const nb_isa *active;
static char env_refusal[160]; /* why NABLA_ISA was not followed, or "" */

static void choose(void) {
    active = best();
    const char *env = getenv("NABLA_ISA");
    if (!env || !*env || !strcmp(env, "auto")) return;
    refusal(env, env_refusal, sizeof env_refusal);
    if (!env_refusal[0]) active = find(env);
}

const nb_isa *nb_isa_active(void) {
    pthread_once(&chosen_once, choose);
    return active;
}

const char *nb_isa_name(void) { return nb_isa_active()->name; }

nb_status nb_isa_set(const char *name) {
    pthread_once(&chosen_once, choose);
    if (!name || !*name || !strcmp(name, "auto")) {
        active = best();
        return NB_OK;
    }
    char why[160];
    refusal(name, why, sizeof why);
    if (why[0]) return nb_fail(NB_ERR_ARG, "%s", why);
    active = find(name);
    return NB_OK;
}

nb_status nb_isa_check_env(void) {
    pthread_once(&chosen_once, choose);
    if (env_refusal[0]) return nb_fail(NB_ERR_ARG, "NABLA_ISA: %s", env_refusal);
    return NB_OK;
}

int nb_isa_supported(const char *name) {
    const nb_isa *t = name ? find(name) : NULL;
    return t && cpu_supports(t);
}

static char supported_list[64];
static void fill_supported_list(void) { list_targets(supported_list, sizeof supported_list, 0); }

const char *nb_isa_targets(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, fill_supported_list);
    return supported_list;
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double nb_isa_fma_peak_gflops(double seconds) {
    const nb_isa *t = nb_isa_active();
    const double flops_per_iter = 2.0 * t->lanes * t->fma_peak_chains; /* an FMA counts 2 */
    long iters = 1L << 16;
    double best = 0.0, start = seconds_now();
    volatile float sink = 0;
    do {
        double took = t->fma_peak(iters, &sink);
        double rate = took > 0 ? flops_per_iter * (double)iters / took * 1e-9 : 0.0;
        if (rate > best) best = rate;
    } while (seconds_now() - start < seconds);
    return best;
}
