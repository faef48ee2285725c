/* targets/winograd.c — 3x3 and 5x5 stride-1 convolution by Winograd's minimal
 * filtering, F(2x2, 3x3) and F(2x2, 5x5) (Lavin and Gray, "Fast Algorithms
 * for Convolutional Neural Networks", 2016).
 *
 * The output is cut into 2x2 tiles; tile t reads the AxA input patch d
 * around it, A = r + 1 for an r x r filter. In the transformed domain a
 * tile's 2x2 outputs for channel o need one product per point xi of an AxA
 * grid, summed over input channels:
 *     U = G g G^T               (each r x r filter g of w[o][c], AxA)
 *     V = B^T d B               (each patch d of x[c], AxA)
 *     M[xi][o][t] = sum over c of U[xi][o][c] V[xi][c][t]
 *     y tile = A^T M A          (2x2)
 * The middle line is A*A matrix products [O, C] x [C, tiles], which the
 * GEMM runs: per 4 outputs, 16 multiply-adds where the direct 3x3 form does
 * 36 (2.25 times fewer), and 36 where the direct 5x5 form does 100 (2.8
 * times fewer). The transforms are additions and multiplications by small
 * constants, so the result differs from the direct sum only by rounding:
 * a few ulps of the inputs' magnitudes for 3x3, some tens for 5x5, whose
 * matrices hold larger numbers. Of the 5x5 interpolation points tried
 * (0, +-1 with +-2, +-1/2, +-3/2 or 2 and -1/2), 0, 1, -1, 2, -1/2 gave the
 * smallest error on random data, about 30% below 0, +-1, +-2.
 *
 * The matrices (rows), for 3x3 (points 0, 1, -1, infinity):
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * and for 5x5 (points 0, 1, -1, 2, -1/2, infinity), below: G in g_rows5,
 * B^T in input_rows5 and input_cols5, A^T in output_rows5 (the Toom-Cook
 * construction: A^T and G from the points, B^T solved so that the
 * identity holds).
 * Layouts: u [A*A][O][C], v [C][A*A][T], m [O][A*A][T], T = count * tiles,
 * tile index (sample, tile row, tile column): a channel's planes lie
 * together, so a transform reads or writes one block, not A*A scattered
 * runs (which kept the output transform waiting on memory).
 *
 * The input gradient of such a layer is again one: dx = dy, padded by
 * r - 1 - pad, correlated with the filters turned 180 degrees and with
 * input and output channels swapped (the "adjoint" weights), added into dx.
 * Every loop writes disjoint outputs, so the threads never change a
 * result. */
#include "kernels/targets/targets.h"

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many transformed floats the threads cost more than they save.
 * Inside a parallel region the loops run on the calling thread. */
#define PARALLEL_MIN_FLOATS 32768

/* The transformed domain's side A = r + 1 for the largest filter. */
#define MAX_POINTS 6


/* The planes of u, v and m lie a whole matrix apart, often a multiple of
 * 4 KiB (AlexNet's: 384 KiB, 588 KiB), so they meet in the same few L1
 * sets. A write of one float to each plane in turn then misses every time;
 * every loop below instead fills a run of one plane, then the next. The
 * transforms are written out for each filter size: from a table of
 * coefficients they took three times as long as the products. */

/* Filters are transformed CHUNK at a time, each value of the CHUNK side by
 * side in a row of `lanes`, so every step below is one vector operation. */
#define CHUNK 16
typedef float lanes[CHUNK];

/* G (A x r), row by row: the filter transform G g G^T, and the weight
 * gradient's G^T m G. */
static const float g_rows3[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
static const float g_rows5[6][5] = {{1, 0, 0, 0, 0},
                                    {-1.0f / 3, -1.0f / 3, -1.0f / 3, -1.0f / 3, -1.0f / 3},
                                    {1.0f / 3, -1.0f / 3, 1.0f / 3, -1.0f / 3, 1.0f / 3},
                                    {1.0f / 15, 2.0f / 15, 4.0f / 15, 8.0f / 15, 16.0f / 15},
                                    {-16.0f / 15, 8.0f / 15, -4.0f / 15, 2.0f / 15, -1.0f / 15},
                                    {0, 0, 0, 0, 1}};

/* G's entry (i, k) for an r x r filter, or G^T's with transpose set. */
static float g_entry(int r, int transpose, int i, int k) {
    if (transpose) {
        const int t = i;
        i = k, k = t;
    }
    return r == 3 ? g_rows3[i][k] : g_rows5[i][k];
}

/* y = C x on matrices of lanes, C = G or G^T (n_out x n_in); x and y are
 * addressed through strides, so x may be read and y written transposed:
 *   y[a*y_row + b*y_col] = sum over k of C(a, k) x[k*x_row + b*x_col],
 * for a < n_out, b < cols. Zero entries of C are skipped. */
static void g_product(int r, int transpose, int n_out, int n_in, int cols, const lanes *x, int x_row, int x_col,
                      lanes *y, int y_row, int y_col) {
    for (int a = 0; a < n_out; a++)
        for (int b = 0; b < cols; b++) {
            float *dst = y[a * y_row + b * y_col];
            for (int l = 0; l < CHUNK; l++) dst[l] = 0.0f;
            for (int k = 0; k < n_in; k++) {
                const float c = g_entry(r, transpose, a, k);
                if (c == 0.0f) continue;
                const float *src = x[k * x_row + b * x_col];
#pragma omp simd
                for (int l = 0; l < CHUNK; l++) dst[l] += c * src[l];
            }
        }
}

/* G g G^T of r x r filters g (row-major) into t (A x A, row-major):
 * h = G g, then t^T = G h^T. */
static void filter_transform(int r, const lanes *g, lanes *t) {
    const int pts = r + 1;
    lanes h[MAX_POINTS * 5];
    g_product(r, 0, pts, r, r, g, r, 1, h, r, 1);
    g_product(r, 0, pts, r, pts, h, 1, r, t, 1, pts);
}

void NB_K(winograd_weights)(int kernel, int out_ch, int channels, const float *w, float *u, int adjoint) {
    const int rr = kernel * kernel, planes = (kernel + 1) * (kernel + 1);
    const size_t oc = (size_t)out_ch * channels;
    /* The transformed layer's output and input channels. */
    const int rows = adjoint ? channels : out_ch, cols = adjoint ? out_ch : channels;
#pragma omp parallel for schedule(static) if (planes * oc >= PARALLEL_MIN_FLOATS && !omp_in_parallel())
    for (int row = 0; row < rows; row++)
        for (int c0 = 0; c0 < cols; c0 += CHUNK) {
            const int run = cols - c0 < CHUNK ? cols - c0 : CHUNK;
            lanes g[25], t[MAX_POINTS * MAX_POINTS];
            for (int cc = 0; cc < run; cc++) {
                const int o = adjoint ? c0 + cc : row, c = adjoint ? row : c0 + cc;
                const float *src = w + ((size_t)o * channels + c) * rr;
                for (int k = 0; k < rr; k++) g[k][cc] = src[adjoint ? rr - 1 - k : k];
            }
            for (int cc = run; cc < CHUNK; cc++)
                for (int k = 0; k < rr; k++) g[k][cc] = 0.0f;
            filter_transform(kernel, g, t);
            for (int xi = 0; xi < planes; xi++)
                memcpy(u + xi * oc + (size_t)row * cols + c0, t[xi], (size_t)run * sizeof(float));
        }
}

enum { SPAN_MAX = 2 * NB_WINOGRAD_MAX_TILES_W + 4 };

/* B^T down the rows: t[i][col] from the A input rows d, for `span` columns. */
static void input_rows3(float d[][SPAN_MAX], float t[][SPAN_MAX], int span) {
#pragma omp simd
    for (int col = 0; col < span; col++) {
        t[0][col] = d[0][col] - d[2][col];
        t[1][col] = d[1][col] + d[2][col];
        t[2][col] = d[2][col] - d[1][col];
        t[3][col] = d[1][col] - d[3][col];
    }
}

static void input_rows5(float d[][SPAN_MAX], float t[][SPAN_MAX], int span) {
#pragma omp simd
    for (int col = 0; col < span; col++) {
        const float d0 = d[0][col], d1 = d[1][col], d2 = d[2][col], d3 = d[3][col], d4 = d[4][col];
        t[0][col] = d0 + 1.5f * d1 - 2 * d2 - 1.5f * d3 + d4;
        t[1][col] = -d1 - 2.5f * d2 - 0.5f * d3 + d4;
        t[2][col] = d1 + 0.5f * d2 - 2.5f * d3 + d4;
        t[3][col] = -0.5f * d1 - d2 + 0.5f * d3 + d4;
        t[4][col] = 2 * d1 - d2 - 2 * d3 + d4;
        t[5][col] = d1 + 1.5f * d2 - 2 * d3 - 1.5f * d4 + d[5][col];
    }
}

/* Then B across each tile's A columns of row ti, into the planes
 * out[0], out[stride], ... (tile tx at out[.. + tx]), one plane at a time. */
static void input_cols3(const float *ti, int tiles_w, float *o0, size_t stride) {
    float *o1 = o0 + stride, *o2 = o1 + stride, *o3 = o2 + stride;
#pragma omp simd
    for (int tx = 0; tx < tiles_w; tx++) o0[tx] = ti[2 * tx] - ti[2 * tx + 2];
#pragma omp simd
    for (int tx = 0; tx < tiles_w; tx++) o1[tx] = ti[2 * tx + 1] + ti[2 * tx + 2];
#pragma omp simd
    for (int tx = 0; tx < tiles_w; tx++) o2[tx] = ti[2 * tx + 2] - ti[2 * tx + 1];
#pragma omp simd
    for (int tx = 0; tx < tiles_w; tx++) o3[tx] = ti[2 * tx + 1] - ti[2 * tx + 3];
}

static void input_cols5(const float *ti, int tiles_w, float *o0, size_t stride) {
    float *o1 = o0 + stride, *o2 = o1 + stride, *o3 = o2 + stride, *o4 = o3 + stride, *o5 = o4 + stride;
#pragma omp simd
    for (int tx = 0; tx < tiles_w; tx++) {
        const float *v = ti + 2 * tx;
        o0[tx] = v[0] + 1.5f * v[1] - 2 * v[2] - 1.5f * v[3] + v[4];
    }
#pragma omp simd
    for (int tx = 0; tx < tiles_w; tx++) {
        const float *v = ti + 2 * tx;
        o1[tx] = -v[1] - 2.5f * v[2] - 0.5f * v[3] + v[4];
    }
#pragma omp simd
    for (int tx = 0; tx < tiles_w; tx++) {
        const float *v = ti + 2 * tx;
        o2[tx] = v[1] + 0.5f * v[2] - 2.5f * v[3] + v[4];
    }
#pragma omp simd
    for (int tx = 0; tx < tiles_w; tx++) {
        const float *v = ti + 2 * tx;
        o3[tx] = -0.5f * v[1] - v[2] + 0.5f * v[3] + v[4];
    }
#pragma omp simd
    for (int tx = 0; tx < tiles_w; tx++) {
        const float *v = ti + 2 * tx;
        o4[tx] = 2 * v[1] - v[2] - 2 * v[3] + v[4];
    }
#pragma omp simd
    for (int tx = 0; tx < tiles_w; tx++) {
        const float *v = ti + 2 * tx;
        o5[tx] = v[1] + 1.5f * v[2] - 2 * v[3] - 1.5f * v[4] + v[5];
    }
}

void NB_K(winograd_input)(const nb_conv_geom *g, const float *x, int count, float *v) {
    const int r = g->kernel_h, pts = r + 1;
    const int tiles_h = (g->out_h + 1) / 2, tiles_w = (g->out_w + 1) / 2, tiles = tiles_h * tiles_w;
    const int span = 2 * tiles_w + r - 1; /* the columns the tiles of a row read */
    const size_t total = (size_t)count * tiles, plane = (size_t)g->height * g->width;
    const size_t xi_stride = total, floats = (size_t)pts * pts * g->channels * total;
#pragma omp parallel for collapse(2) schedule(static) if (floats >= PARALLEL_MIN_FLOATS && !omp_in_parallel())
    for (int n = 0; n < count; n++)
        for (int c = 0; c < g->channels; c++) {
            const float *img = x + ((size_t)n * g->channels + c) * plane;
            float *dst = v + (size_t)c * pts * pts * total + (size_t)n * tiles;
            for (int ty = 0; ty < tiles_h; ty++) {
                /* The A input rows of this tile row, zero-padded to the
                 * span, then B^T down the rows: t[i][col]. */
                float d[MAX_POINTS][SPAN_MAX], t[MAX_POINTS][SPAN_MAX];
                const int lead = g->pad_w < span ? g->pad_w : span;
                const int copy = g->width < span - lead ? g->width : span - lead;
                for (int a = 0; a < pts; a++) {
                    const int iy = 2 * ty - g->pad_h + a;
                    if (iy < 0 || iy >= g->height) {
                        memset(d[a], 0, (size_t)span * sizeof(float));
                        continue;
                    }
                    memset(d[a], 0, (size_t)lead * sizeof(float));
                    memcpy(d[a] + lead, img + (size_t)iy * g->width, (size_t)copy * sizeof(float));
                    memset(d[a] + lead + copy, 0, (size_t)(span - lead - copy) * sizeof(float));
                }
                float *row = dst + ty * tiles_w;
                if (r == 3) {
                    input_rows3(d, t, span);
                    for (int i = 0; i < 4; i++) input_cols3(t[i], tiles_w, row + (size_t)(4 * i) * xi_stride, xi_stride);
                } else {
                    input_rows5(d, t, span);
                    for (int i = 0; i < 6; i++) input_cols5(t[i], tiles_w, row + (size_t)(6 * i) * xi_stride, xi_stride);
                }
            }
        }
}

/* A^T's two rows: which point's plane goes into which output row, how. */
static const float output_rows3[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
static const float output_rows5[2][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -0.5f, 1}};

void NB_K(winograd_output)(const nb_conv_geom *g, int out_ch, const float *m, int count, const float *b,
                        float *y, int relu, int accumulate) {
    const int r3 = g->kernel_h == 3, pts = g->kernel_h + 1;
    const int tiles_h = (g->out_h + 1) / 2, tiles_w = (g->out_w + 1) / 2, tiles = tiles_h * tiles_w;
    const size_t total = (size_t)count * tiles, ohw = (size_t)g->out_h * g->out_w;
    const size_t xi_stride = total, floats = (size_t)pts * pts * out_ch * total;
#pragma omp parallel for collapse(2) schedule(static) if (floats >= PARALLEL_MIN_FLOATS && !omp_in_parallel())
    for (int n = 0; n < count; n++)
        for (int o = 0; o < out_ch; o++) {
            const float *src = m + (size_t)o * pts * pts * total + (size_t)n * tiles;
            float *dst = y + ((size_t)n * out_ch + o) * ohw;
            const float bias = b ? b[o] : 0.0f;
            for (int ty = 0; ty < tiles_h; ty++) {
                /* A^T down each tile's rows, one plane read at a time:
                 * rows[p][j][tx]; then A across the columns into two
                 * output rows, clipped at an odd edge. */
                float rows[2][MAX_POINTS][NB_WINOGRAD_MAX_TILES_W];
                for (int p = 0; p < 2; p++)
                    for (int j = 0; j < pts; j++) memset(rows[p][j], 0, (size_t)tiles_w * sizeof(float));
                for (int i = 0; i < pts; i++) {
                    const float k0 = r3 ? output_rows3[0][i] : output_rows5[0][i];
                    const float k1 = r3 ? output_rows3[1][i] : output_rows5[1][i];
                    for (int j = 0; j < pts; j++) {
                        const float *s = src + (size_t)(i * pts + j) * xi_stride + ty * tiles_w;
                        float *acc0 = rows[0][j], *acc1 = rows[1][j];
                        /* The products come from L3 or memory, a short run
                         * from each of A*A planes: ask for the runs of the
                         * tile row after next now. */
                        if (ty + 2 < tiles_h) {
                            __builtin_prefetch(s + 2 * tiles_w);
                            __builtin_prefetch(s + 3 * tiles_w - 1);
                        }
                        /* A zero coefficient skips the plane: 0 times an
                         * infinite product would be a NaN. */
                        if (k0 != 0.0f && k1 != 0.0f) {
#pragma omp simd
                            for (int tx = 0; tx < tiles_w; tx++) {
                                acc0[tx] += k0 * s[tx];
                                acc1[tx] += k1 * s[tx];
                            }
                        } else if (k0 != 0.0f) {
#pragma omp simd
                            for (int tx = 0; tx < tiles_w; tx++) acc0[tx] += k0 * s[tx];
                        } else {
#pragma omp simd
                            for (int tx = 0; tx < tiles_w; tx++) acc1[tx] += k1 * s[tx];
                        }
                    }
                }
                for (int p = 0; p < 2; p++) {
                    const int oy = 2 * ty + p;
                    if (oy >= g->out_h) break;
                    float *out = dst + (size_t)oy * g->out_w;
                    float (*q)[NB_WINOGRAD_MAX_TILES_W] = rows[p];
                    float even[NB_WINOGRAD_MAX_TILES_W], odd[NB_WINOGRAD_MAX_TILES_W];
                    if (r3) {
#pragma omp simd
                        for (int tx = 0; tx < tiles_w; tx++) {
                            even[tx] = q[0][tx] + q[1][tx] + q[2][tx] + bias;
                            odd[tx] = q[1][tx] - q[2][tx] - q[3][tx] + bias;
                        }
                    } else {
#pragma omp simd
                        for (int tx = 0; tx < tiles_w; tx++) {
                            even[tx] = q[0][tx] + q[1][tx] + q[2][tx] + q[3][tx] + q[4][tx] + bias;
                            odd[tx] = q[1][tx] - q[2][tx] + 2 * q[3][tx] - 0.5f * q[4][tx] + q[5][tx] + bias;
                        }
                    }
                    for (int tx = 0; tx < tiles_w; tx++) {
                        const float pair[2] = {even[tx], odd[tx]};
                        for (int e = 0; e < 2 && 2 * tx + e < g->out_w; e++) {
                            float *at = out + 2 * tx + e;
                            *at = accumulate ? *at + pair[e] : relu ? (pair[e] > 0 ? pair[e] : 0.0f) : pair[e];
                        }
                    }
                }
            }
        }
}

/* ---- the weight gradient ----------------------------------------------------
 * y's tile is A^T (U . V) A, linear in U = G g G^T, so over all tiles
 *     dL/dg = G^T ( sum over tiles of (A dy A^T) . V ) G,
 * with dy the tile's 2x2 output gradient and V its input transform: again A*A
 * products, [O, T] x [T, C], then one small transform per filter. */

void NB_K(winograd_grad_output)(const nb_conv_geom *g, int out_ch, const float *dy, int count, float *e) {
    const int r3 = g->kernel_h == 3, pts = g->kernel_h + 1;
    const int tiles_h = (g->out_h + 1) / 2, tiles_w = (g->out_w + 1) / 2, tiles = tiles_h * tiles_w;
    const size_t total = (size_t)count * tiles, ohw = (size_t)g->out_h * g->out_w;
    const size_t floats = (size_t)pts * pts * out_ch * total;
#pragma omp parallel for collapse(2) schedule(static) if (floats >= PARALLEL_MIN_FLOATS && !omp_in_parallel())
    for (int n = 0; n < count; n++)
        for (int o = 0; o < out_ch; o++) {
            const float *src = dy + ((size_t)n * out_ch + o) * ohw;
            float *dst = e + (size_t)o * pts * pts * total + (size_t)n * tiles;
            for (int ty = 0; ty < tiles_h; ty++) {
                /* The tile row's two dy rows, zero past the edges; A down
                 * them (column p of A^T: row i of A), then A across. */
                float d[2][2 * NB_WINOGRAD_MAX_TILES_W], t[MAX_POINTS][2 * NB_WINOGRAD_MAX_TILES_W];
                const int width = 2 * tiles_w;
                for (int p = 0; p < 2; p++) {
                    const int oy = 2 * ty + p;
                    if (oy < g->out_h) memcpy(d[p], src + (size_t)oy * g->out_w, (size_t)g->out_w * sizeof(float));
                    for (int col = oy < g->out_h ? g->out_w : 0; col < width; col++) d[p][col] = 0.0f;
                }
                for (int i = 0; i < pts; i++) {
                    const float a0 = r3 ? output_rows3[0][i] : output_rows5[0][i];
                    const float a1 = r3 ? output_rows3[1][i] : output_rows5[1][i];
#pragma omp simd
                    for (int col = 0; col < width; col++) t[i][col] = a0 * d[0][col] + a1 * d[1][col];
                }
                float *row = dst + ty * tiles_w;
                for (int i = 0; i < pts; i++)
                    for (int j = 0; j < pts; j++) {
                        const float a0 = r3 ? output_rows3[0][j] : output_rows5[0][j];
                        const float a1 = r3 ? output_rows3[1][j] : output_rows5[1][j];
                        float *out = row + (size_t)(i * pts + j) * total;
                        const float *ti = t[i];
#pragma omp simd
                        for (int tx = 0; tx < tiles_w; tx++) out[tx] = a0 * ti[2 * tx] + a1 * ti[2 * tx + 1];
                    }
            }
        }
}

void NB_K(winograd_weight_grad)(int kernel, int out_ch, int channels, const float *mw, float *dw, int accumulate) {
    const int r = kernel, rr = r * r, pts = r + 1;
    const size_t oc = (size_t)out_ch * channels;
#pragma omp parallel for schedule(static) if (pts * pts * oc >= PARALLEL_MIN_FLOATS && !omp_in_parallel())
    for (int o = 0; o < out_ch; o++)
        for (int c0 = 0; c0 < channels; c0 += CHUNK) {
            const int run = channels - c0 < CHUNK ? channels - c0 : CHUNK;
            lanes m[MAX_POINTS * MAX_POINTS], h[5 * MAX_POINTS], out[25];
            for (int xi = 0; xi < pts * pts; xi++) {
                memcpy(m[xi], mw + xi * oc + (size_t)o * channels + c0, (size_t)run * sizeof(float));
                for (int l = run; l < CHUNK; l++) m[xi][l] = 0.0f;
            }
            /* h = G^T m (r x A), then out^T = G^T h^T (r x r). */
            g_product(r, 1, r, pts, pts, m, pts, 1, h, pts, 1);
            g_product(r, 1, r, pts, r, h, 1, pts, out, 1, r);
            for (int cc = 0; cc < run; cc++) {
                float *dst = dw + ((size_t)o * channels + c0 + cc) * rr;
                for (int k = 0; k < rr; k++) dst[k] = accumulate ? dst[k] + out[k][cc] : out[k][cc];
            }
        }
}
