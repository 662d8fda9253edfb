import Foundation

/// The Unicode encodings a JSON or JSONL data file may come in, and the decoding of each to
/// UTF-8. Why: JSONSerialization decodes UTF-16 and UTF-32 by itself, but everything else we do
/// with a file's bytes (lines of a JSONL file, the line of each element of a JSON array, the line
/// of a parse error) reads them as UTF-8; a UTF-16 character whose low byte is `"` or `\n` would
/// be taken for one. So a file is decoded once, first, and the rest only ever sees UTF-8.
enum TextEncoding: String {
    case utf8 = "UTF-8"
    case utf16LE = "UTF-16LE", utf16BE = "UTF-16BE"
    case utf32LE = "UTF-32LE", utf32BE = "UTF-32BE"

    /// The encoding of `data` and the length of its byte-order mark: from the mark where there
    /// is one, else from the pattern of zero bytes around the first character, which in JSON is
    /// ASCII (RFC 4627 §3).
    static func detect(_ data: Data) -> (TextEncoding, bom: Int) {
        let b = Array(data.prefix(4)) + [UInt8](repeating: 0xAA, count: max(0, 4 - data.count))
        switch (b[0], b[1], b[2], b[3]) {
        case (0xEF, 0xBB, 0xBF, _): return (.utf8, 3)
        case (0xFF, 0xFE, 0, 0): return (.utf32LE, 4)
        case (0, 0, 0xFE, 0xFF): return (.utf32BE, 4)
        case (0xFF, 0xFE, _, _): return (.utf16LE, 2)
        case (0xFE, 0xFF, _, _): return (.utf16BE, 2)
        case (0, 0, 0, let c) where c != 0 && data.count >= 4: return (.utf32BE, 0)
        case (let c, 0, 0, 0) where c != 0 && data.count >= 4: return (.utf32LE, 0)
        case (0, let c, _, _) where c != 0 && data.count >= 2: return (.utf16BE, 0)
        case (let c, 0, _, _) where c != 0 && data.count >= 2: return (.utf16LE, 0)
        default: return (.utf8, 0)
        }
    }

    /// `data` as UTF-8 without a byte-order mark; an error naming `path` when it is not valid in
    /// the encoding it declares.
    static func utf8(_ data: Data, path: String) throws -> Data {
        let (encoding, bom) = detect(data)
        let body = data.dropFirst(bom)
        if encoding == .utf8 { return bom == 0 ? data : Data(body) }
        func fail(_ why: String) -> DataError {
            DataError(source: path, field: nil, reason: "not valid \(encoding.rawValue) text (\(why))")
        }
        let width = encoding == .utf16LE || encoding == .utf16BE ? 2 : 4
        guard body.count % width == 0 else { throw fail("\(body.count) bytes after the byte-order mark, not a multiple of \(width)") }
        let bigEndian = encoding == .utf16BE || encoding == .utf32BE
        let bytes = [UInt8](body)
        let text: String?
        if width == 2 {
            let units = stride(from: 0, to: bytes.count, by: 2).map { i -> UInt16 in
                let (hi, lo) = bigEndian ? (bytes[i], bytes[i + 1]) : (bytes[i + 1], bytes[i])
                return UInt16(hi) << 8 | UInt16(lo)
            }
            text = String(validating: units, as: UTF16.self)
        } else {
            let units = stride(from: 0, to: bytes.count, by: 4).map { i -> UInt32 in
                (0..<4).reduce(UInt32(0)) { v, k in v << 8 | UInt32(bytes[i + (bigEndian ? k : 3 - k)]) }
            }
            text = String(validating: units, as: UTF32.self)
        }
        guard let text else { throw fail("an unpaired surrogate or a code point beyond Unicode") }
        return Data(text.utf8)
    }
}
