/* tensor.c — tensor shape helpers and the seeded random generator. */
#include "core/internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

size_t nb_numel(int ndim, const int *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

size_t nb_tensor_numel(const nb_tensor *t) { return nb_numel(t->ndim, t->shape); }

bool nb_same_shape(const nb_tensor *a, const nb_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *nb_shape_str(const nb_tensor *t, char *buf, size_t size) {
    size_t used = 0;
    if (size == 0) return buf;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %d" : "%d", t->shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

/* ---- random numbers --------------------------------------------------------
 * xorshift128+ seeded through splitmix64: tiny state, fast, and the same
 * stream everywhere. Floats take the top 24 bits so every value is exact. */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void nb_rng_seed(nb_rng *rng, uint64_t seed) {
    rng->s[0] = splitmix64(&seed);
    rng->s[1] = splitmix64(&seed);
    if (!(rng->s[0] | rng->s[1])) rng->s[1] = 1;
}

static uint64_t next64(nb_rng *rng) {
    uint64_t s1 = rng->s[0];
    const uint64_t s0 = rng->s[1];
    const uint64_t result = s0 + s1;
    rng->s[0] = s0;
    s1 ^= s1 << 23;
    rng->s[1] = s1 ^ s0 ^ (s1 >> 18) ^ (s0 >> 5);
    return result;
}

uint32_t nb_rng_u32(nb_rng *rng) { return (uint32_t)(next64(rng) >> 32); }

float nb_rng_uniform(nb_rng *rng) { return (float)(nb_rng_u32(rng) >> 8) * (1.0f / 16777216.0f); }

float nb_rng_normal(nb_rng *rng) {
    /* Box-Muller; u1 in (0, 1] so the log is finite. */
    float u1 = 1.0f - nb_rng_uniform(rng), u2 = nb_rng_uniform(rng);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

uint32_t nb_rng_below(nb_rng *rng, uint32_t n) {
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t m = (uint64_t)nb_rng_u32(rng) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)nb_rng_u32(rng) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}
