#!/usr/bin/env bash
# The README's T5-family worked example: a small random-init T5 v1.1 / FLAN-T5-shaped model (no
# Hugging Face hub here, so nothing pretrained; scripts/make_t5_demo_model.py) is instruction-tuned
# on 9 of the 12 built-in task families and scored, zero-shot and 2-shot (FLAN's protocol), on the
# 3 held-out families it never trained on and on unseen questions of the 9, before and after.
#   bash scripts/worked_example_t5.sh [WORKDIR]     (needs `make build`, python3 with torch,
#                                                    transformers and tokenizers)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$(cd "$ROOT" && swift build -c release --show-bin-path)}
W=${1:-itune-t5-example}
STEPS=${STEPS:-600}
HELDOUT=${HELDOUT:-"parity compare first-letter"}
DEVICE=${DEVICE:-cpu}
mkdir -p "$W"
"$BIN/itune-gpu" demo-pool --output "$W/pool" --per-file 100 --seed 7
"$BIN/itune-gpu" demo-pool --output "$W/questions" --per-file 10 --seed 99
rm -rf "$W/train" "$W/eval-heldout" "$W/eval-seen"
mkdir -p "$W/train" "$W/eval-heldout" "$W/eval-seen"
cp "$W/pool/"*.jsonl "$W/train/"
cp "$W/questions/"*.jsonl "$W/eval-seen/"
for t in $HELDOUT; do
  rm "$W/train/${t}_"*.jsonl
  mv "$W/eval-seen/${t}_"*.jsonl "$W/eval-heldout/"
done
[ -f "$W/base/model.safetensors" ] || python3 "$ROOT/scripts/make_t5_demo_model.py" --pool "$W/train" --output "$W/base"
evaluate() {  # MODEL LABEL
  for set in heldout seen; do
    for shots in 0 2; do
      "$BIN/itune-gpu" eval --model "$1" --tasks "$W/eval-$set" --shots "$shots" --examples-per-task 20 --seed 1 \
          --device "$DEVICE" --json > "$W/eval-$2-$set-$shots.json"
      python3 - "$W/eval-$2-$set-$shots.json" "$2" "$set" "$shots" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
o = r["overall"]
rank = f'{100 * o["rank_accuracy"]:.1f}%' if "rank_accuracy" in o else "—"
per = ", ".join(f'{t["task"]} {100 * t["exactMatch"]:.0f}%' + (f'/{100 * t["rankAccuracy"]:.0f}%' if t.get("rankAccuracy") is not None else "")
                for t in r["tasks"])
print(f'| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {100 * o["exact_match"]:.1f}% | {rank} | {o["answer_log_likelihood"]:.3f} | {per} |')
PY
    done
  done
}
echo "| model | tasks | shots | exact match | rank accuracy | answer LL/token | per task (exact match/rank accuracy) |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
evaluate "$W/base" before
"$BIN/itune-gpu" train --model "$W/base" --full --data "$W/train" --max-steps "$STEPS" --batch-size 16 --lr 1e-3 \
    --max-length 64 --validation-split 0.02 --eval-every 200 --save-every 200 --output "$W/run" --device "$DEVICE" \
    > "$W/train.log" 2>&1
grep -E "^training:|tokens:|done" "$W/train.log" >&2 || true
tail -n 3 "$W/run/metrics.jsonl" >&2
evaluate "$W/run/model" after
