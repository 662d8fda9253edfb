// Pre-tokenizers: cut normalized text into the pieces ("words") the model tokenizes one by one.
//
// A segment is one stretch of text between added tokens, as UTF-8 bytes plus the byte ranges of
// its current pieces. Splitting only rewrites the ranges; the few pre-tokenizers that change text
// (ByteLevel's prefix space, Metaspace) rebuild the bytes. ByteLevel's byte→character mapping is
// deferred: it sets `byteLevel` and the model maps bytes itself (on a cache miss only), unless a
// later pre-tokenizer needs the mapped text, which then materializes it.

struct PreTokenizedSegment {
    var bytes: [UInt8]
    /// Non-empty, ordered, non-overlapping ranges into `bytes`.
    var pieces: [Range<Int>]
    /// Start of the piece that begins at the start of the original input (Metaspace's
    /// `prepend_scheme: first` prepends only there), or -1.
    var originStart: Int
    /// The pieces are raw bytes that the model must read through the ByteLevel alphabet.
    var byteLevel: Bool

    mutating func materializeByteLevel() {
        guard byteLevel else { return }
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        var newPieces = [Range<Int>]()
        newPieces.reserveCapacity(pieces.count)
        var newOrigin = -1
        bytes.withUnsafeBufferPointer { buf in
            guard let p = buf.baseAddress else { return }
            for r in pieces {
                let start = out.count
                ByteLevelAlphabet.appendMapped(p, r, to: &out)
                if r.lowerBound == originStart { newOrigin = start }
                newPieces.append(start..<out.count)
            }
        }
        bytes = out
        pieces = newPieces
        originStart = newOrigin
        byteLevel = false
    }

    /// Splits every piece where `pattern` matches, keeping or dropping the matches as `behavior`
    /// says (the reference library's `NormalizedString::split`).
    mutating func split(_ pattern: SplitPattern, _ behavior: SplitBehavior, invert: Bool = false) {
        var newPieces = [Range<Int>]()
        newPieces.reserveCapacity(pieces.count * 4)
        var matches = [(Range<Int>, Bool)]()
        bytes.withUnsafeBufferPointer { buf in
            guard let p = buf.baseAddress else { return }
            for r in pieces {
                matches.removeAll(keepingCapacity: true)
                pattern.findMatches(p, r, into: &matches)
                if invert { for k in matches.indices { matches[k].1.toggle() } }
                behavior.apply(matches, into: &newPieces)
            }
        }
        pieces = newPieces
    }
}

enum SplitBehavior: String {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"

    static func load(_ json: JSONCursor) throws -> SplitBehavior {
        let name = try json.string()
        guard let b = SplitBehavior(rawValue: name) else {
            throw TokenizerError.unsupported(file: json.file, path: json.path, value: name,
                                             supported: ["Removed", "Isolated", "MergedWithPrevious",
                                                         "MergedWithNext", "Contiguous"])
        }
        return b
    }

    /// Turns one piece's (range, isMatch) list into pieces, appended to `out`.
    func apply(_ m: [(Range<Int>, Bool)], into out: inout [Range<Int>]) {
        let first = out.count
        switch self {
        case .isolated:
            for (r, _) in m { out.append(r) }
        case .removed:
            for (r, isMatch) in m where !isMatch { out.append(r) }
        case .contiguous:
            var previous = false
            for (r, isMatch) in m {
                if isMatch == previous && out.count > first {
                    out[out.count - 1] = out[out.count - 1].lowerBound..<r.upperBound
                } else {
                    out.append(r)
                }
                previous = isMatch
            }
        case .mergedWithPrevious:
            var previous = false
            for (r, isMatch) in m {
                if isMatch && !previous && out.count > first {
                    out[out.count - 1] = out[out.count - 1].lowerBound..<r.upperBound
                } else {
                    out.append(r)
                }
                previous = isMatch
            }
        case .mergedWithNext:
            var previous = false
            var reversed = [Range<Int>]()
            for (r, isMatch) in m.reversed() {
                if isMatch && !previous && !reversed.isEmpty {
                    reversed[reversed.count - 1] = r.lowerBound..<reversed[reversed.count - 1].upperBound
                } else {
                    reversed.append(r)
                }
                previous = isMatch
            }
            out.append(contentsOf: reversed.reversed())
        }
    }
}

protocol PreTokenizer {
    func preTokenize(_ segment: inout PreTokenizedSegment)
}

enum PreTokenizers {
    static let supported = ["Sequence", "ByteLevel", "Split", "Whitespace", "WhitespaceSplit", "BertPreTokenizer",
                            "Punctuation", "Digits", "Metaspace", "CharDelimiterSplit"]

    static func load(_ json: JSONCursor) throws -> PreTokenizer? {
        if json.isNull { return nil }
        switch try json.componentType(supported: supported) {
        case "Sequence":
            return SequencePreTokenizer(steps: try json["pretokenizers"].array().compactMap { try load($0) })
        case "ByteLevel":
            return ByteLevelPreTokenizer(addPrefixSpace: try json["add_prefix_space"].bool(default: true),
                                         useRegex: try json["use_regex"].bool(default: true))
        case "Split":
            return SplitPreTokenizer(pattern: try SplitPattern.load(json["pattern"]),
                                     behavior: try SplitBehavior.load(json["behavior"]),
                                     invert: try json["invert"].bool(default: false))
        case "Whitespace":
            return WhitespacePreTokenizer()
        case "WhitespaceSplit":
            return SplitPreTokenizer(pattern: .characters { CharClass.of($0) & CharClass.whitespace != 0 },
                                     behavior: .removed, invert: false)
        case "BertPreTokenizer":
            return SequencePreTokenizer(steps: [
                SplitPreTokenizer(pattern: .characters { CharClass.of($0) & CharClass.whitespace != 0 },
                                  behavior: .removed, invert: false),
                SplitPreTokenizer(pattern: .characters(CharClass.isBertPunctuation), behavior: .isolated, invert: false),
            ])
        case "Punctuation":
            let behavior = json["behavior"].isNull ? .isolated : try SplitBehavior.load(json["behavior"])
            return SplitPreTokenizer(pattern: .characters(CharClass.isBertPunctuation), behavior: behavior, invert: false)
        case "Digits":
            let individual = try json["individual_digits"].bool(default: false)
            return SplitPreTokenizer(pattern: .characters { CharClass.of($0) & CharClass.number != 0 },
                                     behavior: individual ? .isolated : .contiguous, invert: false)
        case "CharDelimiterSplit":
            let field = json["delimiter"]
            let scalars = Array(try field.string().unicodeScalars)
            guard scalars.count == 1 else { throw field.invalid("expected a single character") }
            let d = scalars[0].value
            return SplitPreTokenizer(pattern: .characters { $0 == d }, behavior: .removed, invert: false)
        case "Metaspace":
            return try MetaspacePreTokenizer(json)
        default:
            fatalError("unreachable: componentType checked the list")
        }
    }
}

struct SequencePreTokenizer: PreTokenizer {
    let steps: [PreTokenizer]
    func preTokenize(_ segment: inout PreTokenizedSegment) {
        for step in steps { step.preTokenize(&segment) }
    }
}

struct SplitPreTokenizer: PreTokenizer {
    let pattern: SplitPattern
    let behavior: SplitBehavior
    let invert: Bool
    func preTokenize(_ segment: inout PreTokenizedSegment) {
        segment.materializeByteLevel()
        segment.split(pattern, behavior, invert: invert)
    }
}

/// GPT-2's pre-tokenizer: optionally a space in front of each piece, GPT-2's regex, then the
/// byte→character mapping (deferred, see PreTokenizedSegment).
struct ByteLevelPreTokenizer: PreTokenizer {
    let addPrefixSpace: Bool
    let useRegex: Bool

    func preTokenize(_ segment: inout PreTokenizedSegment) {
        segment.materializeByteLevel()
        if addPrefixSpace && segment.pieces.contains(where: { segment.bytes[$0.lowerBound] != 0x20 }) {
            var out = [UInt8]()
            out.reserveCapacity(segment.bytes.count + segment.pieces.count)
            var newPieces = [Range<Int>]()
            var newOrigin = -1
            for r in segment.pieces {
                let start = out.count
                if segment.bytes[r.lowerBound] != 0x20 { out.append(0x20) }
                out.append(contentsOf: segment.bytes[r])
                if r.lowerBound == segment.originStart { newOrigin = start }
                newPieces.append(start..<out.count)
            }
            segment = PreTokenizedSegment(bytes: out, pieces: newPieces, originStart: newOrigin, byteLevel: false)
        }
        if useRegex { segment.split(.gpt2, .isolated) }
        segment.byteLevel = true
    }
}

/// `\w+|[^\w\s]+`, keeping the matches: runs of word characters and runs of symbols.
struct WhitespacePreTokenizer: PreTokenizer {
    func preTokenize(_ segment: inout PreTokenizedSegment) {
        segment.materializeByteLevel()
        var newPieces = [Range<Int>]()
        segment.bytes.withUnsafeBufferPointer { buf in
            guard let p = buf.baseAddress else { return }
            for r in segment.pieces {
                var i = r.lowerBound
                while i < r.upperBound {
                    let (v, len) = decodeScalar(p, i)
                    let c = CharClass.of(v)
                    if c & CharClass.whitespace != 0 && c & CharClass.word == 0 { i += len; continue }
                    let wantWord = c & CharClass.word != 0
                    let start = i
                    i += len
                    while i < r.upperBound {
                        let (v2, len2) = decodeScalar(p, i)
                        let c2 = CharClass.of(v2)
                        let isWord = c2 & CharClass.word != 0
                        if wantWord ? !isWord : (isWord || c2 & CharClass.whitespace != 0) { break }
                        i += len2
                    }
                    newPieces.append(start..<i)
                }
            }
        }
        segment.pieces = newPieces
    }
}

/// SentencePiece's view of spaces: every space becomes `replacement` (▁), one is put in front
/// (always, never, or only at the start of the input), and pieces start at each ▁.
struct MetaspacePreTokenizer: PreTokenizer {
    enum PrependScheme: String { case always, never, first }
    let replacement: UInt32
    let replacementUTF8: [UInt8]
    let prependScheme: PrependScheme
    let splitPieces: Bool

    init(replacement: Unicode.Scalar, prependScheme: PrependScheme, split: Bool) {
        self.replacement = replacement.value
        var utf8 = [UInt8]()
        appendUTF8(replacement, to: &utf8)
        replacementUTF8 = utf8
        self.prependScheme = prependScheme
        splitPieces = split
    }

    init(_ json: JSONCursor) throws {
        let (rep, scheme) = try Self.loadCommon(json)
        self.init(replacement: rep, prependScheme: scheme, split: try json["split"].bool(default: true))
    }

    /// The fields Metaspace pre-tokenizer and decoder share; old files say `add_prefix_space`.
    static func loadCommon(_ json: JSONCursor) throws -> (Unicode.Scalar, PrependScheme) {
        let repField = json["replacement"]
        let scalars = json.has("replacement") ? Array(try repField.string().unicodeScalars) : ["\u{2581}"]
        guard scalars.count == 1 else { throw repField.invalid("expected a single character") }
        var scheme = PrependScheme.always
        if json.has("prepend_scheme") {
            let field = json["prepend_scheme"]
            let name = try field.string()
            guard let s = PrependScheme(rawValue: name) else {
                throw TokenizerError.unsupported(file: field.file, path: field.path, value: name,
                                                 supported: ["always", "never", "first"])
            }
            scheme = s
        } else if json.has("add_prefix_space") {
            scheme = try json["add_prefix_space"].bool() ? .always : .never
        }
        return (scalars[0], scheme)
    }

    func preTokenize(_ segment: inout PreTokenizedSegment) {
        segment.materializeByteLevel()
        var out = [UInt8]()
        out.reserveCapacity(segment.bytes.count + segment.pieces.count * 3 + 8)
        var newPieces = [Range<Int>]()
        var newOrigin = -1
        for r in segment.pieces {
            let start = out.count
            let startsWithSpace = segment.bytes[r.lowerBound] == 0x20
            let startsWithReplacement = startsWithSpace || segment.bytes[r].starts(with: replacementUTF8)
            let atOrigin = r.lowerBound == segment.originStart
            switch prependScheme {
            case .always: if !startsWithReplacement { out.append(contentsOf: replacementUTF8) }
            case .first: if !startsWithReplacement && atOrigin { out.append(contentsOf: replacementUTF8) }
            case .never: break
            }
            for k in r {
                let b = segment.bytes[k]
                if b == 0x20 { out.append(contentsOf: replacementUTF8) } else { out.append(b) }
            }
            if atOrigin { newOrigin = start }
            newPieces.append(start..<out.count)
        }
        segment = PreTokenizedSegment(bytes: out, pieces: newPieces, originStart: newOrigin, byteLevel: false)
        if splitPieces {
            let rep = replacement
            segment.split(.characters { $0 == rep }, .mergedWithNext)
        }
    }
}
