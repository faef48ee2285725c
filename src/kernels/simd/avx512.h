/* avx512.h — the vocabulary of simd.h over AVX-512F: 16 lanes, 32 zmm
 * registers, lane masks in k registers. Included by simd.h only. */
#include <immintrin.h>

#define NB_LANES 16
#define NB_VREGS 32
#define NB_VBYTES 64
#define NB_ISA_NAME "avx512"

typedef __m512 vf;
typedef __m512i vi;
typedef __mmask16 vm;

#define NB_VINLINE static inline __attribute__((always_inline))

NB_VINLINE vm vm_first(int n) {
    return n >= 16 ? (vm)0xffff : n <= 0 ? (vm)0 : (vm)((1u << n) - 1);
}
NB_VINLINE vf vf_zero(void) { return _mm512_setzero_ps(); }
NB_VINLINE vf vf_set1(float x) { return _mm512_set1_ps(x); }
NB_VINLINE vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
NB_VINLINE void vf_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
NB_VINLINE vf vf_load_part(const float *p, int n) { return _mm512_maskz_loadu_ps(vm_first(n), p); }
NB_VINLINE void vf_store_part(float *p, vf v, int n) { _mm512_mask_storeu_ps(p, vm_first(n), v); }
NB_VINLINE vf vf_load_range(const float *p, int lo, int hi) {
    return _mm512_maskz_loadu_ps((vm)(vm_first(hi) & ~vm_first(lo)), p);
}
NB_VINLINE void vf_stream(float *p, vf v) { _mm512_stream_ps(p, v); }
NB_VINLINE void vf_stream_fence(void) { _mm_sfence(); }
NB_VINLINE vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
NB_VINLINE vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
NB_VINLINE vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
/* max_ps returns its second operand when either is a NaN. */
NB_VINLINE vf vf_relu(vf v) { return _mm512_max_ps(v, _mm512_setzero_ps()); }
NB_VINLINE float vf_hsum(vf v) { return _mm512_reduce_add_ps(v); }
NB_VINLINE vm vf_gt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
NB_VINLINE vm vf_isnan(vf a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
NB_VINLINE vm vm_or(vm a, vm b) { return (vm)(a | b); }
NB_VINLINE vm vm_andnot(vm a, vm b) { return (vm)(a & ~b); }
NB_VINLINE vf vf_select(vm m, vf a, vf b) { return _mm512_mask_blend_ps(m, b, a); }
NB_VINLINE vf vf_keep(vm m, vf v) { return _mm512_maskz_mov_ps(m, v); }

NB_VINLINE vi vi_set1(int32_t x) { return _mm512_set1_epi32(x); }
NB_VINLINE vi vi_ramp(int32_t start, int32_t step) {
    const vi lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm512_add_epi32(_mm512_set1_epi32(start), _mm512_mullo_epi32(lane, _mm512_set1_epi32(step)));
}
NB_VINLINE vi vi_load_part(const int32_t *p, int n) { return _mm512_maskz_loadu_epi32(vm_first(n), p); }
NB_VINLINE void vi_store_part(int32_t *p, vi v, int n) { _mm512_mask_storeu_epi32(p, vm_first(n), v); }
NB_VINLINE vi vi_add(vi a, vi b) { return _mm512_add_epi32(a, b); }
NB_VINLINE vm vi_eq(vi a, vi b) { return _mm512_cmpeq_epi32_mask(a, b); }
NB_VINLINE vi vi_select(vm m, vi a, vi b) { return _mm512_mask_blend_epi32(m, b, a); }

NB_VINLINE vf vf_gather_part(const float *base, vi idx, int n) {
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), vm_first(n), idx, base, 4);
}
NB_VINLINE void vf_deinterleave(vf a, vf b, vf *even, vf *odd) {
    const vi e = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    *even = _mm512_permutex2var_ps(a, e, b);
    *odd = _mm512_permutex2var_ps(a, _mm512_add_epi32(e, _mm512_set1_epi32(1)), b);
}
NB_VINLINE void vf_interleave(vf even, vf odd, vf *lo, vf *hi) {
    const vi l = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    *lo = _mm512_permutex2var_ps(even, l, odd);
    *hi = _mm512_permutex2var_ps(even, _mm512_add_epi32(l, _mm512_set1_epi32(8)), odd);
}
/* 32-bit pairs, then 64-bit pairs (u[4i + q], 128-bit lane L, holds column
 * 4L + q of rows 4i .. 4i+3), then the 128-bit lanes gathered. */
NB_VINLINE void vf_transpose(vf r[16]) {
    vf t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        const __m512d t0 = _mm512_castps_pd(t[i]), t1 = _mm512_castps_pd(t[i + 1]);
        const __m512d t2 = _mm512_castps_pd(t[i + 2]), t3 = _mm512_castps_pd(t[i + 3]);
        u[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    for (int q = 0; q < 4; q++) {
        const vf v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x44), v1 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x44);
        const vf v2 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xEE), v3 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xEE);
        r[q] = _mm512_shuffle_f32x4(v0, v1, 0x88);
        r[4 + q] = _mm512_shuffle_f32x4(v0, v1, 0xDD);
        r[8 + q] = _mm512_shuffle_f32x4(v2, v3, 0x88);
        r[12 + q] = _mm512_shuffle_f32x4(v2, v3, 0xDD);
    }
}
