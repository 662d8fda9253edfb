#!/bin/bash
# CPU figures on an idle machine: ours and the peers side by side in one run (peak, matmul,
# softmax, attention, and the training step at the 135M and 0.5B shapes), written as OUTDIR/bench.md.
# Usage: scripts/quiet_cpu_bench.sh OUTDIR BIN   (BIN = the folder holding itune-bench, e.g. .build/release)
set -e
out=$(realpath -m "$1"); bin=$(realpath "$2"); mkdir -p "$out"; j=$out/itune-bench.jsonl; : > "$j"
cd "$(dirname "$0")/.."
lscpu | grep -E "Model name|CPU family|^Model:|^CPU\(s\)|Thread|L1d|L2|L3" > $out/cpu.txt
$bin/itune-bench peak --json | tee -a $j
$bin/itune-bench matmul --json | tee -a $j
$bin/itune-bench softmax --json --lengths 128,256,512,1024 | tee -a $j
$bin/itune-bench attention --json --lengths 128,256,512,1024 | tee -a $j
for c in smollm2-135m qwen2.5-0.5b; do for m in lora full; do
  $bin/itune-bench step --configs $c --modes $m --json | tee -a $j
  # The same step with an answer-only loss on real Self-Instruct proportions (46% of tokens
  # scored under the alpaca template): the peer gets the same labels.
  $bin/itune-bench step --configs $c --modes $m --answer-fraction 0.46 --json | tee -a $j; done; done
python3 scripts/bench_peers.py --ours $j --out $out
