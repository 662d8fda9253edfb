// Character classes the pre-tokenizers and normalizers ask about, looked up by Unicode scalar.
//
// The reference library asks Rust's `char` methods and Oniguruma's `\p{..}`; these are the same
// Unicode properties (general category, White_Space, Alphabetic). Looking them up through
// Unicode.Scalar.Properties for every character of a 50 MB dataset would dominate tokenization,
// so planes 0 and 1 (every script in common use, and emoji) are tabulated once, on first use.

enum CharClass {
    /// General category L* (Oniguruma `\p{L}`).
    static let letter: UInt8 = 1
    /// General category N*: Nd, Nl, No (`\p{N}`, Rust `char::is_numeric`).
    static let number: UInt8 = 2
    /// The White_Space property (Oniguruma `\s`, Rust `char::is_whitespace`).
    static let whitespace: UInt8 = 4
    /// General category P* (Rust `unicode_categories::is_punctuation`).
    static let punctuation: UInt8 = 8
    /// General category M*: Mn, Mc, Me (combining marks).
    static let mark: UInt8 = 16
    /// General category Mn only (what BertNormalizer strips as accents).
    static let nonspacingMark: UInt8 = 32
    /// General category C*: Cc, Cf, Cs, Co, Cn (Rust `is_other`, BERT's "control").
    static let other: UInt8 = 64
    /// Regex `\w`: Alphabetic, M*, Nd, Pc, Join_Control.
    static let word: UInt8 = 128

    private static let tabulatedLimit: UInt32 = 0x20000

    private static let table: [UInt8] = {
        var t = [UInt8](repeating: 0, count: Int(tabulatedLimit))
        for v in 0..<tabulatedLimit { t[Int(v)] = compute(v) }
        return t
    }()

    @inline(__always)
    static func of(_ v: UInt32) -> UInt8 {
        if v < 0x80 { return asciiTable[Int(v)] }
        if v < tabulatedLimit { return table[Int(v)] }
        return compute(v)
    }

    /// Classes of ASCII, spelled out so the hot path never touches the big table.
    static let asciiTable: [UInt8] = (0..<128).map { compute(UInt32($0)) }

    static func compute(_ v: UInt32) -> UInt8 {
        guard let s = Unicode.Scalar(v) else { return other }  // surrogate code points
        let p = s.properties
        var c: UInt8 = 0
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            c |= letter
        case .decimalNumber, .letterNumber, .otherNumber:
            c |= number
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            c |= punctuation
        case .nonspacingMark:
            c |= mark | nonspacingMark
        case .spacingMark, .enclosingMark:
            c |= mark
        case .control, .format, .surrogate, .privateUse, .unassigned:
            c |= other
        default:
            break
        }
        if p.isWhitespace { c |= whitespace }
        if p.isAlphabetic || c & mark != 0 || p.generalCategory == .decimalNumber
            || p.generalCategory == .connectorPunctuation || p.isJoinControl {
            c |= word
        }
        return c
    }

    /// Rust's `char::is_ascii_punctuation`: ASCII symbols count as punctuation for BERT.
    @inline(__always)
    static func isASCIIPunctuation(_ v: UInt32) -> Bool {
        (v >= 0x21 && v <= 0x2F) || (v >= 0x3A && v <= 0x40) || (v >= 0x5B && v <= 0x60) || (v >= 0x7B && v <= 0x7E)
    }

    /// BERT's and the Punctuation pre-tokenizer's notion of punctuation.
    @inline(__always)
    static func isBertPunctuation(_ v: UInt32) -> Bool {
        isASCIIPunctuation(v) || of(v) & punctuation != 0
    }
}

/// Decodes the scalar that starts at `i` in valid UTF-8. Returns its value and byte length.
@inline(__always)
func decodeScalar(_ p: UnsafePointer<UInt8>, _ i: Int) -> (UInt32, Int) {
    let b0 = UInt32(p[i])
    if b0 < 0x80 { return (b0, 1) }
    if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(p[i + 1] & 0x3F), 2) }
    if b0 < 0xF0 {
        return ((b0 & 0x0F) << 12 | UInt32(p[i + 1] & 0x3F) << 6 | UInt32(p[i + 2] & 0x3F), 3)
    }
    return ((b0 & 0x07) << 18 | UInt32(p[i + 1] & 0x3F) << 12 | UInt32(p[i + 2] & 0x3F) << 6
            | UInt32(p[i + 3] & 0x3F), 4)
}

/// Byte length of the UTF-8 sequence that starts with `lead`.
@inline(__always)
func utf8Length(lead: UInt8) -> Int {
    if lead < 0x80 { return 1 }
    if lead < 0xE0 { return 2 }
    if lead < 0xF0 { return 3 }
    return 4
}

/// Start of the scalar that ends just before `end` (walks back over continuation bytes).
@inline(__always)
func previousScalarStart(_ p: UnsafePointer<UInt8>, before end: Int) -> Int {
    var k = end - 1
    while k > 0 && p[k] & 0xC0 == 0x80 { k -= 1 }
    return k
}
