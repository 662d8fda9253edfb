// SentencePiece's own normaliser, as tokenizer.json carries it: `{"type": "Precompiled",
// "precompiled_charsmap": base64}`. The blob is what spm_normalize compiles from a rule table such
// as nmt_nfkc (NFKC plus SentencePiece's own folds):
//
//   u32 little-endian: byte size S of the trie
//   S bytes: a darts-clone double-array trie, u32 units, keyed by the UTF-8 of a source sequence,
//            whose value is an offset into the strings below
//   the rest: the replacement strings, each ended by a NUL byte
//
// Matching follows the reference library (not sentencepiece's C++ longest match): each grapheme
// cluster shorter than 6 bytes is looked up whole, and when any prefix of it is a key, the whole
// cluster becomes the replacement of the *shortest* such key; otherwise each scalar of the cluster
// is looked up alone and kept when it is not a key.
import Foundation

/// The double-array trie and replacement strings of a `precompiled_charsmap`.
struct PrecompiledCharsmap {
    private let units: [UInt32]
    private let strings: [UInt8]

    /// Throws a description of what is wrong with the blob (the caller names the field).
    init(blob: [UInt8]) throws(CharsmapError) {
        guard blob.count >= 4 else { throw CharsmapError(reason: "is \(blob.count) bytes, too short for its header") }
        let trieBytes = Int(blob[0]) | Int(blob[1]) << 8 | Int(blob[2]) << 16 | Int(blob[3]) << 24
        guard trieBytes % 4 == 0, trieBytes <= blob.count - 4 else {
            throw CharsmapError(reason: "says its trie is \(trieBytes) bytes, but \(blob.count - 4) follow the header")
        }
        var units = [UInt32](repeating: 0, count: trieBytes / 4)
        for k in units.indices {
            let o = 4 + 4 * k
            units[k] = UInt32(blob[o]) | UInt32(blob[o + 1]) << 8 | UInt32(blob[o + 2]) << 16 | UInt32(blob[o + 3]) << 24
        }
        guard !units.isEmpty else { throw CharsmapError(reason: "has an empty trie") }
        self.units = units
        strings = Array(blob[(4 + trieBytes)...])
    }

    struct CharsmapError: Error { let reason: String }

    // darts-clone unit layout: bits 0-7 label, bit 8 has-leaf, bit 9 offset scale, bits 10-31 offset;
    // a leaf unit (bit 31 set) holds a 31-bit value.
    @inline(__always) private static func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }
    @inline(__always) private static func label(_ u: UInt32) -> UInt32 { u & (0x8000_0000 | 0xFF) }
    @inline(__always) private static func hasLeaf(_ u: UInt32) -> Bool { (u >> 8) & 1 == 1 }
    @inline(__always) private static func value(_ u: UInt32) -> Int { Int(u & 0x7FFF_FFFF) }

    /// The replacement of the shortest prefix of `key` that the trie holds, or nil.
    func replacement(forShortestPrefixOf key: UnsafeBufferPointer<UInt8>) -> ArraySlice<UInt8>? {
        var node = Self.offset(units[0])
        for c in key {
            node ^= Int(c)
            guard node >= 0 && node < units.count else { return nil }
            let unit = units[node]
            if Self.label(unit) != UInt32(c) { return nil }
            node ^= Self.offset(unit)
            guard node >= 0 && node < units.count else { return nil }
            if Self.hasLeaf(unit) { return string(at: Self.value(units[node])) }
        }
        return nil
    }

    private func string(at start: Int) -> ArraySlice<UInt8>? {
        guard start < strings.count else { return nil }
        var end = start
        while end < strings.count && strings[end] != 0 { end += 1 }
        return strings[start..<end]
    }
}

struct PrecompiledNormalizer: Normalizer {
    let charsmap: PrecompiledCharsmap?

    init(_ json: JSONCursor) throws {
        let field = json["precompiled_charsmap"]
        // Converters write null (or "") when the SentencePiece model has no normalisation rules.
        guard let encoded = try field.optionalString(), !encoded.isEmpty else { charsmap = nil; return }
        guard let data = Data(base64Encoded: encoded) else { throw field.invalid("is not valid base64") }
        do { charsmap = try PrecompiledCharsmap(blob: [UInt8](data)) } catch { throw field.invalid(error.reason) }
    }

    func normalize(_ text: [UInt8]) -> [UInt8] {
        guard let map = charsmap, !text.isEmpty else { return text }
        var out = [UInt8]()
        out.reserveCapacity(text.count + 8)
        var scalarBytes = [UInt8]()
        for grapheme in String(decoding: text, as: UTF8.self) {
            let bytes = Array(grapheme.utf8)
            if bytes.count < 6, let r = bytes.withUnsafeBufferPointer({ map.replacement(forShortestPrefixOf: $0) }) {
                out.append(contentsOf: r)
                continue
            }
            for scalar in grapheme.unicodeScalars {
                scalarBytes.removeAll(keepingCapacity: true)
                appendUTF8(scalar, to: &scalarBytes)
                if let r = scalarBytes.withUnsafeBufferPointer({ map.replacement(forShortestPrefixOf: $0) }) {
                    out.append(contentsOf: r)
                } else {
                    out.append(contentsOf: scalarBytes)
                }
            }
        }
        return out
    }
}
