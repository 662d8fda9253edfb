#!/usr/bin/env python3
"""Loads what itune-gpu wrote with the Hugging Face stack and prints greedy continuations, to
compare with `itune-gpu generate` on the same prompt:

    python3 scripts/check_hf_outputs.py --model itune-demo/model --prompt "..." [--adapter out/adapter]

The model directory goes through AutoModelForCausalLM and AutoTokenizer (tokenizer.json), the
adapter through peft.PeftModel.from_pretrained. Prints the generated text and the adapter's
tensor count.
"""
import argparse

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--adapter")
ap.add_argument("--prompt", required=True)
ap.add_argument("--max-new-tokens", type=int, default=12)
a = ap.parse_args()

tok = AutoTokenizer.from_pretrained(a.model)
model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32)
if a.adapter:
    from peft import PeftModel
    model = PeftModel.from_pretrained(model, a.adapter)
    n = sum(1 for name, _ in model.named_parameters() if "lora_" in name)
    print(f"peft: loaded {n} LoRA tensors from {a.adapter}")
model.eval()
ids = tok(a.prompt, return_tensors="pt").input_ids
with torch.no_grad():
    out = model.generate(ids, max_new_tokens=a.max_new_tokens, do_sample=False, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
print("transformers:", repr(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)))
