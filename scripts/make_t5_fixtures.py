#!/usr/bin/env python3
"""Tiny random T5-family models and what transformers computes with them: the golden fixtures of
the encoder-decoder tests (Tests/Fixtures/models/<name>/).

Needs torch, transformers and safetensors (pip). Nothing is downloaded: every model is built from a
config here with a fixed seed, its vocabulary the size of the Unigram fixture tokenizer it goes with
(scripts/make_unigram_fixtures.py). Three layouts:
  t5_relu_tied       original T5: ReLU feed-forward (wi, wo), lm_head tied to `shared`, decoder output
                     rescaled by d_model^-0.5
  t5v11_gated_untied T5 v1.1 / FLAN-T5: gated-GELU (wi_0, wi_1, wo, gelu_new), its own lm_head, no rescale
  mt5_gated_untied   MT5ForConditionalGeneration, as v1.1, with the byte-fallback tokenizer's vocabulary
  t5v11_gated_untied_lora  a PEFT LoRA adapter (PEFT's T5 names q, k, v, o, wi_0, wi_1, wo; B random so
                     it matters) on t5v11_gated_untied, saved by PEFT, with the adapted model's loss and
                     the gradients of some adapter tensors for the fixture batch
The untied ones are written as the Hub's checkpoints are (config `tie_word_embeddings: false`,
`lm_head.weight` in the file); the reference outputs come from loading the written directory back,
so they are what transformers does with the files as they stand. expected.json holds the encoder
input ids and attention mask (row 1 padded), the labels (row 1's tail -100), the logits and the loss,
and greedy_tokens: transformers' greedy generate (10 new tokens, no eos stop) for row 0.

Run from the repository root:
    python3 scripts/make_t5_fixtures.py
"""
import json
import os
import shutil

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import MT5Config, MT5ForConditionalGeneration, T5Config, T5ForConditionalGeneration

OUT = os.path.join("Tests", "Fixtures", "models")
TOKENIZERS = os.path.join("Tests", "Fixtures", "tokenizers")


def vocab_size(tokenizer):
    with open(os.path.join(TOKENIZERS, tokenizer, "expected.json"), encoding="utf-8") as f:
        return json.load(f)["vocab_size"]


def common(vocab, ff):
    return dict(vocab_size=vocab, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
                relative_attention_num_buckets=8, relative_attention_max_distance=12, dropout_rate=0.0,
                layer_norm_epsilon=1e-6, feed_forward_proj=ff, decoder_start_token_id=0, pad_token_id=0,
                eos_token_id=1)


def models():
    t5_vocab = vocab_size("t5_unigram")
    yield "t5_relu_tied", T5ForConditionalGeneration, T5Config(**common(t5_vocab, "relu"), tie_word_embeddings=True), True
    yield "t5v11_gated_untied", T5ForConditionalGeneration, T5Config(**common(t5_vocab, "gated-gelu")), False
    mt5_vocab = vocab_size("mt5_unigram_bytefallback")
    yield "mt5_gated_untied", MT5ForConditionalGeneration, MT5Config(**common(mt5_vocab, "gated-gelu")), False


def randomize(model, seed):
    """Weights large enough that logits are far from uniform; norms around one; a relative
    position bias big enough to matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif "relative_attention_bias" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def write_peft_adapter(model, batch, path, base):
    from peft import LoraConfig, get_peft_model
    peft_model = get_peft_model(model, LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False, task_type="SEQ_2_SEQ_LM",
        target_modules=["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"]))
    g = torch.Generator().manual_seed(78)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    peft_model.eval()
    out = peft_model(**batch)
    out.loss.backward()
    wanted = ["encoder.block.0.layer.0.SelfAttention.q", "encoder.block.1.layer.1.DenseReluDense.wi_0",
              "decoder.block.0.layer.1.EncDecAttention.k", "decoder.block.1.layer.2.DenseReluDense.wo"]
    grads = {}
    for name, p in peft_model.named_parameters():
        for w in wanted:
            for side in ("lora_A", "lora_B"):
                if f".{w}.{side}." in name:
                    grads[f"base_model.model.{w}.{side}.weight"] = [round(x, 9) for x in p.grad.flatten().tolist()]
    shutil.rmtree(path, ignore_errors=True)
    peft_model.save_pretrained(path)
    os.remove(os.path.join(path, "README.md"))  # PEFT's model card: not a fixture
    with open(os.path.join(path, "expected.json"), "w") as f:
        json.dump({"base": base, "loss": out.loss.item(), "gradients": grads,
                   "logits": [round(x, 7) for x in out.logits.flatten().tolist()]}, f)
    print(f"{os.path.basename(path)}: loss {out.loss.item():.4f}, {len(grads)} gradients")


def buckets():
    """T5Attention._relative_position_bucket on the grids the tests check, both directions."""
    from transformers.models.t5.modeling_t5 import T5Attention
    cases = []
    for q, k, offset, nb, md in [(9, 9, 0, 8, 12), (40, 300, 0, 32, 128), (1, 77, 76, 32, 128), (5, 5, 0, 4, 4)]:
        context = torch.arange(q, dtype=torch.long)[:, None] + offset
        memory = torch.arange(k, dtype=torch.long)[None, :]
        for bidirectional in (True, False):
            b = T5Attention._relative_position_bucket(memory - context, bidirectional=bidirectional, num_buckets=nb,
                                                      max_distance=md)
            cases.append({"queries": q, "keys": k, "query_offset": offset, "num_buckets": nb, "max_distance": md,
                          "bidirectional": bidirectional, "buckets": b.flatten().tolist()})
    with open(os.path.join(OUT, "t5_relative_buckets.json"), "w") as f:
        json.dump(cases, f)


def main():
    buckets()
    for i, (name, cls, config, tied) in enumerate(models()):
        torch.manual_seed(0)
        model = cls(config)
        randomize(model, 500 + i)
        path = os.path.join(OUT, name)
        shutil.rmtree(path, ignore_errors=True)
        model.save_pretrained(path, safe_serialization=True)
        for extra in ("generation_config.json",):
            if os.path.exists(os.path.join(path, extra)):
                os.remove(os.path.join(path, extra))
        # Configs as the Hub's T5 checkpoints have them: no `scale_decoder_outputs` (newer
        # transformers derives it from tie_word_embeddings), untied ones with their own lm_head.
        config_path = os.path.join(path, "config.json")
        with open(config_path) as f:
            cfg = json.load(f)
        cfg.pop("scale_decoder_outputs", None)
        cfg["tie_word_embeddings"] = tied
        with open(config_path, "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
        if not tied:
            st = os.path.join(path, "model.safetensors")
            tensors = load_file(st)
            g = torch.Generator().manual_seed(900 + i)
            tensors["lm_head.weight"] = 0.1 * torch.randn(tensors["shared.weight"].shape, generator=g)
            save_file(tensors, st, metadata={"format": "pt"})

        reference = cls.from_pretrained(path)
        reference.eval()
        V = config.vocab_size
        g = torch.Generator().manual_seed(1234)
        input_ids = torch.randint(3, V, (2, 9), generator=g)
        attention_mask = torch.ones_like(input_ids)
        attention_mask[1, 6:] = 0
        input_ids[1, 6:] = 0
        labels = torch.randint(3, V, (2, 6), generator=g)
        labels[:, 5] = 1
        labels[1, 4:] = -100
        with torch.no_grad():
            out = reference(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
            gen = reference.generate(input_ids=input_ids[:1], max_new_tokens=10, do_sample=False, num_beams=1,
                                     eos_token_id=None)
        expected = {
            "transformers": transformers.__version__,
            "input_ids": input_ids.tolist(),
            "attention_mask": attention_mask.tolist(),
            "labels": labels.tolist(),
            "logits": [round(x, 7) for x in out.logits.flatten().tolist()],
            "logits_shape": list(out.logits.shape),
            "loss": out.loss.item(),
            "greedy_tokens": gen[0, 1:].tolist(),
            "lm_head_tied": reference.lm_head.weight.data_ptr() == reference.shared.weight.data_ptr(),
        }
        with open(os.path.join(path, "expected.json"), "w") as f:
            json.dump(expected, f)
        if name == "t5v11_gated_untied":
            write_peft_adapter(reference, dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels),
                               path + "_lora", name)
        files = sorted(os.listdir(path))
        size = sum(os.path.getsize(os.path.join(path, f)) for f in files)
        print(f"{name}: {files} {size / 1024:.0f} KiB loss {out.loss.item():.4f} tied {expected['lm_head_tied']}")


if __name__ == "__main__":
    main()
