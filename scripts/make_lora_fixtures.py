#!/usr/bin/env python3
"""PEFT LoRA adapters on the tiny fixture models, with the logits transformers+PEFT give, for
Tests/ITuneModelsTests/LoRATests.swift: loading a PEFT adapter must reproduce PEFT's output.

    python3 scripts/make_lora_fixtures.py      # needs torch, transformers, peft

Writes Tests/Fixtures/adapters/<name>/{adapter_config.json, adapter_model.safetensors, expected.json}.
B is initialised randomly (init_lora_weights=False) so that the adapter changes the output.
"""
import json
import os

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = [
    ("llama_gqa_lora", "llama_gqa_untied",
     dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])),
    ("gpt2_rslora", "gpt2",
     dict(r=3, lora_alpha=6, target_modules=["c_attn", "c_proj", "c_fc"], use_rslora=True, fan_in_fan_out=True)),
]

for name, base, kw in CASES:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "Tests/Fixtures/models", base), torch_dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(lora_dropout=0.0, init_lora_weights=False, task_type="CAUSAL_LM", **kw))
    # Larger B so that the update is well above float noise.
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.mul_(20.0)
    peft_model.eval()
    out = os.path.join(ROOT, "Tests/Fixtures/adapters", name)
    os.makedirs(out, exist_ok=True)
    peft_model.save_pretrained(out)
    os.remove(os.path.join(out, "README.md"))  # PEFT's model card template
    cfg_path = os.path.join(out, "adapter_config.json")
    cfg = json.load(open(cfg_path))
    cfg["base_model_name_or_path"] = "Tests/Fixtures/models/" + base  # not this machine's absolute path
    json.dump(cfg, open(cfg_path, "w"), indent=2, sort_keys=True)
    ids = torch.tensor([[1, 5, 9, 77, 200, 13, 2, 8]])
    with torch.no_grad():
        logits = peft_model(ids).logits[0].tolist()
    json.dump({"base": base, "input_ids": ids[0].tolist(), "logits": logits}, open(os.path.join(out, "expected.json"), "w"))
    print(name, "→", out, sorted(os.listdir(out)))
