# numpy/OpenBLAS on the given shapes, timed as scripts/bench_peers.py's peer_matmul does (median of >=1 s)
import sys, json, time, statistics, numpy as np
def timed(fn, seconds=1.0, min_reps=3):
    fn()
    ts, s = [], time.perf_counter()
    while len(ts) < min_reps or time.perf_counter() - s < seconds:
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return ts
for item in sys.argv[1].split(","):
    dims, flags = item.split(":")
    M, N, K = map(int, dims.split("x")); ta, tb = flags[0] == "t", flags[1] == "t"
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (K, M) if ta else (M, K)).astype(np.float32)
    b = rng.uniform(-1, 1, (N, K) if tb else (K, N)).astype(np.float32)
    A = a.T if ta else a; B = b.T if tb else b
    t = statistics.median(timed(lambda: A @ B))
    print(json.dumps({"label": item, "gflops": 2*M*N*K/t/1e9, "median_ms": t*1e3}))
