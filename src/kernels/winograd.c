/* winograd.c — 3x3 stride-1 convolution by Winograd's minimal filtering,
 * F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2016).
 *
 * The output is cut into 2x2 tiles; tile t reads the 4x4 input patch d
 * around it. In the transformed domain a tile's 2x2 outputs for channel o
 * need one product per point xi of a 4x4 grid, summed over input channels:
 *     U = G g G^T               (each 3x3 filter g of w[o][c], 4x4)
 *     V = B^T d B               (each patch d of x[c], 4x4)
 *     M[xi][o][t] = sum over c of U[xi][o][c] V[xi][c][t]
 *     y tile = A^T M A          (2x2)
 * The middle line is sixteen matrix products [O, C] x [C, tiles], which the
 * GEMM runs; they do 16 multiply-adds per 4 outputs where the direct form
 * does 36, 2.25 times fewer. The transforms are additions and halvings, so
 * the result differs from the direct sum only by rounding (a few ulps of
 * the inputs' magnitudes).
 *
 * The matrices (rows):
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * Layouts: u [16][O][C], v [16][C][T], m [16][O][T], T = count * tiles,
 * tile index (sample, tile row, tile column).
 *
 * The input gradient of such a layer is again one: dx = dy, padded by
 * 2 - pad, correlated with the filters turned 180 degrees and with input
 * and output channels swapped (the "adjoint" weights), added into dx. Every loop writes disjoint
 * outputs, so the threads never change a result. */
#include "kernels/kernels.h"

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many transformed floats the threads cost more than they save.
 * Inside a parallel region the loops run on the calling thread. */
#define PARALLEL_MIN_FLOATS 32768

int nb_winograd_fits(const nb_conv_geom *g) {
    return g->kernel_h == 3 && g->kernel_w == 3 && g->stride_h == 1 && g->stride_w == 1 &&
           g->out_h >= 2 && g->out_w >= 2 && (g->out_w + 1) / 2 <= NB_WINOGRAD_MAX_TILES_W;
}

int nb_winograd_tiles(const nb_conv_geom *g) { return ((g->out_h + 1) / 2) * ((g->out_w + 1) / 2); }

/* The sixteen planes of u, v and m lie a whole matrix apart, often a
 * multiple of 4 KiB (AlexNet's: 384 KiB, 588 KiB), so they meet in the
 * same few L1 sets. A write of one float to each plane in turn then misses
 * every time; every loop below instead fills a run of one plane, then the
 * next. */

/* Output channels' filters, CHUNK input channels at a time. */
#define CHUNK 16

void nb_winograd_weights(int out_ch, int channels, const float *w, float *u, int adjoint) {
    const size_t oc = (size_t)out_ch * channels;
    /* The transformed layer's output and input channels. */
    const int rows = adjoint ? channels : out_ch, cols = adjoint ? out_ch : channels;
#pragma omp parallel for schedule(static) if (16 * oc >= PARALLEL_MIN_FLOATS && !omp_in_parallel())
    for (int row = 0; row < rows; row++)
        for (int c0 = 0; c0 < cols; c0 += CHUNK) {
            const int run = cols - c0 < CHUNK ? cols - c0 : CHUNK;
            float t[16][CHUNK];
            for (int cc = 0; cc < run; cc++) {
                const int o = adjoint ? c0 + cc : row, c = adjoint ? row : c0 + cc;
                const float *src = w + ((size_t)o * channels + c) * 9;
                float g[9];
                for (int k = 0; k < 9; k++) g[k] = src[adjoint ? 8 - k : k];
                float h[4][3]; /* G g */
                for (int k = 0; k < 3; k++) {
                    h[0][k] = g[k];
                    h[1][k] = 0.5f * (g[k] + g[3 + k] + g[6 + k]);
                    h[2][k] = 0.5f * (g[k] - g[3 + k] + g[6 + k]);
                    h[3][k] = g[6 + k];
                }
                for (int i = 0; i < 4; i++) { /* (G g) G^T */
                    t[4 * i + 0][cc] = h[i][0];
                    t[4 * i + 1][cc] = 0.5f * (h[i][0] + h[i][1] + h[i][2]);
                    t[4 * i + 2][cc] = 0.5f * (h[i][0] - h[i][1] + h[i][2]);
                    t[4 * i + 3][cc] = h[i][2];
                }
            }
            for (int xi = 0; xi < 16; xi++) {
                float *dst = u + xi * oc + (size_t)row * cols + c0;
                for (int cc = 0; cc < run; cc++) dst[cc] = t[xi][cc];
            }
        }
}

void nb_winograd_input(const nb_conv_geom *g, const float *x, int count, float *v) {
    const int tiles_h = (g->out_h + 1) / 2, tiles_w = (g->out_w + 1) / 2, tiles = tiles_h * tiles_w;
    const int span = 2 * tiles_w + 2; /* the columns the tiles of a row read */
    const size_t total = (size_t)count * tiles, plane = (size_t)g->height * g->width;
    const size_t xi_stride = (size_t)g->channels * total;
#pragma omp parallel for collapse(2) schedule(static) if (16 * xi_stride >= PARALLEL_MIN_FLOATS && !omp_in_parallel())
    for (int n = 0; n < count; n++)
        for (int c = 0; c < g->channels; c++) {
            const float *img = x + ((size_t)n * g->channels + c) * plane;
            float *dst = v + (size_t)c * total + (size_t)n * tiles;
            for (int ty = 0; ty < tiles_h; ty++) {
                /* The four input rows of this tile row, zero-padded to the
                 * span, then B^T down the rows: t[i][col]. */
                float d[4][2 * NB_WINOGRAD_MAX_TILES_W + 2], t[4][2 * NB_WINOGRAD_MAX_TILES_W + 2];
                const int lead = g->pad_w < span ? g->pad_w : span;
                const int copy = g->width < span - lead ? g->width : span - lead;
                for (int a = 0; a < 4; a++) {
                    const int iy = 2 * ty - g->pad_h + a;
                    if (iy < 0 || iy >= g->height) {
                        memset(d[a], 0, (size_t)span * sizeof(float));
                        continue;
                    }
                    memset(d[a], 0, (size_t)lead * sizeof(float));
                    memcpy(d[a] + lead, img + (size_t)iy * g->width, (size_t)copy * sizeof(float));
                    memset(d[a] + lead + copy, 0, (size_t)(span - lead - copy) * sizeof(float));
                }
                for (int col = 0; col < span; col++) {
                    t[0][col] = d[0][col] - d[2][col];
                    t[1][col] = d[1][col] + d[2][col];
                    t[2][col] = d[2][col] - d[1][col];
                    t[3][col] = d[1][col] - d[3][col];
                }
                /* Then B across each tile's four columns, one plane at a time. */
                float *row = dst + ty * tiles_w;
                for (int i = 0; i < 4; i++) {
                    const float *ti = t[i];
                    float *o0 = row + (size_t)(4 * i) * xi_stride, *o1 = o0 + xi_stride;
                    float *o2 = o1 + xi_stride, *o3 = o2 + xi_stride;
                    for (int tx = 0; tx < tiles_w; tx++) o0[tx] = ti[2 * tx] - ti[2 * tx + 2];
                    for (int tx = 0; tx < tiles_w; tx++) o1[tx] = ti[2 * tx + 1] + ti[2 * tx + 2];
                    for (int tx = 0; tx < tiles_w; tx++) o2[tx] = ti[2 * tx + 2] - ti[2 * tx + 1];
                    for (int tx = 0; tx < tiles_w; tx++) o3[tx] = ti[2 * tx + 1] - ti[2 * tx + 3];
                }
            }
        }
}

void nb_winograd_output(const nb_conv_geom *g, int out_ch, const float *m, int count, const float *b,
                        float *y, int relu, int accumulate) {
    const int tiles_h = (g->out_h + 1) / 2, tiles_w = (g->out_w + 1) / 2, tiles = tiles_h * tiles_w;
    const size_t total = (size_t)count * tiles, ohw = (size_t)g->out_h * g->out_w;
    const size_t xi_stride = (size_t)out_ch * total;
#pragma omp parallel for collapse(2) schedule(static) if (16 * xi_stride >= PARALLEL_MIN_FLOATS && !omp_in_parallel())
    for (int n = 0; n < count; n++)
        for (int o = 0; o < out_ch; o++) {
            const float *src = m + (size_t)o * total + (size_t)n * tiles;
            float *dst = y + ((size_t)n * out_ch + o) * ohw;
            const float bias = b ? b[o] : 0.0f;
            for (int ty = 0; ty < tiles_h; ty++) {
                /* A^T down each tile's rows, one plane read at a time:
                 * r[p][j][tx]; then A across the columns into two output
                 * rows, clipped at an odd edge. */
                float r[2][4][NB_WINOGRAD_MAX_TILES_W] = {{{0}}};
                for (int xi = 0; xi < 16; xi++) {
                    const float *s = src + (size_t)xi * xi_stride + ty * tiles_w;
                    const int i = xi / 4, j = xi % 4;
                    if (i < 3)
                        for (int tx = 0; tx < tiles_w; tx++) r[0][j][tx] += s[tx];
                    if (i == 1)
                        for (int tx = 0; tx < tiles_w; tx++) r[1][j][tx] += s[tx];
                    else if (i > 1)
                        for (int tx = 0; tx < tiles_w; tx++) r[1][j][tx] -= s[tx];
                }
                for (int p = 0; p < 2; p++) {
                    const int oy = 2 * ty + p;
                    if (oy >= g->out_h) break;
                    float *out = dst + (size_t)oy * g->out_w;
                    for (int tx = 0; tx < tiles_w; tx++) {
                        const float pair[2] = {r[p][0][tx] + r[p][1][tx] + r[p][2][tx] + bias,
                                               r[p][1][tx] - r[p][2][tx] - r[p][3][tx] + bias};
                        for (int q = 0; q < 2 && 2 * tx + q < g->out_w; q++) {
                            float *at = out + 2 * tx + q;
                            *at = accumulate ? *at + pair[q] : relu ? (pair[q] > 0 ? pair[q] : 0.0f) : pair[q];
                        }
                    }
                }
            }
        }
}
