#!/usr/bin/env python3
"""A tiny random sentence-transformers encoder (BertModel + the WordPiece fixture tokenizer +
mean pooling + Normalize) and the embeddings sentence-transformers gives for a few instructions,
for Tests/ITuneTrainTests/SentenceEncoderTests.swift.

    python3 scripts/make_encoder_fixtures.py    # needs torch, transformers, sentence-transformers
"""
import json
import os
import shutil

import torch
from sentence_transformers import SentenceTransformer, models
from transformers import BertConfig, BertModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOK = os.path.join(ROOT, "Tests/Fixtures/tokenizers/bert_wordpiece")
OUT = os.path.join(ROOT, "Tests/Fixtures/encoders/tiny_minilm")
SENTENCES = [
    "Classify the sentiment of this movie review.",
    "Is this product review positive or negative?",
    "Translate the sentence into French.",
    "次の文を要約してください。",
    "Sort the numbers in ascending order: 5 2 9",
    "What is the capital of Japan?",
]


def main():
    torch.manual_seed(0)
    vocab = json.load(open(os.path.join(TOK, "tokenizer.json")))
    size = max(max(vocab["model"]["vocab"].values()), max(t["id"] for t in vocab["added_tokens"])) + 1
    cfg = BertConfig(vocab_size=size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                     max_position_embeddings=128, hidden_act="gelu")
    bert = BertModel(cfg, add_pooling_layer=False)
    with torch.no_grad():  # larger than the 0.02 init so that the layers matter
        for p in bert.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.2)
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    tmp = os.path.join(OUT, "_hf")
    bert.save_pretrained(tmp, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOK, f), tmp)
    word = models.Transformer(tmp, max_seq_length=64)
    st = SentenceTransformer(modules=[word, models.Pooling(32, pooling_mode="mean"), models.Normalize()])
    st.save(OUT)
    shutil.rmtree(tmp)
    emb = st.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=False)
    json.dump({"sentences": SENTENCES, "embeddings": emb.tolist()}, open(os.path.join(OUT, "expected.json"), "w"))
    for f in ("README.md",):
        p = os.path.join(OUT, f)
        if os.path.exists(p):
            os.remove(p)
    print(sorted(os.listdir(OUT)), emb.shape)


if __name__ == "__main__":
    main()
