// Normalizers: text → text before pre-tokenization, applied to each stretch of input between
// added tokens. They work on UTF-8 bytes; the Unicode normal forms go through Foundation, after a
// quick check that skips it for text that is already in the form (ASCII, most CJK, emoji).
import Foundation

protocol Normalizer {
    func normalize(_ text: [UInt8]) -> [UInt8]
}

enum Normalizers {
    static let supported = ["Sequence", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Strip", "StripAccents",
                            "Prepend", "Replace", "BertNormalizer", "ByteLevel", "Precompiled"]

    static func load(_ json: JSONCursor) throws -> Normalizer? {
        if json.isNull { return nil }
        switch try json.componentType(supported: supported) {
        case "Sequence":
            return SequenceNormalizer(steps: try json["normalizers"].array().compactMap { try load($0) })
        case "NFC": return UnicodeNormalForm(form: .nfc)
        case "NFD": return UnicodeNormalForm(form: .nfd)
        case "NFKC": return UnicodeNormalForm(form: .nfkc)
        case "NFKD": return UnicodeNormalForm(form: .nfkd)
        case "Lowercase": return LowercaseNormalizer()
        case "Strip":
            return StripNormalizer(left: try json["strip_left"].bool(default: true),
                                   right: try json["strip_right"].bool(default: true))
        case "StripAccents": return StripAccentsNormalizer()
        case "Prepend": return PrependNormalizer(prefix: Array(try json["prepend"].string().utf8))
        case "Replace":
            return ReplaceNormalizer(replace: try TextReplacement(pattern: json["pattern"], content: json["content"]))
        case "BertNormalizer":
            let lowercase = try json["lowercase"].bool(default: true)
            return BertNormalizer(cleanText: try json["clean_text"].bool(default: true),
                                  handleChineseChars: try json["handle_chinese_chars"].bool(default: true),
                                  stripAccents: try json["strip_accents"].optionalBool() ?? lowercase,
                                  lowercase: lowercase)
        case "ByteLevel": return ByteLevelNormalizer()
        case "Precompiled": return try PrecompiledNormalizer(json)
        default: fatalError("unreachable: componentType checked the list")
        }
    }
}

struct SequenceNormalizer: Normalizer {
    let steps: [Normalizer]
    func normalize(_ text: [UInt8]) -> [UInt8] {
        steps.reduce(text) { $1.normalize($0) }
    }
}

@inline(__always)
private func isASCII(_ text: [UInt8]) -> Bool {
    // Eight bytes at a time: this check runs over every byte of a dataset.
    text.withUnsafeBytes { raw -> Bool in
        let n = raw.count
        var i = 0
        while i + 8 <= n {
            if raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
            i += 8
        }
        while i < n {
            if raw[i] >= 0x80 { return false }
            i += 1
        }
        return true
    }
}

@inline(__always)
private func forEachScalar(_ text: [UInt8], _ body: (UInt32, Range<Int>) -> Void) {
    text.withUnsafeBufferPointer { buf in
        guard let p = buf.baseAddress else { return }
        var i = 0
        while i < buf.count {
            let (v, len) = decodeScalar(p, i)
            body(v, i..<(i + len))
            i += len
        }
    }
}

struct UnicodeNormalForm: Normalizer {
    enum Form { case nfc, nfd, nfkc, nfkd }
    let form: Form

    func normalize(_ text: [UInt8]) -> [UInt8] {
        if isASCII(text) { return text }
        if form == .nfc && Self.isQuicklyNFC(text) { return text }
        let s = String(decoding: text, as: UTF8.self)
        let out: String
        switch form {
        case .nfc: out = s.precomposedStringWithCanonicalMapping
        case .nfd: out = s.decomposedStringWithCanonicalMapping
        case .nfkc: out = s.precomposedStringWithCompatibilityMapping
        case .nfkd: out = s.decomposedStringWithCompatibilityMapping
        }
        return Array(out.utf8)
    }

    /// True when every scalar lies in a range whose characters have NFC_Quick_Check=Yes and
    /// canonical combining class 0 — then the text is its own NFC. The ranges are the scripts a
    /// fine-tuning dataset is mostly made of; anything else goes the slow way.
    static func isQuicklyNFC(_ text: [UInt8]) -> Bool {
        var ok = true
        forEachScalar(text) { v, _ in
            if !ok { return }
            if v < 0x300 { return }
            if v >= 0x3040 && v <= 0x3098 { return }  // hiragana (not the combining voiced marks)
            if v >= 0x309B && v <= 0x30FF { return }  // katakana
            if v >= 0x4E00 && v <= 0x9FFF { return }  // CJK unified ideographs
            if v >= 0x3000 && v <= 0x3029 { return }  // CJK punctuation (U+302A… are combining)
            if v >= 0xFF01 && v <= 0xFFEF { return }  // full/half-width forms
            if v >= 0x1F000 && v <= 0x1FAFF { return }  // emoji and pictographs
            ok = false
        }
        return ok
    }
}

struct LowercaseNormalizer: Normalizer {
    func normalize(_ text: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(text.count)
        // Rust's char::to_lowercase per character: the full (one-to-many) mapping, no context, so
        // final sigma stays σ — as the reference library does.
        forEachScalar(text) { v, range in
            if v < 0x80 {
                let b = UInt8(v)
                out.append(b >= 0x41 && b <= 0x5A ? b + 32 : b)
            } else if let s = Unicode.Scalar(v) {
                let mapping = s.properties.lowercaseMapping
                out.append(contentsOf: mapping.utf8)
            }
        }
        return out
    }
}

struct StripNormalizer: Normalizer {
    let left: Bool
    let right: Bool
    func normalize(_ text: [UInt8]) -> [UInt8] {
        var start = 0
        var end = text.count
        text.withUnsafeBufferPointer { buf in
            guard let p = buf.baseAddress else { return }
            if left {
                while start < end {
                    let (v, len) = decodeScalar(p, start)
                    if CharClass.of(v) & CharClass.whitespace == 0 { break }
                    start += len
                }
            }
            if right {
                while end > start {
                    let k = previousScalarStart(p, before: end)
                    let (v, _) = decodeScalar(p, k)
                    if CharClass.of(v) & CharClass.whitespace == 0 { break }
                    end = k
                }
            }
        }
        return start == 0 && end == text.count ? text : Array(text[start..<end])
    }
}

/// Removes every combining mark (Mn, Mc, Me); meant to follow NFD / NFKD.
struct StripAccentsNormalizer: Normalizer {
    func normalize(_ text: [UInt8]) -> [UInt8] {
        if isASCII(text) { return text }
        var out = [UInt8]()
        out.reserveCapacity(text.count)
        forEachScalar(text) { v, range in
            if CharClass.of(v) & CharClass.mark == 0 { out.append(contentsOf: text[range]) }
        }
        return out
    }
}

struct PrependNormalizer: Normalizer {
    let prefix: [UInt8]
    func normalize(_ text: [UInt8]) -> [UInt8] {
        text.isEmpty ? text : prefix + text
    }
}

struct ReplaceNormalizer: Normalizer {
    let replace: TextReplacement
    func normalize(_ text: [UInt8]) -> [UInt8] { replace.apply(text) }
}

/// Maps every byte to its ByteLevel alphabet character (the normalizer form of ByteLevel).
struct ByteLevelNormalizer: Normalizer {
    func normalize(_ text: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(text.count * 2)
        text.withUnsafeBufferPointer { buf in
            guard let p = buf.baseAddress else { return }
            ByteLevelAlphabet.appendMapped(p, 0..<buf.count, to: &out)
        }
        return out
    }
}

/// BERT's cleanup: drop controls and U+FFFD, turn whitespace into spaces, put spaces around CJK
/// ideographs, optionally strip accents (NFD then drop Mn) and lowercase.
struct BertNormalizer: Normalizer {
    let cleanText: Bool
    let handleChineseChars: Bool
    let stripAccents: Bool
    let lowercase: Bool

    static func isChinese(_ v: UInt32) -> Bool {
        (v >= 0x4E00 && v <= 0x9FFF) || (v >= 0x3400 && v <= 0x4DBF) || (v >= 0x20000 && v <= 0x2A6DF)
            || (v >= 0x2A700 && v <= 0x2B73F) || (v >= 0x2B740 && v <= 0x2B81F) || (v >= 0x2B920 && v <= 0x2CEAF)
            || (v >= 0xF900 && v <= 0xFAFF) || (v >= 0x2F800 && v <= 0x2FA1F)
    }

    func normalize(_ text: [UInt8]) -> [UInt8] {
        var current = text
        if cleanText || handleChineseChars {
            var out = [UInt8]()
            out.reserveCapacity(current.count + 16)
            forEachScalar(current) { v, range in
                if cleanText {
                    let c = CharClass.of(v)
                    let isTabOrNewline = v == 9 || v == 10 || v == 13
                    // Controls go first: \v, \f and U+0085 are whitespace but also Cc, and are dropped.
                    if v == 0 || v == 0xFFFD || (!isTabOrNewline && c & CharClass.other != 0) { return }
                    if isTabOrNewline || c & CharClass.whitespace != 0 { out.append(0x20); return }
                }
                if handleChineseChars && Self.isChinese(v) {
                    out.append(0x20)
                    out.append(contentsOf: current[range])
                    out.append(0x20)
                    return
                }
                out.append(contentsOf: current[range])
            }
            current = out
        }
        if stripAccents && !isASCII(current) {
            let decomposed = UnicodeNormalForm(form: .nfd).normalize(current)
            var out = [UInt8]()
            out.reserveCapacity(decomposed.count)
            forEachScalar(decomposed) { v, range in
                if CharClass.of(v) & CharClass.nonspacingMark == 0 { out.append(contentsOf: decomposed[range]) }
            }
            current = out
        }
        if lowercase { current = LowercaseNormalizer().normalize(current) }
        return current
    }
}
