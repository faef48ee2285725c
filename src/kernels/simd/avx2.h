/* avx2.h — the vocabulary of simd.h over AVX2 + FMA: 8 lanes, 16 ymm
 * registers; a lane mask is a vector whose true lanes are all ones.
 * Included by simd.h only. */
#include <immintrin.h>

#define NB_LANES 8
#define NB_VREGS 16
#define NB_VBYTES 32
#define NB_ISA_NAME "avx2"

typedef __m256 vf;
typedef __m256i vi;
typedef __m256 vm;

#define NB_VINLINE static inline __attribute__((always_inline))

NB_VINLINE __m256i vm_first_i(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
NB_VINLINE vf vf_zero(void) { return _mm256_setzero_ps(); }
NB_VINLINE vf vf_set1(float x) { return _mm256_set1_ps(x); }
NB_VINLINE vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
NB_VINLINE void vf_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
/* maskload and maskstore never touch the lanes left out, so a part at the
 * end of a buffer cannot fault. */
NB_VINLINE vf vf_load_part(const float *p, int n) { return _mm256_maskload_ps(p, vm_first_i(n)); }
NB_VINLINE void vf_store_part(float *p, vf v, int n) { _mm256_maskstore_ps(p, vm_first_i(n), v); }
NB_VINLINE vf vf_load_range(const float *p, int lo, int hi) {
    return _mm256_maskload_ps(p, _mm256_andnot_si256(vm_first_i(lo), vm_first_i(hi)));
}
NB_VINLINE void vf_stream(float *p, vf v) { _mm256_stream_ps(p, v); }
NB_VINLINE void vf_stream_fence(void) { _mm_sfence(); }
NB_VINLINE vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
NB_VINLINE vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
NB_VINLINE vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
/* max_ps returns its second operand when either is a NaN. */
NB_VINLINE vf vf_relu(vf v) { return _mm256_max_ps(v, _mm256_setzero_ps()); }
NB_VINLINE float vf_hsum(vf v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
NB_VINLINE vm vf_gt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
NB_VINLINE vm vf_isnan(vf a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
NB_VINLINE vm vm_or(vm a, vm b) { return _mm256_or_ps(a, b); }
NB_VINLINE vm vm_andnot(vm a, vm b) { return _mm256_andnot_ps(b, a); }
NB_VINLINE vf vf_select(vm m, vf a, vf b) { return _mm256_blendv_ps(b, a, m); }
NB_VINLINE vf vf_keep(vm m, vf v) { return _mm256_and_ps(m, v); }

NB_VINLINE vi vi_set1(int32_t x) { return _mm256_set1_epi32(x); }
NB_VINLINE vi vi_ramp(int32_t start, int32_t step) {
    return _mm256_add_epi32(_mm256_set1_epi32(start),
                            _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(step)));
}
NB_VINLINE vi vi_load_part(const int32_t *p, int n) { return _mm256_maskload_epi32((const int *)p, vm_first_i(n)); }
NB_VINLINE void vi_store_part(int32_t *p, vi v, int n) { _mm256_maskstore_epi32((int *)p, vm_first_i(n), v); }
NB_VINLINE vi vi_add(vi a, vi b) { return _mm256_add_epi32(a, b); }
NB_VINLINE vm vi_eq(vi a, vi b) { return _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b)); }
NB_VINLINE vi vi_select(vm m, vi a, vi b) { return _mm256_blendv_epi8(b, a, _mm256_castps_si256(m)); }

NB_VINLINE vf vf_gather_part(const float *base, vi idx, int n) {
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, idx, _mm256_castsi256_ps(vm_first_i(n)), 4);
}
/* Within each 128-bit half, then the halves' 64-bit quarters put in order. */
NB_VINLINE void vf_deinterleave(vf a, vf b, vf *even, vf *odd) {
    const vf e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}
NB_VINLINE void vf_interleave(vf even, vf odd, vf *lo, vf *hi) {
    const vf l = _mm256_unpacklo_ps(even, odd), h = _mm256_unpackhi_ps(even, odd);
    *lo = _mm256_permute2f128_ps(l, h, 0x20);
    *hi = _mm256_permute2f128_ps(l, h, 0x31);
}
NB_VINLINE void vf_transpose(vf r[8]) {
    vf t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        s[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
    }
}
