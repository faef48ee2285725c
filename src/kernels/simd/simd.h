/* simd.h — the vector vocabulary the kernels in src/kernels/targets/ are
 * written in, once, and compiled once per target CPU.
 *
 * The Makefile compiles every file of targets/ once for each target the
 * build's architecture has (x86-64: avx512, avx2, generic; aarch64: neon,
 * generic), defining NB_TARGET_<name> and that target's compiler flags.
 * This header then includes the one definition of the vocabulary for that
 * target, and NB_K(name) gives each function a suffixed symbol name
 * (gemm_tile_avx2, ...), so the builds link side by side and the dispatch
 * table (isa.c) picks one at run time. A kernel never names an ISA: its
 * register blocking is a function of NB_LANES and NB_VREGS.
 *
 * The vocabulary (v: vf float vector, vi int32 vector, vm lane mask):
 *   vf_zero() vf_set1(x) vf_load(p) vf_store(p, v)      unaligned
 *   vf_load_part(p, n) vf_store_part(p, v, n)           lanes [0, n): the
 *       rest load as 0 and are never read or written; n may be <= 0 or
 *       >= NB_LANES
 *   vf_load_range(p, lo, hi)                            lanes [lo, hi) of p
 *   vf_stream(p, v) vf_stream_fence()                   non-temporal store
 *       of a vector-aligned p, and the fence after a run of them
 *   vf_add vf_mul vf_fma(a, b, c) = a * b + c           fused where the
 *       target has it
 *   vf_relu(v)      v > 0 ? v : 0 (0 for a NaN)
 *   vf_hsum(v)      the sum of the lanes
 *   vf_gt(a, b) vf_isnan(a) vm_or vm_andnot(a, b) = a & ~b
 *   vf_select(m, a, b)  m ? a : b;   vf_keep(m, v)  m ? v : 0
 *   vi_set1 vi_ramp(start, step) vi_load_part vi_store_part vi_add vi_eq
 *   vi_select(m, a, b)
 *   vf_gather_part(base, idx, n)  base[idx[i]] for lanes i < n, else 0
 *   vf_deinterleave(a, b, &even, &odd)  the even and odd elements of the
 *       2 * NB_LANES floats a, b;  vf_interleave(even, odd, &lo, &hi) undoes it
 *   vf_transpose(r)  r[NB_LANES] as a NB_LANES x NB_LANES block, transposed
 */
#ifndef NB_SIMD_H
#define NB_SIMD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(NB_TARGET_avx512)
#include "kernels/simd/avx512.h"
#define NB_K(name) name##_avx512
#elif defined(NB_TARGET_avx2)
#include "kernels/simd/avx2.h"
#define NB_K(name) name##_avx2
#elif defined(NB_TARGET_neon)
#include "kernels/simd/neon.h"
#define NB_K(name) name##_neon
#elif defined(NB_TARGET_generic)
#include "kernels/simd/generic.h"
#define NB_K(name) name##_generic
#else
#error "compile src/kernels/targets/ with one NB_TARGET_<name> defined (the Makefile does)"
#endif

/* Each target header defines NB_VINLINE (static, always inlined: vectors
 * stay in registers and no call crosses a target boundary), NB_LANES,
 * NB_VREGS (the vector register file), NB_VBYTES and NB_ISA_NAME. */

/* The first n lanes (all of them when n >= NB_LANES): most calls are whole
 * vectors, and a plain load or store is the cheaper instruction on every
 * target. */
NB_VINLINE vf vf_load_n(const float *p, int n) { return n >= NB_LANES ? vf_load(p) : vf_load_part(p, n); }
NB_VINLINE void vf_store_n(float *p, vf v, int n) {
    if (n >= NB_LANES) vf_store(p, v);
    else vf_store_part(p, v, n);
}

#endif
