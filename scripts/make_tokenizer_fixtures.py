#!/usr/bin/env python3
"""Small tokenizers trained here, and what the Hugging Face `tokenizers` library does with them:
the golden fixtures of the tokenizer tests (Tests/Fixtures/tokenizers/).

Needs only `tokenizers` (pip). Nothing is downloaded: every tokenizer is trained on the built-in
text below with the model family's own pipeline (GPT-2, Llama 3, Qwen2, Llama 2 legacy and
Metaspace, BERT, RoBERTa, plus one that strings many components together). For each one we write
  <name>/tokenizer.json          the tokenizer as the library saves it (merges post-processed to
                                 the legacy "a b" form for some, the pair form for others)
  <name>/tokenizer_config.json   for some: bos/eos/pad tokens, chat_template, add_bos_token
  <name>/expected.json           for every test string: ids with and without special tokens,
                                 the decoded text (with and without skipping special tokens)
and components.json: single normalizers, pre-tokenizers and decoders with their outputs on the
same strings, so that a mismatch points at one component.

Run from the repository root:
    python3 scripts/make_tokenizer_fixtures.py
"""
import json
import os
import shutil

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import AddedToken

OUT = os.path.join("Tests", "Fixtures", "tokenizers")

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                  r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                 r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")

CHATML_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
                   " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|im_start|>assistant\\n' }}{% endif %}")

# --- the training text -------------------------------------------------------------------------

PARAGRAPHS = [
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
    "### Instruction:\nSummarize the following text in one sentence.\n\n### Response:\nThe text is about tokenizers.",
    "以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。\n\n### 指示:\n次の文章を要約してください。\n\n### 回答:\n東京は日本の首都です。",
    "日本語の文章と English の文章が混ざっています。カタカナ、ひらがな、漢字。",
    "def add(a, b):\n\treturn a + b\n\nfor i in range(10):\n    print(i, add(i, 2))\n",
    "if (x >= 10 && y != 0) { return x / y; } // C-style code\n",
    "The year 2024 had 366 days; 1234567 is a number, and so is 3.14159.",
    "Café, naïve, résumé, façade, jalapeño, Ångström, Zürich, São Paulo, Kraków.",
    "Emoji: 😀 🤗 🚀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ — and symbols © ® ™ € £ ¥.",
    "I'm sure it's fine, don't worry; we'll see what they've done and what you'd like. He's here!",
    "Tabs\tand  double  spaces   and    more     spaces.\n\n\nBlank lines above.\r\nWindows line.\r\n",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 10000 42 007 3,000,000 ½ ² ① Ⅻ ١٢٣.",
    "Ελληνικά κείμενα και Русский текст тоже здесь. Straße ΣΑΣ İstanbul.",
    "<html><body><p class=\"x\">Hello, world!</p></body></html>",
    "SELECT name, count(*) FROM users WHERE age > 30 GROUP BY name;",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
]


def training_text():
    lines = []
    for round_ in range(12):
        for i, p in enumerate(PARAGRAPHS):
            lines.append(p)
            lines.append(p.replace("the", "a").replace("です", "でした") + f" ({round_}-{i})")
    return lines


# --- the strings the tests check ----------------------------------------------------------------

TEST_STRINGS = [
    "",
    " ",
    "   ",
    "\n",
    "\n\n",
    "\t",
    " leading space",
    "trailing space ",
    "  both ends  ",
    "Hello world",
    "Hello, world! How's it going?",
    "don't I'll we've they're she'd I'm it's",
    "DON'T I'LL WE'VE 'S 'ſ",
    "12345",
    "1234567 3.14159 007",
    "### 指示:\n次の文章を要約してください。\n\n### 回答:\n",
    "日本語と English の混在テキスト",
    "👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏽",
    "🤗🚀😀",
    "café naïve résumé",
    "cafe\u0301 nai\u0308ve re\u0301sume\u0301",
    "Ünïcödé ÀÉÎ Ångström",
    "def f(x):\n\treturn x  +  1\n",
    "a  b   c    d",
    "line1\r\nline2\r\n",
    "   \n  \n",
    "x\u00a0y\u3000z",
    "İstanbul ΣΑΣ Straße ǅ",
    "١٢٣ ½ ² ① Ⅻ",
    "鬱龘 rare kanji",
    "zero\u200bwidth and \u0000 null",
    "tab\tseparated\tvalues\t",
    "supercalifragilisticexpialidocious" * 4,
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "x<|im_end|>y",
    "  <|im_start|>  spaced  <|im_end|>  ",
    "<s>hello</s>",
    "<s> hello </s>",
    "[CLS] hi [SEP] [MASK] there",
    "<mask> tok<mask>en <mask>",
    "word wordword [SW] x[SW]y [SW]",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "The quick brown fox jumps over the lazy dog.",
    "<0x41> literal byte token text",
    "SELECT * FROM t WHERE x >= 10;",
    "Ελληνικά και Русский",
    " ?!... ,,, --- ### \"quoted\" 'single'",
    "\u2581already\u2581has\u2581metaspace",
]


def added(content, special=True, lstrip=False, rstrip=False, single_word=False, normalized=None):
    if normalized is None:
        normalized = not special
    return AddedToken(content, special=special, lstrip=lstrip, rstrip=rstrip, single_word=single_word,
                      normalized=normalized)


# --- the tokenizers -----------------------------------------------------------------------------

def gpt2_style():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=900, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tok.train_from_iterator(training_text(), trainer)
    tok.add_special_tokens([added("<|im_start|>"), added("<|im_end|>")])
    config = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
              "model_max_length": 1024, "add_prefix_space": False, "tokenizer_class": "GPT2Tokenizer"}
    return tok, config, "strings"


def llama3_style():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|begin_of_text|>", "<|end_of_text|>"], show_progress=False)
    tok.train_from_iterator(training_text(), trainer)
    tok.add_special_tokens([added("<|start_header_id|>"), added("<|end_header_id|>"), added("<|eot_id|>")])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "model_max_length": 131072,
              "chat_template": "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + "
                               "message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
                               "'<|eot_id|>' }}{% endfor %}",
              "tokenizer_class": "PreTrainedTokenizerFast"}
    return tok, config, "pairs"


def qwen2_style():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=1000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tok.train_from_iterator(training_text(), trainer)
    tok.add_special_tokens([added("<|im_start|>"), added("<|im_end|>")])
    config = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
              "unk_token": None, "model_max_length": 32768, "chat_template": CHATML_TEMPLATE,
              "add_bos_token": False, "tokenizer_class": "Qwen2Tokenizer"}
    return tok, config, "pairs"


def sentencepiece_bpe(pre_tokenizer_form):
    """Llama 2 / TinyLlama / Mistral style: <unk> <s> </s>, then the 256 <0xNN> byte tokens, then
    the learned pieces; merges never cross a ▁. Trained with a Metaspace pre-tokenizer and then
    re-assembled so that the byte tokens live in the model's vocabulary (not as added tokens)."""
    base = Tokenizer(models.BPE())
    base.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=700, limit_alphabet=120, show_progress=False)
    base.train_from_iterator(training_text(), trainer)
    trained = json.loads(base.to_str())["model"]
    pieces = sorted(trained["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece, _ in pieces:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    model = models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    tok = Tokenizer(model)
    if pre_tokenizer_form == "legacy":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(content=" ", left=1, right=0)])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
        tok.decoder = decoders.Sequence([decoders.ByteFallback(),
                                         decoders.Metaspace(replacement="▁", prepend_scheme="first"),
                                         decoders.Fuse()])
    tok.add_special_tokens([added("<unk>"), added("<s>"), added("</s>")])
    tok.add_tokens([added("<|im_start|>", special=False, normalized=False),
                    added("<|im_end|>", special=False, normalized=False)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    config = {"bos_token": {"content": "<s>", "lstrip": False, "normalized": False, "rstrip": False,
                            "single_word": False, "__type": "AddedToken"},
              "eos_token": {"content": "</s>", "lstrip": False, "normalized": False, "rstrip": False,
                            "single_word": False, "__type": "AddedToken"},
              "unk_token": "<unk>", "pad_token": None, "add_bos_token": True, "add_eos_token": False,
              "legacy": pre_tokenizer_form == "legacy", "model_max_length": 2048,
              "chat_template": CHATML_TEMPLATE, "tokenizer_class": "LlamaTokenizer"}
    return tok, config, "strings" if pre_tokenizer_form == "legacy" else "pairs"


def bert_wordpiece():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    trainer = trainers.WordPieceTrainer(vocab_size=900, limit_alphabet=300,
                                        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                        show_progress=False)
    tok.train_from_iterator(training_text(), trainer)
    tok.add_special_tokens([added("[MASK]", lstrip=True)])
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                   ("[CLS]", tok.token_to_id("[CLS]")))
    config = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
              "mask_token": "[MASK]", "do_lower_case": True, "model_max_length": 512,
              "tokenizer_class": "BertTokenizer"}
    return tok, config, None


def roberta_style():
    """ByteLevel with add_prefix_space, RobertaProcessing, and added tokens with lstrip/rstrip,
    single_word and a normalized (non-special) one."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False)
    tok.train_from_iterator(training_text(), trainer)
    tok.add_special_tokens([added("<mask>", lstrip=True), added("<|im_start|>", rstrip=True),
                            added("<|im_end|>", lstrip=True, rstrip=True)])
    tok.add_tokens([added("[SW]", special=False, single_word=True, normalized=False),
                    added("ｗｏｒｄ", special=False, normalized=True)])
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")),
                                                      trim_offsets=True, add_prefix_space=True)
    config = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
              "mask_token": "<mask>", "model_max_length": 512, "tokenizer_class": "RobertaTokenizer"}
    return tok, config, "strings"


def pipeline_mix():
    """Components the real families above do not use, strung together: NFD + StripAccents +
    Lowercase + Strip, a pre-tokenizer Sequence of WhitespaceSplit, Split(string, removed),
    Punctuation and Digits, and a BPE with continuing_subword_prefix/end_of_word_suffix."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase(),
                                           normalizers.Strip(left=True, right=True)])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split("-", behavior="removed"),
        pre_tokenizers.Punctuation(behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=True),
    ])
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    trainer = trainers.BpeTrainer(vocab_size=800, limit_alphabet=150, continuing_subword_prefix="##",
                                  end_of_word_suffix="</w>", special_tokens=["[UNK]", "[BOS]", "[EOS]"],
                                  show_progress=False)
    tok.train_from_iterator(training_text(), trainer)
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A [EOS]", pair="[BOS] $A [EOS] $B:1 [EOS]:1",
                                                       special_tokens=[("[BOS]", 1), ("[EOS]", 2)])
    return tok, None, "pairs"


TOKENIZERS = {
    "gpt2_style": gpt2_style,
    "llama3_style": llama3_style,
    "qwen2_style": qwen2_style,
    "llama2_legacy_bytefallback": lambda: sentencepiece_bpe("legacy"),
    "llama2_metaspace_bytefallback": lambda: sentencepiece_bpe("metaspace"),
    "bert_wordpiece": bert_wordpiece,
    "roberta_style": roberta_style,
    "pipeline_mix": pipeline_mix,
}


def set_merges_form(tokenizer_json, form):
    """The library writes one form; the tests want both."""
    model = tokenizer_json["model"]
    if form is None or "merges" not in model:
        return
    pairs = [m.split(" ", 1) if isinstance(m, str) else list(m) for m in model["merges"]]
    model["merges"] = [" ".join(p) for p in pairs] if form == "strings" else pairs


def write_json(path, value, indent=None):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=indent, separators=(",", ":") if indent is None else None)
        f.write("\n")


def expectations(tok):
    cases = []
    for text in TEST_STRINGS:
        with_special = tok.encode(text, add_special_tokens=True).ids
        without = tok.encode(text, add_special_tokens=False).ids
        cases.append({
            "text": text,
            "ids": with_special,
            "ids_without_special_tokens": without,
            "tokens_without_special_tokens": tok.encode(text, add_special_tokens=False).tokens,
            "decoded": tok.decode(with_special, skip_special_tokens=False),
            "decoded_skipping_special_tokens": tok.decode(with_special, skip_special_tokens=True),
        })
    return cases


# --- single components --------------------------------------------------------------------------

def component_json(kind, component):
    tok = Tokenizer(models.BPE())
    setattr(tok, kind, component)
    return json.loads(tok.to_str())[kind]


def components():
    n, p, d = normalizers, pre_tokenizers, decoders
    norms = [
        n.NFC(), n.NFD(), n.NFKC(), n.NFKD(), n.Lowercase(), n.Strip(), n.Strip(left=False, right=True),
        n.StripAccents(), n.Prepend("▁"), n.Replace(" ", "▁"), n.Replace("  ", " "),
        n.BertNormalizer(), n.BertNormalizer(lowercase=False, strip_accents=False, handle_chinese_chars=False),
        n.BertNormalizer(clean_text=False, strip_accents=True, lowercase=False),
        n.Sequence([n.NFKD(), n.StripAccents(), n.Lowercase()]),
    ]
    pres = [
        p.ByteLevel(add_prefix_space=False), p.ByteLevel(add_prefix_space=True),
        p.ByteLevel(add_prefix_space=False, use_regex=False),
        p.Split(Regex(GPT2_PATTERN), "isolated"), p.Split(Regex(LLAMA3_PATTERN), "isolated"),
        p.Split(Regex(QWEN2_PATTERN), "isolated"),
        p.Split(" ", "removed"), p.Split(" ", "isolated"), p.Split(" ", "merged_with_previous"),
        p.Split(" ", "merged_with_next"), p.Split(" ", "contiguous"), p.Split(" ", "isolated", invert=True),
        p.Split(Regex(r"\d+"), "merged_with_previous"), p.Split(Regex(r"[a-z]+"), "removed", invert=True),
        p.Digits(individual_digits=False), p.Digits(individual_digits=True),
        p.Whitespace(), p.WhitespaceSplit(), p.BertPreTokenizer(), p.Punctuation(),
        p.Punctuation("removed"), p.Punctuation("merged_with_next"), p.CharDelimiterSplit("e"),
        p.Metaspace(prepend_scheme="always", split=True), p.Metaspace(prepend_scheme="first", split=True),
        p.Metaspace(prepend_scheme="never", split=True), p.Metaspace(prepend_scheme="always", split=False),
        p.Sequence([p.WhitespaceSplit(), p.Metaspace(prepend_scheme="first")]),
        p.Sequence([p.Digits(individual_digits=True), p.ByteLevel(add_prefix_space=False)]),
    ]
    token_lists = [
        ["Hello", "Ġworld", "Ċ", "ĉ", "Ġ", "ð", "Ł", "ĺ", "Ģ"],
        ["▁Hello", "▁", "world", "<0x0A>", "<0xE6>", "<0x97>", "<0xA5>", "<0xE6>", "▁x", "<0xFF>", "▁▁"],
        ["▁▁a", "▁b", "c▁"],
        ["hello", "##world", "!", "don", "'", "t", ".", "##s", "i", "'m", "do", "not"],
        ["hel", "lo</w>", "wor", "ld</w>", "x"],
        ["  padded  ", "x", " "],
        ["<|im_start|>", "日本", "Ġ語"],
        [],
    ]
    decs = [
        d.ByteLevel(), d.Metaspace(prepend_scheme="always"), d.Metaspace(prepend_scheme="never"),
        d.Metaspace(prepend_scheme="first"), d.Replace("▁", " "), d.ByteFallback(), d.Fuse(),
        d.Strip(content=" ", left=1, right=0), d.Strip(content=" ", left=2, right=0), d.Strip(content=" ", left=0, right=1), d.WordPiece(),
        d.WordPiece(cleanup=False), d.BPEDecoder(suffix="</w>"),
        d.Sequence([d.Replace("▁", " "), d.ByteFallback(), d.Fuse(), d.Strip(content=" ", left=1, right=0)]),
    ]
    out = {"normalizers": [], "pre_tokenizers": [], "decoders": []}
    for norm in norms:
        out["normalizers"].append({"normalizer": component_json("normalizer", norm),
                                   "cases": [[s, norm.normalize_str(s)] for s in TEST_STRINGS]})
    for pre in pres:
        out["pre_tokenizers"].append({"pre_tokenizer": component_json("pre_tokenizer", pre),
                                      "cases": [[s, [piece for piece, _ in pre.pre_tokenize_str(s)]]
                                                for s in TEST_STRINGS]})
    for dec in decs:
        out["decoders"].append({"decoder": component_json("decoder", dec),
                                "cases": [[tokens, dec.decode(tokens)] for tokens in token_lists]})
    return out


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    for name, build in TOKENIZERS.items():
        tok, config, merges_form = build()
        directory = os.path.join(OUT, name)
        os.makedirs(directory)
        tokenizer_json = json.loads(tok.to_str())
        set_merges_form(tokenizer_json, merges_form)
        write_json(os.path.join(directory, "tokenizer.json"), tokenizer_json)
        # What the tests compare against is what the library does with the file as written.
        reloaded = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        if config is not None:
            write_json(os.path.join(directory, "tokenizer_config.json"), config, indent=2)
        write_json(os.path.join(directory, "expected.json"), {
            "tokenizers_version": tokenizers.__version__,
            "vocab_size": reloaded.get_vocab_size(with_added_tokens=True),
            "cases": expectations(reloaded),
        }, indent=1)
    write_json(os.path.join(OUT, "components.json"), components(), indent=1)
    total = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(OUT) for f in files)
    print(f"wrote {len(TOKENIZERS)} tokenizers and components.json to {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
