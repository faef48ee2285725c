/* im2col.c — lowering a convolution to a matrix product, and its adjoint.
 *
 * Row (c, kh, kw) of the column matrix holds, for every output position,
 * the input pixel that kernel tap (c, kh, kw) meets there: x[c][ih][iw] with
 * ih = oh*stride_h - pad_h + kh and iw = ow*stride_w - pad_w + kw, or 0 where
 * that falls in the padding. The convolution is then W[O, C*KH*KW] times
 * this matrix. */
#include "kernels/kernels.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many copied floats the threads cost more than they save.
 * Inside a parallel region (an operator running a group per thread) the
 * loops run on the calling thread. */
#define PARALLEL_MIN_FLOATS 32768

/* The outputs o in [*lo, *hi) whose input index o*stride - pad + k lies in
 * [0, in): the span copied from the image, the rest being padding. */
static void valid_span(int out, int stride, int pad, int k, int in, int *lo, int *hi) {
    int first = pad - k;          /* o*stride >= pad - k */
    int last = in - 1 + pad - k;  /* o*stride <= in - 1 + pad - k */
    *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    *hi = last < 0 ? 0 : last / stride + 1;
    if (*hi > out) *hi = out;
    if (*lo > *hi) *lo = *hi;
}

void nb_im2col(const nb_conv_geom *g, const float *x, int count, float *cols) {
    const int kk = g->kernel_h * g->kernel_w, rows = g->channels * kk;
    const size_t plane = (size_t)g->height * g->width, ohw = (size_t)g->out_h * g->out_w;
    const size_t row_len = (size_t)count * ohw;
#pragma omp parallel for collapse(2) schedule(static) if (row_len * rows >= PARALLEL_MIN_FLOATS && !omp_in_parallel())
    for (int n = 0; n < count; n++)
        for (int r = 0; r < rows; r++) {
            const int c = r / kk, kh = r % kk / g->kernel_w, kw = r % g->kernel_w;
            const float *img = x + ((size_t)n * g->channels + c) * plane;
            float *dst = cols + (size_t)r * row_len + (size_t)n * ohw;
            int ow_lo, ow_hi;
            valid_span(g->out_w, g->stride_w, g->pad_w, kw, g->width, &ow_lo, &ow_hi);
            for (int oh = 0; oh < g->out_h; oh++) {
                float *d = dst + (size_t)oh * g->out_w;
                const int ih = oh * g->stride_h - g->pad_h + kh;
                if (ih < 0 || ih >= g->height) {
                    memset(d, 0, (size_t)g->out_w * sizeof(float));
                    continue;
                }
                /* Index from the row start: ow*stride - pad + kw >= 0 in the span. */
                const float *src = img + (size_t)ih * g->width;
                const int shift = kw - g->pad_w;
                for (int ow = 0; ow < ow_lo; ow++) d[ow] = 0.0f;
                /* Rows are short (ten pixels in LeNet-5's conv2): a vector
                 * loop, not a call to memcpy per row. */
                if (g->stride_w == 1) {
NB_SIMD
                    for (int ow = ow_lo; ow < ow_hi; ow++) d[ow] = src[ow + shift];
                } else if (g->stride_w == 2) {
                    /* ResNet's downsampling layers and conv1. */
                    if (ow_hi > ow_lo) nb_copy_stride2(d + ow_lo, src + 2 * ow_lo + shift, ow_hi - ow_lo);
                } else {
                    for (int ow = ow_lo; ow < ow_hi; ow++) d[ow] = src[ow * g->stride_w + shift];
                }
                for (int ow = ow_hi; ow < g->out_w; ow++) d[ow] = 0.0f;
            }
        }
}

/* One thread per (sample, channel) image: the rows that feed an image are
 * its own KH*KW taps, so no two threads touch the same pixel, and each pixel
 * adds its taps in (kh, kw, oh, ow) order. */
void nb_col2im_add(const nb_conv_geom *g, const float *cols, int count, float *x) {
    const int kk = g->kernel_h * g->kernel_w;
    const size_t plane = (size_t)g->height * g->width, ohw = (size_t)g->out_h * g->out_w;
    const size_t row_len = (size_t)count * ohw;
#pragma omp parallel for collapse(2) schedule(static) \
    if (row_len * g->channels * kk >= PARALLEL_MIN_FLOATS && !omp_in_parallel())
    for (int n = 0; n < count; n++)
        for (int c = 0; c < g->channels; c++) {
            float *img = x + ((size_t)n * g->channels + c) * plane;
            for (int kh = 0; kh < g->kernel_h; kh++)
                for (int kw = 0; kw < g->kernel_w; kw++) {
                    const int r = c * kk + kh * g->kernel_w + kw;
                    const float *src = cols + (size_t)r * row_len + (size_t)n * ohw;
                    int ow_lo, ow_hi;
                    valid_span(g->out_w, g->stride_w, g->pad_w, kw, g->width, &ow_lo, &ow_hi);
                    for (int oh = 0; oh < g->out_h; oh++) {
                        const int ih = oh * g->stride_h - g->pad_h + kh;
                        if (ih < 0 || ih >= g->height) continue;
                        float *dst = img + (size_t)ih * g->width;
                        const float *s = src + (size_t)oh * g->out_w;
                        const int shift = kw - g->pad_w;
                        /* dst and s never overlap; distinct ow hit distinct pixels. */
                        if (g->stride_w == 1) {
NB_SIMD
                            for (int ow = ow_lo; ow < ow_hi; ow++) dst[ow + shift] += s[ow];
                        } else if (g->stride_w == 2) {
                            if (ow_hi > ow_lo) nb_add_stride2(dst + 2 * ow_lo + shift, s + ow_lo, ow_hi - ow_lo);
                        } else {
                            for (int ow = ow_lo; ow < ow_hi; ow++) dst[ow * g->stride_w + shift] += s[ow];
                        }
                    }
                }
        }
}
