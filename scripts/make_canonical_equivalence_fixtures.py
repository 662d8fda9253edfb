#!/usr/bin/env python3
"""A tokenizer whose vocabulary and added tokens hold canonically equivalent but distinct strings
(precomposed "é" U+00E9 beside decomposed "e" + U+0301, "Å" U+00C5 beside the Angstrom sign
U+212B), as SentencePiece-style multilingual vocabularies without a normaliser do, and what the
Hugging Face `tokenizers` library does with it: each spelling keeps its own id. Swift compares
Strings by canonical equivalence, so a String-keyed table would conflate them.

    python3 scripts/make_canonical_equivalence_fixtures.py
writes Tests/Fixtures/tokenizers/canonical_equivalence/{tokenizer.json,expected.json}.
"""
import json
import os

import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

OUT = os.path.join("Tests", "Fixtures", "tokenizers", "canonical_equivalence")
PRE = "e\u0301"    # decomposed é
COMP = "\u00e9"    # precomposed é

# Llama 2's layout: Metaspace, byte fallback, <unk> <s> </s> and the 256 byte tokens first.
vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
for b in range(256):
    vocab[f"<0x{b:02X}>"] = len(vocab)
pieces = ["▁", "c", "a", "f", "e", "\u0301", COMP, "\u00c5", "\u212b", "n", "g", "s", "t", "r", "o", "m",
          "▁c", "▁ca", "▁caf", "▁café".replace("é", COMP), "e\u0301", "▁cafe\u0301",
          "▁\u00c5", "▁\u212b", "ng", "st", "▁\u00c5ng", "▁\u212bng", "tr", "om", "▁\u00c5ngst", "▁\u212bngst"]
merges = [("▁", "c"), ("▁c", "a"), ("▁ca", "f"), ("▁caf", COMP), ("e", "\u0301"), ("▁caf", PRE),
          ("▁", "\u00c5"), ("▁", "\u212b"), ("n", "g"), ("s", "t"), ("▁\u00c5", "ng"), ("▁\u212b", "ng"),
          ("t", "r"), ("o", "m"), ("▁\u00c5ng", "st"), ("▁\u212bng", "st")]
for p in pieces:
    vocab.setdefault(p, len(vocab))
tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
tok.add_special_tokens([AddedToken("<s>", special=True, normalized=False), AddedToken("</s>", special=True, normalized=False)])
# Two added tokens that differ only by composition, and a special one of each.
tok.add_tokens([AddedToken(f"<{COMP}>", normalized=False), AddedToken(f"<{PRE}>", normalized=False)])
tok.add_special_tokens([AddedToken(f"[{COMP}]", special=True, normalized=False), AddedToken(f"[{PRE}]", special=True, normalized=False)])
# An ordinary token and a special one that differ only by composition: decoding skips only the special one.
tok.add_tokens([AddedToken(f"{{{COMP}}}", normalized=False)])
tok.add_special_tokens([AddedToken(f"{{{PRE}}}", special=True, normalized=False)])

texts = [f"caf{COMP}", f"cafe\u0301", f"caf{COMP} cafe\u0301", "\u00c5ngstrom", "\u212bngstrom", "A\u030angstrom",
         f"x<{COMP}>y<{PRE}>z", f"[{PRE}] und [{COMP}]", f"<e>\u0301 <{PRE}", f"a{{{COMP}}}b{{{PRE}}}c"]
os.makedirs(OUT, exist_ok=True)
tok.save(os.path.join(OUT, "tokenizer.json"))
expected = {"tokenizers": tokenizers.__version__,
            # pairs, not an object: a reader that compares keys by canonical equivalence would merge them
            "ids_of": [[t, tok.token_to_id(t)] for t in [COMP, PRE, "\u00c5", "\u212b", f"<{COMP}>", f"<{PRE}>", f"[{COMP}]", f"[{PRE}]",
                                                         f"{{{COMP}}}", f"{{{PRE}}}"]],
            "cases": [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids,
                       "decoded": tok.decode(tok.encode(t, add_special_tokens=False).ids, skip_special_tokens=False),
                       "decoded_skip": tok.decode(tok.encode(t, add_special_tokens=False).ids, skip_special_tokens=True)}
                      for t in texts]}
with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
    json.dump(expected, f, ensure_ascii=False, indent=1)
    f.write("\n")
for c in expected["cases"]:
    print(ascii(c["text"]), c["ids"])
print(expected["ids_of"])
