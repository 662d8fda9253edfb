#!/usr/bin/env python3
"""Training steps of ours and PyTorch(+PEFT) alternated, pair by pair, on one machine.

    python3 scripts/alternate_steps.py --bin .build/release --pairs 3 \
        --cases smollm2-135m:lora,smollm2-135m:full,qwen2.5-0.5b:lora,qwen2.5-0.5b:full --out DIR

On a shared VM whose neighbours move a single run by ±30%, a ratio of two runs minutes apart
says more about the neighbours than about the code. Here each pair is ours, then the peer, back
to back (the order swapped every other pair, so that a slow spell does not always fall on the
same side), and the table gives each pair's ratio, their median and range, not one reading.

Ours is `itune-bench step --configs C --modes M --json`, the peer bench_peers.py's own step
child (transformers eager fp32, PEFT LoRA r 8 on every projection, torch.optim.AdamW), each in a
fresh process so that its peak RSS is its own. Writes DIR/alternated.jsonl (every run) and
DIR/alternated.md (the table), and prints the table.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def last_json(stdout, what):
    lines = [l for l in stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise SystemExit(f"{what} printed no JSON result")
    return json.loads(lines[-1])


def ours(bin_dir, config, mode, seconds, fraction):
    cmd = [os.path.join(bin_dir, "itune-bench"), "step", "--configs", config, "--modes", mode, "--json",
           "--seconds", str(seconds), "--answer-fraction", str(fraction)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return last_json(out.stdout, " ".join(cmd))


def peer(config, mode, batch, seq, seconds, fraction):
    cmd = [sys.executable, os.path.join(ROOT, "scripts/bench_peers.py"), "--ours", os.devnull, "--step-child", config,
           mode, "cpu", str(batch), str(seq), str(seconds), "--answer-fraction", str(fraction)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return last_json(out.stdout, " ".join(cmd))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the folder holding itune-bench (a release build)")
    ap.add_argument("--cases", default="smollm2-135m:lora,smollm2-135m:full",
                    help="comma-separated CONFIG:MODE (configs of itune-bench step; modes lora, full)")
    ap.add_argument("--pairs", type=int, default=3, help="pairs of runs per case (at least 1)")
    ap.add_argument("--seconds", type=float, default=1.5, help="timed seconds per run after warm-up")
    ap.add_argument("--answer-fraction", type=float, default=1.0, help="as itune-bench step's")
    ap.add_argument("--out", help="folder for alternated.jsonl and alternated.md")
    a = ap.parse_args()
    if a.pairs < 1:
        ap.error("--pairs must be at least 1")
    if not os.access(os.path.join(a.bin, "itune-bench"), os.X_OK):
        ap.error(f"--bin: no executable itune-bench in {a.bin} (build it: swift build -c release --product itune-bench)")
    cases = []
    for c in a.cases.split(","):
        config, sep, mode = c.strip().partition(":")
        if not sep or mode not in ("lora", "full") or not config:
            ap.error(f"--cases: {c!r} is not CONFIG:MODE with MODE lora or full")
        cases.append((config, mode))
    runs, rows = [], []
    for config, mode in cases:
        ratios, mine, theirs = [], [], []
        for i in range(a.pairs):
            first_ours = i % 2 == 0
            results = {}
            for side in (("ours", "peer") if first_ours else ("peer", "ours")):
                if side == "ours":
                    results[side] = ours(a.bin, config, mode, a.seconds, a.answer_fraction)
                else:
                    o = results.get("ours") or {}
                    batch, seq = (o.get("shape") or [2 if config.startswith("qwen2.5") else 4, 256])[:2]
                    results[side] = peer(config, mode, batch, seq, a.seconds, a.answer_fraction)
            # The peer's batch follows ours; a peer run first takes itune-bench's default shape,
            # checked against ours once both have run.
            o, p = results["ours"], results["peer"]
            if o.get("shape") and list(o["shape"][:2]) != [batch, seq]:
                raise SystemExit(f"{config}: ours ran {o['shape']}, the peer {[batch, seq]}")
            ratio = o["rate"] / p["rate"]
            ratios.append(ratio); mine.append(o); theirs.append(p)
            run = {"config": config, "mode": mode, "pair": i + 1, "order": "ours first" if first_ours else "peer first",
                   "ours_tokens_per_s": o["rate"], "peer_tokens_per_s": p["rate"], "ratio": ratio,
                   "ours_max_rss_mb": o.get("max_rss_mb"), "peer_max_rss_mb": p.get("max_rss_mb"),
                   "ours_mfu": o.get("mfu"), "peak_gflops": o.get("peak_gflops"), "driver": o.get("driver"),
                   "peer_driver": p.get("driver"), "cpu": o.get("device_name"), "answer_fraction": a.answer_fraction}
            runs.append(run)
            print(json.dumps(run), flush=True)
        rows.append((config, mode, ratios, mine, theirs))

    def span(xs, fmt):
        return fmt.format(min(xs)) + "–" + fmt.format(max(xs)) if len(xs) > 1 else fmt.format(xs[0])

    cpu = runs[0]["cpu"] if runs else "?"
    lines = [f"CPU: {cpu}; {runs[0]['driver'] if runs else ''}; peer: {runs[0]['peer_driver'] if runs else ''}",
             f"{a.pairs} alternated pairs per case, answer fraction {a.answer_fraction}.", "",
             "| case | ratio, median (range) | ours tokens/s | peer tokens/s | peak RSS ours / peer GB | MFU ours |",
             "| --- | --- | --- | --- | --- | --- |"]
    for config, mode, ratios, mine, theirs in rows:
        rss_o = max(m.get("max_rss_mb") or 0 for m in mine) / 1e3
        rss_p = max(t.get("max_rss_mb") or 0 for t in theirs) / 1e3
        mfu = [m["mfu"] for m in mine if m.get("mfu") is not None]
        lines.append(f"| {config} {mode} | **{statistics.median(ratios):.2f}×** ({span(ratios, '{:.2f}')}) "
                     f"| {span([m['rate'] for m in mine], '{:.1f}')} | {span([t['rate'] for t in theirs], '{:.1f}')} "
                     f"| {rss_o:.2f} / {rss_p:.2f} | {span(mfu, '{:.2f}') if mfu else '–'} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "alternated.jsonl"), "w") as f:
            for r in runs:
                f.write(json.dumps(r) + "\n")
        with open(os.path.join(a.out, "alternated.md"), "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
