// GPT-2's byte-level alphabet: every byte 0…255 stands for one printable Unicode character, so
// that any UTF-8 text becomes a string of "characters" a BPE vocabulary can cover with 256 base
// tokens. Printable Latin-1 bytes stand for themselves; the other 68 (controls, space, 0x7F…0xA0,
// 0xAD) take U+0100 onwards in byte order — so a space is "Ġ" (U+0120) and a newline "Ċ".

enum ByteLevelAlphabet {
    /// The scalar each byte stands for.
    static let scalarOfByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
            if printable {
                table[b] = UInt32(b)
            } else {
                table[b] = next
                next += 1
            }
        }
        return table
    }()

    /// UTF-8 of the character each byte stands for, packed: length in the low byte, then up to
    /// two bytes (every mapped character is below U+0800).
    static let utf8OfByte: [(UInt8, UInt8, UInt8)] = scalarOfByte.map { v in
        if v < 0x80 { return (1, UInt8(v), 0) }
        return (2, UInt8(0xC0 | (v >> 6)), UInt8(0x80 | (v & 0x3F)))
    }

    /// The byte a scalar stands for, or -1 when the scalar is not in the alphabet.
    static let byteOfScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, v) in scalarOfByte.enumerated() { table[Int(v)] = Int16(b) }
        return table
    }()

    @inline(__always)
    static func byte(of scalar: UInt32) -> Int16 {
        scalar < 0x144 ? byteOfScalar[Int(scalar)] : -1
    }

    /// Appends the alphabet's spelling of raw bytes (what the ByteLevel pre-tokenizer produces).
    @inline(__always)
    static func appendMapped(_ p: UnsafePointer<UInt8>, _ range: Range<Int>, to out: inout [UInt8]) {
        for k in range {
            let m = utf8OfByte[Int(p[k])]
            out.append(m.1)
            if m.0 == 2 { out.append(m.2) }
        }
    }

    /// The raw bytes a token spells, or nil when one of its characters is outside the alphabet
    /// (then the ByteLevel decoder passes the token's own UTF-8 through unchanged).
    static func rawBytes(of token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.utf8.count)
        for s in token.unicodeScalars {
            let b = byte(of: s.value)
            if b < 0 { return nil }
            out.append(UInt8(b))
        }
        return out
    }
}
