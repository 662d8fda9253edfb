#!/usr/bin/env python3
"""A small randomly initialised T5 v1.1 / FLAN-T5-shaped model directory for the README's worked
example (scripts/worked_example_t5.sh): there is no Hugging Face hub here, so nothing pretrained.

  tokenizer  a SentencePiece-style Unigram vocabulary trained by the `tokenizers` library on the
             texts of a task pool (itune-gpu demo-pool), laid out as T5's tokenizer.json is:
             Metaspace pre-tokenizer and decoder, "$A </s>" post-processor, <pad>=0 </s>=1 <unk>=2
  model      T5ForConditionalGeneration, gated-GELU feed-forward, untied lm_head (T5 v1.1 / FLAN-T5's
             layout), transformers' own random initialisation with a fixed seed, saved as safetensors

Usage (from the repository root):
    python3 scripts/make_t5_demo_model.py --pool POOL_DIR --output MODEL_DIR [--d-model 128 --layers 3]
"""
import argparse
import glob
import json
import os

import torch
from safetensors.torch import load_file, save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import T5Config, T5ForConditionalGeneration


def texts(pool):
    for path in sorted(glob.glob(os.path.join(pool, "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                for key in ("instruction", "input", "output"):
                    if r.get(key):
                        yield r[key]


def tokenizer(pool, vocab_size):
    def added(content):
        return AddedToken(content, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False)
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Replace(Regex(" {2,}"), " ")
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
                                      show_progress=False, max_piece_length=8)
    tok.train_from_iterator(texts(pool), trainer)
    vocab = json.loads(tok.to_str())["model"]["vocab"]
    tok = Tokenizer(models.Unigram([tuple(v) for v in vocab], unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Replace(Regex(" {2,}"), " ")
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.add_special_tokens([added("<pad>"), added("</s>"), added("<unk>")])
    tok.post_processor = processors.TemplateProcessing(single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"],
                                                       special_tokens=[("</s>", 1)])
    return tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.output, exist_ok=True)
    tok = tokenizer(a.pool, a.vocab)
    tok.save(os.path.join(a.output, "tokenizer.json"))
    with open(os.path.join(a.output, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "model_max_length": 512,
                   "tokenizer_class": "T5Tokenizer"}, f, indent=2)
    config = T5Config(vocab_size=tok.get_vocab_size(), d_model=a.d_model, d_kv=a.d_model // a.heads, d_ff=2 * a.d_model,
                      num_layers=a.layers, num_decoder_layers=a.layers, num_heads=a.heads, feed_forward_proj="gated-gelu",
                      tie_word_embeddings=False, dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(a.seed)
    model = T5ForConditionalGeneration(config)
    model.save_pretrained(a.output, safe_serialization=True)
    # transformers writes this config tied (lm_head = shared, the file without lm_head.weight);
    # T5 v1.1 / FLAN-T5 checkpoints are untied, as the Hub's are: an lm_head of its own, drawn as
    # T5's _init_weights draws an untied head (normal, std = initializer_factor), in the file.
    path = os.path.join(a.output, "model.safetensors")
    tensors = load_file(path)
    g = torch.Generator().manual_seed(a.seed + 1)
    tensors["lm_head.weight"] = torch.randn(tensors["shared.weight"].shape, generator=g)
    save_file(tensors, path, metadata={"format": "pt"})
    with open(os.path.join(a.output, "config.json")) as f:
        cfg = json.load(f)
    cfg.pop("scale_decoder_outputs", None)
    cfg["tie_word_embeddings"] = False
    with open(os.path.join(a.output, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    gen = os.path.join(a.output, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {a.output}: T5 v1.1 shape, d_model {a.d_model}, {a.layers}+{a.layers} layers, {a.heads} heads, "
          f"vocabulary {tok.get_vocab_size()}, {n / 1e6:.2f}M parameters (random)")


if __name__ == "__main__":
    main()
