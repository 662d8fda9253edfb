"""Summarizes run.sh's bench.jsonl: per case, default and tuned medians over the rounds with
their range, and the tuned/default ratio per round (rounds alternate, so a round's pair saw
about the same load). python3 summarize.py bench.jsonl"""
import json, statistics, sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = defaultdict(dict)  # (bench, label, name) -> {(config, round): row}
for r in rows:
    by[(r["bench"], r["label"], r["name"])][(r["tuning"], r["round"])] = r
print("| bench | case | kernel | unit | default median (min–max) | tuned median (min–max) | tuned/default per round, median (min–max) |")
print("|---|---|---|---|---|---|---|")
for (bench, label, name), d in sorted(by.items()):
    unit = next(iter(d.values()))["unit"]
    def col(c):
        v = [r["rate"] for (cc, _), r in d.items() if cc == c]
        return v, f"{statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f})" if v else "-"
    (dv, ds), (tv, ts) = col("default"), col("tuned")
    rounds = sorted({rd for (_, rd) in d})
    ratios = [d[("tuned", rd)]["rate"] / d[("default", rd)]["rate"] for rd in rounds if ("tuned", rd) in d and ("default", rd) in d]
    rs = f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})" if ratios else "-"
    print(f"| {bench} | {label} | {name} | {unit} | {ds} | {ts} | {rs} |")
