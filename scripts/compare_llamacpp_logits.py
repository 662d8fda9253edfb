#!/usr/bin/env python3
"""Logits of an itune-gpu GGUF export against transformers on the same model directory.

  python scripts/compare_llamacpp_logits.py [--itune .build/debug/itune-gpu] [--dtype f32]

For each tiny test model of scripts/make_gguf_fixtures.py (Llama with a SentencePiece-style
tokenizer, Llama 3 style with llama3 rope scaling, Qwen2, GPT-2) this writes the model directory, runs
`itune-gpu export --format gguf`, and compares the last-position-and-every-position logits of
transformers (float32, the reference itune-gpu's own forward matches to 1e-4) with

  1. llama.cpp, through llama-cpp-python (`pip install llama-cpp-python`; or the package's Python
     sources on PYTHONPATH with LLAMA_CPP_LIB_PATH naming a directory holding libllama.so), when
     it can be imported;
  2. always, a numpy forward pass that reads only the GGUF file (gguf.GGUFReader, dequantised with
     gguf.quants) and computes as llama.cpp does: RMSNorm, RoPE on adjacent pairs for the llama
     architecture (which is why Q and K rows are permuted on export) and on split halves for
     qwen2, grouped-query causal attention, SwiGLU, the tied or separate output matrix. It checks
     the file's layout (names, shapes, permutation, types) end to end, not llama.cpp's kernels.

Prints the largest absolute difference per model; exits 1 when one exceeds --tol (1e-3 for f32).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import make_gguf_fixtures as fx  # noqa: E402
import gguf  # noqa: E402

IDS = [1, 5, 300, 77, 899, 12, 640, 3]


def tensors(path):
    r = gguf.GGUFReader(path)
    out = {}
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape)]
        out[t.name] = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float64)
    fields = {f.name: f.contents() for f in r.fields.values()}
    return out, fields


def gpt2_forward(t, f, ids):
    n_head, eps = f["gpt2.attention.head_count"], f["gpt2.attention.layer_norm_epsilon"]
    x = t["token_embd.weight"][ids] + t["position_embd.weight"][: len(ids)]
    T, C = x.shape
    d = C // n_head

    def ln(v, p):
        m = v.mean(-1, keepdims=True)
        return (v - m) / np.sqrt(((v - m) ** 2).mean(-1, keepdims=True) + eps) * t[p + ".weight"] + t[p + ".bias"]

    def lin(v, p):
        return v @ t[p + ".weight"].T + t[p + ".bias"]

    for i in range(f["gpt2.block_count"]):
        p = f"blk.{i}"
        q, k, v = np.split(lin(ln(x, f"{p}.attn_norm"), f"{p}.attn_qkv"), 3, axis=-1)
        q, k, v = (a.reshape(T, n_head, d) for a in (q, k, v))
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(d) + np.triu(np.full((T, T), -np.inf), 1)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        x = x + lin(np.einsum("hts,shd->thd", s, v).reshape(T, C), f"{p}.attn_output")
        h = lin(ln(x, f"{p}.ffn_norm"), f"{p}.ffn_up")
        h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
        x = x + lin(h, f"{p}.ffn_down")
    return ln(x, "output_norm") @ t["token_embd.weight"].T


def numpy_forward(path, ids):
    t, f = tensors(path)
    arch = f["general.architecture"]
    if arch == "gpt2":
        return gpt2_forward(t, f, ids)
    n_head, n_kv = f[f"{arch}.attention.head_count"], f[f"{arch}.attention.head_count_kv"]
    eps, base = f[f"{arch}.attention.layer_norm_rms_epsilon"], f[f"{arch}.rope.freq_base"]
    layers = f[f"{arch}.block_count"]
    x = t["token_embd.weight"][ids]
    T, C = x.shape
    d = t["blk.0.attn_q.weight"].shape[0] // n_head
    pos = np.arange(T)[:, None]
    theta = pos * base ** (-np.arange(0, d, 2) / d)  # (T, d/2)
    if "rope_freqs.weight" in t:  # llama3 scaling: llama.cpp divides each frequency by its factor
        theta = theta / t["rope_freqs.weight"]
    cos, sin = np.cos(theta), np.sin(theta)

    def rms(v, w):
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + eps) * w

    def rope(v):  # v (T, H, d)
        if arch == "llama":  # llama.cpp's normal mode: adjacent pairs
            a, b = v[..., 0::2], v[..., 1::2]
            out = np.empty_like(v)
            out[..., 0::2] = a * cos[:, None] - b * sin[:, None]
            out[..., 1::2] = a * sin[:, None] + b * cos[:, None]
            return out
        a, b = v[..., : d // 2], v[..., d // 2:]  # NeoX mode: split halves
        return np.concatenate([a * cos[:, None] - b * sin[:, None], a * sin[:, None] + b * cos[:, None]], -1)

    def lin(v, name):
        y = v @ t[name + ".weight"].T
        return y + t[name + ".bias"] if name + ".bias" in t else y

    for i in range(layers):
        p = f"blk.{i}"
        h = rms(x, t[f"{p}.attn_norm.weight"])
        q = rope(lin(h, f"{p}.attn_q").reshape(T, n_head, d))
        k = rope(lin(h, f"{p}.attn_k").reshape(T, n_kv, d))
        v = lin(h, f"{p}.attn_v").reshape(T, n_kv, d)
        rep = n_head // n_kv
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(d)
        s = s + np.triu(np.full((T, T), -np.inf), 1)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        a = np.einsum("hts,shd->thd", s, v).reshape(T, n_head * d)
        x = x + lin(a, f"{p}.attn_output")
        h = rms(x, t[f"{p}.ffn_norm.weight"])
        g = lin(h, f"{p}.ffn_gate")
        x = x + lin(g / (1 + np.exp(-g)) * lin(h, f"{p}.ffn_up"), f"{p}.ffn_down")
    x = rms(x, t["output_norm.weight"])
    return x @ t.get("output.weight", t["token_embd.weight"]).T


def llamacpp_logits(path, ids):
    try:
        from llama_cpp import Llama
    except Exception as e:  # noqa: BLE001
        return None, f"llama-cpp-python not importable ({type(e).__name__}: {e})"
    llm = Llama(model_path=path, n_ctx=64, logits_all=True, verbose=False, n_threads=2)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float64), None


def transformers_logits(d, ids):
    import torch
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32)
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].double().numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--itune", default=os.path.join(ROOT, ".build", "debug", "itune-gpu"))
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16", "q8_0"])
    ap.add_argument("--tol", type=float, default=1e-3)
    args = ap.parse_args()
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for case in fx.CASES:
            d = fx.model_dir(case, tmp)
            out = os.path.join(tmp, f"{case}.gguf")
            subprocess.run([args.itune, "export", "--model", d, "--format", "gguf", "--dtype", args.dtype, "--output", out], check=True)
            ref = transformers_logits(d, IDS)
            npy = numpy_forward(out, IDS)
            diff = float(np.abs(npy - ref).max())
            worst = max(worst, diff)
            print(f"{case} {args.dtype}: numpy forward of the GGUF vs transformers: max |Δlogit| = {diff:.3e} (logits up to {np.abs(ref).max():.3f})")
            lc, why = llamacpp_logits(out, IDS)
            if lc is None:
                print(f"{case} {args.dtype}: llama.cpp: skipped, {why}")
            else:
                diff = float(np.abs(lc - ref).max())
                worst = max(worst, diff)
                print(f"{case} {args.dtype}: llama.cpp vs transformers: max |Δlogit| = {diff:.3e}")
    sys.exit(0 if worst <= args.tol else 1)


if __name__ == "__main__":
    main()
