#!/usr/bin/env python3
"""Tiny random Hugging Face models and the logits, losses and greedy tokens transformers gives
for them: the golden fixtures of the model tests (Tests/Fixtures/models/<name>/).

Needs torch, transformers and safetensors (pip); the Phi-3 PEFT adapter also needs peft. Nothing
is downloaded: every model is built from a config here with a fixed seed. Run from the repository
root, optionally naming the fixtures to (re)write (default: all):
    python3 scripts/make_model_fixtures.py [phi3_fused ...]
"""
import json
import os
import shutil
import sys

import torch
import transformers
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Phi3Config, Phi3ForCausalLM, Qwen2Config, Qwen2ForCausalLM)

OUT = os.path.join("Tests", "Fixtures", "models")
VOCAB = 320


def randomize(model, seed):
    """Weights large enough that logits are far from uniform; norms around one."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or ".ln_" in name or name.startswith("ln_") or "ln_f" in name:
                if name.endswith("weight"):
                    p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=g))


def models():
    yield "llama_gqa_untied", LlamaForCausalLM(LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=112, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)), {}
    yield "llama_tied_headdim20_llama3rope", LlamaForCausalLM(LlamaConfig(
        vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, head_dim=20, max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 32},
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)), {"dtype": "bf16"}
    yield "qwen2_qkv_bias", Qwen2ForCausalLM(Qwen2Config(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)), {"dtype": "f16", "shards": True}
    yield "mistral_gqa", MistralForCausalLM(MistralConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=8,
        num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
        sliding_window=None, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)), {}
    yield "gpt2", GPT2LMHeadModel(GPT2Config(
        vocab_size=VOCAB, n_embd=48, n_layer=2, n_head=4, n_positions=64, bos_token_id=1, eos_token_id=2)), {}
    # Fused qkv_proj (GQA: 4 query heads over 2 kv heads) and gate_up_proj; a sliding window longer
    # than the test sequences (which then compute as full attention).
    yield "phi3_fused", Phi3ForCausalLM(Phi3Config(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, original_max_position_embeddings=64, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, sliding_window=48,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0)), {"lora": True}


def write_phi3_adapter(model, ids, path):
    """A PEFT LoRA on the fused modules (B random, so that it changes the output), saved as PEFT
    saves it, with the logits of the adapted model: loading it must reproduce PEFT."""
    from peft import LoraConfig, get_peft_model
    peft_model = get_peft_model(model, LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False, task_type="CAUSAL_LM",
        target_modules=["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]))
    g = torch.Generator().manual_seed(77)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    peft_model.eval()
    with torch.no_grad():
        logits = peft_model(input_ids=ids[:1]).logits[0]
    shutil.rmtree(path, ignore_errors=True)
    peft_model.save_pretrained(path)
    os.remove(os.path.join(path, "README.md"))  # PEFT's model card: not a fixture
    with open(os.path.join(path, "expected.json"), "w") as f:
        json.dump({"base": "phi3_fused", "input_ids": ids[0].tolist(),
                   "logits": [[round(x, 7) for x in row] for row in logits.tolist()]}, f)


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(3, VOCAB, (2, 11), generator=g)
    labels = ids.clone()
    labels[0, :4] = -100      # a masked prompt
    labels[1, 7] = -100
    wanted = set(sys.argv[1:])
    for i, (name, model, opts) in enumerate(models()):
        if wanted and name not in wanted:
            continue
        randomize(model, 100 + i)
        model.eval()
        dtype = opts.get("dtype")
        if dtype:
            # Stored in half precision; the reference runs the rounded weights in f32, as we do.
            cast = torch.bfloat16 if dtype == "bf16" else torch.float16
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(p.to(cast).to(torch.float32))
        with torch.no_grad():
            out = model(input_ids=ids, labels=labels)
            gen = model.generate(ids[:1, :5], max_new_tokens=8, do_sample=False, pad_token_id=0,
                                 eos_token_id=None)
        path = os.path.join(OUT, name)
        shutil.rmtree(path, ignore_errors=True)
        save = model.to(torch.bfloat16 if dtype == "bf16" else torch.float16) if dtype else model
        save.save_pretrained(path, safe_serialization=True,
                             max_shard_size="60KB" if opts.get("shards") else "100MB")
        if name == "gpt2":
            # The original GPT-2 checkpoints name tensors without the `transformer.` prefix.
            from safetensors.torch import load_file, save_file
            st = os.path.join(path, "model.safetensors")
            tensors = {k.removeprefix("transformer."): v for k, v in load_file(st).items()}
            save_file(tensors, st, metadata={"format": "pt"})
        for extra in ("generation_config.json",):
            p = os.path.join(path, extra)
            if os.path.exists(p):
                os.remove(p)
        expected = {
            "transformers": transformers.__version__,
            "input_ids": ids.tolist(),
            "labels": labels.tolist(),
            "logits": [round(x, 7) for x in out.logits.flatten().tolist()],
            "logits_shape": list(out.logits.shape),
            "loss": out.loss.item(),
            "greedy_prompt": ids[:1, :5].tolist()[0],
            "greedy_tokens": gen[0, 5:].tolist(),
        }
        with open(os.path.join(path, "expected.json"), "w") as f:
            json.dump(expected, f)
        if opts.get("lora"):
            write_phi3_adapter(model, ids, path + "_lora")
        files = sorted(os.listdir(path))
        size = sum(os.path.getsize(os.path.join(path, f)) for f in files)
        print(f"{name}: {files} {size/1024:.0f} KiB loss {out.loss.item():.4f}")


if __name__ == "__main__":
    main()
