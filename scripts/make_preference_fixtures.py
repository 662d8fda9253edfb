#!/usr/bin/env python3
"""Golden DPO / IPO / cDPO / ORPO losses, metrics and gradients from TRL itself, for
Tests/ITuneTrainTests/PreferenceLossTests.swift.

    pip install trl    # TRL 1.16 here; torch, transformers, peft as for the other fixture scripts
    python3 scripts/make_preference_fixtures.py

The model is the tiny random Llama of Tests/Fixtures/models/llama_gqa_untied (make_model_fixtures.py).
The losses are TRL's own code, not a copy: a real `DPOTrainer` (or `ORPOTrainer`) is built on that
model with a one-record dataset and a word-level tokenizer over its 320 ids, and its
`_compute_loss` (DPO) / `get_batch_loss_metrics` (ORPO) are called on a hand-made padded batch
of two preference pairs; `loss.backward()` gives the gradients.

- LoRA: PEFT adapters on q_proj, v_proj, down_proj (r 4, alpha 8) with random A and B (so the
  policy differs from the reference, which TRL takes as the base with the adapter disabled: the
  trainer is given the base and a `peft_config`, then the adapter's weights are set),
  written to preference/lora_adapter in PEFT's format; gradients of every lora_A/lora_B.
- Full fine-tuning: the policy is the base with small seeded noise added to every weight
  (preference/full_policy, a model directory), the reference is the base itself (DPOTrainer's
  `ref_model`); gradients of a few weights.
- Conservative DPO (label smoothing): TRL 1.16's "sigmoid" loss no longer takes
  label_smoothing; its "aot" loss computes -(1-ε)·logσ(βΔ) - ε·logσ(-βΔ) on sorted log-ratios,
  which for a batch of ONE pair is exactly cDPO (sorting one value changes nothing). That case
  therefore uses the first pair alone.

bf16=False: TRL's configs default to bf16 autocast, which accelerate wraps around the reference
model's forward (not around a direct `_compute_loss` call's policy forward); fp32 is the reference.

Writes Tests/Fixtures/preference/{lora_adapter/, full_policy/, cases.json}.
"""
import json
import os
import shutil
import tempfile

import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
from trl import DPOConfig, DPOTrainer
from trl.experimental.orpo import ORPOConfig, ORPOTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = os.path.join(ROOT, "Tests/Fixtures/models/llama_gqa_untied")
OUT = os.path.join(ROOT, "Tests/Fixtures/preference")
TMP = tempfile.mkdtemp()
PAD = 0

# Two pairs: prompt ids (bos first), chosen and rejected answers (eos last), of unequal lengths.
PAIRS = [
    dict(prompt=[1, 5, 6, 40], chosen=[7, 19, 2], rejected=[8, 2]),
    dict(prompt=[1, 77, 13, 9, 101, 55], chosen=[200, 31, 12, 2], rejected=[64, 17, 250, 3, 2]),
]
LORA = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], lora_dropout=0.0)
FULL_GRADS = ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight", "model.norm.weight"]


def tokenizer():
    vocab = {f"t{i}": i for i in range(320)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t3"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="t1", eos_token="t2", pad_token="t0")


def base_model():
    return AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32)


def rows(pairs):
    """Each pair's chosen and rejected rows: ids and HF labels (-100 on the prompt)."""
    out = []
    for p in pairs:
        for side in ("chosen", "rejected"):
            ids = p["prompt"] + p[side]
            out.append((ids, [-100] * len(p["prompt"]) + p[side]))
    return out


def dpo_batch(pairs):
    """DPOTrainer's collated layout: all chosen rows, then all rejected rows, right-padded."""
    seqs = [p["prompt"] + p["chosen"] for p in pairs] + [p["prompt"] + p["rejected"] for p in pairs]
    prompts = [len(p["prompt"]) for p in pairs] * 2
    T = max(map(len, seqs))
    ids = torch.full((len(seqs), T), PAD)
    am = torch.zeros_like(ids)
    cm = torch.zeros_like(ids)
    for i, (s, n) in enumerate(zip(seqs, prompts)):
        ids[i, :len(s)] = torch.tensor(s)
        am[i, :len(s)] = 1
        cm[i, n:len(s)] = 1
    return {"input_ids": ids, "attention_mask": am, "completion_mask": cm}


def orpo_batch(pairs):
    """ORPOTrainer's batch layout: chosen_* and rejected_* (labels -100 on prompt and padding)."""
    batch = {}
    for side in ("chosen", "rejected"):
        seqs = [p["prompt"] + p[side] for p in pairs]
        T = max(map(len, seqs))
        ids = torch.full((len(seqs), T), PAD)
        am = torch.zeros_like(ids)
        labels = torch.full((len(seqs), T), -100)
        for i, (s, p) in enumerate(zip(seqs, pairs)):
            ids[i, :len(s)] = torch.tensor(s)
            am[i, :len(s)] = 1
            labels[i, len(p["prompt"]):len(s)] = torch.tensor(p[side])
        batch[f"{side}_input_ids"], batch[f"{side}_attention_mask"], batch[f"{side}_labels"] = ids, am, labels
    return batch


def one_record():
    return Dataset.from_dict({"prompt": ["t5 t6"], "chosen": [" t7"], "rejected": [" t8"]})


def lora_policy():
    torch.manual_seed(0)
    m = get_peft_model(base_model(), LoraConfig(init_lora_weights=False, task_type="CAUSAL_LM", **LORA))
    with torch.no_grad():  # larger B: the policy is well away from the reference
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.mul_(10.0)
    return m


def with_adapter(trainer, source):
    """A trainer built with `peft_config` has a fresh adapter (its reference: the base with the
    adapter disabled); its weights are set to `source`'s. (A PeftModel passed in instead would
    make TRL keep a copy of the adapter as the reference, under the name "ref".)"""
    values = {n.replace(".default", ""): p for n, p in source.named_parameters() if "lora_" in n}
    with torch.no_grad():
        for n, p in trainer.model.named_parameters():
            if "lora_" in n:
                p.copy_(values[n.replace(".default", "")])
    return trainer


def full_policy():
    torch.manual_seed(1)
    m = base_model()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return m


def grads(model, names=None):
    out = {}
    for n, p in model.named_parameters():
        if p.grad is None:
            continue
        name = n.replace(".default", "")
        if names is None or name in names:
            # 9 significant digits round-trip a float32 (and keep the file small).
            out[name] = [float("%.9g" % v) for v in p.grad.detach().flatten().tolist()]
    return out


def build(cls, args, mode, **kw):
    if mode == "lora":
        trainer = cls(model=base_model(), args=args, train_dataset=one_record(), processing_class=tokenizer(),
                      peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA))
        return with_adapter(trainer, lora_policy())
    return cls(model=full_policy(), args=args, train_dataset=one_record(), processing_class=tokenizer(), **kw)


def run_dpo(mode, loss_type, beta, pairs, label_smoothing=0.0):
    args = DPOConfig(output_dir=os.path.join(TMP, "dpo"), report_to=[], use_cpu=True, bf16=False, beta=beta, loss_type=[loss_type],
                     label_smoothing=label_smoothing)
    trainer = build(DPOTrainer, args, mode, **({} if mode == "lora" else {"ref_model": base_model()}))
    trainer.model.train()
    trainer.model.zero_grad()
    loss = trainer._compute_loss(trainer.model, dpo_batch(pairs), False)
    loss.backward()
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()
               if k.startswith("rewards/") or k.startswith("logps/")}
    return trainer.model, loss.item(), metrics


def run_orpo(mode, lam, pairs):
    args = ORPOConfig(output_dir=os.path.join(TMP, "orpo"), report_to=[], use_cpu=True, bf16=False, beta=lam)
    trainer = build(ORPOTrainer, args, mode)
    trainer.model.train()
    trainer.model.zero_grad()
    loss, metrics = trainer.get_batch_loss_metrics(trainer.model, orpo_batch(pairs), train_eval="train")
    loss.backward()
    keep = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected",
            "nll_loss", "log_odds_ratio", "log_odds_chosen"]
    return trainer.model, loss.item(), {k: metrics[k] for k in keep}


os.makedirs(OUT, exist_ok=True)
# The adapter and the full-FT policy, written once, as the Swift side loads them.
lp = lora_policy()
adir = os.path.join(OUT, "lora_adapter")
shutil.rmtree(adir, ignore_errors=True)
lp.save_pretrained(adir)
os.remove(os.path.join(adir, "README.md"))
cfg_path = os.path.join(adir, "adapter_config.json")
cfg = json.load(open(cfg_path))
cfg["base_model_name_or_path"] = "Tests/Fixtures/models/llama_gqa_untied"
json.dump(cfg, open(cfg_path, "w"), indent=2, sort_keys=True)
fdir = os.path.join(OUT, "full_policy")
shutil.rmtree(fdir, ignore_errors=True)
full_policy().save_pretrained(fdir)
for extra in ("generation_config.json",):
    if os.path.exists(os.path.join(fdir, extra)):
        os.remove(os.path.join(fdir, extra))

cases = []
specs = [
    ("dpo_sigmoid_lora", "dpo", "lora", dict(loss_type="sigmoid", beta=0.1), PAIRS),
    ("dpo_sigmoid_beta05_lora", "dpo", "lora", dict(loss_type="sigmoid", beta=0.5), PAIRS),
    ("dpo_cdpo_lora", "dpo", "lora", dict(loss_type="aot", beta=0.1, label_smoothing=0.2), PAIRS[:1]),
    ("dpo_ipo_lora", "dpo", "lora", dict(loss_type="ipo", beta=0.1), PAIRS),
    ("orpo_lora", "orpo", "lora", dict(lam=0.1), PAIRS),
    ("dpo_sigmoid_full", "dpo", "full", dict(loss_type="sigmoid", beta=0.1), PAIRS),
    ("dpo_ipo_full", "dpo", "full", dict(loss_type="ipo", beta=0.25), PAIRS),
    ("orpo_full", "orpo", "full", dict(lam=0.25), PAIRS),
]
for name, method, mode, kw, pairs in specs:
    if method == "dpo":
        model, loss, metrics = run_dpo(mode, kw["loss_type"], kw["beta"], pairs, kw.get("label_smoothing", 0.0))
    else:
        model, loss, metrics = run_orpo(mode, kw["lam"], pairs)
    g = grads(model, None if mode == "lora" else FULL_GRADS)
    loss_type = {"aot": "sigmoid"}.get(kw.get("loss_type"), kw.get("loss_type"))
    cases.append(dict(name=name, method=method, mode=mode, loss_type=loss_type, beta=kw.get("beta"),
                      label_smoothing=kw.get("label_smoothing", 0.0), lam=kw.get("lam"),
                      rows=[dict(ids=i, labels=l) for i, l in rows(pairs)], loss=loss, metrics=metrics, grads=g))
    print(name, loss, metrics)
json.dump({"trl": __import__("trl").__version__, "pad_id": PAD, "cases": cases}, open(os.path.join(OUT, "cases.json"), "w"))
shutil.rmtree(TMP, ignore_errors=True)
