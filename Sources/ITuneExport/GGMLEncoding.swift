import Foundation
import ITuneTensor

// Storage encodings of ggml tensors, bit for bit as gguf-py's `quants` module (and ggml's
// reference quantiser, ggml-quants.c) produce them.

extension GGMLType {
    /// `values` (row-major, rows of `rowLength`) encoded as this type. q8_0 needs rows that are
    /// whole blocks of 32.
    public func encode(_ values: [Float], rowLength: Int) throws -> Data {
        switch self {
        case .f32:
            return values.withUnsafeBufferPointer { b in
                var d = Data(capacity: b.count * 4)
                for v in b { withUnsafeBytes(of: v.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
                return d
            }
        case .f16, .bf16:
            let convert = self == .f16 ? floatToHalf : floatToBFloat16
            var d = Data(capacity: values.count * 2)
            for v in values { withUnsafeBytes(of: convert(v).littleEndian) { d.append(contentsOf: $0) } }
            return d
        case .q8_0:
            guard rowLength > 0, rowLength % 32 == 0, values.count % rowLength == 0 else {
                throw GGUFError.invalid("q8_0 needs rows of a multiple of 32 elements, got rows of \(rowLength)")
            }
            return try quantizeQ8_0(values)
        }
    }

    /// The f32 values of `data` (the inverse of `encode`, exact for f32, f16 and bf16).
    public func decode(_ data: Data) -> [Float] {
        let bytes = [UInt8](data)
        func u16(_ i: Int) -> UInt16 { UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8 }
        switch self {
        case .f32:
            return (0..<(bytes.count / 4)).map { i in
                Float(bitPattern: UInt32(bytes[4 * i]) | UInt32(bytes[4 * i + 1]) << 8 | UInt32(bytes[4 * i + 2]) << 16 | UInt32(bytes[4 * i + 3]) << 24)
            }
        case .f16: return (0..<(bytes.count / 2)).map { halfToFloat(u16(2 * $0)) }
        case .bf16: return (0..<(bytes.count / 2)).map { bfloat16ToFloat(u16(2 * $0)) }
        case .q8_0:
            var out: [Float] = []
            out.reserveCapacity(bytes.count / 34 * 32)
            for b in 0..<(bytes.count / 34) {
                let d = halfToFloat(u16(34 * b))
                for j in 0..<32 { out.append(Float(Int8(bitPattern: bytes[34 * b + 2 + j])) * d) }
            }
            return out
        }
    }
}

/// ggml's Q8_0: blocks of 32 values stored as d (f16) then 32 signed bytes, d = amax/127 and
/// q = round(x·(1/d)), halves away from zero — all in f32, d rounded to f16 only when stored,
/// exactly as gguf-py's `Q8_0.quantize_blocks` and ggml's `quantize_row_q8_0_ref` compute it.
public func quantizeQ8_0(_ values: [Float]) throws -> Data {
    guard values.count % 32 == 0 else { throw GGUFError.invalid("q8_0: \(values.count) values are not whole blocks of 32") }
    var out = Data(count: values.count / 32 * 34)
    out.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) in
        let o = raw.bindMemory(to: UInt8.self)
        values.withUnsafeBufferPointer { x in
            for b in 0..<(x.count / 32) {
                var amax: Float = 0
                for j in 0..<32 { amax = max(amax, abs(x[32 * b + j])) }
                let d = amax / 127
                let id: Float = d == 0 ? 0 : 1 / d
                let h = floatToHalf(d)
                o[34 * b] = UInt8(h & 0xFF)
                o[34 * b + 1] = UInt8(h >> 8)
                for j in 0..<32 {
                    let v = x[32 * b + j] * id
                    // numpy's np_roundf: sign(v) · (floor|v| + floor(2·(|v| − floor|v|))).
                    let a = abs(v)
                    let f = a.rounded(.down)
                    let r = (f + (2 * (a - f)).rounded(.down)) * (v < 0 ? -1 : 1)
                    o[34 * b + 2 + j] = UInt8(bitPattern: Int8(clamping: r.isFinite ? Int(r) : 0))
                }
            }
        }
    }
    return out
}
