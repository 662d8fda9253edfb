#!/usr/bin/env python3
"""Golden GGUF expectations for Tests/ITuneExportTests, written with the `gguf` package (PyPI).

For each tiny model (weights from a hash formula that the Swift test reproduces bit for bit, so
no model file is committed) this builds the GGUF file that llama.cpp's convert_hf_to_gguf.py
would write — same keys in the same order and types, tensor names, Q/K permutation, storage
types and gguf.quants encodings — with gguf.GGUFWriter, and records every key, every tensor
(type, shape, offset, sha256 of its bytes) and the sha256 of the whole file, per dtype. It also
writes a LoRA adapter (PEFT layout, rsLoRA) and the llama.cpp LoRA GGUF expected from it, and
q8_0 blocks of awkward inputs (ties at .5, zeros, one huge value) quantised by gguf.quants.

Deliberate differences from the converter, mirrored here and in ITuneExport:
- general.alignment = 32 is written (the converter leaves the default implicit);
- general.name is given explicitly (the converter takes the directory name);
- SentencePiece-style tokenizers without tokenizer.model: the converter's LlamaHfVocab scores
  every token -1000; we score the token made by merge k as -k (others 0) so that llama.cpp's
  highest-score-first merging reproduces BPE;
- tokenizer.ggml.pre is named from the pre-tokenizer's regex ("qwen2" here), where the converter
  hashes the encoding of a test string against its table of known models.

Usage: python scripts/make_gguf_fixtures.py  (needs gguf, numpy, transformers, safetensors)
"""
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path = [p for p in sys.path if "llama.cpp" not in p]
import gguf  # noqa: E402
from gguf import GGMLQuantizationType as QT  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests", "Fixtures", "export")
TOK = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers")


def fnv1a32(s: str) -> int:
    h = 0x811C9DC5
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def weight(name: str, shape, norm=False) -> np.ndarray:
    """The test weights: value k of `name` = ((k·2654435761 + fnv1a32(name)) mod 2³² >> 8) / 2²⁴ − ½,
    times 0.2 (plus 1 for norms), all in float32, so Swift computes the same bits."""
    n = int(np.prod(shape))
    k = np.arange(n, dtype=np.uint64)
    x = ((k * np.uint64(2654435761) + np.uint64(fnv1a32(name))) & np.uint64(0xFFFFFFFF)) >> np.uint64(8)
    v = (x.astype(np.float32) / np.float32(16777216.0) - np.float32(0.5)) * np.float32(0.2)
    if norm:
        v = v + np.float32(1.0)
    return v.astype(np.float32).reshape(shape)


CASES = {
    "llama_spm": dict(
        tokenizer="llama2_metaspace_bytefallback",
        config={
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 961, "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "head_dim": 16, "max_position_embeddings": 128, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
            "tie_word_embeddings": False, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2,
            "attention_bias": False, "mlp_bias": False, "torch_dtype": "float32",
        },
        gguf_arch="llama", permute=True, spm=True),
    "qwen2_bpe": dict(
        tokenizer="qwen2_style",
        config={
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 961, "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 256, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
            "tie_word_embeddings": True, "hidden_act": "silu", "use_sliding_window": False,
            "bos_token_id": 959, "eos_token_id": 960, "torch_dtype": "float32",
        },
        gguf_arch="qwen2", permute=False, pre="qwen2"),
    # Llama 3 style: byte-level BPE under the llama architecture, llama3 rope scaling (a
    # rope_freqs tensor), tied embeddings, no head_dim in config.json, ids padded to vocab_size.
    "llama3_bpe": dict(
        tokenizer="llama3_style",
        config={
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 992, "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
            "max_position_embeddings": 128, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 32},
            "tie_word_embeddings": True, "hidden_act": "silu", "bos_token_id": 0, "eos_token_id": 985,
            "attention_bias": False, "mlp_bias": False, "torch_dtype": "float32",
        },
        gguf_arch="llama", permute=True, pre="llama-bpe", spm=False),
    # GPT-2: Conv1D weights transposed, learned positions kept f32, LayerNorm weights and biases.
    "gpt2_bpe": dict(
        tokenizer="gpt2_style",
        config={
            "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 904, "n_embd": 32, "n_layer": 1,
            "n_head": 2, "n_positions": 64, "n_ctx": 64, "layer_norm_epsilon": 1e-05, "activation_function": "gelu_new",
            "tie_word_embeddings": True, "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "float32",
        },
        gguf_arch="gpt2", permute=False, pre="gpt-2"),
}


def hf_params(cfg):
    """transformers' parameter names and shapes, in ITuneModels' namedParameters order."""
    if cfg["model_type"] == "gpt2":
        C, V = cfg["n_embd"], cfg["vocab_size"]
        out = [("transformer.wte.weight", (V, C), False), ("transformer.wpe.weight", (cfg["n_positions"], C), False)]
        for i in range(cfg["n_layer"]):
            p = f"transformer.h.{i}"
            for mod, shape in (("ln_1", None), ("attn.c_attn", (C, 3 * C)), ("attn.c_proj", (C, C)), ("ln_2", None),
                               ("mlp.c_fc", (C, 4 * C)), ("mlp.c_proj", (4 * C, C))):
                if shape is None:
                    out += [(f"{p}.{mod}.weight", (C,), True), (f"{p}.{mod}.bias", (C,), False)]
                else:
                    out += [(f"{p}.{mod}.weight", shape, False), (f"{p}.{mod}.bias", (shape[1],), False)]
        return out + [("transformer.ln_f.weight", (C,), True), ("transformer.ln_f.bias", (C,), False)]
    H, I = cfg["hidden_size"], cfg["intermediate_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim", H // nh)
    qwen = cfg["model_type"] == "qwen2"
    out = [("model.embed_tokens.weight", (cfg["vocab_size"], H), False)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out.append((f"{p}.input_layernorm.weight", (H,), True))
        for proj, rows in (("q_proj", nh * d), ("k_proj", nkv * d), ("v_proj", nkv * d)):
            out.append((f"{p}.self_attn.{proj}.weight", (rows, H), False))
            if qwen:
                out.append((f"{p}.self_attn.{proj}.bias", (rows,), False))
        out.append((f"{p}.self_attn.o_proj.weight", (H, nh * d), False))
        out.append((f"{p}.post_attention_layernorm.weight", (H,), True))
        out += [(f"{p}.mlp.gate_proj.weight", (I, H), False), (f"{p}.mlp.up_proj.weight", (I, H), False),
                (f"{p}.mlp.down_proj.weight", (H, I), False)]
    out.append(("model.norm.weight", (H,), True))
    if not cfg["tie_word_embeddings"]:
        out.append(("lm_head.weight", (cfg["vocab_size"], H), False))
    return out


LAYER = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
         "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
         "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


GPT2 = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
        "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}


def gguf_name(hf):
    if hf.startswith("transformer."):
        fixed = {"transformer.wte.weight": "token_embd.weight", "transformer.wpe.weight": "position_embd.weight",
                 "transformer.ln_f.weight": "output_norm.weight", "transformer.ln_f.bias": "output_norm.bias"}
        if hf in fixed:
            return fixed[hf]
        _, _, i, rest = hf.split(".", 3)
        stem, suffix = rest.rsplit(".", 1)
        return f"blk.{i}.{GPT2[stem]}.{suffix}"
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf in fixed:
        return fixed[hf]
    _, _, i, rest = hf.split(".", 3)
    stem, suffix = rest.rsplit(".", 1)
    return f"blk.{i}.{LAYER[stem]}.{suffix}"


def permute(w, n_head, n_head_kv):
    """convert_hf_to_gguf.py's LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


FTYPE = {"f32": (QT.F32, 0), "f16": (QT.F16, 1), "bf16": (QT.BF16, 32), "q8_0": (QT.Q8_0, 7)}


def storage_type(name, data, qtype):
    """prepare_tensors' choice: 1-D, norms, positions and non-.weight tensors f32; q8_0 falls back to f16."""
    if data.ndim <= 1 or name.endswith("_norm.weight") or name == "position_embd.weight":
        return QT.F32
    if name[-7:] not in (".weight", ".lora_a", ".lora_b"):
        return QT.F32
    if qtype == QT.Q8_0 and data.shape[-1] % 32 != 0:
        return QT.F16
    return qtype


def add_tensor(w, name, data, qtype):
    t = storage_type(name, data, qtype)
    w.add_tensor(name, gguf.quants.quantize(data.astype(np.float32), t), raw_dtype=t)


def model_dir(case, tmp):
    c = CASES[case]
    d = os.path.join(tmp, case)
    os.makedirs(d, exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOK, c["tokenizer"], f), d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c["config"], f, indent=2)
    save_file({n: weight(n, s, norm) for n, s, norm in hf_params(c["config"])}, os.path.join(d, "model.safetensors"))
    return d


def merge_scores(tok_json):
    merges = tok_json["model"].get("merges") or []
    rank = {}
    for k, m in enumerate(merges):
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        rank.setdefault(a + b, k)
    return rank


def add_vocab(w, d, cfg, spm, pre):
    from transformers import AutoTokenizer
    if spm:
        from pathlib import Path
        vocab = gguf.LlamaHfVocab(Path(d))
        tok_json = json.load(open(os.path.join(d, "tokenizer.json")))
        rank = merge_scores(tok_json)
        tokens, scores, types = [], [], []
        for text, score, typ in vocab.all_tokens():
            s = text.decode("utf-8")
            tokens.append(text)
            is_added = s in vocab.added_tokens_dict
            scores.append(score if is_added else -float(rank[s]) if s in rank else 0.0)
            types.append(typ)
        while len(tokens) < cfg["vocab_size"]:
            tokens.append(f"[PAD{len(tokens)}]".encode())
            scores.append(-1000.0)
            types.append(gguf.TokenType.UNUSED)
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        gguf.SpecialVocab(d, n_vocab=len(tokens)).add_to_gguf(w, quiet=True)
    else:
        # TextModel.get_vocab_base
        tokenizer = AutoTokenizer.from_pretrained(d)
        reverse = {i: t for t, i in tokenizer.vocab.items()}
        added = tokenizer.get_added_vocab()
        decoder = tokenizer.added_tokens_decoder
        tokens, types = [], []
        for i in range(cfg["vocab_size"]):
            if i not in reverse:
                tokens.append(f"[PAD{i}]")
                types.append(gguf.TokenType.UNUSED)
                continue
            t = reverse[i]
            if t in added:
                if not decoder[i].normalized:
                    t = tokenizer.decode(tokenizer.encode(t, add_special_tokens=False))
                special = t.startswith("<|") and t.endswith("|>")
                if decoder[i].special or special:
                    types.append(gguf.TokenType.CONTROL)
                else:
                    t = t.replace("\u2581", " ")
                    types.append(gguf.TokenType.USER_DEFINED)
            else:
                types.append(gguf.TokenType.NORMAL)
            tokens.append(t)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        gguf.SpecialVocab(d, load_merges=True).add_to_gguf(w, quiet=True)


def write_model_gguf(case, d, dtype, path):
    c = CASES[case]
    cfg = c["config"]
    qtype, ftype = FTYPE[dtype]
    a = c["gguf_arch"]
    w = gguf.GGUFWriter(path, a)
    w.add_type("model")
    w.add_name(case)
    if a == "gpt2":
        return write_gpt2_gguf(w, case, d, dtype)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    if "head_dim" in cfg:
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    w.add_file_type(ftype)
    if c["permute"]:
        w.add_vocab_size(cfg["vocab_size"])
        w.add_rope_dimension_count(cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"]))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_vocab(w, d, cfg, spm=c.get("spm", False), pre=c.get("pre"))
    w.add_custom_alignment(32)
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    if (cfg.get("rope_scaling") or {}).get("rope_type") == "llama3":
        add_tensor(w, "rope_freqs.weight", np.array(llama3_factors(cfg), dtype=np.float32), qtype)
    for name, shape, norm in hf_params(cfg):
        data = weight(name, shape, norm)
        if c["permute"]:
            if name.endswith(("q_proj.weight", "q_proj.bias")):
                data = permute(data, nh, nh)
            if name.endswith(("k_proj.weight", "k_proj.bias")):
                data = permute(data, nh, nkv)
        add_tensor(w, gguf_name(name), data, qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_gpt2_gguf(w, case, d, dtype):
    """GPT2Model.set_gguf_parameters and modify_tensors (Conv1D weights transposed)."""
    cfg = CASES[case]["config"]
    qtype, ftype = FTYPE[dtype]
    w.add_block_count(cfg["n_layer"])
    w.add_context_length(cfg["n_ctx"])
    w.add_embedding_length(cfg["n_embd"])
    w.add_feed_forward_length(4 * cfg["n_embd"])
    w.add_head_count(cfg["n_head"])
    w.add_layer_norm_eps(cfg["layer_norm_epsilon"])
    w.add_file_type(ftype)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_vocab(w, d, cfg, spm=False, pre=CASES[case]["pre"])
    w.add_custom_alignment(32)
    for name, shape, norm in hf_params(cfg):
        data = weight(name, shape, norm)
        if name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            data = data.transpose(1, 0)
        add_tensor(w, gguf_name(name), np.ascontiguousarray(data), qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


LORA_R, LORA_ALPHA = 4, 8.0
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_tensors(cfg):
    """PEFT names → (A (r, in), B (out, r)) for every Linear of layer 0."""
    out = {}
    for name, shape, _ in hf_params(cfg):
        mod = name[: -len(".weight")]
        if not name.endswith(".weight") or mod.rsplit(".", 1)[-1] not in LORA_TARGETS:
            continue
        a = weight(f"base_model.model.{mod}.lora_A.weight", (LORA_R, shape[1]))
        b = weight(f"base_model.model.{mod}.lora_B.weight", (shape[0], LORA_R))
        out[mod] = (a, b)
    # The converter meets the adapter's tensors in name order (safetensors lists keys sorted).
    return dict(sorted(out.items()))


def write_adapter(case, out_dir):
    cfg = CASES[case]["config"]
    os.makedirs(out_dir, exist_ok=True)
    tensors = {}
    for mod, (a, b) in lora_tensors(cfg).items():
        tensors[f"base_model.model.{mod}.lora_A.weight"] = a
        tensors[f"base_model.model.{mod}.lora_B.weight"] = b
    save_file(tensors, os.path.join(out_dir, "adapter_model.safetensors"))
    with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": LORA_R, "lora_alpha": LORA_ALPHA,
                   "lora_dropout": 0.0, "target_modules": LORA_TARGETS, "use_rslora": True, "bias": "none",
                   "fan_in_fan_out": False, "use_dora": False}, f, indent=2)


def write_lora_gguf(case, dtype, path):
    cfg = CASES[case]["config"]
    qtype, _ = FTYPE[dtype]
    w = gguf.GGUFWriter(path, CASES[case]["gguf_arch"])
    w.add_type("adapter")
    w.add_string("adapter.type", "lora")
    w.add_name("adapter")
    # rsLoRA folded: llama.cpp scales by alpha / r, PEFT by alpha / sqrt(r).
    w.add_float32("adapter.lora.alpha", LORA_ALPHA * math.sqrt(LORA_R))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_custom_alignment(32)
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    for mod, (a, b) in lora_tensors(cfg).items():
        if mod.endswith("q_proj"):
            b = permute(b, nh, nh)
        if mod.endswith("k_proj"):
            b = permute(b, nh, nkv)
        base = gguf_name(mod + ".weight")
        add_tensor(w, base + ".lora_a", a, qtype)
        add_tensor(w, base + ".lora_b", b, qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def describe(path):
    r = gguf.GGUFReader(path)
    keys = []
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        v = f.contents()
        if isinstance(v, float):
            v = float(np.float32(v))
        keys.append([f.name, [int(t) for t in f.types], v])
    tensors = []
    for t in r.tensors:
        tensors.append([t.name, int(t.tensor_type), [int(x) for x in reversed(t.shape)], int(t.data_offset),
                        hashlib.sha256(t.data.tobytes()).hexdigest()])
    data = open(path, "rb").read()
    return {"keys": keys, "tensors": tensors, "file_sha256": hashlib.sha256(data).hexdigest(), "file_size": len(data)}


def q8_cases():
    rng = np.random.default_rng(7)
    blocks = [
        np.array([127.0, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5, 126.5] + [0.0] * 24, dtype=np.float32),  # ties at .5
        np.zeros(32, dtype=np.float32),
        np.array([1e-8] * 31 + [-3e4], dtype=np.float32),
        rng.standard_normal(32).astype(np.float32),
        (rng.standard_normal(64) * 0.02).astype(np.float32),
    ]
    out = []
    for b in blocks:
        q = gguf.quants.quantize(b.reshape(1, -1), QT.Q8_0)
        out.append({"input_f32_hex": b.astype("<f4").tobytes().hex(), "q8_0_hex": q.tobytes().hex()})
    return out


def llama3_rope_freqs():
    """LlamaModel.generate_extra_tensors of convert_hf_to_gguf.py for the llama3-rope model fixture."""
    cfg = json.load(open(os.path.join(ROOT, "Tests", "Fixtures", "models", "llama_tied_headdim20_llama3rope", "config.json")))
    return llama3_factors(cfg)


def llama3_factors(cfg):
    import torch
    p = cfg.get("rope_parameters") or cfg["rope_scaling"]
    base = p.get("rope_theta", cfg.get("rope_theta", 10000.0))
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor, low, high, old = p["factor"], p["low_freq_factor"], p["high_freq_factor"], p["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return [float(x) for x in torch.tensor(out, dtype=torch.float32)]


def main():
    os.makedirs(FIX, exist_ok=True)
    golden = {"q8_0_blocks": q8_cases(), "llama3_rope_freqs": llama3_rope_freqs(), "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for case, c in CASES.items():
            d = model_dir(case, tmp)
            os.makedirs(os.path.join(FIX, case), exist_ok=True)
            with open(os.path.join(FIX, case, "config.json"), "w") as f:
                json.dump(c["config"], f, indent=2)
            entry = {"tokenizer": c["tokenizer"], "dtypes": {}}
            for dtype in FTYPE:
                p = os.path.join(tmp, f"{case}-{dtype}.gguf")
                write_model_gguf(case, d, dtype, p)
                desc = describe(p)
                if dtype != "f32":
                    desc.pop("keys")
                entry["dtypes"][dtype] = desc
            if c["permute"]:
                adapter = os.path.join(FIX, case, "adapter")
                write_adapter(case, adapter)
                entry["lora"] = {}
                for dtype in ("f32", "q8_0"):
                    p = os.path.join(tmp, f"{case}-lora-{dtype}.gguf")
                    write_lora_gguf(case, dtype, p)
                    entry["lora"][dtype] = describe(p)
            golden["cases"][case] = entry
    with open(os.path.join(FIX, "golden.json"), "w") as f:
        json.dump(golden, f, ensure_ascii=False, separators=(",", ":"))
    print("wrote", os.path.join(FIX, "golden.json"))


if __name__ == "__main__":
    main()
