import Foundation

/// A dense, row-major tensor on one device. Compute is `f32`; `i32` tensors hold indices.
///
/// Tensors are reference types: ops return new tensors, `reshaped` shares storage, and only
/// the optimizer and gradient accumulation write in place.
public final class Tensor {
    public let shape: [Int]
    public let dtype: DType
    public let storage: Storage
    /// Whether gradients flow to this tensor. Ops record themselves on the tape only when an
    /// input requires gradients and grad mode is on.
    public var requiresGrad: Bool
    /// The gradient after `backward()`, same shape and device.
    public internal(set) var grad: Tensor? {
        get { gradientNode?.grad }
        set { node.grad = newValue }
    }
    /// false for tensors produced by a recorded op (their gradients are freed once used).
    public internal(set) var isLeaf = true
    /// Whether `grad` may be modified in place (it is not shared with another tensor).
    var ownsGrad: Bool {
        get { gradientNode?.ownsGrad ?? false }
        set { node.ownsGrad = newValue }
    }
    /// Where this tensor's gradient collects (made when first needed). The tape refers to
    /// nodes, never to tensors, so that recording an op keeps no value alive: what a backward
    /// needs, its closure keeps (see Autograd/Tape.swift).
    private(set) var gradientNode: GradientNode?
    var node: GradientNode {
        if let gradientNode { return gradientNode }
        let n = GradientNode(shape: shape)
        gradientNode = n
        return n
    }
    /// The tape this tensor's op was recorded on (nil for leaves): `backward()` walks it.
    weak var tape: GradientTape?
    /// For error messages and debugging, e.g. "model.layers.0.self_attn.q_proj.weight".
    public var name: String?
    /// How to make this tensor's values again from values a backward keeps anyway (an RMSNorm's
    /// output from its input and rstd, SwiGLU's from gate and up, dropout's from its input and
    /// seed): a backward that needs them keeps this instead of the tensor (`keptForBackward`).
    var recompute: (() throws -> Tensor)? { didSet { sharedRecompute = nil } }
    /// `recompute` as every backward closure that keeps it shares it (`recomputeShare`), or a
    /// view's share of its source's.
    var sharedRecompute: SharedRecompute?
    /// The host copy of an index tensor made from host values: ops that validate ids
    /// (embedding, RoPE) read it instead of stalling the device queue with a read-back.
    var hostIndexCopy: [Int32]?

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var device: Device { storage.backend.device }
    public var backend: any Backend { storage.backend }

    public init(storage: Storage, shape: [Int], dtype: DType = .f32, requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(storage.byteCount >= shape.reduce(1, *) * dtype.byteSize, "storage too small for \(shape)")
        self.storage = storage
        self.shape = shape
        self.dtype = dtype
        self.requiresGrad = requiresGrad
    }

    // MARK: creation

    /// Uninitialised memory of `shape` on `device`.
    public static func empty(_ shape: [Int], dtype: DType = .f32, on device: Device = .cpu) throws -> Tensor {
        let backend = try device.backend()
        let storage = try backend.allocate(byteCount: shape.reduce(1, *) * dtype.byteSize)
        return Tensor(storage: storage, shape: shape, dtype: dtype)
    }

    public static func zeros(_ shape: [Int], on device: Device = .cpu, requiresGrad: Bool = false) throws -> Tensor {
        let t = try empty(shape, on: device)
        try t.backend.fillZero(t.storage, byteCount: t.count * 4)
        t.requiresGrad = requiresGrad
        return t
    }

    /// `shape` filled with `value` by the device (a fill, not an upload: the backward's seed
    /// and other constants cost no host transfer).
    public static func full(_ shape: [Int], _ value: Float, on device: Device = .cpu) throws -> Tensor {
        let t = try empty(shape, on: device)
        try t.backend.fill(t.storage, value: value, byteCount: t.count * 4)
        return t
    }

    /// A tensor holding `values` (row-major) with `shape`.
    public convenience init(_ values: [Float], shape: [Int], on device: Device = .cpu, requiresGrad: Bool = false) throws {
        guard values.count == shape.reduce(1, *) else {
            throw TensorError.shapeMismatch(op: "Tensor.init", "\(values.count) values for shape \(shape)")
        }
        let backend = try device.backend()
        let storage = try backend.allocate(byteCount: values.count * 4)
        try values.withUnsafeBytes { try backend.write(storage, from: $0.baseAddress!, byteCount: values.count * 4) }
        self.init(storage: storage, shape: shape, dtype: .f32, requiresGrad: requiresGrad)
    }

    /// An index tensor (token ids, targets).
    public convenience init(indices: [Int32], shape: [Int], on device: Device = .cpu) throws {
        guard indices.count == shape.reduce(1, *) else {
            throw TensorError.shapeMismatch(op: "Tensor.init(indices:)", "\(indices.count) values for shape \(shape)")
        }
        let backend = try device.backend()
        let storage = try backend.allocate(byteCount: indices.count * 4)
        try indices.withUnsafeBytes { try backend.write(storage, from: $0.baseAddress!, byteCount: indices.count * 4) }
        self.init(storage: storage, shape: shape, dtype: .i32)
        hostIndexCopy = indices
    }

    /// A tensor from half or bfloat16 bits, converted to f32 (how checkpoints are loaded).
    public convenience init(bits: [UInt16], dtype: DType, shape: [Int], on device: Device = .cpu) throws {
        let values: [Float]
        switch dtype {
        case .f16: values = bits.map(halfToFloat)
        case .bf16: values = bits.map(bfloat16ToFloat)
        default: throw TensorError.invalidArgument(op: "Tensor.init(bits:)", "dtype must be f16 or bf16, not \(dtype.rawValue)")
        }
        try self.init(values, shape: shape, on: device)
    }

    /// Uniform values in [lo, hi) from a seeded generator.
    public static func uniform(_ shape: [Int], _ lo: Float, _ hi: Float, seed: UInt64, on device: Device = .cpu,
                               requiresGrad: Bool = false) throws -> Tensor {
        var rng = SplitMix64(seed: seed)
        let values = (0..<shape.reduce(1, *)).map { _ in lo + (hi - lo) * rng.nextFloat() }
        return try Tensor(values, shape: shape, on: device, requiresGrad: requiresGrad)
    }

    /// Standard normal values from a seeded generator.
    public static func randn(_ shape: [Int], std: Float = 1, seed: UInt64, on device: Device = .cpu,
                             requiresGrad: Bool = false) throws -> Tensor {
        var rng = SplitMix64(seed: seed)
        let values = (0..<shape.reduce(1, *)).map { _ in std * rng.nextGaussian() }
        return try Tensor(values, shape: shape, on: device, requiresGrad: requiresGrad)
    }

    // MARK: transfer

    /// The values on the host (waits for queued work); 16-bit storage is converted exactly.
    public func toArray() throws -> [Float] {
        switch dtype {
        case .f16: return try toBits().map(halfToFloat)
        case .bf16: return try toBits().map(bfloat16ToFloat)
        case .i32: throw TensorError.dtypeMismatch(op: "toArray", expected: .f32, got: dtype)
        case .f32: break
        }
        var out = [Float](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try backend.read(storage, into: $0.baseAddress!, byteCount: count * 4) }
        return out
    }

    public func toIndices() throws -> [Int32] {
        guard dtype == .i32 else { throw TensorError.dtypeMismatch(op: "toIndices", expected: .i32, got: dtype) }
        if let hostIndexCopy { return hostIndexCopy }
        var out = [Int32](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try backend.read(storage, into: $0.baseAddress!, byteCount: count * 4) }
        return out
    }

    /// The single value of a one-element tensor.
    public func item() throws -> Float {
        guard count == 1 else { throw TensorError.shapeMismatch(op: "item", "tensor has \(count) elements") }
        return try toArray()[0]
    }

    /// A copy on `device` (self when already there). Gradients do not flow across devices.
    public func to(_ device: Device) throws -> Tensor {
        let target = device.resolved
        if target == self.device { return self }
        let out = try Tensor.empty(shape, dtype: dtype, on: target)
        let bytes = count * dtype.byteSize
        var host = [UInt8](repeating: 0, count: max(bytes, 1))
        try host.withUnsafeMutableBytes { try backend.read(storage, into: $0.baseAddress!, byteCount: bytes) }
        try host.withUnsafeBytes { try out.backend.write(out.storage, from: $0.baseAddress!, byteCount: bytes) }
        out.requiresGrad = requiresGrad
        out.hostIndexCopy = hostIndexCopy
        return out
    }

    /// A new tensor with the same values and no autograd history.
    public func detached() throws -> Tensor {
        let out = try Tensor.empty(shape, dtype: dtype, on: device)
        try backend.copy(from: storage, to: out.storage, byteCount: count * dtype.byteSize)
        return out
    }

    /// Overwrites the values from the host.
    public func assign(_ values: [Float]) throws {
        guard values.count == count, dtype == .f32 else {
            throw TensorError.shapeMismatch(op: "assign", "\(values.count) values for shape \(shape)")
        }
        try values.withUnsafeBytes { try backend.write(storage, from: $0.baseAddress!, byteCount: count * 4) }
    }

    /// Clears the gradient (before the next step).
    public func zeroGrad() { gradientNode?.grad = nil; gradientNode?.ownsGrad = false }

    /// Replaces the gradient by `values` (`count` host floats), giving the tensor a gradient
    /// buffer of its own if it had none or shared one: a data-parallel trainer writes back the
    /// sum of the ranks' gradients, also where this rank computed none.
    public func setGradient(_ values: UnsafeBufferPointer<Float>) throws {
        guard values.count == count, dtype == .f32, let base = values.baseAddress else {
            throw TensorError.shapeMismatch(op: "setGradient", "\(values.count) values for shape \(shape)")
        }
        if grad == nil || !ownsGrad {
            grad = try Tensor.empty(shape, on: device)
            ownsGrad = true
        }
        try backend.write(grad!.storage, from: base, byteCount: count * 4)
    }

    // MARK: raw access for ops

    /// Host floats of a CPU tensor.
    @inline(__always) var floats: UnsafeMutablePointer<Float> { storage.host.assumingMemoryBound(to: Float.self) }
    @inline(__always) var ints: UnsafeMutablePointer<Int32> { storage.host.assumingMemoryBound(to: Int32.self) }

    /// Scoped host access to a CPU tensor's floats (for library code outside this module).
    public func withHostFloats<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) throws -> R {
        guard case .host = storage.buffer else {
            throw TensorError.invalidArgument(op: "withHostFloats", "tensor is on \(device), not cpu")
        }
        return try body(UnsafeMutableBufferPointer(start: floats, count: count))
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        "Tensor(\(shape), \(dtype.rawValue), \(device)\(requiresGrad ? ", requiresGrad" : ""))"
    }
}

/// Where an op runs, chosen from its inputs' device.
enum Execution {
    case cpu
    case opencl(OpenCLBackend)
}

/// The common device of an op's inputs; throws naming the op when they differ.
func execution(_ op: String, _ tensors: Tensor...) throws -> Execution {
    try execution(op, tensors)
}

func execution(_ op: String, _ tensors: [Tensor], profiledAs detail: (() -> String)? = nil) throws -> Execution {
    let first = tensors[0]
    for t in tensors.dropFirst() where t.device != first.device {
        throw TensorError.deviceMismatch(op: op, first.device, t.device)
    }
    if let cl = first.backend as? OpenCLBackend { return .opencl(cl) }
    (first.backend as? CPUBackend)?.launched(op, profiledAs: detail)
    return .cpu
}

/// Throws naming `op` when the tensors are not all on one device (a check, not a launch).
func checkSameDevice(_ op: String, _ tensors: Tensor...) throws {
    for t in tensors.dropFirst() where t.device != tensors[0].device {
        throw TensorError.deviceMismatch(op: op, tensors[0].device, t.device)
    }
}

/// A small, fast, seedable generator (SplitMix64), used for reproducible initialisation.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 24 random bits.
    public mutating func nextFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }
    /// Standard normal (Box–Muller).
    public mutating func nextGaussian() -> Float {
        let u1 = max(Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0), 1e-300)
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}
