import Foundation

// Trains a byte-level BPE tokenizer (the GPT-2 / Llama 3 / Qwen2 kind) and writes it as a
// tokenizer.json that this package and Hugging Face `tokenizers` both load. Why: the embedded
// demo builds its own small model in Hugging Face format, tokenizer included, from nothing.

public enum BPETrainer {
    /// Learns merges over `texts` split by GPT-2's pattern until the vocabulary (256 bytes +
    /// merges) reaches `vocabSize`; `specialTokens` get the ids after it. Deterministic: ties
    /// between pair counts go to the lexicographically smallest pair.
    /// Returns the tokenizer.json bytes.
    public static func trainByteLevel(texts: [String], vocabSize: Int, specialTokens: [String]) throws -> Data {
        // Word frequencies over byte-level symbols.
        var wordCounts: [[UInt8]: Int] = [:]
        for text in texts {
            var t = text
            t.withUTF8 { buf in
                guard let p = buf.baseAddress else { return }
                var i = 0
                while i < buf.count {
                    let j = max(i + 1, gpt2MatchEnd(p, i, buf.count))
                    wordCounts[Array(buf[i..<j]), default: 0] += 1
                    i = j
                }
            }
        }
        let byteSymbol = (0..<256).map { String(Character(Unicode.Scalar(ByteLevelAlphabet.scalarOfByte[$0])!)) }
        var symbols: [String] = byteSymbol
        var idOf: [String: Int] = Dictionary(uniqueKeysWithValues: byteSymbol.enumerated().map { ($1, $0) })
        // Each word as a list of symbol ids, with its count; sorted for determinism.
        var words: [([Int], Int)] = wordCounts.sorted { $0.key.lexicographicallyPrecedes($1.key) }
            .map { (w, c) in (w.map { Int($0) }, c) }
        var merges: [(String, String)] = []
        while symbols.count < vocabSize {
            var pairCounts: [Int: Int] = [:]  // key a·65536 + b
            for (w, c) in words where w.count > 1 {
                for k in 0..<(w.count - 1) { pairCounts[w[k] << 16 | w[k + 1], default: 0] += c }
            }
            guard let best = pairCounts.max(by: { x, y in
                x.value != y.value ? x.value < y.value
                    : (symbols[x.key >> 16], symbols[x.key & 0xFFFF]) > (symbols[y.key >> 16], symbols[y.key & 0xFFFF])
            }), best.value >= 2 else { break }
            let (a, b) = (best.key >> 16, best.key & 0xFFFF)
            let merged = symbols[a] + symbols[b]
            let id = symbols.count
            symbols.append(merged)
            idOf[merged] = id
            merges.append((symbols[a], symbols[b]))
            for i in words.indices where words[i].0.count > 1 {
                var w = words[i].0
                var k = 0
                var out: [Int] = []
                out.reserveCapacity(w.count)
                while k < w.count {
                    if k + 1 < w.count, w[k] == a, w[k + 1] == b { out.append(id); k += 2 } else { out.append(w[k]); k += 1 }
                }
                w = out
                words[i].0 = w
            }
        }
        var vocab: [String: Int] = [:]
        for (i, s) in symbols.enumerated() { vocab[s] = i }
        let added: [[String: Any]] = specialTokens.enumerated().map { i, s in
            ["id": symbols.count + i, "content": s, "single_word": false, "lstrip": false, "rstrip": false,
             "normalized": false, "special": true]
        }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        let json: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": NSNull(), "pre_tokenizer": byteLevel,
            "post_processor": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true],
            "decoder": byteLevel,
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges.map { [$0.0, $0.1] }] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
    }
}
