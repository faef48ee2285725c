/* kernels.h — the hot numerical kernels, as plain functions over float
 * pointers with their shapes as integer arguments. The graph and the
 * operators call these; nothing here knows about nodes. */
#ifndef NB_KERNELS_H
#define NB_KERNELS_H

#include <stddef.h>

/* C = alpha * op(A) op(B) + beta * C, row-major. op(A) is M x K, op(B) is
 * K x N, C is M x N; lda/ldb/ldc are row strides of A, B, C as stored.
 * trans_a: A is stored K x M. trans_b: B is stored N x K. beta == 0 means C
 * is not read (it may hold garbage). Parallel over tiles of C with OpenMP;
 * each element of C is summed in the same order whatever the thread count. */
void nb_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* The simple triple loop nb_sgemm is tested against. */
void nb_sgemm_reference(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                        int lda, const float *B, int ldb, float beta, float *C, int ldc);

#endif
