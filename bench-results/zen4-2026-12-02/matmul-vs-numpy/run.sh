#!/usr/bin/env bash
# Rounds of `itune-bench matmul` and numpy's matmul at the same shapes, the order swapped each
# round, from the repository root:
#   bash bench-results/zen4-2026-12-02/matmul-vs-numpy/run.sh BIN OUT [ROUNDS]
# BIN: the folder holding a release itune-bench; OUT: where oursN/numpyN.jsonl and compareN.txt
# go; ROUNDS: e.g. "1 2 3" (this folder's rounds 4 and 5 were "4 5", an hour later).
set -euo pipefail
BIN=${1:?the folder holding itune-bench}; OUT=${2:?an output folder}; ROUNDS=${3:-1 2 3}
mkdir -p "$OUT"
for r in $ROUNDS; do
  ours() { "$BIN/itune-bench" matmul --device cpu --json --seconds 1 > "$OUT/ours$r.jsonl" 2>/dev/null; }
  peer() { python3 scripts/bench_numpy_matmul.py --seconds 1 > "$OUT/numpy$r.jsonl" 2>/dev/null; }
  if [ $((r % 2)) = 1 ]; then ours; peer; else peer; ours; fi
  python3 scripts/bench_numpy_matmul.py --compare "$OUT/ours$r.jsonl" "$OUT/numpy$r.jsonl" > "$OUT/compare$r.txt" 2>&1
done
