import Foundation

// Conversions between f32 and the 16-bit storage formats (DType.f16, .bf16), and the bf16
// rounding of activations under `--precision bf16`. Kernels: Kernels/convert.cl.

extension DType {
    /// The `format` argument of the 16-bit kernels (convert.cl, gemm.cl, embedding.cl):
    /// 1 = bf16, 2 = f16; 0 for the others.
    var w16Format: Int {
        switch self {
        case .bf16: return 1
        case .f16: return 2
        case .f32, .i32: return 0
        }
    }
}

extension Tensor {
    /// A tensor that keeps 16-bit values as stored (`dtype` f16 or bf16): a frozen weight read
    /// by the matmul and the embedding as it is, at half the memory of f32.
    public convenience init(storing bits: [UInt16], dtype: DType, shape: [Int], on device: Device = .cpu) throws {
        guard dtype.isHalfFloat else {
            throw TensorError.invalidArgument(op: "Tensor.init(storing:)", "dtype must be f16 or bf16, not \(dtype.rawValue)")
        }
        guard bits.count == shape.reduce(1, *) else {
            throw TensorError.shapeMismatch(op: "Tensor.init(storing:)", "\(bits.count) values for shape \(shape)")
        }
        let backend = try device.backend()
        let storage = try backend.allocate(byteCount: bits.count * 2)
        if !bits.isEmpty {
            try bits.withUnsafeBytes { try backend.write(storage, from: $0.baseAddress!, byteCount: bits.count * 2) }
        }
        self.init(storage: storage, shape: shape, dtype: dtype)
    }

    /// The 16-bit values of an f16 or bf16 tensor, as stored (waits for queued work).
    public func toBits() throws -> [UInt16] {
        guard dtype.isHalfFloat else {
            throw TensorError.invalidArgument(op: "toBits", "tensor is \(dtype.rawValue), not f16 or bf16")
        }
        var out = [UInt16](repeating: 0, count: count)
        if count > 0 {
            try out.withUnsafeMutableBytes { try backend.read(storage, into: $0.baseAddress!, byteCount: count * 2) }
        }
        return out
    }

    /// This tensor stored as `target` (f32, f16 or bf16), rounding to nearest even into a 16-bit
    /// format and exactly back to f32. Self when already so stored. Gradients pass through
    /// unchanged (as f32): under `--precision bf16` a bf16 copy of an f32 master weight goes
    /// into the matmul and its gradient comes back to the master.
    public func converted(to target: DType) throws -> Tensor {
        if target == dtype { return self }
        guard target != .i32, dtype != .i32 else {
            throw TensorError.invalidArgument(op: "converted(to:)", "cannot convert \(dtype.rawValue) to \(target.rawValue)")
        }
        let out = try Tensor.empty(shape, dtype: target, on: device)
        let n = count
        switch try execution("convert", self) {
        case .cpu:
            if dtype == .f32 {
                let src = floats, dst = out.storage.host.assumingMemoryBound(to: UInt16.self)
                let half = target == .f16
                CPUParallel.forEach(n, grain: 1 << 16) { r in
                    for i in r { dst[i] = half ? floatToHalf(src[i]) : floatToBFloat16(src[i]) }
                }
            } else {
                let src = storage.host.assumingMemoryBound(to: UInt16.self)
                if target == .f32 {
                    let dst = out.floats, half = dtype == .f16
                    CPUParallel.forEach(n, grain: 1 << 16) { r in
                        for i in r { dst[i] = half ? halfToFloat(src[i]) : bfloat16ToFloat(src[i]) }
                    }
                } else {
                    // f16 ↔ bf16 goes through f32 (exact on the way in).
                    return try converted(to: .f32).converted(to: target)
                }
            }
        case let .opencl(cl):
            if dtype == .f32 {
                try cl.convertToW16(.items(n), out: out, x: self, n: n, format: target.w16Format)
            } else if target == .f32 {
                try cl.convertFromW16(.items(n), out: out, x: self, n: n, format: dtype.w16Format)
            } else {
                return try converted(to: .f32).converted(to: target)
            }
        }
        GradientTape.record("convert", inputs: [self], output: out) { dy in [dy] }
        return out
    }

    /// self (f32) with every value rounded to the nearest bf16 (round to nearest even), still
    /// stored as f32: the activations of a matmul under `--precision bf16`, as autocast casts
    /// them. The gradient passes through unchanged (a straight-through cast, as autocast's).
    public func roundedToBFloat16() throws -> Tensor {
        guard dtype == .f32 else { throw TensorError.dtypeMismatch(op: "roundedToBFloat16", expected: .f32, got: dtype) }
        let out = try Tensor.empty(shape, on: device)
        let n = count
        switch try execution("roundedToBFloat16", self) {
        case .cpu:
            let src = floats, dst = out.floats
            CPUParallel.forEach(n, grain: 1 << 16) { r in
                for i in r { dst[i] = bfloat16ToFloat(floatToBFloat16(src[i])) }
            }
        case let .opencl(cl):
            try cl.roundToBf16(.items(n), out: out, x: self, n: n)
        }
        GradientTape.record("roundedToBFloat16", inputs: [self], output: out) { dy in [dy] }
        return out
    }
}
