// tokenizer.json support: byte-level BPE, SentencePiece-style BPE, WordPiece.
