// What Split-style pre-tokenizers (and Replace) look for in text.
//
// The regexes real models ship are few, and they run over every byte of a dataset, so the three
// that matter — GPT-2's, Llama 3's and Qwen2's — are matched by hand below, exactly as a
// backtracking engine (Oniguruma, in the reference library) resolves their alternations. Any other
// regex falls back to NSRegularExpression (ICU), with `\s` rewritten to Unicode White_Space as
// Oniguruma reads it; ICU reports UTF-16 offsets, which are mapped back to UTF-8 bytes.
import Foundation

enum SplitPattern {
    /// A literal string (the reference library escapes it into a regex).
    case literal([UInt8])
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// Llama 3's pattern (`maxDigits` 3) and Qwen2's (`maxDigits` 1).
    case llamaStyle(maxDigits: Int)
    /// Any other regex.
    case regex(FallbackRegex)
    /// Every character for which the predicate holds is a match of its own.
    case characters((UInt32) -> Bool)

    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The hand-written matcher for a known regex, else the ICU fallback.
    static func regex(_ source: String, useFallbackOnly: Bool = false) throws -> SplitPattern {
        if !useFallbackOnly {
            switch source {
            case gpt2Source: return .gpt2
            case llama3Source: return .llamaStyle(maxDigits: 3)
            case qwen2Source: return .llamaStyle(maxDigits: 1)
            default: break
            }
        }
        return .regex(try FallbackRegex(source))
    }

    /// `{"String": "…"}` or `{"Regex": "…"}` as tokenizer.json writes a pattern.
    static func load(_ json: JSONCursor) throws -> SplitPattern {
        if json.has("String") {
            return .literal(Array(try json["String"].string().utf8))
        }
        if json.has("Regex") {
            let field = json["Regex"]
            do { return try regex(try field.string()) } catch let e as FallbackRegex.CompileError {
                throw field.invalid("the regex does not compile (\(e.message))")
            }
        }
        throw json.invalid("expected {\"String\": …} or {\"Regex\": …}")
    }

    /// Appends to `out` the pieces of `range` in order, each flagged whether it is a match;
    /// together they cover the range. (The reference library's `Pattern::find_matches`.)
    func findMatches(_ p: UnsafePointer<UInt8>, _ range: Range<Int>, into out: inout [(Range<Int>, Bool)]) {
        if range.isEmpty { return }
        switch self {
        case .gpt2:
            var i = range.lowerBound
            while i < range.upperBound {
                let e = gpt2MatchEnd(p, i, range.upperBound)
                out.append((i..<e, true))
                i = e
            }
        case .llamaStyle(let maxDigits):
            var i = range.lowerBound
            while i < range.upperBound {
                let e = llamaMatchEnd(p, i, range.upperBound, maxDigits: maxDigits)
                out.append((i..<e, true))
                i = e
            }
        case .literal(let needle):
            var last = range.lowerBound
            if !needle.isEmpty {
                var i = range.lowerBound
                let first = needle[0]
                let n = needle.count
                while i + n <= range.upperBound {
                    if p[i] == first {
                        var k = 1
                        while k < n && p[i + k] == needle[k] { k += 1 }
                        if k == n {
                            if last < i { out.append((last..<i, false)) }
                            out.append((i..<(i + n), true))
                            i += n
                            last = i
                            continue
                        }
                    }
                    i += 1
                }
            }
            if last < range.upperBound { out.append((last..<range.upperBound, false)) }
        case .characters(let matches):
            var last = range.lowerBound
            var i = range.lowerBound
            while i < range.upperBound {
                let (v, len) = decodeScalar(p, i)
                if matches(v) {
                    if last < i { out.append((last..<i, false)) }
                    out.append((i..<(i + len), true))
                    last = i + len
                }
                i += len
            }
            if last < range.upperBound { out.append((last..<range.upperBound, false)) }
        case .regex(let re):
            var last = range.lowerBound
            for m in re.matches(p, range) {
                if last < m.lowerBound { out.append((last..<m.lowerBound, false)) }
                out.append((m, true))
                last = m.upperBound
            }
            if last < range.upperBound { out.append((last..<range.upperBound, false)) }
        }
    }
}

// MARK: - GPT-2, Llama 3 and Qwen2 by hand

private let L = CharClass.letter
private let N = CharClass.number
private let S = CharClass.whitespace

@inline(__always)
private func classAt(_ p: UnsafePointer<UInt8>, _ i: Int) -> (UInt8, Int) {
    let b = p[i]
    if b < 0x80 { return (CharClass.asciiTable[Int(b)], 1) }
    let (v, len) = decodeScalar(p, i)
    return (CharClass.of(v), len)
}

/// End of the longest run, from `i`, of characters having some bit of `mask` (or, with
/// `negated`, having none of them).
@inline(__always)
private func runEnd(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int, _ mask: UInt8, negated: Bool = false,
                    limit: Int = Int.max) -> Int {
    var j = i
    var count = 0
    while j < end && count < limit {
        let (c, len) = classAt(p, j)
        if (c & mask != 0) == negated { break }
        j += len
        count += 1
    }
    return j
}

/// `\s+(?!\S)|\s+` at a whitespace character: the whole run when it ends the text, else the run
/// without its last character when that leaves something (the last one then joins the next
/// word), else the single character.
@inline(__always)
private func whitespaceMatchEnd(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> Int {
    let j = runEnd(p, i, end, S)
    if j == end { return j }
    let lastStart = previousScalarStart(p, before: j)
    return lastStart > i ? lastStart : j
}

/// The end of GPT-2's match that starts at `i` (every position starts one).
func gpt2MatchEnd(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> Int {
    let b = p[i]
    if b == UInt8(ascii: "'") && i + 1 < end {
        let c = p[i + 1]
        if c == UInt8(ascii: "s") || c == UInt8(ascii: "t") || c == UInt8(ascii: "m") || c == UInt8(ascii: "d") {
            return i + 2
        }
        if i + 2 < end {
            let d = p[i + 2]
            if (c == UInt8(ascii: "r") && d == UInt8(ascii: "e")) || (c == UInt8(ascii: "v") && d == UInt8(ascii: "e"))
                || (c == UInt8(ascii: "l") && d == UInt8(ascii: "l")) {
                return i + 3
            }
        }
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
    var j = i
    if b == 0x20 && i + 1 < end { j = i + 1 }
    let (c, _) = classAt(p, j)
    if c & L != 0 { return runEnd(p, j, end, L) }
    if c & N != 0 { return runEnd(p, j, end, N) }
    if c & (S | L | N) == 0 { return runEnd(p, j, end, S | L | N, negated: true) }
    // Here the character at i is whitespace (a space followed by whitespace, or other whitespace).
    return whitespaceMatchEnd(p, i, end)
}

@inline(__always)
private func foldsTo(_ v: UInt32, _ lower: UInt8) -> Bool {
    // Case-insensitive as Oniguruma folds: s also matches ſ (U+017F, LATIN SMALL LETTER LONG S).
    if v == UInt32(lower) || v == UInt32(lower - 32) { return true }
    return lower == UInt8(ascii: "s") && v == 0x17F
}

/// The end of the Llama 3 / Qwen2 match that starts at `i` (every position starts one).
func llamaMatchEnd(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int, maxDigits: Int) -> Int {
    let b = p[i]
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if b == UInt8(ascii: "'") && i + 1 < end {
        let (c, clen) = decodeScalar(p, i + 1)
        if foldsTo(c, UInt8(ascii: "s")) || foldsTo(c, UInt8(ascii: "t")) || foldsTo(c, UInt8(ascii: "m"))
            || foldsTo(c, UInt8(ascii: "d")) {
            return i + 1 + clen
        }
        if i + 1 + clen < end {
            let (d, dlen) = decodeScalar(p, i + 1 + clen)
            if (foldsTo(c, UInt8(ascii: "r")) && foldsTo(d, UInt8(ascii: "e")))
                || (foldsTo(c, UInt8(ascii: "v")) && foldsTo(d, UInt8(ascii: "e")))
                || (foldsTo(c, UInt8(ascii: "l")) && foldsTo(d, UInt8(ascii: "l"))) {
                return i + 1 + clen + dlen
            }
        }
    }
    let (c0, len0) = classAt(p, i)
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if b != 0x0D && b != 0x0A && c0 & (L | N) == 0 && i + len0 < end {
        let (c1, _) = classAt(p, i + len0)
        if c1 & L != 0 { return runEnd(p, i + len0, end, L) }
    }
    if c0 & L != 0 { return runEnd(p, i, end, L) }
    // \p{N}{1,3} (Llama 3) or \p{N} (Qwen2)
    if c0 & N != 0 { return runEnd(p, i, end, N, limit: maxDigits) }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    var j = i
    if b == 0x20 && i + 1 < end { j = i + 1 }
    let (cj, _) = classAt(p, j)
    if cj & (S | L | N) == 0 {
        var k = runEnd(p, j, end, S | L | N, negated: true)
        while k < end && (p[k] == 0x0D || p[k] == 0x0A) { k += 1 }
        return k
    }
    // From here the character at i is whitespace.
    // \s*[\r\n]+ : the whitespace run, cut after its last line break, if it has one.
    let runStop = runEnd(p, i, end, S)
    var k = runStop
    while k > i {
        k -= 1
        if p[k] == 0x0D || p[k] == 0x0A { return k + 1 }
    }
    return whitespaceMatchEnd(p, i, end)
}

// MARK: - Fallback: ICU regular expressions

/// A regex the hand-written matchers do not know, run by NSRegularExpression.
final class FallbackRegex {
    struct CompileError: Error { let message: String }
    let source: String
    private let regex: NSRegularExpression

    init(_ source: String) throws {
        self.source = source
        do {
            regex = try NSRegularExpression(pattern: Self.icuSyntax(source), options: [])
        } catch {
            throw CompileError(message: "\(error)")
        }
    }

    /// Oniguruma's `\s`/`\S` are Unicode White_Space; ICU's `\s` is [\t\n\f\r\p{Z}] (no \v,
    /// no U+0085). Rewrite them so both engines agree, inside and outside classes.
    static func icuSyntax(_ source: String) -> String {
        var out = ""
        var escaped = false
        for ch in source {
            if escaped {
                if ch == "s" { out += "\\p{White_Space}" } else if ch == "S" { out += "\\P{White_Space}" } else {
                    out.append("\\")
                    out.append(ch)
                }
                escaped = false
            } else if ch == "\\" {
                escaped = true
            } else {
                out.append(ch)
            }
        }
        if escaped { out.append("\\") }
        return out
    }

    /// Byte ranges (absolute, within `range`) of the non-overlapping matches, left to right.
    func matches(_ p: UnsafePointer<UInt8>, _ range: Range<Int>) -> [Range<Int>] {
        let text = String(decoding: UnsafeBufferPointer(start: p + range.lowerBound, count: range.count),
                          as: UTF8.self)
        // UTF-16 offset → UTF-8 offset, for every UTF-16 boundary.
        var utf8At = [Int]()
        utf8At.reserveCapacity(range.count + 1)
        var u8 = 0
        for s in text.unicodeScalars {
            utf8At.append(u8)
            if s.value >= 0x10000 { utf8At.append(u8) }
            u8 += UTF8.width(s)
        }
        utf8At.append(u8)
        var result: [Range<Int>] = []
        let whole = NSRange(location: 0, length: (text as NSString).length)
        for m in regex.matches(in: text, options: [], range: whole) where m.range.length > 0 {
            let a = utf8At[m.range.location]
            let b = utf8At[m.range.location + m.range.length]
            result.append((range.lowerBound + a)..<(range.lowerBound + b))
        }
        return result
    }

    /// Replaces every match with `template` taken literally.
    func replace(in text: String, with content: String) -> String {
        let whole = NSRange(location: 0, length: (text as NSString).length)
        return regex.stringByReplacingMatches(in: text, options: [], range: whole,
                                              withTemplate: NSRegularExpression.escapedTemplate(for: content))
    }
}

/// Replace (normalizer and decoder): every occurrence of a literal or regex by `content`.
struct TextReplacement {
    let pattern: SplitPattern
    let content: [UInt8]

    init(pattern: JSONCursor, content: JSONCursor) throws {
        self.pattern = try SplitPattern.load(pattern)
        self.content = Array(try content.string().utf8)
    }

    func apply(_ text: [UInt8]) -> [UInt8] {
        switch pattern {
        case .literal(let needle):
            if needle.isEmpty || text.count < needle.count { return text }
            var pieces: [(Range<Int>, Bool)] = []
            text.withUnsafeBufferPointer { buf in
                pattern.findMatches(buf.baseAddress!, 0..<buf.count, into: &pieces)
            }
            if pieces.count == 1 && !pieces[0].1 { return text }
            var out = [UInt8]()
            out.reserveCapacity(text.count + 8)
            for (r, isMatch) in pieces {
                if isMatch { out.append(contentsOf: content) } else { out.append(contentsOf: text[r]) }
            }
            return out
        case .regex(let re):
            let s = String(decoding: text, as: UTF8.self)
            return Array(re.replace(in: s, with: String(decoding: content, as: UTF8.self)).utf8)
        default:
            // Known split regexes never appear in Replace; if one does, run it as a regex.
            guard let re = try? FallbackRegex(patternSource) else { return text }
            let s = String(decoding: text, as: UTF8.self)
            return Array(re.replace(in: s, with: String(decoding: content, as: UTF8.self)).utf8)
        }
    }

    private var patternSource: String {
        switch pattern {
        case .gpt2: return SplitPattern.gpt2Source
        case .llamaStyle(let d): return d == 3 ? SplitPattern.llama3Source : SplitPattern.qwen2Source
        default: return ""
        }
    }

    func apply(_ text: String) -> String {
        String(decoding: apply(Array(text.utf8)), as: UTF8.self)
    }
}
