/* targets/table.c — this target's dispatch table: its build of every
 * kernel in targets/ and the blocking that suits its registers. The
 * symbol is nb_isa_<target> (isa.c chooses among them). */
#include "kernels/targets/targets.h"

const nb_isa NB_K(nb_isa) = {
    .name = NB_ISA_NAME,
    .lanes = NB_LANES,
    .vregs = NB_VREGS,
    /* KC is long: measured on a Zen 4 core (1024^3, one thread), KC = 256
     * gave 76-90 GFLOP/s and KC = 1024 gave 102-106 (90% of the FMA peak)
     * with 16 lanes; each kernel call then streams its slivers from L2 for
     * a thousand steps of k. Narrower vectors take a shorter KC where L2 is
     * small (Zen 3: 512 KiB), and the same 1024 where it holds 1 MiB
     * (8 lanes on Zen 4: 101-104 GFLOP/s against 97-100 with 512). NEON
     * keeps 512 on both: no ARM machine to measure on. */
    .gemm_mr = GEMM_MR,
    .gemm_nr = GEMM_NR,
    .gemm_kc = NB_LANES >= 16 ? 1024 : 512,
    .gemm_kc_large_l2 = NB_LANES >= 8 ? 1024 : 512,
    .gemm_mc = NB_LANES >= 16 ? 96 : 120,
    .gemm_nc = 2048,
    /* 8 and 16 lanes take every layer up to 512 -> 512 channels 3x3: with
     * the input gradient by the turned filters, ResNet-18's layer3 and
     * layer4 and AlexNet's features.3-10 ran faster than on Winograd or
     * im2col (AlexNet forward + backward +30% on AVX-512, +8% on AVX2,
     * batch 8, 2 threads; ResNet-18 training +12% on AVX-512). On the plain
     * target the same layers were 35-45% slower, so 4 lanes keep the 1 MB
     * limit (NEON with them: not measurable here). */
    .conv_cv_max_weights = NB_LANES >= 8 ? (size_t)1 << 22 : (size_t)1 << 18,
    .gemm_tile = NB_K(gemm_tile),
    .gemm_pack_k_contiguous = NB_K(gemm_pack_k_contiguous),
    .gemm_few_rows_dot = NB_K(gemm_few_rows_dot),
    .gemm_few_rows_axpy = NB_K(gemm_few_rows_axpy),
    .gemm_short_k_rows = NB_K(gemm_short_k_rows),
    .conv_direct_forward = NB_K(conv_direct_forward),
    .conv_direct_backward = NB_K(conv_direct_backward),
    .conv_cv_forward = NB_K(conv_cv_forward),
    .conv_cv_weight_grad = NB_K(conv_cv_weight_grad),
    .conv_cv_weight_grad_block = NB_K(conv_cv_weight_grad_block),
    .conv_cv_input_grad = NB_K(conv_cv_input_grad),
    .maxpool2x2_forward = NB_K(maxpool2x2_forward),
    .maxpool2x2_backward = NB_K(maxpool2x2_backward),
    .maxpool_forward = NB_K(maxpool_forward),
    .maxpool_forward_padded = NB_K(maxpool_forward_padded),
    .winograd_weights = NB_K(winograd_weights),
    .winograd_input = NB_K(winograd_input),
    .winograd_output = NB_K(winograd_output),
    .winograd_grad_output = NB_K(winograd_grad_output),
    .winograd_weight_grad = NB_K(winograd_weight_grad),
    .relu_inplace = NB_K(relu_inplace),
    .copy_stride2 = NB_K(copy_stride2),
    .add_stride2 = NB_K(add_stride2),
    .bn_stats = NB_K(bn_stats),
    .bn_apply = NB_K(bn_apply),
    .bn_grad_sums = NB_K(bn_grad_sums),
    .bn_grad_input = NB_K(bn_grad_input),
    .fma_peak_chains = FMA_PEAK_CHAINS,
    .fma_peak = NB_K(fma_peak),
};
