#!/usr/bin/env python3
"""Golden ids and loss masks for Tests/ITuneDataTests.

Records of every format (Alpaca, prompt/completion, messages, text, Super-NaturalInstructions,
Self-Instruct; English and Japanese) are written under Tests/Fixtures/data/records/, then read,
rendered with every template and tokenized here, independently of the Swift code: the record
formats are parsed again below and the template strings are spelled again below. Tokenization is
segment by segment with the Hugging Face `tokenizers` library (prompt parts get label -100,
answers and end markers keep their ids); the tokens a tokenizer puts before a text come from
`transformers` (what `tokenizer("a")` adds in front of `tokenizer("a", add_special_tokens=False)`),
left out when the rendered text already begins with them. A few cases are cut to a small
maxLength: the first tokens kept, and an example whose answer is cut away entirely marked dropped.

    python3 scripts/make_data_fixtures.py     # writes Tests/Fixtures/data/{records/, expected.json, records.jsonl}
"""
import json
import os

from tokenizers import Tokenizer
from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests/Fixtures/data")
TOKENIZERS = ["llama3_style", "qwen2_style", "llama2_metaspace_bytefallback"]
TEMPLATES = ["alpaca", "alpaca-ja", "llm-jp", "chatml", "llama3", "plain"]
EOT = "<|endoftext|>"

# name -> (JSON text). Read in sorted file order, as the Swift reader reads a directory.
FILES = {
    "alpaca.json": json.dumps([
        {"instruction": "Reverse the word 'cat'.", "input": "", "output": "tac"},
        {"instruction": "Translate to French.", "input": "Good  morning 🌞", "output": "Bonjour"},
        {"instruction": "次の文を要約してください。", "input": "今日は晴れです。明日は雨です。", "output": "晴れのち雨。"},
        {"instruction": "日本の首都はどこですか？", "output": "東京です。"},
    ], ensure_ascii=False, indent=1),
    "messages.jsonl": "\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"},
                      {"role": "assistant", "content": "4"}, {"role": "user", "content": "日本の首都は？"},
                      {"role": "assistant", "content": "東京"}]},
        {"messages": [{"role": "user", "content": "Say hello\nin two lines."},
                      {"role": "assistant", "content": "Hello,\nworld!"}]},
    ]) + "\n",
    "prompt_completion.jsonl": "\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"prompt": "Is this review positive? \"Great value.\"\nAnswer:", "completion": " Yes" + EOT},
        {"prompt": "次の文の感情は？「最高でした」\n答え:", "completion": "ポジティブ" + EOT},
    ]) + "\n",
    "self_instruct.jsonl": json.dumps({
        "id": "seed_task_0", "name": "word_sorting", "instruction": "Sort the words alphabetically.",
        "instances": [{"input": "pear apple fig", "output": "apple fig pear"}, {"input": "", "output": "(no words)"}],
        "is_classification": False}) + "\n",
    "task001_arith.json": json.dumps({
        "Contributors": ["x"], "Source": ["synthetic"], "Categories": ["Arithmetic"],
        "Definition": ["Add the two numbers.", "Answer with digits only."],
        "Positive Examples": [{"input": "1 2", "output": "3", "explanation": "1+2=3"}],
        "Instances": [{"id": "task001-1", "input": "20 22", "output": ["42", "forty-two"]},
                      {"id": "task001-2", "input": "３ ４", "output": ["7"]}]}, ensure_ascii=False, indent=1),
    "text.jsonl": "\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"text": "The quick brown fox jumps over the lazy dog."},
        {"text": "吾輩は猫である。名前はまだ無い。" + EOT},
    ]) + "\n",
}

LIBRARY_RECORDS = [
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


def strip_eot(s):
    t = s.rstrip()
    return t[: -len(EOT)] if t.endswith(EOT) else s


def examples():
    """Every example, in reading order: ("chat", system, [(instruction, input, response)]),
    ("raw", prompt, response) or ("text", text)."""
    out = []
    for name in sorted(FILES):
        text = FILES[name]
        if name.endswith(".json"):
            value = json.loads(text)
            records = value if isinstance(value, list) else [value]
        else:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        for r in records:
            if "messages" in r:
                ms = r["messages"]
                system = ms[0]["content"] if ms[0]["role"] == "system" else None
                rest = ms[1:] if system is not None else ms
                out.append(("chat", system, [(rest[i]["content"], None, strip_eot(rest[i + 1]["content"]))
                                             for i in range(0, len(rest), 2)]))
            elif "Definition" in r:
                for inst in r["Instances"]:
                    out.append(("chat", None, [("\n".join(r["Definition"]), inst["input"] or None, strip_eot(inst["output"][0]))]))
            elif "instances" in r:
                for inst in r["instances"]:
                    out.append(("chat", None, [(r["instruction"], inst["input"] or None, strip_eot(inst["output"]))]))
            elif "prompt" in r:
                out.append(("raw", r["prompt"], strip_eot(r["completion"])))
            elif "instruction" in r:
                out.append(("chat", None, [(r["instruction"], r.get("input") or None, strip_eot(r["output"]))]))
            else:
                out.append(("text", strip_eot(r["text"])))
    return out


def render(template, e):
    """[(text, trainable)]; text None means the tokenizer's eos."""
    if e[0] == "raw":
        return [(e[1], False), (e[2], True), (None, True)]
    if e[0] == "text":
        return [(e[1], True), (None, True)]
    _, system, ts = e
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
        elif template == "plain":
            if i == 0 and system:
                out.append((system + "\n", False))
            out += [(user + "\n", False), (resp, True), (None, True)]
            if not last:
                out.append(("\n", False))
    # adjacent prompt parts are joined, as the Swift renderer does
    merged = []
    for text, trainable in out:
        if merged and text is not None and not trainable and merged[-1][0] is not None and not merged[-1][1]:
            merged[-1] = (merged[-1][0] + text, False)
        else:
            merged.append((text, trainable))
    return merged


class Tok:
    def __init__(self, name):
        d = os.path.join(ROOT, "Tests/Fixtures/tokenizers", name)
        self.tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        hf = AutoTokenizer.from_pretrained(d)
        with_special, without = hf("a").input_ids, hf("a", add_special_tokens=False).input_ids
        start = next(i for i in range(len(with_special)) if with_special[i:i + len(without)] == without)
        self.begin = with_special[:start]
        self.eos = hf.convert_tokens_to_ids(hf.eos_token)

    def encode(self, template, e):
        ids, labels = list(self.begin), [-100] * len(self.begin)
        for k, (text, trainable) in enumerate(render(template, e)):
            piece = [self.eos] if text is None else self.tok.encode(text, add_special_tokens=False).ids
            if k == 0 and self.begin and piece[:len(self.begin)] == self.begin:
                ids, labels = [], []
            ids += piece
            labels += piece if trainable else [-100] * len(piece)
        return ids, labels


def main():
    rec_dir = os.path.join(OUT, "records")
    os.makedirs(rec_dir, exist_ok=True)
    for name, text in FILES.items():
        with open(os.path.join(rec_dir, name), "w") as f:
            f.write(text)
    # The four records ITuneTrainTests/LibraryUsageTests trains on (an Alpaca file and a chat line).
    with open(os.path.join(OUT, "records.jsonl"), "w") as f:
        for r in LIBRARY_RECORDS:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    exs = examples()
    cases = []
    for tname in TOKENIZERS:
        tok = Tok(tname)
        for template in TEMPLATES:
            for i, e in enumerate(exs):
                ids, labels = tok.encode(template, e)
                cases.append({"tokenizer": tname, "template": template, "example": i, "ids": ids, "labels": labels})
        # Truncation: the first maxLength tokens; dropped when no label after the first is left.
        for i, e in enumerate(exs):
            ids, labels = tok.encode("alpaca", e)
            for max_length in (12, len(ids) - 1):
                cut_labels = labels[:max_length]
                cases.append({"tokenizer": tname, "template": "alpaca", "example": i, "maxLength": max_length,
                              "ids": ids[:max_length], "labels": cut_labels,
                              "dropped": all(x == -100 for x in cut_labels[1:])})
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"examples": len(exs), "cases": cases}, f, separators=(",", ":"))
    print(len(exs), "examples,", len(cases), "cases")


if __name__ == "__main__":
    main()
