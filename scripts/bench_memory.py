#!/usr/bin/env python3
"""Issue 17's memory table: the LoRA step (r 16 on every projection, batch 1 x 512, random
weights) of Llama-shaped models with f32, bf16, int8 and nf4 bases, with and without gradient
checkpointing, each case in its own process so that its peak resident memory is its own, and
PyTorch+PEFT's fp32 step of the same shape beside it (where it can load the model at all).

    python3 scripts/bench_memory.py --bench .build/release/itune-bench --out bench-results/memory \\
        --configs llama-1b,llama-7b

Writes <out>/memory.jsonl (every row as itune-bench and the peer print it) and <out>/memory.md.
A case that does not fit (the process is killed, or it needs more than --max-gb of f32 weights
before it starts) is listed as such instead of being run.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from bench_peers import STEP_CONFIGS, cpu_name  # noqa: E402

# Parameters of each shape (weights the step holds), to skip what cannot be loaded here.
PARAMETERS = {"llama-1b": 1.236e9, "llama-7b": 6.738e9, "smoke": 0.1e6, "tiny": 3.5e6}
BYTES = {"f32": 4, "bf16": 2, "int8": 1.07, "nf4": 0.55}


def mem_total_gb():
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return 16.0


def run(cmd, timeout):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    rows = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not rows:
        return None, f"exit {out.returncode}: {out.stderr.strip().splitlines()[-1:] or ''}"
    return rows[-1], None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=os.path.join(ROOT, ".build/release/itune-bench"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-results/memory"))
    ap.add_argument("--configs", default="llama-1b,llama-7b")
    ap.add_argument("--bases", default="f32,bf16,int8,nf4")
    ap.add_argument("--checkpointing", default="off,on")
    ap.add_argument("--seconds", type=float, default=0.01)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (0: one step only, timed from a cold start)")
    ap.add_argument("--no-peer", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    limit = mem_total_gb() * 0.8
    rows = []
    log = open(os.path.join(a.out, "memory.jsonl"), "w")
    for config in a.configs.split(","):
        n = PARAMETERS.get(config, 0)
        for base in a.bases.split(","):
            for ckpt in a.checkpointing.split(","):
                need = n * BYTES[base.split("+")[0]] / 1e9
                # Random weights are made in f32 one matrix at a time, so the base's own size decides.
                if need > limit:
                    rows.append(dict(config=config, base=base, ckpt=ckpt, skipped=f"base alone {need:.0f} GB > {limit:.0f} GB"))
                    continue
                # nf4+dq: --double-quant; +emb: --quantize-embeddings (the tied table and head as blocks too).
                name, *extras = base.split("+")
                flags = (["--double-quant"] if "dq" in extras else []) + (["--quantize-embeddings"] if "emb" in extras else [])
                cmd = [a.bench, "step", "--device", "cpu", "--configs", config, "--modes", "lora", "--base-dtype", name,
                       "--json", "--seconds", str(a.seconds), "--warmup", str(a.warmup)] + flags + (["--grad-checkpoint-only"] if ckpt == "on" else [])
                print("+", " ".join(cmd), flush=True)
                r, err = run(cmd, a.timeout)
                if r is None:
                    rows.append(dict(config=config, base=base, ckpt=ckpt, skipped=err))
                    continue
                log.write(json.dumps(r) + "\n"); log.flush()
                # The steps' own resident peak where the system can say (Linux), else the process's.
                rows.append(dict(config=config, base=base, ckpt=ckpt, tokens_s=r["rate"], tensor_mb=r["peak_tensor_mb"],
                                 rss_mb=r.get("max_rss_steps_mb", r["max_rss_mb"]), load_mb=r.get("max_rss_loading_mb")))
                print(json.dumps(rows[-1]), flush=True)
        if not a.no_peer and config in STEP_CONFIGS:
            if n * 4 / 1e9 > limit:
                rows.append(dict(config=config, base="f32", ckpt="off", peer=True, skipped=f"fp32 weights {n * 4 / 1e9:.0f} GB > {limit:.0f} GB"))
            else:
                cmd = [sys.executable, os.path.join(ROOT, "scripts/bench_peers.py"), "--ours", "/dev/null", "--step-child",
                       config, "lora", "cpu", "1", "512", str(a.seconds)]
                print("+", " ".join(cmd), flush=True)
                r, err = run(cmd, a.timeout)
                if r is None:
                    rows.append(dict(config=config, base="f32", ckpt="off", peer=True, skipped=err))
                else:
                    log.write(json.dumps(r) + "\n"); log.flush()
                    rows.append(dict(config=config, base="f32", ckpt="off", peer=True, tokens_s=r["rate"], tensor_mb=None,
                                     rss_mb=r["max_rss_mb"], driver=r["driver"]))
                    print(json.dumps(rows[-1]), flush=True)
        elif not a.no_peer:
            rows.append(dict(config=config, base="f32", ckpt="off", peer=True,
                             skipped=f"fp32 weights {n * 4 / 1e9:.0f} GB" + (f" > {limit:.0f} GB" if n * 4 / 1e9 > limit else "")))
    md = [f"LoRA r 16 on every projection, batch 1 × 512, random weights; {cpu_name()}, {os.cpu_count()} cores. "
          "Tensor peak: the step's largest live tensor memory (the runtime's count); RSS: the process's peak resident memory "
          "over the steps (MB of 10^6 bytes), and while the model was built (random bf16 weights, quantised as they are made).", "",
          "| shape | base | checkpointing | tokens/s | tensor peak MB | peak RSS MB | loading peak RSS MB |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        who = "PyTorch+PEFT fp32" if r.get("peer") else f"itune-gpu {r['base']}"
        if "skipped" in r:
            md.append(f"| {r['config']} | {who} | {r['ckpt']} | — ({r['skipped']}) | — | — | — |")
        else:
            t = r.get("tensor_mb")
            load = r.get("load_mb")
            md.append(f"| {r['config']} | {who} | {r['ckpt']} | {r['tokens_s']:.1f} | {'—' if t is None else f'{t:.0f}'} | {r['rss_mb']:.0f} | {'—' if load is None else f'{load:.0f}'} |")
    text = "\n".join(md) + "\n"
    open(os.path.join(a.out, "memory.md"), "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
