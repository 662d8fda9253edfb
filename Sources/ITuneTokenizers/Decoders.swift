// Decoders: token strings → text. Each step maps a list of token strings to another list (the
// reference library's `decode_chain`); the result is their concatenation.

protocol Decoder {
    func decodeChain(_ tokens: [String]) -> [String]
}

enum Decoders {
    static let supported = ["Sequence", "ByteLevel", "Metaspace", "Replace", "ByteFallback", "Fuse", "Strip",
                            "WordPiece", "BPEDecoder"]

    static func load(_ json: JSONCursor) throws -> Decoder? {
        if json.isNull { return nil }
        switch try json.componentType(supported: supported) {
        case "Sequence":
            return SequenceDecoder(steps: try json["decoders"].array().compactMap { try load($0) })
        case "ByteLevel":
            return ByteLevelDecoder()
        case "Metaspace":
            let (replacement, scheme) = try MetaspacePreTokenizer.loadCommon(json)
            return MetaspaceDecoder(replacement: replacement, prependScheme: scheme)
        case "Replace":
            return ReplaceDecoder(replace: try TextReplacement(pattern: json["pattern"], content: json["content"]))
        case "ByteFallback":
            return ByteFallbackDecoder()
        case "Fuse":
            return FuseDecoder()
        case "Strip":
            let field = json["content"]
            let chars = Array(try field.string())
            guard chars.count == 1 else { throw field.invalid("expected a single character") }
            return StripDecoder(content: chars[0].unicodeScalars.first!, start: try json["start"].optionalInt() ?? 0,
                                stop: try json["stop"].optionalInt() ?? 0)
        case "WordPiece":
            return WordPieceDecoder(prefix: try json["prefix"].optionalString() ?? "##",
                                    cleanup: try json["cleanup"].bool(default: true))
        case "BPEDecoder":
            return BPESuffixDecoder(suffix: try json["suffix"].optionalString() ?? "</w>")
        default:
            fatalError("unreachable: componentType checked the list")
        }
    }
}

struct SequenceDecoder: Decoder {
    let steps: [Decoder]
    func decodeChain(_ tokens: [String]) -> [String] {
        steps.reduce(tokens) { $1.decodeChain($0) }
    }
}

/// Reads each token through the ByteLevel alphabet back to bytes (a token with a character
/// outside the alphabet, such as an added token, contributes its own UTF-8), then decodes all
/// bytes as UTF-8, invalid sequences becoming U+FFFD.
struct ByteLevelDecoder: Decoder {
    func decodeChain(_ tokens: [String]) -> [String] {
        var bytes: [UInt8] = []
        for t in tokens {
            if let raw = ByteLevelAlphabet.rawBytes(of: t) { bytes.append(contentsOf: raw) } else {
                bytes.append(contentsOf: t.utf8)
            }
        }
        return [String(decoding: bytes, as: UTF8.self)]
    }
}

/// ▁ back to spaces; in the first token (unless the scheme is `never`) every ▁ is dropped.
struct MetaspaceDecoder: Decoder {
    let replacement: Unicode.Scalar
    let prependScheme: MetaspacePreTokenizer.PrependScheme
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, token in
            var out = ""
            for s in token.unicodeScalars {
                if s == replacement {
                    if i == 0 && prependScheme != .never { continue }
                    out.append(" ")
                } else {
                    out.unicodeScalars.append(s)
                }
            }
            return out
        }
    }
}

struct ReplaceDecoder: Decoder {
    let replace: TextReplacement
    func decodeChain(_ tokens: [String]) -> [String] { tokens.map { replace.apply($0) } }
}

/// Runs of `<0xNN>` tokens become the text their bytes spell; a run that is not valid UTF-8
/// becomes one U+FFFD per byte.
struct ByteFallbackDecoder: Decoder {
    static func byteValue(_ token: String) -> UInt8? {
        let u = Array(token.utf8)
        guard u.count == 6, u[0] == UInt8(ascii: "<"), u[1] == UInt8(ascii: "0"), u[2] == UInt8(ascii: "x"),
              u[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16)
    }

    func decodeChain(_ tokens: [String]) -> [String] {
        var out: [String] = []
        var pending: [UInt8] = []
        func flush() {
            guard !pending.isEmpty else { return }
            if let s = String(validatingUTF8Bytes: pending) {
                out.append(s)
            } else {
                out.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
            }
            pending.removeAll()
        }
        for t in tokens {
            if let b = Self.byteValue(t) {
                pending.append(b)
            } else {
                flush()
                out.append(t)
            }
        }
        flush()
        return out
    }
}

extension String {
    /// The string the bytes spell, or nil when they are not valid UTF-8.
    init?(validatingUTF8Bytes bytes: [UInt8]) {
        var it = bytes.makeIterator()
        var decoder = UTF8()
        var s = ""
        loop: while true {
            switch decoder.decode(&it) {
            case .scalarValue(let v): s.unicodeScalars.append(v)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = s
    }
}

struct FuseDecoder: Decoder {
    func decodeChain(_ tokens: [String]) -> [String] { [tokens.joined()] }
}

/// Removes up to `start` leading and `stop` trailing `content` characters from every token.
struct StripDecoder: Decoder {
    let content: Unicode.Scalar
    let start: Int
    let stop: Int
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.map { token in
            let chars = Array(token.unicodeScalars)
            var lo = 0
            while lo < min(start, chars.count) && chars[lo] == content { lo += 1 }
            var hi = chars.count
            var removed = 0
            while removed < stop && hi > lo && chars[hi - 1] == content { hi -= 1; removed += 1 }
            var s = String.UnicodeScalarView()
            s.append(contentsOf: chars[lo..<hi])
            return String(s)
        }
    }
}

/// Joins WordPiece tokens: `##x` glues to the previous token, others get a space; `cleanup`
/// undoes BERT's spacing around punctuation and contractions.
struct WordPieceDecoder: Decoder {
    let prefix: String
    let cleanup: Bool

    static func cleanUp(_ s: String) -> String {
        var t = s
        for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                       (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            t = t.replacingAll(a, with: b)
        }
        return t
    }

    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, token in
            var t = token
            if i != 0 {
                if !prefix.isEmpty && t.utf8.starts(with: prefix.utf8) {
                    t = String(decoding: Array(t.utf8.dropFirst(prefix.utf8.count)), as: UTF8.self)
                } else if prefix.isEmpty {
                    // replacen("", "", 1) leaves the token as it is.
                } else {
                    t = " " + t
                }
            }
            return cleanup ? Self.cleanUp(t) : t
        }
    }
}

/// The original BPE's end-of-word suffix: `</w>` becomes a space, except at the very end.
struct BPESuffixDecoder: Decoder {
    let suffix: String
    func decodeChain(_ tokens: [String]) -> [String] {
        let n = tokens.count
        return tokens.enumerated().map { i, token in
            token.replacingAll(suffix, with: i == n - 1 ? "" : " ")
        }
    }
}

extension String {
    /// Every non-overlapping occurrence of `target`, left to right, replaced (byte-wise, so that
    /// it agrees with Rust's `str::replace` without Foundation's Character semantics).
    func replacingAll(_ target: String, with replacement: String) -> String {
        let t = Array(target.utf8)
        guard !t.isEmpty else { return self }
        let s = Array(self.utf8)
        guard s.count >= t.count else { return self }
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = 0
        var changed = false
        while i < s.count {
            if i + t.count <= s.count && s[i] == t[0] && s[i..<(i + t.count)].elementsEqual(t) {
                out.append(contentsOf: replacement.utf8)
                i += t.count
                changed = true
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return changed ? String(decoding: out, as: UTF8.self) : self
    }
}
