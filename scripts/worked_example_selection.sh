#!/usr/bin/env bash
# The README's task-selection example on the built-in task families: rank the pool's tasks
# by instruction similarity to a target, train a fresh model on the target's few examples plus
# the 3 most similar tasks, and, as the control, plus the 3 least similar; score held-out tasks.
#   bash scripts/worked_example_selection.sh [WORKDIR]      (needs `make build` and `make demo` first)
set -euo pipefail
BIN=${BIN:-$(cd "$(dirname "$0")/.." && swift build -c release --show-bin-path)}
W=${1:-itune-selection-example}
DEMO=${DEMO:-itune-demo}
TARGET=${TARGET:-reverse}
mkdir -p "$W"
"$BIN/itune-gpu" demo-pool --output "$W/pool" --per-file 150 --seed 7
"$BIN/itune-gpu" demo-pool --output "$W/heldout" --per-file 10 --seed 99
mkdir -p "$W/target" "$W/eval"
for f in "$W/pool/${TARGET}_"*.jsonl; do head -n 8 "$f" > "$W/target/$(basename "$f")"; rm "$f"; done
cp "$W/heldout/${TARGET}_"*.jsonl "$W/eval/"
# Similarity of every pool task to the target's instructions: the demo model's mean-pooled states.
"$BIN/itune-gpu" select --target "$W/target" --pool "$W/pool" --model "$DEMO/model" --top-k 3 \
    --output "$W/similar.json" --device cpu | tee "$W/ranking.txt"
"$BIN/itune-gpu" select --target "$W/target" --pool "$W/pool" --model "$DEMO/model" --top-k 99 \
    --output "$W/all.json" --device cpu --json > "$W/ranking.json"
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
m = json.load(open(f"{w}/all.json"))
m["tasks"] = m["tasks"][-3:]          # the 3 least similar
json.dump(m, open(f"{w}/dissimilar.json", "w"), indent=1)
PY
echo "before training (the untrained base):"
"$BIN/itune-gpu" eval --model "$DEMO/base" --tasks "$W/eval" --template alpaca --device cpu | tail -2
for mix in similar dissimilar; do
  "$BIN/itune-gpu" train --model "$DEMO/base" --full --data "$W/target" --mixture "$W/$mix.json" --template alpaca \
      --max-steps 400 --batch-size 16 --lr 2e-3 --packing --max-length 128 --output "$W/run-$mix" --device cpu \
      --validation-split 0 | grep -E "mixture:|done:"
  "$BIN/itune-gpu" eval --model "$W/run-$mix/model" --tasks "$W/eval" --template alpaca --device cpu | tail -3
done
