// Added tokens (`added_tokens` in tokenizer.json): strings matched in the input before the
// model sees it — special tokens such as <|im_start|> and any tokens added for fine-tuning.
//
// As in the reference library: tokens with `normalized: false` are matched in the raw text; the
// stretches between them are normalized and then searched for the `normalized: true` tokens
// (spelled as the normalizer spells them). Matching is leftmost-longest and non-overlapping;
// `single_word` discards a match inside a word, `lstrip`/`rstrip` swallow the whitespace beside it.

struct AddedToken {
    let id: Int
    let content: String
    let special: Bool
    let lstrip: Bool
    let rstrip: Bool
    let singleWord: Bool
    let normalized: Bool

    init(_ json: JSONCursor) throws {
        id = try json["id"].int()
        content = try json["content"].string()
        special = try json["special"].bool(default: false)
        lstrip = try json["lstrip"].bool(default: false)
        rstrip = try json["rstrip"].bool(default: false)
        singleWord = try json["single_word"].bool(default: false)
        normalized = try json["normalized"].bool(default: !special)
    }
}

/// A byte trie over a set of added tokens, for leftmost-longest matching.
struct AddedTokenTrie {
    private var children: [[(UInt8, Int32)]] = [[]]
    /// Index into `tokens` of the token ending at each node, or -1.
    private var terminal: [Int32] = [-1]
    private var firstByte = [Bool](repeating: false, count: 256)
    let tokens: [AddedToken]

    var isEmpty: Bool { tokens.isEmpty }

    /// `spellings[k]` is how `tokens[k]` appears in the text it is searched in.
    init(tokens: [AddedToken], spellings: [[UInt8]]) {
        self.tokens = tokens
        for (k, bytes) in spellings.enumerated() where !bytes.isEmpty {
            var node = 0
            for b in bytes {
                if let child = children[node].first(where: { $0.0 == b }) {
                    node = Int(child.1)
                } else {
                    children.append([])
                    terminal.append(-1)
                    children[node].append((b, Int32(children.count - 1)))
                    node = children.count - 1
                }
            }
            // Two tokens with one spelling: the first one added wins, as in a pattern list.
            if terminal[node] < 0 { terminal[node] = Int32(k) }
            firstByte[Int(bytes[0])] = true
        }
    }

    /// The longest token spelled at `i`: (length, token index), or nil.
    @inline(__always)
    private func longestMatch(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> (Int, Int)? {
        var node = 0
        var best: (Int, Int)?
        var j = i
        while j < n {
            guard let child = children[node].first(where: { $0.0 == p[j] }) else { break }
            node = Int(child.1)
            j += 1
            if terminal[node] >= 0 { best = (j - i, Int(terminal[node])) }
        }
        return best
    }

    /// Splits `text` into stretches, each either an added token (its id) or plain text (nil),
    /// covering the text in order. (The reference library's `AddedVocabulary::find_matches`.)
    func split(_ text: UnsafeBufferPointer<UInt8>) -> [(Range<Int>, Int?)] {
        let n = text.count
        guard let p = text.baseAddress, n > 0, !tokens.isEmpty else { return n > 0 ? [(0..<n, nil)] : [] }
        var out: [(Range<Int>, Int?)] = []
        var startOffset = 0
        var i = 0
        while i < n {
            guard firstByte[Int(p[i])], let (length, k) = longestMatch(p, i, n) else {
                i += 1
                continue
            }
            let token = tokens[k]
            var start = i
            var stop = i + length
            i = stop  // the search goes on after the match, whether it is kept or not
            if token.singleWord {
                let startsWord = start == 0 || !Self.isWordCharacter(before: start, p)
                let endsWord = stop == n || !Self.isWordCharacter(at: stop, p)
                if !startsWord || !endsWord { continue }
            }
            if token.lstrip {
                var s = start
                while s > 0 {
                    let k = previousScalarStart(p, before: s)
                    let (v, _) = decodeScalar(p, k)
                    if CharClass.of(v) & CharClass.whitespace == 0 { break }
                    s = k
                }
                start = max(s, startOffset)
            }
            if token.rstrip {
                while stop < n {
                    let (v, len) = decodeScalar(p, stop)
                    if CharClass.of(v) & CharClass.whitespace == 0 { break }
                    stop += len
                }
            }
            if startOffset < start { out.append((startOffset..<start, nil)) }
            out.append((start..<stop, token.id))
            startOffset = stop
        }
        if startOffset < n { out.append((startOffset..<n, nil)) }
        return out
    }

    private static func isWordCharacter(before i: Int, _ p: UnsafePointer<UInt8>) -> Bool {
        let (v, _) = decodeScalar(p, previousScalarStart(p, before: i))
        return CharClass.of(v) & CharClass.word != 0
    }

    private static func isWordCharacter(at i: Int, _ p: UnsafePointer<UInt8>) -> Bool {
        let (v, _) = decodeScalar(p, i)
        return CharClass.of(v) & CharClass.word != 0
    }
}
