#!/usr/bin/env python3
"""numpy (OpenBLAS or whatever BLAS numpy links) matmul GFLOP/s at the shapes of
`itune-bench matmul`, as a peer to compare the pure-Swift CPU path against.

Prints one JSON object per result with the fields itune-bench uses (bench, name, label,
device, device_name, driver, shape [M, N, K], flops, reps, median_ms, min_ms, max_ms, gflops,
gflops_min, gflops_max), and the BLAS configuration on stderr.

    python3 scripts/bench_numpy_matmul.py [--sizes 256,512] [--smoke] [--seconds 1.5]
    python3 scripts/bench_numpy_matmul.py --compare bench-results/itune-bench.jsonl \
        bench-results/numpy.jsonl     # ratios of every itune-bench row to numpy

BLAS threads: numpy's default (all cores) unless OPENBLAS_NUM_THREADS / OMP_NUM_THREADS is
set in the environment.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

DEFAULT_SIZES = [256, 512, 1024, 2048, 4096]
SMOKE_SIZES = [64, 128]
# smollm2-135m projections at 1024 tokens (batch 4 x 256) and qwen2.5-0.5b at 512: label, M, N, K; B is a weight
# stored (N, K), multiplied transposed as a linear layer does.
MODEL_CASES = [
    ("smollm2-135m q_proj", 1024, 576, 576),
    ("smollm2-135m gate_proj", 1024, 1536, 576),
    ("smollm2-135m down_proj", 1024, 576, 1536),
    ("smollm2-135m lm_head", 1024, 49152, 576),
    # Qwen2.5-0.5B at 512 tokens (batch 2 x 256), as `itune-bench matmul` has them.
    ("qwen2.5-0.5b q_proj", 512, 896, 896),
    ("qwen2.5-0.5b gate_proj", 512, 4864, 896),
    ("qwen2.5-0.5b down_proj", 512, 896, 4864),
    ("qwen2.5-0.5b lm_head", 512, 151936, 896),
]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_config(np):
    """A one-line description of the BLAS numpy uses: library, version, kernel, threads."""
    parts = [f"numpy {np.__version__}"]
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        parts.append(f"{blas.get('name', '?')} {blas.get('version', '')}".strip())
    except Exception:
        pass
    # OpenBLAS reports its kernel ("Haswell", "SkylakeX", ...) and thread count through its
    # C API; the symbol names carry a prefix/suffix in numpy's bundled build.
    try:
        import ctypes
        import glob
        libdir = os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs")
        for path in glob.glob(os.path.join(libdir, "*openblas*")):
            lib = ctypes.CDLL(path)
            for prefix, suffix in (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", ""),
                                   ("openblas_", "64_")):
                core = getattr(lib, f"{prefix}get_corename{suffix}", None)
                threads = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                if core and threads:
                    core.restype = ctypes.c_char_p
                    parts.append(f"kernel {core().decode()}, {threads()} threads")
                    break
            break
    except Exception:
        pass
    return ", ".join(parts)


def measure(fn, seconds, min_reps):
    fn()  # warm-up (thread pool start, page faults)
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < seconds and len(times) < 1000):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def run(args):
    import numpy as np

    config = blas_config(np)
    print(f"numpy matmul: {config}", file=sys.stderr)
    sizes = args.sizes or (SMOKE_SIZES if args.smoke else DEFAULT_SIZES)
    cases = [(f"square {n}", n, n, n, False) for n in sizes]
    if not args.smoke:
        cases += [(label, m, n, k, True) for (label, m, n, k) in MODEL_CASES]
    seconds, min_reps = (0, 1) if args.smoke else (args.seconds, 3)
    rng = np.random.default_rng(0)
    for label, m, n, k, transpose_b in cases:
        a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
        b = rng.uniform(-1, 1, (n, k) if transpose_b else (k, n)).astype(np.float32)
        bb = b.T if transpose_b else b
        times = measure(lambda: a @ bb, seconds, min_reps)
        flops = 2.0 * m * n * k
        med = statistics.median(times)
        print(json.dumps({
            "bench": "matmul", "name": "numpy", "label": label,
            "device": "cpu", "device_name": cpu_model(), "driver": config,
            "shape": [m, n, k], "flops": flops, "reps": len(times),
            "median_ms": med * 1e3, "min_ms": min(times) * 1e3, "max_ms": max(times) * 1e3,
            "gflops": flops / med / 1e9, "gflops_min": flops / max(times) / 1e9,
            "gflops_max": flops / min(times) / 1e9,
        }, sort_keys=True), flush=True)


def compare(ours_path, numpy_path):
    """Prints each itune-bench result's median GFLOP/s next to numpy's at the same shape."""
    def load(path):
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip().startswith("{")]
    ref = {tuple(r["shape"]): r for r in load(numpy_path) if r.get("bench") == "matmul"}
    print(f"{'case':26} {'shape':18} {'device / what':44} {'GFLOP/s':>8} {'numpy':>8} {'ratio':>6}")
    for r in load(ours_path):
        if r.get("bench") != "matmul":
            continue
        np_row = ref.get(tuple(r["shape"]))
        shape = "x".join(map(str, r["shape"]))
        what = f"{r['device']} {r['name']}"
        if np_row:
            ratio = r["gflops"] / np_row["gflops"]
            print(f"{r['label']:26} {shape:18} {what:44} {r['gflops']:8.1f} {np_row['gflops']:8.1f} {ratio:6.2f}")
        else:
            print(f"{r['label']:26} {shape:18} {what:44} {r['gflops']:8.1f} {'-':>8} {'-':>6}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], help="square sizes, e.g. 256,512")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition")
    p.add_argument("--seconds", type=float, default=1.5, help="time per case after warm-up")
    p.add_argument("--compare", nargs=2, metavar=("ITUNE_JSONL", "NUMPY_JSONL"),
                   help="print ratios of itune-bench results to numpy results instead of measuring")
    args = p.parse_args()
    if args.compare:
        compare(*args.compare)
    else:
        run(args)


if __name__ == "__main__":
    main()
