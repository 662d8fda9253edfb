#!/usr/bin/env python3
"""Hugging Face `tokenizers` encoding throughput on the same tokenizers and text as
`itune-bench tokenize`, as its peer: MB/s of UTF-8 input, a loop of `encode` (one thread) and
`encode_batch` (the library's own thread pool).

    python3 scripts/bench_tokenizer.py [--tokenizer DIR] [--text FILE] [--smoke]

Prints one JSON object per result (bench, name, label, rate, unit, median_ms, reps).
"""
import argparse
import glob
import json
import os
import statistics
import time

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lines(text_file, smoke):
    if text_file:
        text = open(text_file, encoding="utf-8").read()
    else:
        files = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "data", "t0-pool", "*.jsonl")))
        text = "".join(open(f, encoding="utf-8").read() for f in files[: 1 if smoke else len(files)])
        if not text:
            text = "The quick brown fox 日本語のテキスト 🦊 func f(x) { return x  *  2 }\n" * (50 if smoke else 100_000)
    out = [l for l in text.split("\n") if l]
    return out[:200] if smoke else out


def timed(fn, seconds, min_reps=3):
    fn()  # warm-up
    times, start = [], time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", action="append")
    ap.add_argument("--text")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--seconds", type=float, default=1.5)
    a = ap.parse_args()
    dirs = a.tokenizer or [os.path.join(ROOT, "Tests/Fixtures/tokenizers", n)
                           for n in ("llama3_style", "llama2_metaspace_bytefallback")]
    ls = lines(a.text, a.smoke)
    nbytes = sum(len(l.encode("utf-8")) for l in ls)
    for d in dirs:
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        cases = [
            ("encode 1 thread", lambda: [tok.encode(l, add_special_tokens=False) for l in ls]),
            ("encode batch", lambda: tok.encode_batch(ls, add_special_tokens=False)),
        ]
        for name, fn in cases:
            t = timed(fn, 0 if a.smoke else a.seconds, 1 if a.smoke else 3)
            med = statistics.median(t)
            print(json.dumps({"bench": "tokenize", "name": "hf-tokenizers " + name, "label": os.path.basename(d),
                              "shape": [len(ls), nbytes], "rate": nbytes / med / 1e6, "unit": "MB/s",
                              "median_ms": med * 1e3, "reps": len(t)}), flush=True)


if __name__ == "__main__":
    main()
