#!/usr/bin/env bash
# Tuned versus default on PoCL with the kit's binaries: run.sh KIT_DIR OUT_DIR [BUDGET] [ROUNDS]
# "default" = the repository's Kernels/tuning.json entry for PoCL and the .cl defaults (an empty
# cache); "tuned" = a cache written by `itune-gpu tune` at SmolLM2-135M's training shapes
# (config beside this script). The two are run alternately, ROUNDS times each, because the
# machine is shared: the spread across rounds is the noise.
set -euo pipefail
KIT="$(cd "$1" && pwd)"; OUT="$2"; BUDGET="${3:-120}"; ROUNDS="${4:-5}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$OUT/default" "$OUT/tuned" "$OUT/model"
cp "$HERE/smollm2-135m-config.json" "$OUT/model/config.json"
export LD_LIBRARY_PATH="$KIT/lib" ITUNE_OPENCL_LIBRARY="$KIT/lib/libOpenCL.so.1" ITUNE_CLBLAST_LIBRARY="$KIT/lib/libclblast.so.1"
export ITUNE_KERNELS_DIR="$KIT/bin/itune-gpu_ITuneKernels.resources"
# A tuned cache from an earlier run in OUT is reused.
if [ ! -f "$OUT/tuned/tuning.json" ]; then
  ITUNE_CACHE_DIR="$OUT/tuned" "$KIT/bin/itune-gpu" tune --model "$OUT/model" --budget "$BUDGET" | tee "$OUT/tune.txt"
fi
: > "$OUT/bench.jsonl"
for r in $(seq "$ROUNDS"); do
  for c in default tuned; do
    for b in "matmul --sizes 1024" "attention --lengths 256" "softmax --lengths 1024" "step --configs tiny --modes full,lora"; do
      # shellcheck disable=SC2086
      ITUNE_CACHE_DIR="$OUT/$c" "$KIT/bin/itune-bench" $b --device opencl --smoke --json \
        | grep '^{' | sed "s/^{/{\"tuning\":\"$c\",\"round\":$r,/" >> "$OUT/bench.jsonl"
    done
  done
done
echo "$(wc -l < "$OUT/bench.jsonl") results in $OUT/bench.jsonl"
