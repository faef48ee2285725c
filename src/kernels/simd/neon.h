/* neon.h — the vocabulary of simd.h over AArch64 Advanced SIMD (NEON):
 * 4 lanes, 32 q registers; a lane mask is a vector whose true lanes are
 * all ones. NEON has no masked loads, so a part goes through a small
 * buffer. Included by simd.h only. */
#include <arm_neon.h>

#define NB_LANES 4
#define NB_VREGS 32
#define NB_VBYTES 16
#define NB_ISA_NAME "neon"

typedef float32x4_t vf;
typedef int32x4_t vi;
typedef uint32x4_t vm;

#define NB_VINLINE static inline __attribute__((always_inline))

NB_VINLINE vf vf_zero(void) { return vdupq_n_f32(0.0f); }
NB_VINLINE vf vf_set1(float x) { return vdupq_n_f32(x); }
NB_VINLINE vf vf_load(const float *p) { return vld1q_f32(p); }
NB_VINLINE void vf_store(float *p, vf v) { vst1q_f32(p, v); }
NB_VINLINE vf vf_load_part(const float *p, int n) {
    if (n >= 4) return vld1q_f32(p);
    float t[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; i++) t[i] = p[i];
    return vld1q_f32(t);
}
NB_VINLINE void vf_store_part(float *p, vf v, int n) {
    if (n >= 4) {
        vst1q_f32(p, v);
        return;
    }
    float t[4];
    vst1q_f32(t, v);
    for (int i = 0; i < n; i++) p[i] = t[i];
}
NB_VINLINE vf vf_load_range(const float *p, int lo, int hi) {
    float t[4] = {0, 0, 0, 0};
    for (int i = lo < 0 ? 0 : lo; i < hi && i < 4; i++) t[i] = p[i];
    return vld1q_f32(t);
}
NB_VINLINE void vf_stream(float *p, vf v) { vst1q_f32(p, v); }
NB_VINLINE void vf_stream_fence(void) {}
NB_VINLINE vf vf_add(vf a, vf b) { return vaddq_f32(a, b); }
NB_VINLINE vf vf_mul(vf a, vf b) { return vmulq_f32(a, b); }
NB_VINLINE vf vf_fma(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
/* vmaxq_f32 would propagate a NaN; the relu rule wants 0 there. */
NB_VINLINE vf vf_relu(vf v) { return vbslq_f32(vcgtq_f32(v, vdupq_n_f32(0.0f)), v, vdupq_n_f32(0.0f)); }
NB_VINLINE float vf_hsum(vf v) { return vaddvq_f32(v); }
NB_VINLINE vm vf_gt(vf a, vf b) { return vcgtq_f32(a, b); }
NB_VINLINE vm vf_isnan(vf a) { return vmvnq_u32(vceqq_f32(a, a)); }
NB_VINLINE vm vm_or(vm a, vm b) { return vorrq_u32(a, b); }
NB_VINLINE vm vm_andnot(vm a, vm b) { return vbicq_u32(a, b); }
NB_VINLINE vf vf_select(vm m, vf a, vf b) { return vbslq_f32(m, a, b); }
NB_VINLINE vf vf_keep(vm m, vf v) { return vreinterpretq_f32_u32(vandq_u32(m, vreinterpretq_u32_f32(v))); }

NB_VINLINE vi vi_set1(int32_t x) { return vdupq_n_s32(x); }
NB_VINLINE vi vi_ramp(int32_t start, int32_t step) {
    const int32_t t[4] = {start, start + step, start + 2 * step, start + 3 * step};
    return vld1q_s32(t);
}
NB_VINLINE vi vi_load_part(const int32_t *p, int n) {
    if (n >= 4) return vld1q_s32(p);
    int32_t t[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; i++) t[i] = p[i];
    return vld1q_s32(t);
}
NB_VINLINE void vi_store_part(int32_t *p, vi v, int n) {
    if (n >= 4) {
        vst1q_s32(p, v);
        return;
    }
    int32_t t[4];
    vst1q_s32(t, v);
    for (int i = 0; i < n; i++) p[i] = t[i];
}
NB_VINLINE vi vi_add(vi a, vi b) { return vaddq_s32(a, b); }
NB_VINLINE vm vi_eq(vi a, vi b) { return vceqq_s32(a, b); }
NB_VINLINE vi vi_select(vm m, vi a, vi b) { return vbslq_s32(m, a, b); }

NB_VINLINE vf vf_gather_part(const float *base, vi idx, int n) {
    int32_t at[4];
    vst1q_s32(at, idx);
    float t[4] = {0, 0, 0, 0};
    for (int i = 0; i < n && i < 4; i++) t[i] = base[at[i]];
    return vld1q_f32(t);
}
NB_VINLINE void vf_deinterleave(vf a, vf b, vf *even, vf *odd) {
    *even = vuzp1q_f32(a, b);
    *odd = vuzp2q_f32(a, b);
}
NB_VINLINE void vf_interleave(vf even, vf odd, vf *lo, vf *hi) {
    *lo = vzip1q_f32(even, odd);
    *hi = vzip2q_f32(even, odd);
}
NB_VINLINE void vf_transpose(vf r[4]) {
    const vf t0 = vtrn1q_f32(r[0], r[1]), t1 = vtrn2q_f32(r[0], r[1]);
    const vf t2 = vtrn1q_f32(r[2], r[3]), t3 = vtrn2q_f32(r[2], r[3]);
    r[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    r[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
    r[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    r[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
}
