#!/usr/bin/env python3
"""SentencePiece Unigram tokenizers (T5, FLAN-T5, mT5 style) trained here, and what the Hugging Face
`tokenizers` library does with them: golden fixtures of the Unigram tests.

Needs `tokenizers` and `sentencepiece` (pip). Nothing is downloaded. The Unigram vocabularies are
trained with tokenizers' UnigramTrainer on the same built-in text as scripts/make_tokenizer_fixtures.py;
the `precompiled_charsmap` (SentencePiece's serialised nmt_nfkc normaliser: a darts-clone double
array trie plus the normalised strings) is taken from a tiny model that sentencepiece trains here,
because only sentencepiece can build that blob. We write

  Tests/Fixtures/tokenizers/t5_unigram/                 T5 / FLAN-T5 layout: <pad> </s> <unk>, then
        pieces, then <extra_id_N>; Precompiled + Replace(" {2,}"), WhitespaceSplit + Metaspace(always),
        "$A </s>", Metaspace decoder
  Tests/Fixtures/tokenizers/mt5_unigram_bytefallback/   what transformers' SpmConverter builds for a
        byte-fallback model: <0xNN> pieces, Precompiled + Replace(\\A +| +\\z) + Replace( {2,}) +
        Replace(" ", "▁"), Metaspace(first, split=false), Replace/ByteFallback/Fuse/Strip decoder
  each with tokenizer.json, tokenizer_config.json and expected.json (as make_tokenizer_fixtures.py),
and unigram_precompiled.json: the Precompiled normaliser alone on every test string (its blob is the
first normaliser of t5_unigram/tokenizer.json).

Run from the repository root:
    python3 scripts/make_unigram_fixtures.py
"""
import json
import os
import shutil
import sys
import tempfile

import sentencepiece as spm
import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer_fixtures import TEST_STRINGS, expectations, training_text, write_json  # noqa: E402

OUT = os.path.join("Tests", "Fixtures", "tokenizers")
EXTRA_IDS = 8

EXTRA_STRINGS = [
    "ＡＢＣ　ｄｅｆ　１２３！？",            # full-width ASCII and ideographic space (NFKC folds them)
    "ｶﾀｶﾅ ﾊﾟﾋﾟﾌﾟ ｶﾞｷﾞ",                      # half-width katakana with voiced marks
    "ﬁﬂ ﬃ ㍻ ㌔ ① ™ ㈱",                       # compatibility ligatures and squared forms
    "Ａ\u0301 e\u0301 ｶ\u3099",                  # graphemes whose first scalar maps and whose rest does not
    "x = [i**2 for i in range(10)]  # squares\n\tif x: print(x)",
    "東京都の人口は約1400万人です。　大阪は２番目。",
    "<pad> and </s> and <unk> typed as text <extra_id_0> sentinel",
    "translate English to German: The house is wonderful.",
    "q\u0000r \u007f s\u200d t",
    "multiple     spaces\n\nand\r\nnewlines  ",
]

STRINGS = TEST_STRINGS + EXTRA_STRINGS


def nmt_nfkc_charsmap():
    """The precompiled_charsmap of sentencepiece's nmt_nfkc rule, from a model trained on our text."""
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write("\n".join(line.replace("\n", " ") for line in training_text()))
        prefix = os.path.join(tmp, "m")
        spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, vocab_size=300, model_type="unigram",
                                       normalization_rule_name="nmt_nfkc", minloglevel=2)
        with open(prefix + ".model", "rb") as f:
            proto = f.read()
    # ModelProto field 3 is NormalizerSpec; its field 2 is precompiled_charsmap (both length-delimited).
    spec = proto_field(proto, 3)
    return proto_field(spec, 2)


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def proto_field(buf, wanted):
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, i = varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = varint(buf, i)
            if number == wanted:
                return buf[i:i + n]
            i += n
        else:
            raise ValueError(f"unexpected wire type {wire}")
    raise ValueError(f"field {wanted} not found")


def added(content, special=True):
    return AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False, single_word=False)


def train_unigram(precompiled, specials, vocab_size):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([precompiled, normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>",
                                      show_progress=False, shrinking_factor=0.75, max_piece_length=8)
    tok.train_from_iterator(training_text(), trainer)
    return json.loads(tok.to_str())["model"]["vocab"]


def t5_unigram(charsmap):
    precompiled = normalizers.Precompiled(charsmap)
    vocab = train_unigram(precompiled, ["<pad>", "</s>", "<unk>"], 500)
    vocab = [tuple(v) for v in vocab] + [(f"<extra_id_{i}>", 0.0) for i in range(EXTRA_IDS - 1, -1, -1)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([precompiled, normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.add_special_tokens([added("<pad>"), added("</s>"), added("<unk>")]
                           + [added(f"<extra_id_{i}>") for i in range(EXTRA_IDS)])
    tok.post_processor = processors.TemplateProcessing(single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"],
                                                       special_tokens=[("</s>", 1)])
    config = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "extra_ids": EXTRA_IDS,
              "additional_special_tokens": [f"<extra_id_{i}>" for i in range(EXTRA_IDS)],
              "model_max_length": 512, "tokenizer_class": "T5Tokenizer"}
    return tok, config


def mt5_unigram_bytefallback(charsmap):
    precompiled = normalizers.Precompiled(charsmap)
    trained = train_unigram(precompiled, ["<pad>", "</s>", "<unk>"], 400)
    vocab = [tuple(v) for v in trained[:3]] + [("<0x%02X>" % b, 0.0) for b in range(256)]
    vocab += [tuple(v) for v in trained[3:]]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([
        precompiled, normalizers.Replace(Regex(r"\A +| +\z"), ""), normalizers.Replace(Regex(" {2,}"), " "),
        normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1, right=0)])
    tok.add_special_tokens([added("<pad>"), added("</s>"), added("<unk>")])
    tok.post_processor = processors.TemplateProcessing(single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"],
                                                       special_tokens=[("</s>", 1)])
    config = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "model_max_length": 1024,
              "tokenizer_class": "T5Tokenizer"}
    return tok, config


def main():
    charsmap = nmt_nfkc_charsmap()
    names = {"t5_unigram": t5_unigram, "mt5_unigram_bytefallback": mt5_unigram_bytefallback}
    for name, build in names.items():
        tok, config = build(charsmap)
        directory = os.path.join(OUT, name)
        if os.path.isdir(directory):
            shutil.rmtree(directory)
        os.makedirs(directory)
        write_json(os.path.join(directory, "tokenizer.json"), json.loads(tok.to_str()))
        reloaded = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        write_json(os.path.join(directory, "tokenizer_config.json"), config, indent=2)
        # make_tokenizer_fixtures.expectations reads its own TEST_STRINGS; extend them for this run.
        TEST_STRINGS[:] = STRINGS
        write_json(os.path.join(directory, "expected.json"), {
            "tokenizers_version": tokenizers.__version__,
            "vocab_size": reloaded.get_vocab_size(with_added_tokens=True),
            "cases": expectations(reloaded),
        }, indent=1)
    # The blob itself is the first normalizer of t5_unigram/tokenizer.json; not repeated here.
    precompiled = normalizers.Precompiled(charsmap)
    write_json(os.path.join(OUT, "unigram_precompiled.json"), {
        "normalizer": "t5_unigram/tokenizer.json normalizer.normalizers[0]",
        "cases": [[s, precompiled.normalize_str(s)] for s in STRINGS],
    }, indent=1)
    print(f"wrote {', '.join(names)} and unigram_precompiled.json to {OUT}")


if __name__ == "__main__":
    main()
