#!/usr/bin/env python3
"""Golden token-id digests of real text for Tests/ITuneTokenizersTests/RealDataTests.swift:
every line of three ../shared/data/t0-pool files (a few thousand real prompts) encoded by the
Hugging Face `tokenizers` library with each fixture tokenizer, summarised as a line count, a
token count and an FNV-1a 64 hash over the ids (little-endian int32), so that the fixture stays
tiny while the comparison covers every id.

    python3 scripts/make_real_data_token_hashes.py > Tests/Fixtures/tokenizers/real_data_hashes.json
"""
import json
import os
import struct

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ["cosmos_qa_context_description_question_answer_text.jsonl", "wiqa_what_is_the_missing_first_step.jsonl", "ag_news_classify.jsonl"]
TOKENIZERS = ["gpt2_style", "llama3_style", "qwen2_style", "llama2_metaspace_bytefallback", "llama2_legacy_bytefallback"]


def fnv1a64(ids):
    h = 0xCBF29CE484222325
    for b in b"".join(struct.pack("<i", i) for i in ids):
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


out = {"files": FILES, "expected": {}}
for name in TOKENIZERS:
    tok = Tokenizer.from_file(os.path.join(ROOT, "Tests/Fixtures/tokenizers", name, "tokenizer.json"))
    for f in FILES:
        path = os.path.join(ROOT, "..", "shared", "data", "t0-pool", f)
        lines = [l for l in open(path, encoding="utf-8").read().split("\n") if l]
        ids = [i for l in lines for i in tok.encode(l, add_special_tokens=False).ids]
        out["expected"][f"{name}/{f}"] = {"lines": len(lines), "tokens": len(ids), "fnv1a64": f"{fnv1a64(ids):016x}"}
print(json.dumps(out, indent=1, sort_keys=True))
