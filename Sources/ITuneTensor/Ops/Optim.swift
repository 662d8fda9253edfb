import CGemmKernels
import Foundation

// Optimizer arithmetic that runs where the parameters live. Kernels: Kernels/optim.cl.
// Nothing here is recorded on the tape.

/// AdamW's hyper-parameters, with PyTorch's defaults except the learning rate's.
public struct AdamWConfig: Sendable, Equatable, Codable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var weightDecay: Float

    public init(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
                weightDecay: Float = 0.01) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
    }
}

extension Tensor {
    /// One AdamW step on self in place, in torch.optim.AdamW's order: decoupled weight decay
    /// p ← p·(1 − lr·wd), then m ← lerp(m, g, 1 − β1), v ← β2·v + (1 − β2)·g², then
    /// p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps). `step` is t, counted from 1;
    /// `learningRate` overrides the config's (for schedules). grad, m, v have self's shape.
    /// The bias corrections are computed here on the host (in Double) and uploaded with the
    /// update (a small non-blocking write); a trainer uses `adamWUpdate(grad:m:v:config:learningRate:control:)`.
    public func adamWUpdate(grad: Tensor, m: Tensor, v: Tensor, step: Int, config c: AdamWConfig,
                            learningRate: Float? = nil) throws {
        guard step >= 1 else { throw TensorError.invalidArgument(op: "adamWUpdate", "step counts from 1, got \(step)") }
        let control = try StepControl(records: 0, on: device)
        try control.setHostStep(step, config: c)
        try adamWUpdate(grad: grad, m: m, v: v, config: c, learningRate: learningRate, control: control)
    }

    /// One AdamW step on self in place (the order above) whose clipping scale, skip flag and
    /// bias corrections are read on the device from `control` (set by `prepareOptimizerStep`
    /// or `StepControl.setHostStep`): g is multiplied by the scale as it is read, and a skipped
    /// step leaves self, m and v unchanged. grad, m, v have self's shape.
    public func adamWUpdate(grad: Tensor, m: Tensor, v: Tensor, config c: AdamWConfig, learningRate: Float? = nil,
                            control: StepControl) throws {
        guard grad.shape == shape, m.shape == shape, v.shape == shape else {
            throw TensorError.shapeMismatch(op: "adamWUpdate", "param \(shape), grad \(grad.shape), m \(m.shape), v \(v.shape)")
        }
        let lr = learningRate ?? c.learningRate
        let n = count
        switch try execution("adamWUpdate", self, grad, m, v, control.tensor) {
        case .cpu:
            let k = control.tensor.floats
            guard k[StepControl.Field.skip] == 0 else { return }
            let (scale, bc1, bc2Sqrt) = (k[StepControl.Field.scale], k[StepControl.Field.bc1], k[StepControl.Field.bc2Sqrt])
            let p = floats, g = grad.floats, mp = m.floats, vp = v.floats
            let args = AdamWArguments(scale: scale, oneMinusBeta1: 1 - c.beta1, beta2: c.beta2, oneMinusBeta2: 1 - c.beta2,
                                      bc2Sqrt: bc2Sqrt, eps: c.eps, decay: 1 - lr * c.weightDecay, stepSize: lr / bc1)
            // Memory-bound: four reads and three writes an element, split over the cores.
            CPUParallel.forEach(n, grain: 16384) { range in
                let i = range.lowerBound
                AdamWKernel.current.update(p + i, g + i, mp + i, vp + i, range.count, args)
            }
        case let .opencl(cl):
            try cl.adamwUpdate(.items(n, groupSize: try cl.elementwiseGroupSize()), p: self, g: grad, m: m, v: v, n: n,
                               lr: lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weightDecay,
                               control: control.tensor)
        }
    }

    /// Σ x² over every element, reduced in fixed chunks in a fixed order.
    public func sumOfSquares() throws -> Float {
        let out = try Tensor.empty([1], on: device)
        try sumOfSquares(into: out, at: 0)
        return try out.toArray()[0]
    }

    /// Writes Σ x² into out[index] on the device, so that many tensors are reduced before one read.
    func sumOfSquares(into out: Tensor, at index: Int) throws {
        let n = count, chunk = Tensor.reductionChunk
        let groups = max(1, (n + chunk - 1) / chunk)
        switch try execution("sumOfSquares", self, out) {
        case .cpu:
            out.floats[index] = cpuChunkedSum(floats, n, squared: true)
        case let .opencl(cl):
            let ls = try cl.rowGroupSize(long: true, kernel: "sum_squares_partial", family: "optim")
            let partial = try Tensor.empty([groups], on: device)
            try cl.sumSquaresPartial(.rows(groups, groupSize: ls), out: partial, outOffset: 0, x: self, n: n,
                                     chunk: chunk, square: true, s: .floats(ls))
            try cl.sumSquaresPartial(.rows(1, groupSize: ls), out: out, outOffset: index, x: partial, n: groups,
                                     chunk: groups, square: false, s: .floats(ls))
        }
    }

    /// self *= factor, in place, not recorded.
    public func scaleInPlace(_ factor: Float) throws {
        let n = count
        switch try execution("scaleInPlace", self) {
        case .cpu:
            let x = floats
            CPUParallel.forEach(n, grain: 16384) { r in for i in r { x[i] *= factor } }
        case let .opencl(cl):
            try cl.scaleInPlace(.items(n, groupSize: try cl.elementwiseGroupSize()), x: self, n: n, factor: factor)
        }
    }
}

/// Clips gradients by their global norm as `torch.nn.utils.clip_grad_norm_` does: with
/// total = √(Σ over parameters of Σ g²), every gradient is scaled by
/// min(1, maxNorm / (total + 1e-6)), i.e. only when total is above maxNorm. Parameters without
/// a gradient are skipped. Returns total (before clipping). Each device reduces its tensors
/// into one buffer that is read once, so no gradient comes back to the host.
///
/// Unlike PyTorch, a NaN total leaves the gradients as they are (PyTorch multiplies them all
/// by NaN); the returned NaN is what a trainer checks.
@discardableResult
public func clipGradients(_ parameters: [Tensor], maxNorm: Float) throws -> Float {
    try clipGradients(parameters, maxNorm: maxNorm, reading: []).norm
}

/// `clipGradients(_:maxNorm:)` that also returns the values of the one-element tensors
/// `scalars` (a step's micro-batch losses), in order: they are copied on the device into the
/// buffer the norm is reduced in, so the step reads the norm and its losses back in one
/// blocking read per device, not one per loss. scalars: each of shape [1] (or any one element).
public func clipGradients(_ parameters: [Tensor], maxNorm: Float,
                          reading scalars: [Tensor]) throws -> (norm: Float, scalars: [Float]) {
    for s in scalars where s.count != 1 || s.dtype != .f32 {
        throw TensorError.shapeMismatch(op: "clipGradients", "a scalar to read has \(s.count) elements of \(s.dtype.rawValue)")
    }
    let grads = parameters.compactMap(\.grad)
    var byDevice: [Device: (grads: [Tensor], scalars: [Int])] = [:]
    var order: [Device] = []
    for g in grads {
        if byDevice[g.device] == nil { order.append(g.device) }
        byDevice[g.device, default: ([], [])].grads.append(g)
    }
    for (i, s) in scalars.enumerated() {
        if byDevice[s.device] == nil { order.append(s.device) }
        byDevice[s.device, default: ([], [])].scalars.append(i)
    }
    var total = 0.0
    var values = [Float](repeating: .nan, count: scalars.count)
    for device in order {
        guard let entry = byDevice[device] else { continue }
        let (gs, picks) = (entry.grads, entry.scalars)
        let sums = try Tensor.empty([gs.count + picks.count], on: device)
        for (i, g) in gs.enumerated() { try g.sumOfSquares(into: sums, at: i) }
        for (j, k) in picks.enumerated() {
            try sums.backend.copy(from: scalars[k].storage, at: 0, to: sums.storage, at: (gs.count + j) * 4, byteCount: 4)
        }
        let host = try sums.toArray()
        for s in host.prefix(gs.count) { total += Double(s) }
        for (j, k) in picks.enumerated() { values[k] = host[gs.count + j] }
    }
    let norm = Float(total.squareRoot())
    // PyTorch's clamp(coef, max: 1): a coefficient of 1 would be a no-op, so it is skipped.
    let factor = maxNorm / (norm + 1e-6)
    if factor < 1 {
        // Autograd may hand one gradient buffer to several parameters (the backward of a + b
        // gives both the same tensor): it counts once per parameter in the norm above, but is
        // scaled once.
        var scaled = Set<ObjectIdentifier>()
        for g in grads where scaled.insert(ObjectIdentifier(g.storage)).inserted { try g.scaleInPlace(factor) }
    }
    return (norm, values)
}

/// AdamW's per-step scalars as the CPU kernels take them (1 − β1 and 1 − β2 computed once, in
/// Float, as the update's formula has them).
struct AdamWArguments {
    var scale, oneMinusBeta1, beta2, oneMinusBeta2, bc2Sqrt, eps, decay, stepSize: Float
}

/// The CPU's AdamW update (CGemmKernels/optim.c) at the widest vectors the CPU runs. The loop
/// was Swift's until 2026-12-02: SIMD8<Float>.squareRoot() compiles to eight scalar roots, each
/// with a libm call for negative inputs, which held it at about half the memory's speed. All
/// kernels give the same bits (OptimTests checks each against a scalar loop).
enum AdamWKernel: CaseIterable {
    case portable, avx2, avx512

    /// AVX-512 where the GEMM runs its AVX-512 kernel (ITUNE_GEMM_KERNEL=avx2 turns it off too),
    /// else AVX2 where the CPU has it, else the build's baseline vectors.
    static let current: AdamWKernel = rowMathAVX512 ? .avx512 : rowMathAVX2 ? .avx2 : .portable

    var isSupported: Bool {
        switch self {
        case .portable: return true
        case .avx2: return GemmKernelKind.avx2.isSupported
        case .avx512: return GemmKernelKind.avx512.isSupported
        }
    }

    /// p, m, v updated in place over n elements from the gradient g.
    func update(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                _ v: UnsafeMutablePointer<Float>, _ n: Int, _ a: AdamWArguments) {
        switch self {
        case .portable:
            itune_adamw_f32(p, g, m, v, n, a.scale, a.oneMinusBeta1, a.beta2, a.oneMinusBeta2, a.bc2Sqrt, a.eps, a.decay, a.stepSize)
        case .avx2:
            itune_adamw_avx2(p, g, m, v, n, a.scale, a.oneMinusBeta1, a.beta2, a.oneMinusBeta2, a.bc2Sqrt, a.eps, a.decay, a.stepSize)
        case .avx512:
            itune_adamw_avx512(p, g, m, v, n, a.scale, a.oneMinusBeta1, a.beta2, a.oneMinusBeta2, a.bc2Sqrt, a.eps, a.decay, a.stepSize)
        }
    }
}
