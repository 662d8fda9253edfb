#!/usr/bin/env python3
"""The peers of `itune-bench`, on the same shapes, and the side-by-side table.

    python3 scripts/bench_peers.py --ours bench-results/itune-bench.jsonl --out bench-results

runs, for every row of itune-bench's JSON lines that has a peer:
  matmul     numpy (its BLAS, OpenBLAS in the wheels) at the same [M, N, K] (rows of `--cold`:
             the caches swept before each product, as ours);
  softmax    torch.softmax forward / forward+backward on the same rows;
  attention  torch.nn.functional.scaled_dot_product_attention (causal, GQA by repeat_interleave;
             decode rows: one query a row, enable_gqa);
  step       transformers' LlamaForCausalLM in eager fp32 with torch.optim.AdamW, and PEFT's LoRA
             (r 8, alpha 16, q,k,v,o,gate,up,down) for `lora`, batch 4 x 256, random weights,
             each configuration in a fresh process so that its peak RSS is its own; for
             `flan-t5-small`, T5ForConditionalGeneration of google/flan-t5-small's shape, batch
             4 x (256 input, 64 target) tokens, PEFT LoRA on q,k,v,o,wi_0,wi_1,wo, task SEQ_2_SEQ_LM;
  tokenize   Hugging Face `tokenizers` (scripts/bench_tokenizer.py);
on the CPU with all cores (torch.set_num_threads), and on a CUDA GPU when torch sees one.
Writes <out>/peers.jsonl, <out>/bench.json (every row: ours, peer, ratio) and <out>/bench.md.
--update-readme rewrites the table between the bench markers of README.md.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(fn, seconds=1.5, min_reps=3, warmup=1, sync=lambda: None, prepare=lambda: None):
    for _ in range(warmup):
        prepare()
        fn()
        sync()
    times, start = [], time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < seconds:
        prepare()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --- one configuration of the training step, run in its own process -------------------------

STEP_CONFIGS = {
    "tiny": dict(vocab_size=8192, hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                 num_key_value_heads=4, max_position_embeddings=1024),
    "smollm2-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, rms_norm_eps=1e-5, rope_theta=100000.0,
                         max_position_embeddings=2048, tie_word_embeddings=True),
    # Qwen2.5-0.5B's shape (Qwen2ForCausalLM: q/k/v biases), batch 2 x 256.
    "qwen2.5-0.5b": dict(model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, rms_norm_eps=1e-6,
                         rope_theta=1000000.0, max_position_embeddings=32768, tie_word_embeddings=True),
    # Llama-3.2-1B's shape, batch 1 x 512, LoRA r 16 (issue 17's memory rows).
    "llama-1b": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                     num_attention_heads=32, num_key_value_heads=8, head_dim=64, rms_norm_eps=1e-5, rope_theta=500000.0,
                     max_position_embeddings=8192, tie_word_embeddings=True),
    "smoke": dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=128),
}


# google/flan-t5-small's shape (T5 v1.1: gated-GELU, untied lm_head), random weights, no dropout.
T5_STEP_CONFIGS = {
    "flan-t5-small": dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_decoder_layers=8,
                          num_heads=6, feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
                          relative_attention_num_buckets=32, relative_attention_max_distance=128,
                          decoder_start_token_id=0, pad_token_id=0, eos_token_id=1),
}


def step_child_t5(config, mode, device, batch, inputs, targets, seconds, min_reps):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration
    torch.manual_seed(0)
    if device == "cpu":
        torch.set_num_threads(os.cpu_count())
    fields = T5_STEP_CONFIGS[config]
    model = T5ForConditionalGeneration(T5Config(**fields)).to(device).float()
    model.config._attn_implementation = "eager"
    if mode == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="SEQ_2_SEQ_LM",
                                                 target_modules=["q", "k", "v", "o", "wi_0", "wi_1", "wo"]))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, fields["vocab_size"], (batch, inputs), device=device)
    labels = torch.randint(0, fields["vocab_size"], (batch, targets), device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        out = model(input_ids=ids, labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = timed(step, seconds, min_reps, warmup=1, sync=sync)
    med = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() / 1e6 if device == "cuda" else None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
    print(json.dumps({"bench": "step", "name": mode, "label": config, "device": device, "rate": batch * (inputs + targets) / med,
                      "unit": "tokens/s", "median_ms": med * 1e3, "reps": len(times), "max_rss_mb": rss,
                      "peak_tensor_mb": peak, "trainable": sum(p.numel() for p in params),
                      "driver": f"torch {torch.__version__} eager fp32, {torch.get_num_threads()} threads"}))


def step_child(config, mode, device, batch, seq, seconds, min_reps, answer_fraction=1.0):
    if config in T5_STEP_CONFIGS:
        inputs, targets = (int(x) for x in str(seq).split("x"))
        return step_child_t5(config, mode, device, batch, inputs, targets, seconds, min_reps)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    # fp32 as ours: no TF32 in cuBLAS or cuDNN on a GPU.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    if device == "cpu":
        torch.set_num_threads(os.cpu_count())
    fields = dict(STEP_CONFIGS[config])
    qwen = fields.pop("model_type", "llama") == "qwen2"
    config_class, model_class = (Qwen2Config, Qwen2ForCausalLM) if qwen else (LlamaConfig, LlamaForCausalLM)
    model = model_class(config_class(attn_implementation="eager", **fields)).to(device).float()
    model.config._attn_implementation = "eager"
    if mode == "lora":
        from peft import LoraConfig, get_peft_model
        rank = 16 if config.startswith("llama-") else 8
        model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, task_type="CAUSAL_LM",
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                 "up_proj", "down_proj"]))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, STEP_CONFIGS[config]["vocab_size"], (batch, seq), device=device)
    # itune-bench step --answer-fraction: each row's first tokens are a prompt the loss ignores (-100).
    labels = ids.clone()
    labels[:, :min(seq - 1, int((1 - answer_fraction) * seq))] = -100
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        out = model(input_ids=ids, labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = timed(step, seconds, min_reps, warmup=1, sync=sync)
    med = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() / 1e6 if device == "cuda" else None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
    print(json.dumps({"bench": "step", "name": mode, "label": config, "device": device, "rate": batch * seq / med,
                      "unit": "tokens/s", "median_ms": med * 1e3, "reps": len(times), "max_rss_mb": rss,
                      "peak_tensor_mb": peak, "trainable": sum(p.numel() for p in params),
                      "driver": f"torch {torch.__version__} eager fp32, {torch.get_num_threads()} threads"}))


# --- in-process peers ---------------------------------------------------------------------------

def peer_matmul(shape, transpose_a, transpose_b, seconds, cold=False):
    # cold (itune-bench matmul --cold): 256 MiB written through the caches before each product.
    import numpy as np
    sweep = np.zeros(64 << 20, dtype=np.float32) if cold else None
    M, N, K = shape
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (K, M) if transpose_a else (M, K)).astype(np.float32)
    b = rng.uniform(-1, 1, (N, K) if transpose_b else (K, N)).astype(np.float32)
    op_a = (lambda: a.T) if transpose_a else (lambda: a)
    fn = (lambda: op_a() @ b.T) if transpose_b else (lambda: op_a() @ b)
    prepare = (lambda: sweep.__iadd__(1)) if cold else (lambda: None)
    t = statistics.median(timed(fn, seconds, prepare=prepare))
    return 2 * M * N * K / t / 1e9, t, f"numpy {np.__version__}"


def peer_matmul_cuda(shape, transpose_a, transpose_b, seconds):
    """cuBLAS through torch in fp32 with TF32 off (the arithmetic our OpenCL kernels do)."""
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    M, N, K = shape
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.empty((K, M) if transpose_a else (M, K), device="cuda").uniform_(-1, 1, generator=g)
    b = torch.empty((N, K) if transpose_b else (K, N), device="cuda").uniform_(-1, 1, generator=g)
    op_a = a.t() if transpose_a else a
    op_b = b.t() if transpose_b else b
    out = torch.empty(M, N, device="cuda")
    t = statistics.median(timed(lambda: torch.matmul(op_a, op_b, out=out), seconds, warmup=3, sync=torch.cuda.synchronize))
    return 2 * M * N * K / t / 1e9, t, f"torch {torch.__version__} cuBLAS fp32 (TF32 off)"


def peer_softmax(rows, T, backward, device, seconds):
    import torch
    x = torch.empty(rows, T, device=device).uniform_(-4, 4).requires_grad_(backward)
    w = torch.empty(rows, T, device=device).uniform_(-1, 1)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def f():
        if backward:
            x.grad = None
            (torch.softmax(x, -1) * w).sum().backward()
        else:
            with torch.no_grad():
                torch.softmax(x, -1)
    t = statistics.median(timed(f, seconds, sync=sync))
    return t


def peer_attention_decode(shape, device, seconds):
    # One query a row over T keys (a decoding step): sdpa with grouped heads, no causal mask.
    import torch
    import torch.nn.functional as F
    B, T, H, KV, D = shape
    q = torch.randn(B, H, 1, D, device=device)
    k = torch.randn(B, KV, T, D, device=device)
    v = torch.randn(B, KV, T, D, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def f():
        with torch.no_grad():
            F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    return statistics.median(timed(f, seconds, sync=sync))


def peer_attention(shape, backward, device, seconds):
    import torch
    import torch.nn.functional as F
    B, T, H, KV, D = shape
    q = torch.randn(B, H, T, D, device=device, requires_grad=backward)
    k = torch.randn(B, KV, T, D, device=device, requires_grad=backward)
    v = torch.randn(B, KV, T, D, device=device, requires_grad=backward)
    w = torch.randn(B, H, T, D, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def f():
        kk, vv = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
        if backward:
            for t_ in (q, k, v):
                t_.grad = None
            (F.scaled_dot_product_attention(q, kk, vv, is_causal=True) * w).sum().backward()
        else:
            with torch.no_grad():
                F.scaled_dot_product_attention(q, kk, vv, is_causal=True)
    return statistics.median(timed(f, seconds, sync=sync))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True, help="itune-bench --json output")
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--update-readme", action="store_true")
    ap.add_argument("--step-child", nargs=6, metavar=("CONFIG", "MODE", "DEVICE", "BATCH", "SEQ", "SECONDS"))
    ap.add_argument("--answer-fraction", type=float, default=1.0, help="with --step-child: as itune-bench step's")
    a = ap.parse_args()
    if a.step_child:
        c, m, d, b, s, sec = a.step_child
        step_child(c, m, d, int(b), s if "x" in s else int(s), float(sec), 3, a.answer_fraction)
        return

    ours = []
    for line in open(a.ours):
        line = line.strip()
        if line.startswith("{"):
            ours.append(json.loads(line))
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    os.makedirs(a.out, exist_ok=True)
    open(os.path.join(a.out, "rows.partial.jsonl"), "w").close()
    peers, rows = [], []

    def add(r, peer_rate, peer_ms, peer_name, peer_device="cpu", extra=None):
        row = {"bench": r["bench"], "what": r["name"], "case": r["label"], "shape": r.get("shape"), "device": r["device"],
               "device_name": r.get("device_name"), "unit": r.get("unit", "GFLOP/s"), "ours": r["rate"],
               "ours_ms": r["median_ms"], "peer": peer_name, "peer_device": peer_device, "theirs": peer_rate,
               "theirs_ms": peer_ms, "ratio": (r["rate"] / peer_rate) if peer_rate else None}
        if extra:
            row.update(extra)
        rows.append(row)
        # Each row as it comes, so that a run cut short keeps what it measured.
        with open(os.path.join(a.out, "rows.partial.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")

    step_cache = {}
    tok_cache = None
    for r in ours:
        b = r["bench"]
        # The peer runs on the CPU for CPU-path and PoCL rows, on CUDA for rows of a GPU device.
        name = (r.get("device_name") or "")
        peer_dev = "cuda" if ("cuda" in devices and r["device"] != "cpu" and any(k in name for k in ("NVIDIA", "GeForce", "Tesla", "H100", "H200", "A100"))) else "cpu"
        if b == "matmul":
            tb = r.get("transpose_b", "lm_head" in r["label"] or "proj" in r["label"])
            if peer_dev == "cuda":
                g, t, name = peer_matmul_cuda(r["shape"], r.get("transpose_a", False), tb, a.seconds)
            else:
                g, t, name = peer_matmul(r["shape"], r.get("transpose_a", False), tb, a.seconds, r.get("cold", False))
            add(r, g, t * 1e3, name, peer_dev)
        elif b == "softmax":
            rows_, T = r["shape"]
            t = peer_softmax(rows_, T, r["name"] != "forward", peer_dev, a.seconds)
            add(r, r["flops"] / t / 1e9, t * 1e3, f"torch {torch.__version__} softmax", peer_dev)
        elif b == "attention":
            if r["name"] == "decode":
                t = peer_attention_decode(r["shape"], peer_dev, a.seconds)
            else:
                t = peer_attention(r["shape"], r["name"] != "forward", peer_dev, a.seconds)
            add(r, r["flops"] / t / 1e9, t * 1e3, f"torch {torch.__version__} sdpa", peer_dev)
        elif b == "step":
            # "lora nf4 ckpt" and the like: every LoRA row is compared with PyTorch+PEFT's fp32 LoRA step.
            mode = r["name"].split()[0]
            fraction = r.get("answer_fraction", 1.0)
            key = (r["label"], mode, peer_dev, fraction)
            if key not in step_cache:
                # Decoder rows are [B, T]; encoder-decoder rows [B, input, target], passed as "IxT".
                B, T = r["shape"][0], "x".join(str(x) for x in r["shape"][1:])
                out = subprocess.run([sys.executable, __file__, "--ours", a.ours, "--step-child", r["label"], mode, peer_dev,
                                      str(B), T, str(a.seconds), "--answer-fraction", str(fraction)], capture_output=True, text=True)
                lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
                if not lines:
                    print(f"peer step {key} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                    step_cache[key] = None
                else:
                    step_cache[key] = json.loads(lines[-1])
                    peers.append(step_cache[key])
            p = step_cache[key]
            if p:
                add(r, p["rate"], p["median_ms"], p["driver"] + (" + PEFT" if mode == "lora" else ""), peer_dev,
                    {"ours_max_rss_mb": r.get("max_rss_mb"), "ours_peak_tensor_mb": r.get("peak_tensor_mb"),
                     "theirs_max_rss_mb": p["max_rss_mb"], "theirs_peak_tensor_mb": p["peak_tensor_mb"]})
        elif b == "tokenize":
            if tok_cache is None:
                out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts/bench_tokenizer.py"), "--seconds", str(a.seconds)]
                                     + (["--smoke"] if r["shape"][0] <= 200 else []), capture_output=True, text=True)
                tok_cache = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
                peers += tok_cache
            match = [p for p in tok_cache if p["label"] == r["label"] and p["name"].endswith(r["name"])]
            if match:
                add(r, match[0]["rate"], match[0]["median_ms"], "HF tokenizers")
        else:
            add(r, None, None, "—")

    machine = f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"
    with open(os.path.join(a.out, "peers.jsonl"), "w") as f:
        for p in peers:
            f.write(json.dumps(p) + "\n")
    json.dump({"machine": machine, "rows": rows}, open(os.path.join(a.out, "bench.json"), "w"), indent=1)
    md = markdown(rows, machine)
    open(os.path.join(a.out, "bench.md"), "w").write(md)
    print(md)
    if a.update_readme:
        path = os.path.join(ROOT, "README.md")
        text = open(path).read()
        begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
        if begin in text and end in text:
            text = text[: text.index(begin) + len(begin)] + "\n" + md + text[text.index(end):]
            open(path, "w").write(text)


def fmt(x):
    if x is None:
        return "—"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def markdown(rows, machine):
    out = [f"Machine: {machine}. Ours and the peer in the same `make bench` run; ratio = ours / peer (higher is better for us).", "",
           "| bench | what | case | device | unit | ours | peer | theirs | ratio | peak memory ours / theirs (MB) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        mem = ""
        if r.get("theirs_max_rss_mb"):
            theirs = r["theirs_peak_tensor_mb"] or r["theirs_max_rss_mb"]
            mem = f"{fmt(r.get('ours_max_rss_mb'))} / {fmt(r['theirs_max_rss_mb'])} (RSS)"
        dev = r["device"] + (f" ({r['device_name']})" if r.get("device_name") and r["device"] != "cpu" else "")
        out.append(f"| {r['bench']} | {r['what']} | {r['case']} | {dev} | {r['unit']} | {fmt(r['ours'])} | {r['peer']} | "
                   f"{fmt(r['theirs'])} | {fmt(r['ratio']) + '×' if r['ratio'] else '—'} | {mem} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
