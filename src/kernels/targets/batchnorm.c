/* targets/batchnorm.c — one channel of batch normalisation over simd.h,
 * built per target (the contracts are in src/kernels/kernels.h, the plain
 * loops they are held against in src/kernels/batchnorm.c).
 *
 * A channel is `batch` runs of `inner` floats, `stride` floats apart. Sums
 * run in float vector lanes over blocks of at most BN_BLOCK floats of a
 * run, each block's lanes then added into a double: the float part stays
 * short, so float32's rounding stays at the level of the double sum's, and
 * the order is fixed by the shape alone, so a channel's result does not
 * depend on the thread that takes it. A run's last partial vector is
 * summed by scalar loops. */
#include "kernels/targets/targets.h"

#define BN_BLOCK 512

/* The end of the block that starts at b in a run of n. */
static inline size_t block_end(size_t b, size_t n) { return b + BN_BLOCK < n ? b + BN_BLOCK : n; }

/* The sum over floats [b, end) of a run r: of x, or with `squares` of
 * (x - mean)^2. */
NB_VINLINE double block_sum(const float *r, size_t b, size_t end, float mean, int squares) {
    const vf neg = vf_set1(-mean);
    vf a0 = vf_zero(), a1 = vf_zero();
    size_t i = b;
    for (; i + 2 * NB_LANES <= end; i += 2 * NB_LANES) {
        vf v0 = vf_load(r + i), v1 = vf_load(r + i + NB_LANES);
        if (squares) {
            v0 = vf_add(v0, neg), v1 = vf_add(v1, neg);
            a0 = vf_fma(v0, v0, a0), a1 = vf_fma(v1, v1, a1);
        } else {
            a0 = vf_add(a0, v0), a1 = vf_add(a1, v1);
        }
    }
    for (; i + NB_LANES <= end; i += NB_LANES) {
        vf v = vf_load(r + i);
        if (squares) v = vf_add(v, neg), a0 = vf_fma(v, v, a0);
        else a0 = vf_add(a0, v);
    }
    float tail = 0.0f;
    for (; i < end; i++) tail += squares ? (r[i] - mean) * (r[i] - mean) : r[i];
    return (double)vf_hsum(vf_add(a0, a1)) + tail;
}

/* block_sum over the channel, block after block. */
NB_VINLINE double channel_sum(const float *x, size_t batch, size_t stride, size_t inner, float mean, int squares) {
    double sum = 0.0;
    for (size_t s = 0; s < batch; s++)
        for (size_t b = 0; b < inner; b += BN_BLOCK)
            sum += block_sum(x + s * stride, b, block_end(b, inner), mean, squares);
    return sum;
}

void NB_K(bn_stats)(const float *x, size_t batch, size_t stride, size_t inner, double *mean, double *sqdev) {
    const double mu = channel_sum(x, batch, stride, inner, 0.0f, 0) / (double)(batch * inner);
    *mean = mu;
    *sqdev = channel_sum(x, batch, stride, inner, (float)mu, 1);
}

void NB_K(bn_apply)(const float *x, float *y, size_t batch, size_t stride, size_t inner, float scale, float shift,
                    int relu) {
    const vf vs = vf_set1(scale), vb = vf_set1(shift);
    for (size_t s = 0; s < batch; s++) {
        const float *r = x + s * stride;
        float *o = y + s * stride;
        size_t i = 0;
        if (relu) {
            for (; i + NB_LANES <= inner; i += NB_LANES) vf_store(o + i, vf_relu(vf_fma(vf_load(r + i), vs, vb)));
            if (i < inner) {
                const int n = (int)(inner - i);
                vf_store_part(o + i, vf_relu(vf_fma(vf_load_part(r + i, n), vs, vb)), n);
            }
        } else {
            for (; i + NB_LANES <= inner; i += NB_LANES) vf_store(o + i, vf_fma(vf_load(r + i), vs, vb));
            if (i < inner) {
                const int n = (int)(inner - i);
                vf_store_part(o + i, vf_fma(vf_load_part(r + i, n), vs, vb), n);
            }
        }
    }
}

void NB_K(bn_grad_sums)(const float *x, const float *dy, size_t batch, size_t stride, size_t inner, float mean,
                        double *sum_dy, double *sum_dy_dev) {
    const vf neg = vf_set1(-mean);
    double sd = 0.0, sdx = 0.0;
    for (size_t s = 0; s < batch; s++) {
        const float *r = x + s * stride, *g = dy + s * stride;
        for (size_t b = 0; b < inner; b += BN_BLOCK) {
            const size_t end = block_end(b, inner);
            vf a0 = vf_zero(), a1 = vf_zero(), p0 = vf_zero(), p1 = vf_zero();
            size_t i = b;
            for (; i + 2 * NB_LANES <= end; i += 2 * NB_LANES) {
                const vf g0 = vf_load(g + i), g1 = vf_load(g + i + NB_LANES);
                a0 = vf_add(a0, g0);
                a1 = vf_add(a1, g1);
                p0 = vf_fma(g0, vf_add(vf_load(r + i), neg), p0);
                p1 = vf_fma(g1, vf_add(vf_load(r + i + NB_LANES), neg), p1);
            }
            for (; i + NB_LANES <= end; i += NB_LANES) {
                const vf g0 = vf_load(g + i);
                a0 = vf_add(a0, g0);
                p0 = vf_fma(g0, vf_add(vf_load(r + i), neg), p0);
            }
            float ta = 0.0f, tp = 0.0f;
            for (; i < end; i++) ta += g[i], tp += g[i] * (r[i] - mean);
            sd += (double)vf_hsum(vf_add(a0, a1)) + ta;
            sdx += (double)vf_hsum(vf_add(p0, p1)) + tp;
        }
    }
    *sum_dy = sd;
    *sum_dy_dev = sdx;
}

/* One vector (n lanes) of the input gradient. */
NB_VINLINE vf grad_input_vec(const float *r, const float *g, const float *o, int n, vf neg, vf vk, vf v0, vf v1,
                             int accumulate) {
    const int full = n == NB_LANES;
    const vf dev = vf_add(full ? vf_load(r) : vf_load_part(r, n), neg);
    vf v = vf_fma(v1, dev, vf_fma(vk, full ? vf_load(g) : vf_load_part(g, n), v0));
    return accumulate ? vf_add(v, full ? vf_load(o) : vf_load_part(o, n)) : v;
}

void NB_K(bn_grad_input)(const float *x, const float *dy, float *dx, size_t batch, size_t stride, size_t inner,
                         float mean, float k, float c0, float c1, int accumulate) {
    const vf neg = vf_set1(-mean), vk = vf_set1(k), v0 = vf_set1(c0), v1 = vf_set1(c1);
    for (size_t s = 0; s < batch; s++) {
        const float *r = x + s * stride, *g = dy + s * stride;
        float *o = dx + s * stride;
        size_t i = 0;
        for (; i + NB_LANES <= inner; i += NB_LANES)
            vf_store(o + i, grad_input_vec(r + i, g + i, o + i, NB_LANES, neg, vk, v0, v1, accumulate));
        if (i < inner) {
            const int n = (int)(inner - i);
            vf_store_part(o + i, grad_input_vec(r + i, g + i, o + i, n, neg, vk, v0, v1, accumulate), n);
        }
    }
}
