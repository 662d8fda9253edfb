#!/usr/bin/env python3
"""What FLAN's held-out task protocol gives for a tiny T5 v1.1 model, computed with transformers:
the golden numbers of `eval --tasks` on encoder-decoder models (Tests/Fixtures/models/t5_task_eval.json).

The model is Tests/Fixtures/models/t5v11_gated_untied (scripts/make_t5_fixtures.py) with one change,
made here in memory and by the Swift test alike: lm_head's row of </s> (id 1) becomes EOS_FACTOR times
the row of token EOS_LIKE, so that greedy decoding ends wherever that token would have been chosen
(a random model otherwise never stops, and exact match could not be anything but 0). The tokenizer is
Tests/Fixtures/tokenizers/t5_unigram.

The protocol, zero-shot, for one task of QUESTIONS (instruction, optional input, reference answer):
  encoder input  = instruction, "\\n\\n", input (FLAN's layout), tokenized with </s>
  exact match    = the greedy answer (max_new_tokens = the reference's tokens without </s> + 8, stopping
                   at </s>, special tokens dropped) equals the reference, case and whitespace folded
  log-likelihood = sum over the reference's tokens and its </s> of log p(token | input, earlier tokens);
                   the task's figure is the total over questions divided by their total tokens
  rank accuracy  = how often the reference scores highest among the task's distinct answers
                   (they are at most 10, so they form the options)

Run from the repository root:
    python3 scripts/make_t5_eval_fixtures.py
"""
import json
import os

import torch
import transformers
from transformers import PreTrainedTokenizerFast, T5ForConditionalGeneration

MODEL = os.path.join("Tests", "Fixtures", "models", "t5v11_gated_untied")
TOKENIZER = os.path.join("Tests", "Fixtures", "tokenizers", "t5_unigram", "tokenizer.json")
OUT = os.path.join("Tests", "Fixtures", "models", "t5_task_eval.json")
EOS_LIKE = 363
EOS_FACTOR = 1.5

# (instruction, input or None, reference). Some references are what the model answers (exact match),
# the others are not; the task's answer set is small, so rank classification applies.
QUESTIONS = [
    ("the cat sat", None, "Qu  th"),
    ("reverse: one two three", None, "three two one"),
    ("upper: tokyo", None, "TOKYO"),
    ("the mat house", "red blue", "yes"),
    ("sum: two three", None, "qusした。"),
    ("is the sky green?", None, "no"),
]


def main():
    model = T5ForConditionalGeneration.from_pretrained(MODEL).eval()
    with torch.no_grad():
        model.lm_head.weight[1] = EOS_FACTOR * model.lm_head.weight[EOS_LIKE]
    tok = PreTrainedTokenizerFast(tokenizer_file=TOKENIZER, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    answers = sorted(set(q[2] for q in QUESTIONS))
    norm = lambda s: " ".join(s.lower().split())
    rows = []
    right = rank_right = 0
    ll_total = 0.0
    ll_tokens = 0
    for instruction, inp, reference in QUESTIONS:
        text = instruction if inp is None else instruction + "\n\n" + inp
        ids = tok(text, return_tensors="pt").input_ids
        budget = len(tok(reference, add_special_tokens=False).input_ids) + 8
        with torch.no_grad():
            gen = model.generate(input_ids=ids, max_new_tokens=budget, do_sample=False, num_beams=1, eos_token_id=1)
        tokens = gen[0, 1:].tolist()
        answer = tok.decode(tokens, skip_special_tokens=True)
        scores = {}
        for a in answers:
            labels = tok(a, return_tensors="pt").input_ids
            with torch.no_grad():
                logits = model(input_ids=ids, labels=labels).logits
            logp = torch.log_softmax(logits.double(), dim=-1)[0]
            scores[a] = (logp.gather(1, labels[0][:, None]).sum().item(), labels.shape[1])
        right += norm(answer) == norm(reference)
        rank_right += max(answers, key=lambda a: scores[a][0]) == reference
        ll_total += scores[reference][0]
        ll_tokens += scores[reference][1]
        rows.append({"instruction": instruction, "input": inp, "reference": reference, "encoder_ids": ids[0].tolist(),
                     "greedy_tokens": tokens, "greedy_text": answer,
                     "log_likelihoods": {a: s[0] for a, s in scores.items()}, "tokens": {a: s[1] for a, s in scores.items()}})
    n = len(QUESTIONS)
    expected = {"transformers": transformers.__version__, "eos_like": EOS_LIKE, "eos_factor": EOS_FACTOR,
                "questions": rows, "exact_match": right / n, "rank_accuracy": rank_right / n,
                "answer_log_likelihood": ll_total / ll_tokens, "options": len(answers)}
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
    print(f"exact match {right}/{n}, rank accuracy {rank_right}/{n}, answer log-likelihood {ll_total / ll_tokens:.4f}/token")
    for r in rows:
        print(repr(r["greedy_text"]), "←", repr(r["reference"]))


if __name__ == "__main__":
    main()
