// The own SGEMM with register blocking, the one matmul uses when CLBlast is missing, refuses
// or is slower (Kernels/gemm.cl's gemm_tiled is the plain fallback for devices this one does
// not fit). Row-major C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C, batched by the
// third global dimension with element strides.
//
// A work-group computes a GEMM_TSM × GEMM_TSN tile of C; each of its
// (GEMM_TSN/GEMM_WPTN) × (GEMM_TSM/GEMM_WPTM) work-items computes GEMM_WPTM × GEMM_WPTN
// outputs held in registers, spaced GEMM_TSM/GEMM_WPTM rows and GEMM_TSN/GEMM_WPTN columns
// apart (neighbouring work-items read neighbouring local words). Each step stages a
// GEMM_TSK-deep slice of op(A) and op(B) in local memory, loaded by all work-items with the
// transposes resolved there, so the inner loop is the same for every layout. The tile sizes
// are tunable (`itune-gpu tune`); the host checks that they divide as required.
#ifndef GEMM_TSM
#define GEMM_TSM 64
#endif
#ifndef GEMM_TSN
#define GEMM_TSN 64
#endif
#ifndef GEMM_TSK
#define GEMM_TSK 16
#endif
#ifndef GEMM_WPTM
#define GEMM_WPTM 4
#endif
#ifndef GEMM_WPTN
#define GEMM_WPTN 4
#endif

#define GEMM_RTSM (GEMM_TSM / GEMM_WPTM)
#define GEMM_RTSN (GEMM_TSN / GEMM_WPTN)
#define GEMM_THREADS (GEMM_RTSM * GEMM_RTSN)

__kernel void gemm_blocked(int M, int N, int K, float alpha, float beta,
                           __global const float* A, int lda, int strideA, int transA,
                           __global const float* B, int ldb, int strideB, int transB,
                           __global float* C, int ldc, int strideC) {
  // As[k][m] holds op(A)(m0 + m, k0 + k); Bs[k][n] holds op(B)(k0 + k, n0 + n).
  __local float As[GEMM_TSK][GEMM_TSM];
  __local float Bs[GEMM_TSK][GEMM_TSN];
  const int tn = get_local_id(0), tm = get_local_id(1);
  const int tid = tm * GEMM_RTSN + tn;
  const int m0 = get_group_id(1) * GEMM_TSM, n0 = get_group_id(0) * GEMM_TSN;
  const size_t batch = get_global_id(2);
  A += batch * strideA; B += batch * strideB; C += batch * strideC;

  float acc[GEMM_WPTM][GEMM_WPTN];
  for (int wm = 0; wm < GEMM_WPTM; wm++)
    for (int wn = 0; wn < GEMM_WPTN; wn++) acc[wm][wn] = 0.0f;

  for (int k0 = 0; k0 < K; k0 += GEMM_TSK) {
    // Consecutive work-items read consecutive addresses in whichever layout A and B have.
    for (int i = tid; i < GEMM_TSK * GEMM_TSM; i += GEMM_THREADS) {
      int kk = transA ? i / GEMM_TSM : i % GEMM_TSK;
      int mm = transA ? i % GEMM_TSM : i / GEMM_TSK;
      int gm = m0 + mm, gk = k0 + kk;
      As[kk][mm] = (gm < M && gk < K) ? (transA ? A[(size_t)gk * lda + gm] : A[(size_t)gm * lda + gk]) : 0.0f;
    }
    for (int i = tid; i < GEMM_TSK * GEMM_TSN; i += GEMM_THREADS) {
      int kk = transB ? i % GEMM_TSK : i / GEMM_TSN;
      int nn = transB ? i / GEMM_TSK : i % GEMM_TSN;
      int gn = n0 + nn, gk = k0 + kk;
      Bs[kk][nn] = (gn < N && gk < K) ? (transB ? B[(size_t)gn * ldb + gk] : B[(size_t)gk * ldb + gn]) : 0.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = 0; k < GEMM_TSK; k++) {
      float a[GEMM_WPTM], b[GEMM_WPTN];
      for (int wm = 0; wm < GEMM_WPTM; wm++) a[wm] = As[k][tm + wm * GEMM_RTSM];
      for (int wn = 0; wn < GEMM_WPTN; wn++) b[wn] = Bs[k][tn + wn * GEMM_RTSN];
      for (int wm = 0; wm < GEMM_WPTM; wm++)
        for (int wn = 0; wn < GEMM_WPTN; wn++) acc[wm][wn] = fma(a[wm], b[wn], acc[wm][wn]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  for (int wm = 0; wm < GEMM_WPTM; wm++) {
    int row = m0 + tm + wm * GEMM_RTSM;
    if (row >= M) continue;
    for (int wn = 0; wn < GEMM_WPTN; wn++) {
      int col = n0 + tn + wn * GEMM_RTSN;
      if (col >= N) continue;
      size_t i = (size_t)row * ldc + col;
      C[i] = alpha * acc[wm][wn] + (beta == 0.0f ? 0.0f : beta * C[i]);
    }
  }
}
