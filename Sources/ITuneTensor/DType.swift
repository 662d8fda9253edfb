/// Element types, which are also the storage formats. Compute is always `f32`. `f16` and
/// `bf16` are storage only: frozen weights (the base under LoRA) may keep a checkpoint's 16-bit
/// values, and the matmul and embedding read them as stored, converting in registers (while
/// packing on the CPU path). `i32` holds indices (token ids, targets).
///
/// Blockwise int8 and NF4 (`--quantize`) are not cases here: a quantised matrix is a
/// `BlockQuantizedMatrix` (Quant/), held by the `Linear` it replaces and read by the quantised
/// linear op (its GEMM dequantises while packing). A further dense format is a new case here
/// plus its readers: `Tensor.converted(to:)`, the CPU GEMM's packing (CPU/GemmHalf.swift), the
/// OpenCL GEMM's loads (Kernels/gemm.cl) and the embedding lookup.
public enum DType: String, Sendable, CaseIterable {
    case f32, f16, bf16, i32

    /// Whether this is a 16-bit float storage format (`f16`, `bf16`).
    public var isHalfFloat: Bool { self == .f16 || self == .bf16 }

    public var byteSize: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        }
    }
}

/// IEEE half → float, exactly (every half is representable as a float).
@inline(__always)
public func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = UInt32(h >> 10) & 0x1F
    let mant = UInt32(h & 0x3FF)
    if exp == 0 {
        if mant == 0 { return Float(bitPattern: sign) }
        // Subnormal half: value = mant * 2^-24.
        let v = Float(mant) * Float(bitPattern: 0x3380_0000)  // 2^-24
        return sign != 0 ? -v : v
    }
    if exp == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
}

/// Float → IEEE half, round to nearest even.
@inline(__always)
public func floatToHalf(_ f: Float) -> UInt16 {
    let x = f.bitPattern
    let sign = UInt16((x >> 16) & 0x8000)
    let exp = Int((x >> 23) & 0xFF)
    var mant = x & 0x7F_FFFF
    if exp == 0xFF { return sign | 0x7C00 | (mant != 0 ? 0x200 : 0) }
    let e = exp - 127 + 15
    if e >= 0x1F { return sign | 0x7C00 }
    if e <= 0 {
        if e < -10 { return sign }
        mant |= 0x80_0000
        let shift = UInt32(14 - e)
        var h = mant >> shift
        let rem = mant & ((1 << shift) - 1)
        let half = UInt32(1) << (shift - 1)
        if rem > half || (rem == half && (h & 1) == 1) { h += 1 }
        return sign | UInt16(h)
    }
    var h = UInt32(e << 10) | (mant >> 13)
    let rem = mant & 0x1FFF
    if rem > 0x1000 || (rem == 0x1000 && (h & 1) == 1) { h += 1 }
    return sign | UInt16(truncatingIfNeeded: h)
}

/// bfloat16 → float, exactly.
@inline(__always)
public func bfloat16ToFloat(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

/// Float → bfloat16, round to nearest even (NaN stays NaN).
@inline(__always)
public func floatToBFloat16(_ f: Float) -> UInt16 {
    let x = f.bitPattern
    if f.isNaN { return UInt16(x >> 16) | 0x40 }
    let rounding = ((x >> 16) & 1) + 0x7FFF
    return UInt16((x &+ rounding) >> 16)
}
