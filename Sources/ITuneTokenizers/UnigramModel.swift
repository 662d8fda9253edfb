// SentencePiece Unigram (T5, FLAN-T5, mT5): every piece has a log-probability score, and a word is
// cut into the pieces whose scores sum highest (Viterbi over the lattice of vocabulary pieces that
// start at each character). A character no piece covers becomes unk, scored `min score − 10` as
// SentencePiece does; adjacent unks fuse into one; with byte_fallback a piece that is not in the
// vocabulary (an unk stretch) is spelled as its `<0xNN>` byte pieces instead.
//
// The lattice looks pieces up by length in the vocabulary's hash table rather than walking a trie:
// pieces are short (the longest bounds the search), and each distinct word is segmented once
// (the caller caches words). Lengths are tried shortest first, as the reference library's trie
// yields them, so that ties between equal scores resolve the same way.

final class UnigramModel: TokenizerModel {
    private let vocab: Vocabulary
    private let scores: [Double]
    private let unkID: Int32
    private let byteFallback: Bool
    private let unkScore: Double
    /// Longest piece, in bytes: no longer prefix can be in the vocabulary.
    private let maxPieceBytes: Int
    /// ids of `<0x00>` … `<0xFF>` (-1 where absent), for byte_fallback.
    private let byteTokenIDs: [Int32]
    /// SentencePiece's penalty for an unknown character, below the least likely piece.
    static let unknownPenalty = 10.0

    /// `json` is the `model` object: `{"type": "Unigram", "unk_id": 2, "vocab": [["▁", -2.1], …],
    /// "byte_fallback": false}`; ids are the positions in `vocab`.
    init(_ json: JSONCursor) throws {
        let entries = try json["vocab"].array()
        var table = ByteStringTable(capacity: entries.count)
        var tokens = [String?]()
        var scores = [Double]()
        tokens.reserveCapacity(entries.count)
        scores.reserveCapacity(entries.count)
        var minScore = Double.infinity
        var longest = 0
        for (id, entry) in entries.enumerated() {
            let pair = try entry.array()
            guard pair.count == 2 else { throw entry.invalid("expected [piece, score]") }
            let piece = try pair[0].string()
            let score: Double
            switch pair[1].value {
            case .int(let v): score = Double(v)
            case .double(let v) where v.isFinite: score = v
            default: throw pair[1].invalid("expected a finite number (the piece's log probability)")
            }
            let bytes = Array(piece.utf8)
            // The reference library keeps the last id of a repeated piece; so do we.
            table.insert(bytes, value: Int32(id))
            tokens.append(piece)
            scores.append(score)
            minScore = min(minScore, score)
            longest = max(longest, bytes.count)
        }
        guard !entries.isEmpty else { throw json["vocab"].invalid("is empty: a tokenizer needs at least one token") }
        guard entries.count < Int(Int32.max) else { throw json["vocab"].invalid("has too many pieces") }
        let v = Vocabulary(table: table, tokens: tokens, count: entries.count)
        vocab = v
        self.scores = scores
        unkScore = minScore - Self.unknownPenalty
        maxPieceBytes = longest
        byteFallback = try json["byte_fallback"].bool(default: false)
        if let unk = try json["unk_id"].optionalInt() {
            guard unk >= 0 && unk < entries.count else {
                throw json["unk_id"].invalid("\(unk) is not an id of model.vocab (0..<\(entries.count))")
            }
            unkID = Int32(unk)
        } else {
            unkID = -1
        }
        byteTokenIDs = (0..<256).map { b in
            let hex = String(b, radix: 16, uppercase: true)
            return v.id("<0x" + (hex.count == 1 ? "0" + hex : hex) + ">")
        }
    }

    var vocabularyCount: Int { vocab.count }
    var maxID: Int { vocab.tokens.count - 1 }

    func id(of token: String) -> Int? {
        let id = vocab.id(token)
        return id >= 0 ? Int(id) : nil
    }

    func token(of id: Int) -> String? {
        id >= 0 && id < vocab.tokens.count ? vocab.tokens[id] : nil
    }

    /// The piece score of `id` (SentencePiece's log probability). Why: tests and vocabulary tools.
    func score(of id: Int) -> Double? { id >= 0 && id < scores.count ? scores[id] : nil }

    func tokenize(_ word: UnsafeBufferPointer<UInt8>, scratch: ModelScratch, into ids: inout [Int32]) {
        guard let p = word.baseAddress, word.count > 0 else { return }
        let n = word.count
        // best[e]: score of the best path over bytes 0..<e; from[e]: where its last piece starts;
        // piece[e]: that piece's id (unkID for an unknown character). -1 in from[e] = unreached.
        var best = [Double](repeating: 0, count: n + 1)
        var from = [Int](repeating: -1, count: n + 1)
        var piece = [Int32](repeating: -1, count: n + 1)
        from[0] = 0
        var start = 0
        while start < n {
            let here = best[start]
            let charLength = min(utf8Length(lead: p[start]), n - start)
            var coversChar = false
            var end = start + charLength
            let limit = min(n, start + maxPieceBytes)
            while end <= limit {
                let id = vocab.table.find(p + start, end - start)
                if id >= 0 {
                    let candidate = here + scores[Int(id)]
                    if from[end] < 0 || candidate > best[end] {
                        best[end] = candidate
                        from[end] = start
                        piece[end] = id
                    }
                    if end - start == charLength { coversChar = true }
                }
                if end == n { break }
                end += min(utf8Length(lead: p[end]), n - end)
            }
            if !coversChar {
                let e = start + charLength
                let candidate = here + unkScore
                if from[e] < 0 || candidate > best[e] {
                    best[e] = candidate
                    from[e] = start
                    piece[e] = unkID
                }
            }
            start += charLength
        }
        // Walk back; a run of unknown characters fuses into one piece, as the reference does.
        var spans: [(Range<Int>, Int32)] = []
        var end = n
        while end > 0 {
            let s = from[end]
            let id = piece[end]
            if id == unkID && unkID >= 0, let last = spans.last, last.1 == unkID, last.0.lowerBound == end {
                spans[spans.count - 1] = (s..<last.0.upperBound, unkID)
            } else {
                spans.append((s..<end, id))
            }
            end = s
        }
        for (range, id) in spans.reversed() {
            // Without an unk id an uncovered character has no id at all: it is dropped.
            if id < 0 { continue }
            if id != unkID {
                ids.append(id)
                continue
            }
            // A fused unk stretch may still be a piece of the vocabulary (never in practice) — the
            // reference looks the string up again before it falls back.
            let known = vocab.table.find(p + range.lowerBound, range.count)
            if known >= 0 { ids.append(known); continue }
            if byteFallback, range.allSatisfy({ byteTokenIDs[Int(p[$0])] >= 0 }) {
                for k in range { ids.append(byteTokenIDs[Int(p[k])]) }
                continue
            }
            ids.append(unkID)
        }
    }
}

extension Vocabulary {
    init(table: ByteStringTable, tokens: [String?], count: Int) {
        self.table = table
        self.tokens = tokens
        self.count = count
    }
}
