#!/usr/bin/env bash
# The README's JGLUE example: zero-shot JCommonsenseQA and JNLI accuracy (rank classification over
# each question's five answers / the three labels, `eval --tasks`) of a small model before and
# after instruction tuning on a Japanese mixture, against the chance rate. No pretrained model is
# at hand here, so the model is Llama-shaped, initialised at random, with a byte-level BPE
# tokenizer trained on the mixture (`init-model`); the mixture is JCommonsenseQA train under its
# five templates plus the built-in task families in Japanese, all in the ichikara form
# (### 指示: / ### 入力: / ### 回答:). JNLI is never trained on. Validation questions are
# subsampled deterministically (--examples-per-task N, seeded), with a Wilson 95% interval.
#   bash scripts/worked_example_jglue.sh [WORKDIR]        (needs `make build`; JGLUE in ../shared/data/jglue)
# JGLUE (Kurihara et al., LREC 2022) is CC BY-SA 4.0: what this writes from it carries that licence.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$(cd "$ROOT" && swift build -c release --show-bin-path)}
W=${1:-itune-jglue-example}
JGLUE=${JGLUE:-$ROOT/../shared/data/jglue}
N=${N:-300}            # validation questions per task
STEPS=${STEPS:-200}    # optimizer steps of 16 packed rows of 256 tokens (1.4 epochs)
SEED=${SEED:-1}
mkdir -p "$W"
"$BIN/itune-gpu" jglue --source "$JGLUE" --output "$W/eval" --split validation
"$BIN/itune-gpu" jglue --source "$JGLUE" --output "$W/jcqa-train" --split train
"$BIN/itune-gpu" demo-pool --output "$W/pool" --per-file 100 --seed 7 >/dev/null
rm -rf "$W/mixture"; mkdir -p "$W/mixture"
cp "$W"/jcqa-train/*.jsonl "$W/mixture/"
cp "$W"/pool/*_ja[0-9].jsonl "$W/mixture/"
echo "mixture: $(cat "$W"/mixture/jcommonsenseqa_*.jsonl | wc -l) JCommonsenseQA train questions + $(cat "$W"/mixture/*_ja[0-9].jsonl | wc -l) built-in Japanese task records"
"$BIN/itune-gpu" init-model --data "$W/mixture" --template alpaca-ja --vocab-size 2000 \
    --hidden-size 128 --layers 4 --max-positions 256 --seed "$SEED" --output "$W/base"
EVAL=(--tasks "$W/eval" --template alpaca-ja --examples-per-task "$N" --seed 0 --device cpu --json)
"$BIN/itune-gpu" eval --model "$W/base" "${EVAL[@]}" > "$W/before.json"
"$BIN/itune-gpu" train --model "$W/base" --full --data "$W/mixture" --template alpaca-ja --max-steps "$STEPS" --batch-size 16 \
    --lr 2e-3 --warmup-ratio 0.05 --packing --max-length 256 --seed "$SEED" --validation-split 0 --output "$W/run" --device cpu \
    | grep -E "^(tokens|done)"
"$BIN/itune-gpu" eval --model "$W/run/model" "${EVAL[@]}" > "$W/after.json"
python3 - "$W" "$JGLUE" <<'PY'
import json, math, sys
w, jglue = sys.argv[1], sys.argv[2]
def wilson(k, n, z=1.959964):
    p = k / n; d = 1 + z * z / n; c = (p + z * z / (2 * n)) / d; h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h
labels = [json.loads(l)["label"] for l in open(f"{jglue}/jnli-valid-v1.3.json") if l.strip()]
majority = max(labels.count(x) for x in set(labels)) / len(labels)
chance = {"jcommonsenseqa": (0.2, "1/5"), "jnli": (1 / 3, f"1/3; always the majority label, neutral: {majority:.1%}")}
runs = {k: {t["task"]: t for t in json.load(open(f"{w}/{k}.json"))["tasks"]} for k in ("before", "after")}
print("| task | n | chance | rank accuracy before [95% CI] | after [95% CI] | answer log-likelihood/token before → after |")
print("| --- | ---: | --- | --- | --- | --- |")
for task in ("jcommonsenseqa", "jnli"):
    cells = []
    for k in ("before", "after"):
        t = runs[k][task]; n = t["examples"]; right = round(t["rankAccuracy"] * n); lo, hi = wilson(right, n)
        cells.append(f"{right / n:.1%} [{lo:.1%}, {hi:.1%}]")
    ll = f'{runs["before"][task]["answerLogLikelihood"]:.2f} → {runs["after"][task]["answerLogLikelihood"]:.2f}'
    print(f"| {task} | {n} | {chance[task][0]:.1%} ({chance[task][1]}) | {cells[0]} | {cells[1]} | {ll} |")
PY
