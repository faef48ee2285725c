/* conv.c — 2-D convolution (cross-correlation, as in PyTorch).
 *
 * x is (N, C, H, W); w is (O, C, KH, KW), read as a matrix [O, CKK] with
 * CKK = C*KH*KW; b is (O) or absent; y is (N, O, OH, OW). Four ways to run
 * it (five for a forward), chosen from the shapes alone (so never from the thread count):
 *
 * Direct (few input channels, stride 1, an AVX-512 CPU; kernels/conv_direct.c):
 *   each sample in registers from a zero-padded copy; samples in parallel;
 *   per-sample weight gradients summed in sample order.
 *
 * Channel-vectorised (layers whose image and weights fit the cache, 12+
 * output channels, any stride; kernels/conv_cv.c): sixteen output
 * channels per vector, no lowering; samples in parallel, weight gradients
 * per group of samples.
 *
 * im2col + GEMM, the batch taken a group of G samples at a time (a 1x1,
 * stride-1 layer with large planes takes a product per sample on x itself,
 * which is already its column matrix: Y[s] = W x[s], dW += dY[s] x[s]^T,
 * dx[s] += W^T dY[s]; a stride-2 layer's im2col and col2im rows are
 * vectorised gathers and scatters, nb_copy_stride2 and nb_add_stride2):
 *   cols = im2col(x[group])            [CKK, G*OHW]
 *   Y'   = W cols                      [O, G*OHW], then y[n][o] = Y'[o][n] + b[o]
 * and backward, with dY' the group's dy rearranged to [O, G*OHW]:
 *   dW  += dY' cols^T                  (cols recomputed: the workspace is shared)
 *   dx  += col2im(W^T dY')
 *   db  += sum of dy over batch and positions
 *   - small layers (LeNet-5's conv2): groups run in parallel, one thread
 *     each, with its own slice of the workspace; a group's dW is written to
 *     a slot of its own and the slots are summed in group order;
 *   - large layers (AlexNet's): one group at a time, the threads inside
 *     im2col and GEMM; a 3x3 or 5x5 stride-1 layer's forward goes by
 *     Winograd's F(2x2, 3x3) or F(2x2, 5x5) instead (kernels/winograd.c),
 *     in groups of its own, and so does its weight gradient (dy's and x's
 *     transforms, then G^T (sum of products) G), and a 3x3 layer's input
 *     gradient too (a convolution of dy by the turned filters).
 *
 * Every sum runs in an order fixed by the shapes: per-sample or per-group
 * weight gradients are summed in order, GEMM never splits K, col2im gives
 * each image to one thread. So results do not depend on the thread count,
 * nor on which thread takes which sample: loops over samples, groups and
 * Winograd products hand them out dynamically, so a thread that loses its
 * core for a while (a shared machine) leaves its share to the others
 * instead of holding them at the closing barrier.
 *
 * When the only consumer is a relu, the graph runs it in place and sets
 * fused_relu: every path then stores max(y, 0). The gradients of the
 * weights, bias and input are written when they are the pass's first
 * (grad_write_first), else added. */
#include "core/internal.h"
#include "kernels/kernels.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* A group's scratch (cols plus Y'), in floats: large layers take big groups
 * so their products are long; small layers, run a group per thread, take
 * groups that stay in that core's L2 cache. */
#define GROUP_FLOATS ((size_t)1 << 21)
/* Large layers with few output positions (AlexNet's 13x13) take at least
 * this many columns (samples x positions) per group, whatever the budget:
 * a product 169 columns wide leaves the GEMM mostly edges and packing, and
 * the weight gradient's K too short. Layers with 27x27 outputs and more
 * (floor division: 729 -> 1 sample) keep their one-sample groups, which
 * stay in the cache. */
#define GROUP_MIN_COLUMNS 1400
/* A Winograd pass's two transforms (x's v and the products m, or v and
 * dy's e) for one group of samples, in floats: all of AlexNet's batch of 8
 * in one group for its 3x3 layers, so each of the sixteen products is
 * [O, C] x [C, 392]; two samples a group for its 5x5 layer. */
#define WINOGRAD_GROUP_FLOATS ((size_t)1 << 22)
#define SMALL_GROUP_FLOATS ((size_t)1 << 17)
/* Below this many multiply-adds per sample a layer is "small". */
#define SMALL_LAYER_MACS ((size_t)1 << 22)
/* Small layers cut the batch into a multiple of this many groups, so that
 * up to four threads get equal shares. */
#define GROUP_MULTIPLE 4
/* A 1x1, stride-1, unpadded layer with at least this many positions per
 * sample runs a product per sample straight on x, y, dy and dx (x[s] is
 * already its column matrix [C, H*W]); with fewer, the products would be
 * too narrow, and im2col (a plain copy there) batches samples instead. */
#define POINTWISE_MIN_POSITIONS 512

typedef enum { CONV_DIRECT, CONV_CV, CONV_GROUPS_PARALLEL, CONV_GROUPS_SERIAL } conv_path;

typedef struct {
    nb_conv_geom g;
    int batch, out_ch;
    int ckk;          /* rows of cols: C*KH*KW */
    int ohw;          /* output positions per sample */
    conv_path path;
    int groups;       /* the batch in this many groups of about equal size */
    int group_max;    /* samples in the largest group */
    size_t group_floats;   /* cols + Y' of the largest group */
    int slots;        /* groups the workspace holds at once (threads) */
    size_t partials;  /* floats of per-sample or per-group weight gradients */
    size_t packed;    /* CONV_CV: floats of the packed weights */
    int cv_count;     /* CONV_CV: samples per kernel call (forward, weight gradient) */
    int cv_dx_count;  /* the same for the input gradient's forward convolution */
    /* CONV_CV: the weight gradient of the whole batch at once, block by
     * block (nb_conv_cv_weight_grad_batch), not per-group packed copies;
     * either takes the first wg_floats of the workspace. */
    bool cv_wg_batch;
    size_t wg_floats;
    /* CONV_CV, stride 1: dx as a forward convolution of dy by the turned
     * filters (the adjoint geometry), packed into `turned` floats. */
    bool cv_dx_forward;
    size_t turned;
    /* CONV_GROUPS_SERIAL with a 3x3 or 5x5 stride-1 kernel: the forward
     * and the weight gradient run by Winograd's F(2x2, r x r) in groups of
     * their own. */
    bool winograd, winograd_dx; /* the latter: 3x3 only, padding at most 2 */
    bool pointwise;   /* a group path, 1x1 stride 1 unpadded: a product per sample, no im2col */
    int wino_groups;
    size_t wino_floats; /* u (or the weight gradient's products), then one group's two transforms */
} conv_plan;

static int threads_now(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static nb_conv_geom adjoint_geom(const conv_plan *p);

/* Samples per channel-vectorised call: what the kernel asks for, but
 * never so many that the batch makes fewer than GROUP_MULTIPLE calls (the
 * threads would idle). The thread count plays no part, so the workspace
 * does not depend on it; nor do the bits (conv_cv.c). */
static int cv_call_samples(const nb_conv_geom *g, int batch) {
    const int want = nb_conv_cv_samples(g), spread = (batch + GROUP_MULTIPLE - 1) / GROUP_MULTIPLE;
    const int n = want < spread ? want : spread;
    return n < 1 ? 1 : n;
}

/* Samples of the call that starts at s and takes at most `per` of [s, end). */
static int call_size(int s, int end, int per) { return end - s < per ? end - s : per; }

static conv_plan plan_of(const nb_node *n) {
    const nb_tensor *x = &n->in[0]->value, *w = &n->in[1]->value;
    conv_plan p;
    memset(&p, 0, sizeof p);
    p.g.channels = x->shape[1];
    p.g.height = x->shape[2];
    p.g.width = x->shape[3];
    p.g.kernel_h = w->shape[2];
    p.g.kernel_w = w->shape[3];
    p.g.stride_h = n->attr.conv.stride_h;
    p.g.stride_w = n->attr.conv.stride_w;
    p.g.pad_h = n->attr.conv.pad_h;
    p.g.pad_w = n->attr.conv.pad_w;
    p.g.out_h = (p.g.height + 2 * p.g.pad_h - p.g.kernel_h) / p.g.stride_h + 1;
    p.g.out_w = (p.g.width + 2 * p.g.pad_w - p.g.kernel_w) / p.g.stride_w + 1;
    p.batch = x->shape[0];
    p.out_ch = w->shape[0];
    p.ckk = p.g.channels * p.g.kernel_h * p.g.kernel_w;
    p.ohw = p.g.out_h * p.g.out_w;
    const size_t per_sample = (size_t)(p.ckk + p.out_ch) * p.ohw;
    const size_t macs = (size_t)p.out_ch * p.ckk * p.ohw;
    const size_t n_batch = (size_t)p.batch;
    p.slots = 1;
    if (nb_conv_direct_fits(&p.g)) {
        p.path = CONV_DIRECT;
        p.partials = n_batch * ((size_t)p.out_ch * p.ckk + p.out_ch);
        p.slots = threads_now();
    } else if (nb_conv_cv_fits(&p.g, p.out_ch, n->attr.conv.cv_max_weights)) {
        /* Every layer it takes, small or not: against Winograd's groups
         * and im2col it ran the batch-norm CNN's 3x3 layers (32 and 64
         * channels, 7.2M multiply-adds a sample) 2.0x faster training on
         * AVX-512 and 1.66x on AVX2, and ResNet-18's conv1 (backward 6x),
         * layer1, layer2 and stride-2 layers 1.5-2.5x (plain C: 6% slower
         * on the CNN, not worth a rule that depends on the target). */
        p.path = CONV_CV;
        p.slots = threads_now();
        p.packed = nb_conv_cv_packed_floats(&p.g, p.out_ch);
    } else if (macs < SMALL_LAYER_MACS) {
        p.path = CONV_GROUPS_PARALLEL;
        p.slots = threads_now();
    } else {
        p.path = CONV_GROUPS_SERIAL;
    }
    /* Groups of G or G+1 samples; the direct path uses them only for dx.
     * CONV_CV sums a group's weight gradient in one slot: groups of about
     * eight samples keep the slots few. */
    const size_t budget = p.path == CONV_GROUPS_PARALLEL ? SMALL_GROUP_FLOATS
                          : p.path == CONV_CV            ? 8 * per_sample
                                                         : GROUP_FLOATS;
    size_t max_group = budget / per_sample;
    if (p.path == CONV_GROUPS_SERIAL && max_group < GROUP_MIN_COLUMNS / (size_t)p.ohw)
        max_group = GROUP_MIN_COLUMNS / (size_t)p.ohw;
    if (max_group < 1) max_group = 1;
    size_t groups = (n_batch + max_group - 1) / max_group;
    if (p.path == CONV_GROUPS_PARALLEL || p.path == CONV_CV)
        groups = (groups + GROUP_MULTIPLE - 1) / GROUP_MULTIPLE * GROUP_MULTIPLE;
    if (groups > n_batch) groups = n_batch;
    p.groups = (int)groups;
    p.group_max = (int)((n_batch + groups - 1) / groups);
    if (p.path == CONV_CV) {
        p.cv_count = cv_call_samples(&p.g, p.batch);
        p.group_floats = nb_conv_cv_scratch_floats(&p.g, p.out_ch, p.cv_count);
    } else {
        p.group_floats = (size_t)p.group_max * per_sample;
    }
    if (p.path == CONV_GROUPS_PARALLEL) p.partials = groups * (size_t)p.out_ch * p.ckk;
    if (p.path == CONV_CV && p.g.stride_h == 1 && p.g.stride_w == 1 && p.g.pad_h < p.g.kernel_h &&
        p.g.pad_w < p.g.kernel_w) {
        /* The input gradient by the forward kernel: on ResNet-18's layer1
         * and layer2 it replaced a column matrix of K x OH*OW floats (7 MB
         * a sample for 64 channels at 56x56) and its col2im. */
        const nb_conv_geom a = adjoint_geom(&p);
        if (nb_conv_cv_fits(&a, p.g.channels, n->attr.conv.cv_max_weights)) {
            p.cv_dx_forward = true;
            p.cv_dx_count = cv_call_samples(&a, p.batch);
            p.turned = nb_conv_cv_packed_floats(&a, p.g.channels);
            const size_t sc = nb_conv_cv_scratch_floats(&a, p.g.channels, p.cv_dx_count);
            if (sc > p.group_floats) p.group_floats = sc;
        }
    }
    /* CONV_CV: the batch's padded images or the per-group packed
     * gradients, the turned filters, then the packed weights. */
    if (p.path == CONV_CV) {
        p.cv_wg_batch = nb_conv_cv_batch_pays(&p.g, p.out_ch, p.batch, p.groups);
        if (p.cv_wg_batch) {
            p.wg_floats = nb_conv_cv_batch_floats(&p.g, p.batch);
            const size_t sc = nb_conv_cv_batch_scratch_floats(&p.g, p.batch);
            if (sc > p.group_floats) p.group_floats = sc;
        } else {
            p.wg_floats = groups * p.packed;
        }
        p.partials = p.wg_floats + p.turned + p.packed;
    }
    p.pointwise = (p.path == CONV_GROUPS_PARALLEL || p.path == CONV_GROUPS_SERIAL) && p.g.kernel_h == 1 &&
                  p.g.kernel_w == 1 && p.g.stride_h == 1 && p.g.stride_w == 1 && p.g.pad_h == 0 &&
                  p.g.pad_w == 0 && p.ohw >= POINTWISE_MIN_POSITIONS;
    if (p.path == CONV_GROUPS_SERIAL && nb_winograd_fits(&p.g)) {
        size_t tiles = (size_t)nb_winograd_tiles(&p.g);
        /* 5x5: dy's transform over the many output channels cost more than
         * the products saved; col2im measured faster there. */
        p.winograd_dx = p.g.kernel_h == 3 && p.g.pad_h <= 2 && p.g.pad_w <= 2;
        if (p.winograd_dx) {
            const nb_conv_geom a = adjoint_geom(&p);
            if ((size_t)nb_winograd_tiles(&a) > tiles) tiles = (size_t)nb_winograd_tiles(&a);
        }
        const size_t planes = (size_t)nb_winograd_planes(&p.g);
        const size_t wino_sample = planes * tiles * (size_t)(p.g.channels + p.out_ch);
        size_t wino_max = WINOGRAD_GROUP_FLOATS / wino_sample;
        if (wino_max < 1) wino_max = 1;
        size_t wino_groups = (n_batch + wino_max - 1) / wino_max;
        const size_t wino_group_max = (n_batch + wino_groups - 1) / wino_groups;
        p.winograd = true;
        p.wino_groups = (int)wino_groups;
        p.wino_floats = planes * p.out_ch * p.g.channels + wino_group_max * wino_sample;
    }
    return p;
}

/* Samples [*s0, *s1) of group gi: sizes differ by at most one. */
static void split_range(int batch, int groups, int gi, int *s0, int *s1) {
    *s0 = (int)((long)batch * gi / groups);
    *s1 = (int)((long)batch * (gi + 1) / groups);
}

static void group_range(const conv_plan *p, int gi, int *s0, int *s1) {
    split_range(p->batch, p->groups, gi, s0, s1);
}

/* The workspace: per-sample or per-group weight gradients first, then one
 * group's scratch per slot. The GEMM scratch is needed by the direct path
 * only when x needs a gradient (plan() infers a node after its inputs'
 * needs_grad is known). */
static size_t workspace_floats(const conv_plan *p, bool x_grad) {
    size_t scratch = p->path == CONV_DIRECT ? (x_grad ? p->group_floats : 0)
                                            : (size_t)p->slots * p->group_floats;
    const size_t lowered = p->partials + scratch;
    return p->wino_floats > lowered ? p->wino_floats : lowered;
}

/* Slots usable now: a thread count raised between forward and backward
 * must not run past the workspace sized for the old one. */
static int usable_slots(const nb_node *n, const conv_plan *p) {
    size_t have = n->graph->workspace_cap / sizeof(float);
    size_t per = p->group_floats ? p->group_floats : 1;
    size_t fit = have > p->partials ? (have - p->partials) / per : 0;
    int t = threads_now();
    if ((size_t)t > fit) t = (int)(fit ? fit : 1);
    return t < 1 ? 1 : t;
}

static nb_status infer_conv(nb_node *n) {
    const nb_tensor *x = &n->in[0]->value, *w = &n->in[1]->value;
    if (x->ndim != 4 || w->ndim != 4)
        return nb_fail_shapes(n, "expected x [N, C, H, W] and w [O, C, KH, KW]", x, w);
    if (x->shape[1] != w->shape[1])
        return nb_fail_shapes(n, "x's channels (dim 1) differ from w's input channels (dim 1)", x, w);
    const int sh = n->attr.conv.stride_h, sw = n->attr.conv.stride_w;
    const int ph = n->attr.conv.pad_h, pw = n->attr.conv.pad_w;
    if (sh <= 0 || sw <= 0 || ph < 0 || pw < 0)
        return nb_fail(NB_ERR_ARG, "conv2d%s%s: stride %dx%d, padding %dx%d: expected stride > 0 and "
                       "padding >= 0", n->name[0] ? " " : "", n->name, sh, sw, ph, pw);
    if (x->shape[2] + 2 * ph < w->shape[2] || x->shape[3] + 2 * pw < w->shape[3]) {
        char what[96];
        snprintf(what, sizeof what, "the kernel is larger than the input padded by %dx%d; the "
                 "output would be empty", ph, pw);
        return nb_fail_shapes(n, what, x, w);
    }
    if (n->n_in > 2) {
        const nb_tensor *b = &n->in[2]->value;
        if (b->ndim != 1 || b->shape[0] != w->shape[0])
            return nb_fail_shapes(n, "expected a bias with one entry per output channel (w dim 0)", w, b);
    }
    const long oh = (x->shape[2] + 2L * ph - w->shape[2]) / sh + 1;
    const long ow = (x->shape[3] + 2L * pw - w->shape[3]) / sw + 1;
    size_t ckk = (size_t)x->shape[1] * w->shape[2] * w->shape[3];
    if ((size_t)oh * ow > INT_MAX || ckk > INT_MAX)
        return nb_fail_shapes(n, "the layer is too large for 32-bit matrix dimensions", x, w);
    /* The target that runs now decides the channel-vectorised limit for
     * this forward and its backward, even if nb_isa_set runs between. */
    n->attr.conv.cv_max_weights = nb_conv_cv_max_weights();
    conv_plan p = plan_of(n);
    size_t bytes;
    if ((size_t)p.group_max * p.ohw > INT_MAX ||
        !nb_mul_size(workspace_floats(&p, n->in[0]->needs_grad), sizeof(float), &bytes))
        return nb_fail_shapes(n, "the layer is too large for 32-bit matrix dimensions", x, w);
    n->value.ndim = 4;
    n->value.shape[0] = p.batch;
    n->value.shape[1] = p.out_ch;
    n->value.shape[2] = p.g.out_h;
    n->value.shape[3] = p.g.out_w;
    n->workspace_bytes = bytes;
    n->aux_bytes = 0;
    return NB_OK;
}

/* ---- forward ------------------------------------------------------------------ */

/* y[o] (out_ch planes of ohw) += b[o], then the relu when asked; in place. */
static void finish_outputs(float *y, const float *b, int out_ch, int ohw, bool relu) {
    if (!b && !relu) return;
#pragma omp parallel for schedule(static) if ((size_t)out_ch * ohw >= 65536 && !omp_in_parallel())
    for (int o = 0; o < out_ch; o++) {
        float *yo = y + (size_t)o * ohw;
        const float bias = b ? b[o] : 0.0f;
        if (relu) {
            NB_SIMD
            for (int i = 0; i < ohw; i++) {
                float v = yo[i] + bias;
                yo[i] = v > 0 ? v : 0.0f;
            }
        } else {
            NB_SIMD
            for (int i = 0; i < ohw; i++) yo[i] += bias;
        }
    }
}

/* One group through im2col and GEMM into y, with the bias (and the relu,
 * when the node applies its consumer's); a pointwise layer's samples each
 * by one product straight into y. */
static void forward_group(const conv_plan *p, const float *x, const float *w, const float *b,
                          float *y, int s0, int s1, float *cols, bool relu) {
    const int count = s1 - s0, len = count * p->ohw;
    const size_t x_sample = (size_t)p->g.channels * p->g.height * p->g.width;
    if (p->pointwise) {
        const size_t y_sample = (size_t)p->out_ch * p->ohw;
        for (int s = s0; s < s1; s++) {
            float *ys = y + (size_t)s * y_sample;
            nb_sgemm(0, 0, p->out_ch, p->ohw, p->ckk, 1.0f, w, p->ckk, x + (size_t)s * x_sample, p->ohw, 0.0f, ys,
                     p->ohw);
            finish_outputs(ys, b, p->out_ch, p->ohw, relu);
        }
        return;
    }
    float *yg = cols + (size_t)p->ckk * len;
    nb_im2col(&p->g, x + (size_t)s0 * x_sample, count, cols);
    nb_sgemm(0, 0, p->out_ch, len, p->ckk, 1.0f, w, p->ckk, cols, len, 0.0f, yg, len);
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)len * p->out_ch >= 65536 && !omp_in_parallel())
    for (int s = 0; s < count; s++)
        for (int o = 0; o < p->out_ch; o++) {
            const float *src = yg + (size_t)o * len + (size_t)s * p->ohw;
            float *dst = y + ((size_t)(s0 + s) * p->out_ch + o) * p->ohw;
            const float bias = b ? b[o] : 0.0f;
            if (relu) {
                NB_SIMD
                for (int i = 0; i < p->ohw; i++) {
                    float v = src[i] + bias;
                    dst[i] = v > 0 ? v : 0.0f;
                }
            } else {
                NB_SIMD
                for (int i = 0; i < p->ohw; i++) dst[i] = src[i] + bias;
            }
        }
}

/* A 3x3 or 5x5 stride-1 convolution by Winograd's F(2x2, r x r) (kernels/winograd.c)
 * of `batch` samples x (g's channels, H, W) into y (batch, out_ch, OH, OW),
 * with the filters already transformed in u, a group of samples at a time:
 * the input transform, the 16 or 36 products (a thread takes whole products,
 * each run on it alone), then the output transform (bias and relu, or added
 * into y). */
static void winograd_conv(const nb_conv_geom *g, int out_ch, int batch, int groups, const float *u,
                          const float *x, const float *b, float *y, float *scratch, bool relu, bool accumulate) {
    const int tiles = nb_winograd_tiles(g), planes = nb_winograd_planes(g), channels = g->channels;
    const size_t oc = (size_t)out_ch * channels;
    const size_t x_sample = (size_t)channels * g->height * g->width;
    const size_t y_sample = (size_t)out_ch * g->out_h * g->out_w;
    float *v = scratch;
    for (int gi = 0; gi < groups; gi++) {
        int s0, s1;
        split_range(batch, groups, gi, &s0, &s1);
        const int count = s1 - s0, total = count * tiles;
        float *m = v + (size_t)planes * channels * total;
        nb_winograd_input(g, x + (size_t)s0 * x_sample, count, v);
#pragma omp parallel for schedule(dynamic) if (!omp_in_parallel())
        for (int xi = 0; xi < planes; xi++)
            nb_sgemm(0, 0, out_ch, total, channels, 1.0f, u + xi * oc, channels, v + (size_t)xi * total,
                     planes * total, 0.0f, m + (size_t)xi * total, planes * total);
        nb_winograd_output(g, out_ch, m, count, b, y + (size_t)s0 * y_sample, relu, accumulate);
    }
}

/* The weight gradient of a Winograd layer (kernels/winograd.c), a group
 * of samples at a time: x's and dy's transforms, the products summed over
 * the groups in order (a thread takes whole products), then the filters'
 * transform, written into dw or added. */
static void winograd_weight_grad(const conv_plan *p, const float *x, const float *dy, float *dw, bool first,
                                 float *ws) {
    const nb_conv_geom *g = &p->g;
    const int tiles = nb_winograd_tiles(g), planes = nb_winograd_planes(g);
    const int channels = g->channels, out_ch = p->out_ch;
    const size_t x_sample = (size_t)channels * g->height * g->width, y_sample = (size_t)out_ch * p->ohw;
    float *mw = ws, *v = ws + (size_t)planes * out_ch * channels;
    for (int gi = 0; gi < p->wino_groups; gi++) {
        int s0, s1;
        split_range(p->batch, p->wino_groups, gi, &s0, &s1);
        const int count = s1 - s0, total = count * tiles;
        float *e = v + (size_t)planes * channels * total;
        nb_winograd_input(g, x + (size_t)s0 * x_sample, count, v);
        nb_winograd_grad_output(g, out_ch, dy + (size_t)s0 * y_sample, count, e);
#pragma omp parallel for schedule(dynamic) if (!omp_in_parallel())
        for (int xi = 0; xi < planes; xi++)
            nb_sgemm(0, 1, out_ch, channels, total, 1.0f, e + (size_t)xi * total, planes * total,
                     v + (size_t)xi * total, planes * total, gi == 0 ? 0.0f : 1.0f,
                     mw + (size_t)xi * out_ch * channels, channels);
    }
    nb_winograd_weight_grad(g->kernel_h, out_ch, channels, mw, dw, !first);
}

/* The input gradient's geometry: dy (O, OH, OW) padded by kernel - 1 -
 * pad, out (C, H, W). */
static nb_conv_geom adjoint_geom(const conv_plan *p) {
    nb_conv_geom a = p->g;
    a.channels = p->out_ch;
    a.height = p->g.out_h;
    a.width = p->g.out_w;
    a.pad_h = p->g.kernel_h - 1 - p->g.pad_h;
    a.pad_w = p->g.kernel_w - 1 - p->g.pad_w;
    a.out_h = p->g.height;
    a.out_w = p->g.width;
    return a;
}

static void forward_conv(nb_node *n) {
    const conv_plan p = plan_of(n);
    const float *x = n->in[0]->value.data, *w = n->in[1]->value.data;
    const float *b = n->n_in > 2 ? n->in[2]->value.data : NULL;
    float *y = n->value.data, *ws = n->graph->workspace;
    const size_t x_sample = (size_t)p.g.channels * p.g.height * p.g.width;
    const size_t y_sample = (size_t)p.out_ch * p.ohw;
    const bool relu = n->fused_relu; /* the consumer's relu, done here (graph.c) */
    if (p.path == CONV_DIRECT) {
#pragma omp parallel for schedule(dynamic) if (p.batch > 1)
        for (int s = 0; s < p.batch; s++)
            nb_conv_direct_forward(&p.g, p.out_ch, x + (size_t)s * x_sample, w, b, y + (size_t)s * y_sample,
                                   relu);
        return;
    }
    if (p.path == CONV_CV) {
        const int slots = usable_slots(n, &p);
        float *wt = ws + p.partials - p.packed, *scratch = ws + p.partials;
        const int per = p.cv_count, calls = (p.batch + per - 1) / per;
        nb_conv_cv_pack_weights(&p.g, p.out_ch, w, wt);
#pragma omp parallel for schedule(dynamic) num_threads(slots) if (slots > 1 && calls > 1)
        for (int c = 0; c < calls; c++) {
            const int s = c * per;
            nb_conv_cv_forward(&p.g, p.out_ch, call_size(s, p.batch, per), x + (size_t)s * x_sample, wt, b,
                               y + (size_t)s * y_sample, scratch + (size_t)thread_id() * p.group_floats, relu);
        }
        return;
    }
    if (p.path == CONV_GROUPS_PARALLEL) {
        const int slots = usable_slots(n, &p);
        float *scratch = ws + p.partials;
#pragma omp parallel for schedule(dynamic) num_threads(slots) if (slots > 1 && p.groups > 1)
        for (int gi = 0; gi < p.groups; gi++) {
            int s0, s1;
            group_range(&p, gi, &s0, &s1);
            forward_group(&p, x, w, b, y, s0, s1, scratch + (size_t)thread_id() * p.group_floats, relu);
        }
        return;
    }
    if (p.winograd) {
        const size_t u_floats = (size_t)nb_winograd_planes(&p.g) * p.out_ch * p.g.channels;
        nb_winograd_weights(p.g.kernel_h, p.out_ch, p.g.channels, w, ws, 0);
        winograd_conv(&p.g, p.out_ch, p.batch, p.wino_groups, ws, x, b, y, ws + u_floats, relu, false);
        return;
    }
    for (int gi = 0; gi < p.groups; gi++) {
        int s0, s1;
        group_range(&p, gi, &s0, &s1);
        forward_group(&p, x, w, b, y, s0, s1, ws + p.partials, relu);
    }
}

/* ---- backward ----------------------------------------------------------------- */

/* A sum in a fixed order that still vectorises: sixteen independent float
 * lanes (no reassociation needed), combined in double at the end. */
static double sum_lanes(const float *v, int count) {
    enum { LANES = 16 };
    float lane[LANES] = {0};
    int i = 0;
    for (; i + LANES <= count; i += LANES)
        for (int j = 0; j < LANES; j++) lane[j] += v[i + j];
    double acc = 0;
    for (int j = 0; j < LANES; j++) acc += lane[j];
    for (; i < count; i++) acc += v[i];
    return acc;
}

/* db (+)= dy summed over the batch and positions, per output channel. */
static void bias_grad(const conv_plan *p, const float *dy, float *db, bool first) {
#pragma omp parallel for schedule(static) if ((size_t)p->batch * p->out_ch * p->ohw >= 65536)
    for (int o = 0; o < p->out_ch; o++) {
        double acc = 0;
        for (int s = 0; s < p->batch; s++)
            acc += sum_lanes(dy + ((size_t)s * p->out_ch + o) * p->ohw, p->ohw);
        db[o] = first ? (float)acc : db[o] + (float)acc;
    }
}

/* dst (+)= the `count` slices of `len` floats at src, src + stride, ...,
 * added one after another in slice order: the fixed-order sum of per-sample
 * or per-group gradients. */
static void sum_slices(float *dst, bool first, const float *src, int count, size_t stride, size_t len) {
#pragma omp parallel for schedule(static) if (len * (size_t)count >= 65536)
    for (size_t e = 0; e < len; e++) {
        float acc = first ? src[e] : dst[e] + src[e];
        for (int k = 1; k < count; k++) acc += src[(size_t)k * stride + e];
        dst[e] = acc;
    }
}

/* One group's share of backward: rearrange its dy, then its weight gradient
 * (into dw with beta, 0 to write) and its input gradient (added into dx);
 * a pointwise layer's samples each straight from x and dy. */
static void backward_group(const conv_plan *p, const float *x, const float *w, const float *dy,
                           float *dw, float beta, float *dx, int s0, int s1, float *cols) {
    const int count = s1 - s0, len = count * p->ohw;
    const size_t x_sample = (size_t)p->g.channels * p->g.height * p->g.width;
    if (p->pointwise) {
        /* dW (+)= dy[s] x[s]^T sample after sample; dx[s] += W^T dy[s]. */
        const size_t y_sample = (size_t)p->out_ch * p->ohw;
        for (int s = s0; s < s1; s++) {
            const float *xs = x + (size_t)s * x_sample, *dys = dy + (size_t)s * y_sample;
            if (dw)
                nb_sgemm(0, 1, p->out_ch, p->ckk, p->ohw, 1.0f, dys, p->ohw, xs, p->ohw, s == s0 ? beta : 1.0f, dw,
                         p->ckk);
            if (dx)
                nb_sgemm(1, 0, p->ckk, p->ohw, p->out_ch, 1.0f, w, p->ckk, dys, p->ohw, 1.0f,
                         dx + (size_t)s * x_sample, p->ohw);
        }
        return;
    }
    float *dyg = cols + (size_t)p->ckk * len;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)len * p->out_ch >= 65536 && !omp_in_parallel())
    for (int s = 0; s < count; s++)
        for (int o = 0; o < p->out_ch; o++)
            memcpy(dyg + (size_t)o * len + (size_t)s * p->ohw,
                   dy + ((size_t)(s0 + s) * p->out_ch + o) * p->ohw, (size_t)p->ohw * sizeof(float));
    if (dw) {
        nb_im2col(&p->g, x + (size_t)s0 * x_sample, count, cols);
        nb_sgemm(0, 1, p->out_ch, p->ckk, len, 1.0f, dyg, len, cols, len, beta, dw, p->ckk);
    }
    if (dx) {
        nb_sgemm(1, 0, p->ckk, len, p->out_ch, 1.0f, w, p->ckk, dyg, len, 0.0f, cols, len);
        nb_col2im_add(&p->g, cols, count, dx + (size_t)s0 * x_sample);
    }
}

static void backward_conv(nb_node *n) {
    const conv_plan p = plan_of(n);
    nb_node *xn = n->in[0], *wn = n->in[1], *bn = n->n_in > 2 ? n->in[2] : NULL;
    const float *dy = n->grad.data, *x = xn->value.data, *w = wn->value.data;
    float *ws = n->graph->workspace;
    const size_t x_sample = (size_t)p.g.channels * p.g.height * p.g.width;
    const size_t y_sample = (size_t)p.out_ch * p.ohw, w_size = (size_t)p.out_ch * p.ckk;
    const bool need_x = xn->needs_grad, need_w = wn->needs_grad, need_b = bn && bn->needs_grad;
    float *dx = NULL;
    bool dx_first = false;
    if (need_x && p.cv_dx_forward) {
        dx_first = nb_grad_first(xn); /* written by the first sample's conv, else added */
        dx = xn->grad.data;
    } else if (need_x) {
        nb_grad_begin_add(xn); /* col2im adds tap by tap */
        dx = xn->grad.data;
    }

    if (p.path == CONV_DIRECT) {
        if (need_w || need_b) {
            /* Per-sample gradients [w | b] side by side, then summed in order. */
            const size_t per = w_size + p.out_ch;
#pragma omp parallel for schedule(dynamic) if (p.batch > 1)
            for (int s = 0; s < p.batch; s++)
                nb_conv_direct_backward(&p.g, p.out_ch, x + (size_t)s * x_sample, dy + (size_t)s * y_sample,
                                        ws + (size_t)s * per, ws + (size_t)s * per + w_size);
            if (need_w) sum_slices(wn->grad.data, nb_grad_first(wn), ws, p.batch, per, w_size);
            if (need_b) sum_slices(bn->grad.data, nb_grad_first(bn), ws + w_size, p.batch, per, (size_t)p.out_ch);
        }
        if (need_x)
            for (int gi = 0; gi < p.groups; gi++) {
                int s0, s1;
                group_range(&p, gi, &s0, &s1);
                backward_group(&p, x, w, dy, NULL, 0.0f, dx, s0, s1, ws + p.partials);
            }
        return;
    }

    if (need_b) bias_grad(&p, dy, bn->grad.data, nb_grad_first(bn));
    if (!need_x && !need_w) return;
    if (p.path == CONV_CV) {
        const int slots = usable_slots(n, &p);
        float *scratch = ws + p.partials;
        if (need_w && p.cv_wg_batch) {
            nb_conv_cv_weight_grad_batch(&p.g, p.out_ch, p.batch, x, dy, wn->grad.data, nb_grad_first(wn), ws, scratch,
                                         p.group_floats, slots);
        } else if (need_w) {
            /* Each group's samples into its own packed slot, in order;
             * then the slots, in group order, into slot 0 and on to dW. */
#pragma omp parallel for schedule(dynamic) num_threads(slots) if (slots > 1 && p.groups > 1)
            for (int gi = 0; gi < p.groups; gi++) {
                int s0, s1;
                group_range(&p, gi, &s0, &s1);
                float *sc = scratch + (size_t)thread_id() * p.group_floats;
                for (int s = s0; s < s1; s += p.cv_count)
                    nb_conv_cv_weight_grad(&p.g, p.out_ch, call_size(s, s1, p.cv_count), x + (size_t)s * x_sample,
                                           dy + (size_t)s * y_sample, ws + (size_t)gi * p.packed, s == s0, sc);
            }
            sum_slices(ws, true, ws, p.groups, p.packed, p.packed);
            nb_conv_cv_unpack_grad(&p.g, p.out_ch, ws, wn->grad.data, nb_grad_first(wn));
        }
        if (need_x && p.cv_dx_forward) {
            const nb_conv_geom a = adjoint_geom(&p);
            float *turned = ws + p.wg_floats;
            nb_conv_cv_pack_turned(&p.g, p.out_ch, w, turned);
            const int store = dx_first ? NB_CV_WRITE : NB_CV_ADD;
            const int per = p.cv_dx_count, calls = (p.batch + per - 1) / per;
#pragma omp parallel for schedule(dynamic) num_threads(slots) if (slots > 1 && calls > 1)
            for (int c = 0; c < calls; c++) {
                const int s = c * per;
                nb_conv_cv_forward(&a, p.g.channels, call_size(s, p.batch, per), dy + (size_t)s * y_sample, turned,
                                   NULL, dx + (size_t)s * x_sample, scratch + (size_t)thread_id() * p.group_floats,
                                   store);
            }
        } else if (need_x) {
#pragma omp parallel for schedule(dynamic) num_threads(slots) if (slots > 1 && p.batch > 1)
            for (int s = 0; s < p.batch; s++)
                nb_conv_cv_input_grad(&p.g, p.out_ch, w, dy + (size_t)s * y_sample, dx + (size_t)s * x_sample,
                                      scratch + (size_t)thread_id() * p.group_floats);
        }
        return;
    }
    if (p.path == CONV_GROUPS_PARALLEL) {
        const int slots = usable_slots(n, &p);
        float *scratch = ws + p.partials;
#pragma omp parallel for schedule(dynamic) num_threads(slots) if (slots > 1 && p.groups > 1)
        for (int gi = 0; gi < p.groups; gi++) {
            int s0, s1;
            group_range(&p, gi, &s0, &s1);
            backward_group(&p, x, w, dy, need_w ? ws + (size_t)gi * w_size : NULL, 0.0f, dx, s0, s1,
                           scratch + (size_t)thread_id() * p.group_floats);
        }
        if (need_w) sum_slices(wn->grad.data, nb_grad_first(wn), ws, p.groups, w_size, w_size);
        return;
    }
    bool first_w = need_w && nb_grad_first(wn);
    const bool dx_winograd = need_x && p.winograd_dx, dw_winograd = need_w && p.winograd;
    if ((need_w && !dw_winograd) || (need_x && !dx_winograd))
        for (int gi = 0; gi < p.groups; gi++) {
            int s0, s1;
            group_range(&p, gi, &s0, &s1);
            /* Later groups add onto what the earlier ones left in dW. */
            backward_group(&p, x, w, dy, need_w && !dw_winograd ? wn->grad.data : NULL,
                           gi == 0 && first_w ? 0.0f : 1.0f, dx_winograd ? NULL : dx, s0, s1,
                           ws + p.partials);
        }
    if (dw_winograd) winograd_weight_grad(&p, x, dy, wn->grad.data, first_w, ws);
    if (dx_winograd) {
        const nb_conv_geom a = adjoint_geom(&p);
        const size_t u_floats = (size_t)nb_winograd_planes(&p.g) * p.out_ch * p.g.channels;
        nb_winograd_weights(p.g.kernel_h, p.out_ch, p.g.channels, w, ws, 1);
        winograd_conv(&a, p.g.channels, p.batch, p.wino_groups, ws, dy, NULL, dx, ws + u_floats, false, true);
    }
}

static const nb_op_def conv2d_def = {NB_OP_CONV2D, "conv2d", false, infer_conv, forward_conv,
                                     backward_conv, true, true};

nb_node *nb_conv2d(nb_graph *g, nb_node *x, nb_node *w, nb_node *b, int stride_h, int stride_w,
                   int pad_h, int pad_w) {
    nb_op_attr attr = {.conv = {stride_h, stride_w, pad_h, pad_w, 0}};
    nb_node *in[3] = {x, w, b};
    return nb_node_new_op(g, &conv2d_def, in, b ? 3 : 2, &attr);
}
