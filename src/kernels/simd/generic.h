/* generic.h — the vocabulary of simd.h in plain C: a vector is a struct of
 * four floats and every operation a loop over its lanes, which compilers
 * turn into whatever vector instructions the baseline ISA has (SSE2 on
 * x86-64). It serves every CPU, and is the target tests force to check
 * that the kernels, not the intrinsics, are right. Included by simd.h only. */
#include <math.h>

#define NB_LANES 4
#define NB_VREGS 16
#define NB_VBYTES 16
#define NB_ISA_NAME "generic"

typedef struct { float v[4]; } vf;
typedef struct { int32_t v[4]; } vi;
typedef struct { int32_t v[4]; } vm; /* 1 or 0 per lane */

#define NB_VINLINE static inline __attribute__((always_inline))
#define NB_LANEWISE(i) for (int i = 0; i < 4; i++)

NB_VINLINE vf vf_zero(void) { vf r = {{0, 0, 0, 0}}; return r; }
NB_VINLINE vf vf_set1(float x) { vf r = {{x, x, x, x}}; return r; }
NB_VINLINE vf vf_load(const float *p) { vf r; memcpy(r.v, p, sizeof r.v); return r; }
NB_VINLINE void vf_store(float *p, vf v) { memcpy(p, v.v, sizeof v.v); }
NB_VINLINE vf vf_load_part(const float *p, int n) {
    vf r = vf_zero();
    for (int i = 0; i < n && i < 4; i++) r.v[i] = p[i];
    return r;
}
NB_VINLINE void vf_store_part(float *p, vf v, int n) {
    for (int i = 0; i < n && i < 4; i++) p[i] = v.v[i];
}
NB_VINLINE vf vf_load_range(const float *p, int lo, int hi) {
    vf r = vf_zero();
    for (int i = lo < 0 ? 0 : lo; i < hi && i < 4; i++) r.v[i] = p[i];
    return r;
}
NB_VINLINE void vf_stream(float *p, vf v) { vf_store(p, v); }
NB_VINLINE void vf_stream_fence(void) {}
NB_VINLINE vf vf_add(vf a, vf b) { NB_LANEWISE(i) a.v[i] += b.v[i]; return a; }
NB_VINLINE vf vf_mul(vf a, vf b) { NB_LANEWISE(i) a.v[i] *= b.v[i]; return a; }
/* A multiply and an add: plain C has no guaranteed fused form that the
 * compiler will vectorise (fmaf is a library call without -mfma). */
NB_VINLINE vf vf_fma(vf a, vf b, vf c) { NB_LANEWISE(i) c.v[i] += a.v[i] * b.v[i]; return c; }
NB_VINLINE vf vf_relu(vf v) { NB_LANEWISE(i) v.v[i] = v.v[i] > 0.0f ? v.v[i] : 0.0f; return v; }
NB_VINLINE float vf_hsum(vf v) { return (v.v[0] + v.v[2]) + (v.v[1] + v.v[3]); }
NB_VINLINE vm vf_gt(vf a, vf b) { vm m; NB_LANEWISE(i) m.v[i] = a.v[i] > b.v[i]; return m; }
NB_VINLINE vm vf_isnan(vf a) { vm m; NB_LANEWISE(i) m.v[i] = a.v[i] != a.v[i]; return m; }
NB_VINLINE vm vm_or(vm a, vm b) { NB_LANEWISE(i) a.v[i] |= b.v[i]; return a; }
NB_VINLINE vm vm_andnot(vm a, vm b) { NB_LANEWISE(i) a.v[i] &= !b.v[i]; return a; }
NB_VINLINE vf vf_select(vm m, vf a, vf b) { NB_LANEWISE(i) a.v[i] = m.v[i] ? a.v[i] : b.v[i]; return a; }
NB_VINLINE vf vf_keep(vm m, vf v) { NB_LANEWISE(i) v.v[i] = m.v[i] ? v.v[i] : 0.0f; return v; }

NB_VINLINE vi vi_set1(int32_t x) { vi r = {{x, x, x, x}}; return r; }
NB_VINLINE vi vi_ramp(int32_t start, int32_t step) {
    vi r = {{start, start + step, start + 2 * step, start + 3 * step}};
    return r;
}
NB_VINLINE vi vi_load_part(const int32_t *p, int n) {
    vi r = {{0, 0, 0, 0}};
    for (int i = 0; i < n && i < 4; i++) r.v[i] = p[i];
    return r;
}
NB_VINLINE void vi_store_part(int32_t *p, vi v, int n) {
    for (int i = 0; i < n && i < 4; i++) p[i] = v.v[i];
}
NB_VINLINE vi vi_add(vi a, vi b) { NB_LANEWISE(i) a.v[i] += b.v[i]; return a; }
NB_VINLINE vm vi_eq(vi a, vi b) { vm m; NB_LANEWISE(i) m.v[i] = a.v[i] == b.v[i]; return m; }
NB_VINLINE vi vi_select(vm m, vi a, vi b) { NB_LANEWISE(i) a.v[i] = m.v[i] ? a.v[i] : b.v[i]; return a; }

NB_VINLINE vf vf_gather_part(const float *base, vi idx, int n) {
    vf r = vf_zero();
    for (int i = 0; i < n && i < 4; i++) r.v[i] = base[idx.v[i]];
    return r;
}
NB_VINLINE void vf_deinterleave(vf a, vf b, vf *even, vf *odd) {
    vf e = {{a.v[0], a.v[2], b.v[0], b.v[2]}}, o = {{a.v[1], a.v[3], b.v[1], b.v[3]}};
    *even = e, *odd = o;
}
NB_VINLINE void vf_interleave(vf even, vf odd, vf *lo, vf *hi) {
    vf l = {{even.v[0], odd.v[0], even.v[1], odd.v[1]}}, h = {{even.v[2], odd.v[2], even.v[3], odd.v[3]}};
    *lo = l, *hi = h;
}
NB_VINLINE void vf_transpose(vf r[4]) {
    vf t[4];
    for (int i = 0; i < 4; i++) NB_LANEWISE(j) t[j].v[i] = r[i].v[j];
    for (int i = 0; i < 4; i++) r[i] = t[i];
}
