// The own SGEMM with register blocking, the one matmul uses when CLBlast is missing, refuses
// or is slower (Kernels/gemm.cl's gemm_tiled is the plain fallback for devices this one does
// not fit). Row-major C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C, batched by the
// third global dimension with element strides. B may be stored 16-bit (GEMM_B16, storage.cl):
// converted to f32 as it is loaded.
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
                           __global const gemm_b_t* B, int ldb, int strideB, int transB,
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
      Bs[kk][nn] = (gn < N && gk < K) ? LOAD_B(B, transB ? (size_t)gn * ldb + gk : (size_t)gk * ldb + gn) : 0.0f;
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

// The same product without local memory or barriers, for CPU devices (PoCL) and others where
// the caches do the staging: each work-item computes GEMM_DWM rows × GEMM_DWN columns of C
// (GEMM_DWN a multiple of 8) with float8 registers. op(B) rows contiguous (B not transposed):
// one float8 of B per 8 columns and a broadcast of op(A) per row, each k. B transposed (the
// linear layer's x·Wᵀ): both operands run along k, dot products 8 wide, two columns at a
// time. Neighbouring work-items take neighbouring rows of C (the first global dimension is M)
// so that they share B's columns in cache. Edge blocks and Aᵀ·Bᵀ go one output at a time.
// Matmul uses it instead of gemm_blocked when GEMM_DIRECT is 1 (`itune-gpu tune` decides).
#ifndef GEMM_DIRECT
#define GEMM_DIRECT 0
#endif
#ifndef GEMM_DWM
#define GEMM_DWM 3
#endif
#ifndef GEMM_DWN
#define GEMM_DWN 32
#endif
#define GEMM_DVN (GEMM_DWN / 8)

__kernel void gemm_direct(int M, int N, int K, float alpha, float beta,
                          __global const float* A, int lda, int strideA, int transA,
                          __global const gemm_b_t* B, int ldb, int strideB, int transB,
                          __global float* C, int ldc, int strideC) {
  const int m0 = get_global_id(0) * GEMM_DWM, n0 = get_global_id(1) * GEMM_DWN;
  const size_t batch = get_global_id(2);
  if (m0 >= M || n0 >= N) return;
  A += batch * strideA; B += batch * strideB; C += batch * strideC;
  const bool full = m0 + GEMM_DWM <= M && n0 + GEMM_DWN <= N;
  if (full && !transB) {
    float8 acc[GEMM_DWM][GEMM_DVN];
    for (int i = 0; i < GEMM_DWM; i++) for (int j = 0; j < GEMM_DVN; j++) acc[i][j] = (float8)(0.0f);
    for (int k = 0; k < K; k++) {
      float8 b[GEMM_DVN];
      for (int j = 0; j < GEMM_DVN; j++) b[j] = LOAD_B8(B, (size_t)k * ldb + n0 + 8 * j);
      for (int i = 0; i < GEMM_DWM; i++) {
        float a = transA ? A[(size_t)k * lda + m0 + i] : A[(size_t)(m0 + i) * lda + k];
        for (int j = 0; j < GEMM_DVN; j++) acc[i][j] = fma((float8)(a), b[j], acc[i][j]);
      }
    }
    for (int i = 0; i < GEMM_DWM; i++) for (int j = 0; j < GEMM_DVN; j++) {
      __global float* c = C + (size_t)(m0 + i) * ldc + n0 + 8 * j;
      float8 r = alpha * acc[i][j];
      if (beta != 0.0f) r += beta * vload8(0, c);
      vstore8(r, 0, c);
    }
    return;
  }
  if (full && !transA) {
    // Both operands run along k: dot products 8 wide, two columns of C at a time.
    const int K8 = K & ~7;
    for (int j = 0; j < GEMM_DWN; j += 2) {
      float8 acc0[GEMM_DWM], acc1[GEMM_DWM];
      for (int i = 0; i < GEMM_DWM; i++) { acc0[i] = (float8)(0.0f); acc1[i] = (float8)(0.0f); }
      __global const gemm_b_t* b0 = B + (size_t)(n0 + j) * ldb;
      __global const gemm_b_t* b1 = b0 + ldb;
      for (int k = 0; k < K8; k += 8) {
        float8 x0 = LOAD_B8(b0, k), x1 = LOAD_B8(b1, k);
        for (int i = 0; i < GEMM_DWM; i++) {
          float8 a = vload8(0, A + (size_t)(m0 + i) * lda + k);
          acc0[i] = fma(a, x0, acc0[i]);
          acc1[i] = fma(a, x1, acc1[i]);
        }
      }
      for (int i = 0; i < GEMM_DWM; i++) {
        float8 s0 = acc0[i], s1 = acc1[i];
        float4 h0 = s0.lo + s0.hi, h1 = s1.lo + s1.hi;
        float2 q0 = h0.lo + h0.hi, q1 = h1.lo + h1.hi;
        float r0 = q0.x + q0.y, r1 = q1.x + q1.y;
        __global const float* a = A + (size_t)(m0 + i) * lda;
        for (int k = K8; k < K; k++) { r0 = fma(a[k], LOAD_B(b0, k), r0); r1 = fma(a[k], LOAD_B(b1, k), r1); }
        __global float* c = C + (size_t)(m0 + i) * ldc + n0 + j;
        c[0] = alpha * r0 + (beta == 0.0f ? 0.0f : beta * c[0]);
        c[1] = alpha * r1 + (beta == 0.0f ? 0.0f : beta * c[1]);
      }
    }
    return;
  }
  // Edges and Aᵀ·Bᵀ: one output at a time.
  for (int i = 0; i < GEMM_DWM && m0 + i < M; i++) {
    for (int j = 0; j < GEMM_DWN && n0 + j < N; j++) {
      float acc = 0.0f;
      for (int k = 0; k < K; k++) {
        float a = transA ? A[(size_t)k * lda + m0 + i] : A[(size_t)(m0 + i) * lda + k];
        float b = LOAD_B(B, transB ? (size_t)(n0 + j) * ldb + k : (size_t)k * ldb + n0 + j);
        acc = fma(a, b, acc);
      }
      size_t c = (size_t)(m0 + i) * ldc + n0 + j;
      C[c] = alpha * acc + (beta == 0.0f ? 0.0f : beta * C[c]);
    }
  }
}
