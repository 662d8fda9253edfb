// Products with one small dimension (at most 64): LoRA's rank-r matmuls, tokens × r and
// r × features, forward and backward. A square-tiled GEMM wastes most of each tile on them
// (a 64×64 tile over an r = 8 side is 88% padding); here each work-item computes one output
// and runs the whole K loop, so no tile is padded and there is no local memory or barrier.
// Row-major C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C, batched by the second
// global dimension with element strides. The first global dimension is M·N outputs, column
// fastest, so that neighbouring work-items share a row of A and read neighbouring B or C.
// B may be stored 16-bit (GEMM_B16, storage.cl): decoding, one token against 16-bit weights.
#ifndef SKINNY_GROUP
#define SKINNY_GROUP 64
#endif

__kernel void gemm_skinny(int M, int N, int K, float alpha, float beta,
                          __global const float* A, int lda, int strideA, int transA,
                          __global const gemm_b_t* B, int ldb, int strideB, int transB,
                          __global float* C, int ldc, int strideC) {
  const size_t i = get_global_id(0);
  if (i >= (size_t)M * N) return;
  const int m = (int)(i / N), n = (int)(i % N);
  const size_t batch = get_global_id(1);
  A += batch * strideA; B += batch * strideB; C += batch * strideC;
  // op(A)(m, k) = A[m * sa + k * ka], op(B)(k, n) = B[k * kb + n * sb].
  const size_t ka = transA ? (size_t)lda : 1, kb = transB ? 1 : (size_t)ldb;
  __global const float* a = A + (transA ? (size_t)m : (size_t)m * lda);
  __global const gemm_b_t* b = B + (transB ? (size_t)n * ldb : (size_t)n);
  // One chain in K order, as the CPU path's micro-kernel and BLAS libraries sum a K panel:
  // interleaved partial sums round differently, which layer norms downstream amplify
  // (GPT-2's logits moved by 1.4e-4 relative with four chains, against 3.5e-5 on the CPU).
  float acc = 0.0f;
  for (int k = 0; k < K; k++) acc = fma(a[k * ka], LOAD_B(b, k * kb), acc);
  const size_t c = (size_t)m * ldc + n;
  C[c] = alpha * acc + (beta == 0.0f ? 0.0f : beta * C[c]);
}
