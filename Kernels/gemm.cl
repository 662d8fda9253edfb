// Our own SGEMM, used when CLBlast is not installed and as a comparison in itune-bench.
// Row-major C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C, batched by the third
// global dimension with element strides. TS×TS tiles staged in local memory; TS is a
// compile-time constant (-DTS=16 by default). B may be stored 16-bit (GEMM_B16, storage.cl).
#ifndef TS
#define TS 16
#endif

__kernel void gemm_tiled(int M, int N, int K, float alpha, float beta,
                         __global const float* A, int lda, int strideA, int transA,
                         __global const gemm_b_t* B, int ldb, int strideB, int transB,
                         __global float* C, int ldc, int strideC) {
  __local float As[TS][TS + 1];
  __local float Bs[TS][TS + 1];
  int lr = get_local_id(1), lc = get_local_id(0);
  int row = get_group_id(1) * TS + lr, col = get_group_id(0) * TS + lc;
  size_t batch = get_global_id(2);
  A += batch * strideA; B += batch * strideB; C += batch * strideC;
  float acc = 0.0f;
  for (int k0 = 0; k0 < K; k0 += TS) {
    int ka = k0 + lc, kb = k0 + lr;
    As[lr][lc] = (row < M && ka < K) ? (transA ? A[(size_t)ka * lda + row] : A[(size_t)row * lda + ka]) : 0.0f;
    Bs[lr][lc] = (kb < K && col < N) ? LOAD_B(B, transB ? (size_t)col * ldb + kb : (size_t)kb * ldb + col) : 0.0f;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = 0; k < TS; k++) acc += As[lr][k] * Bs[k][lc];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (row < M && col < N) {
    size_t i = (size_t)row * ldc + col;
    C[i] = alpha * acc + (beta == 0.0f ? 0.0f : beta * C[i]);
  }
}
