#!/usr/bin/env python3
"""Golden ids and loss masks for Tests/ITuneDataTests: records of every format rendered with
every template, written out here independently of the Swift code (the template strings are
spelled again below), tokenized segment by segment with the Hugging Face `tokenizers` library:
prompt parts get label -100, answers and eos keep their ids.

    python3 scripts/make_data_fixtures.py     # writes Tests/Fixtures/data/{records.jsonl, expected.json}
"""
import json
import os

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests/Fixtures/data")

RECORDS = [
    {"instruction": "Reverse the word 'cat'.", "output": "tac"},
    {"instruction": "Translate to French.", "input": "Good  morning 🌞", "output": "Bonjour"},
    {"instruction": "次の文を要約してください。", "input": "今日は晴れです。明日は雨です。", "output": "晴れのち雨。"},
    {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4"}, {"role": "user", "content": "日本の首都は？"},
                  {"role": "assistant", "content": "東京"}]},
]

ALPACA = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
ALPACA_IN = ("Below is an instruction that describes a task, paired with an input that provides further context. "
             "Write a response that appropriately completes the request.\n\n")
LLMJP = "以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。\n\n"
LLMJP_IN = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"


def turns(r):
    if "messages" in r:
        ms = r["messages"]
        system = ms[0]["content"] if ms[0]["role"] == "system" else None
        rest = ms[1:] if system else ms
        return system, [(rest[i]["content"], None, rest[i + 1]["content"]) for i in range(0, len(rest), 2)]
    return None, [(r["instruction"], r.get("input") or None, r["output"])]


def render(template, r):
    """[(text, trainable)] with None text meaning eos."""
    system, ts = turns(r)
    out = []
    for i, (ins, inp, resp) in enumerate(ts):
        last = i == len(ts) - 1
        user = f"{ins}\n\n{inp}" if inp else ins
        if template in ("alpaca", "alpaca-ja", "llm-jp"):
            first = i == 0 and system is None
            if i == 0 and system:
                out.append((system + "\n\n", False))
            if template == "alpaca":
                pre = (ALPACA_IN if inp else ALPACA) if first else ""
                block = pre + (f"### Instruction:\n{ins}\n\n### Input:\n{inp}\n\n### Response:\n" if inp
                               else f"### Instruction:\n{ins}\n\n### Response:\n")
            elif template == "alpaca-ja":
                block = (f"### 指示:\n{ins}\n\n### 入力:\n{inp}\n\n### 回答:\n" if inp else f"### 指示:\n{ins}\n\n### 回答:\n")
            else:
                pre = (LLMJP_IN if inp else LLMJP) if first else ""
                block = pre + (f"### 指示:\n{ins}\n\n### 入力:\n{inp}\n\n### 応答:\n" if inp else f"### 指示:\n{ins}\n\n### 応答:\n")
            out += [(block, False), (resp, True), (None, True)]
            if not last:
                out.append(("\n\n", False))
        elif template == "chatml":
            if i == 0 and system:
                out.append((f"<|im_start|>system\n{system}<|im_end|>\n", False))
            out += [(f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n", False), (resp + "<|im_end|>", True),
                    ("\n", False)]
        elif template == "llama3":
            if i == 0:
                out.append(("<|begin_of_text|>", False))
                if system:
                    out.append((f"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>", False))
            out += [(f"<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", False),
                    (resp + "<|eot_id|>", True)]
    # adjacent prompt parts are joined, as the Swift renderer does
    merged = []
    for text, trainable in out:
        if merged and text is not None and not trainable and merged[-1][0] is not None and not merged[-1][1]:
            merged[-1] = (merged[-1][0] + text, False)
        else:
            merged.append((text, trainable))
    return merged


def encode(tok_dir, template, r):
    tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    cfg = json.load(open(os.path.join(tok_dir, "tokenizer_config.json")))
    eos = cfg["eos_token"]["content"] if isinstance(cfg["eos_token"], dict) else cfg["eos_token"]
    ids, labels = [], []
    if template != "llama3":
        prefix = tok.encode("", add_special_tokens=True).ids
        ids += prefix
        labels += [-100] * len(prefix)
    for text, trainable in render(template, r):
        piece = [tok.token_to_id(eos)] if text is None else tok.encode(text, add_special_tokens=False).ids
        ids += piece
        labels += piece if trainable else [-100] * len(piece)
    return ids, labels


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "records.jsonl"), "w") as f:
        for r in RECORDS:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    cases = []
    for tname in ["llama3_style", "qwen2_style", "llama2_metaspace_bytefallback"]:
        tdir = os.path.join(ROOT, "Tests/Fixtures/tokenizers", tname)
        for template in ["alpaca", "alpaca-ja", "llm-jp", "chatml", "llama3"]:
            for i, r in enumerate(RECORDS):
                ids, labels = encode(tdir, template, r)
                cases.append({"tokenizer": tname, "template": template, "record": i, "ids": ids, "labels": labels})
    json.dump({"cases": cases}, open(os.path.join(OUT, "expected.json"), "w"))
    print(len(cases), "cases")


if __name__ == "__main__":
    main()
