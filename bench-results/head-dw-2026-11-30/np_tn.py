# numpy/OpenBLAS at op(A)·op(B) = Aᵀ·B (A stored K×M), median of ≥ 1 s, GFLOP/s per shape (M,N,K)
import numpy as np, time, statistics, sys, json
for s in sys.argv[1].split(","):
    M, N, K = (int(x) for x in s.split(":")[0].split("x"))
    A = np.random.rand(K, M).astype(np.float32); B = np.random.rand(K, N).astype(np.float32)
    A.T @ B; ts = []; t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1 or len(ts) < 3:
        t = time.perf_counter(); A.T @ B; ts.append(time.perf_counter() - t)
    print(json.dumps({"bin": "numpy", "label": s, "rate": 2 * M * N * K / statistics.median(ts) / 1e9}))
