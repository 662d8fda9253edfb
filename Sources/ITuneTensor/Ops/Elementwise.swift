import Foundation

// Elementwise ops with broadcasting over the last dims: `b`'s shape must be a suffix of
// `a`'s (a bias (C) against activations (B,T,C)), or `b` a single value. Each op keeps its
// CPU and OpenCL forward and backward together; kernels are in Kernels/elementwise.cl.

extension Tensor {
    /// Checks that `b` broadcasts against `a` over the last dims; returns b's element count.
    static func broadcastCount(_ op: String, _ a: Tensor, _ b: Tensor) throws -> Int {
        if b.count == 1 { return 1 }
        guard b.rank <= a.rank, Array(a.shape.suffix(b.rank)) == b.shape else {
            throw TensorError.shapeMismatch(op: op, "\(b.shape) does not broadcast against \(a.shape) (it must match the last dims)")
        }
        return b.count
    }

    /// a + b, b broadcast over a's leading dims.
    public static func + (a: Tensor, b: Tensor) throws -> Tensor {
        let nb = try broadcastCount("add", a, b)
        let out = try Tensor.empty(a.shape, on: a.device)
        let n = a.count
        switch try execution("add", a, b) {
        case .cpu:
            let o = out.floats, x = a.floats, y = b.floats
            CPUParallel.forEach(n, grain: 1 << 14) { r in
                if nb == n { for i in r { o[i] = x[i] + y[i] } } else { for i in r { o[i] = x[i] + y[i % nb] } }
            }
        case let .opencl(cl):
            try cl.addBcast(.items(n), out: out, a: a, b: b, n: n, nb: nb)
        }
        // Keeps neither operand: only whether each needs a gradient and b's shape.
        let (aNeeds, bNeeds, bShape) = (a.requiresGrad, b.requiresGrad, b.shape)
        GradientTape.record("add", inputs: [a, b], output: out) { g in
            [aNeeds ? g : nil, bNeeds ? try g.sumToShape(bShape) : nil]
        }
        return out
    }

    /// a * b elementwise, b broadcast over a's leading dims.
    public static func * (a: Tensor, b: Tensor) throws -> Tensor {
        let nb = try broadcastCount("mul", a, b)
        let out = try Tensor.empty(a.shape, on: a.device)
        try mulRaw(out, a, b, nb)
        // da reads b, db reads a: each kept only where the other's gradient needs it.
        let keptA = b.requiresGrad ? a.keptForBackward() : nil, keptB = a.requiresGrad ? b.keptForBackward() : nil
        let bShape = b.shape
        GradientTape.record("mul", inputs: [a, b], output: out) { g in
            let da = try keptB.map { try g * $0() }
            let db = try keptA.map { try g.sumToShape(bShape, times: $0()) }
            return [da, db]
        }
        return out
    }

    static func mulRaw(_ out: Tensor, _ a: Tensor, _ b: Tensor, _ nb: Int) throws {
        let n = a.count
        switch try execution("mul", a, b) {
        case .cpu:
            let o = out.floats, x = a.floats, y = b.floats
            CPUParallel.forEach(n, grain: 1 << 14) { r in
                if nb == n { for i in r { o[i] = x[i] * y[i] } } else { for i in r { o[i] = x[i] * y[i % nb] } }
            }
        case let .opencl(cl):
            try cl.mulBcast(.items(n), out: out, a: a, b: b, n: n, nb: nb)
        }
    }

    /// a - b, b broadcast over a's leading dims.
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try a + b.scaled(by: -1) }

    /// self * s for a scalar s.
    public func scaled(by s: Float) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        let n = count
        switch try execution("scale", self) {
        case .cpu:
            let o = out.floats, x = floats
            CPUParallel.forEach(n, grain: 1 << 14) { r in for i in r { o[i] = x[i] * s } }
        case let .opencl(cl):
            try cl.scale(.items(n), out: out, a: self, s: s, n: n)
        }
        GradientTape.record("scale", inputs: [self], output: out) { g in [try g.scaled(by: s)] }
        return out
    }

    /// self += alpha * x, in place, never recorded (gradient accumulation, optimizer code).
    public func addInPlace(_ x: Tensor, alpha: Float = 1) throws {
        guard x.shape == shape || x.count == count else {
            throw TensorError.shapeMismatch(op: "addInPlace", "\(x.shape) into \(shape)")
        }
        let n = count
        switch try execution("addInPlace", self, x) {
        case .cpu:
            let y = floats, v = x.floats
            CPUParallel.forEach(n, grain: 1 << 14) { r in for i in r { y[i] += alpha * v[i] } }
        case let .opencl(cl):
            try cl.axpy(.items(n), y: self, x: x, alpha: alpha, n: n)
        }
    }

    /// Sums over the leading dims down to `target` (a suffix of self's shape): the gradient
    /// of a broadcast. With `times`, sums self * times instead.
    func sumToShape(_ target: [Int], times: Tensor? = nil) throws -> Tensor {
        let cols = target.reduce(1, *)
        // Same count, maybe fewer leading 1s ((1,T,C) against (T,C)): the values as they are,
        // in the target's shape.
        if cols == count, times == nil { return shape == target ? self : try noGrad { try reshaped(target) } }
        if cols == count, let times { return try noGrad { try (self * times).reshaped(target) } }
        let rows = count / cols
        let out = try Tensor.empty(target, on: device)
        switch try execution("sumToShape", self) {
        case .cpu:
            let o = out.floats, x = floats, y = times?.floats
            // Each thread owns a block of columns and walks the rows in order, adding a row's
            // run of the block at a time: the same sums as one column at a time (row order), but
            // read along rows and vectorised across columns, where a column at a time read one
            // value per cache line (the bias gradients of Qwen2's q, k and v projections).
            CPUParallel.forEach(cols, grain: 64) { r in
                let n = r.count, oc = o + r.lowerBound
                oc.update(repeating: 0, count: n)
                for row in 0..<rows {
                    let xr = x + row * cols + r.lowerBound
                    if let y {
                        let yr = y + row * cols + r.lowerBound
                        for j in 0..<n { oc[j] += xr[j] * yr[j] }
                    } else {
                        for j in 0..<n { oc[j] += xr[j] }
                    }
                }
            }
        case let .opencl(cl):
            try cl.columnSum(.items(cols), out: out, x: self, y: times ?? self, useY: times != nil, rows: rows, cols: cols)
        }
        return out
    }

    /// SiLU (swish): x * sigmoid(x).
    public func silu() throws -> Tensor {
        try unaryActivation("silu", cpuForward: { v in v / (1 + expf(-v)) },
                            cpuBackward: { v, d in let s = 1 / (1 + expf(-v)); return d * s * (1 + v * (1 - s)) },
                            clForward: OpenCLBackend.siluForward, clBackward: OpenCLBackend.siluBackward)
    }

    /// ReLU: max(x, 0), T5's feed-forward activation (gradient 0 at 0, as PyTorch).
    public func relu() throws -> Tensor {
        try unaryActivation("relu", cpuForward: { v in max(v, 0) }, cpuBackward: { v, d in v > 0 ? d : 0 },
                            clForward: OpenCLBackend.reluForward, clBackward: OpenCLBackend.reluBackward)
    }

    /// GELU in its tanh form (`gelu_new`, `gelu_pytorch_tanh`).
    public func gelu() throws -> Tensor {
        let k: Float = 0.7978845608028654, c: Float = 0.044715
        return try unaryActivation("gelu", cpuForward: { v in 0.5 * v * (1 + tanhf(k * (v + c * v * v * v))) },
                                   cpuBackward: { v, d in
            let t = tanhf(k * (v + c * v * v * v))
            let dt = k * (1 + 3 * c * v * v) * (1 - t * t)
            return d * (0.5 * (1 + t) + 0.5 * v * dt)
        }, clForward: OpenCLBackend.geluForward, clBackward: OpenCLBackend.geluBackward)
    }

    /// GELU in its exact form x·Φ(x) (BERT's `gelu`, PyTorch's default).
    public func geluExact() throws -> Tensor {
        // Φ(x) = erfc(−x/√2)/2: erfc keeps the left tail accurate where 1 + erf(x) cancels.
        try unaryActivation("gelu_erf", cpuForward: { v in 0.5 * v * erfcf(-v * 0.7071067811865476) },
                            cpuBackward: { v, d in
            d * (0.5 * erfcf(-v * 0.7071067811865476) + v * 0.3989422804014327 * expf(-0.5 * v * v))
        }, clForward: OpenCLBackend.geluErfForward, clBackward: OpenCLBackend.geluErfBackward)
    }

    /// The typed kernels of an activation: forward (grid, out, x, n), backward (grid, dx, x, dy, n).
    typealias ActivationKernel = (OpenCLBackend) -> (KernelGrid, Tensor, Tensor, Int) throws -> Void
    typealias ActivationGradientKernel = (OpenCLBackend) -> (KernelGrid, Tensor, Tensor, Tensor, Int) throws -> Void

    private func unaryActivation(_ op: String, cpuForward: @escaping (Float) -> Float,
                                 cpuBackward: @escaping (Float, Float) -> Float,
                                 clForward: ActivationKernel, clBackward: @escaping ActivationGradientKernel) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        let n = count
        switch try execution(op, self) {
        case .cpu:
            let o = out.floats, x = floats
            CPUParallel.forEach(n, grain: 1 << 12) { r in for i in r { o[i] = cpuForward(x[i]) } }
        case let .opencl(cl):
            try clForward(cl)(.items(n), out, self, n)
        }
        GradientTape.record(op, inputs: [self], output: out) { g in
            let dx = try Tensor.empty(self.shape, on: self.device)
            switch try execution(op, self, g) {
            case .cpu:
                let o = dx.floats, x = self.floats, d = g.floats
                CPUParallel.forEach(n, grain: 1 << 12) { r in for i in r { o[i] = cpuBackward(x[i], d[i]) } }
            case let .opencl(cl):
                try clBackward(cl)(.items(n), dx, self, g, n)
            }
            return [dx]
        }
        return out
    }

    /// SwiGLU, the Llama MLP's gate: silu(gate) * up, one fused op.
    public static func swiglu(gate: Tensor, up: Tensor) throws -> Tensor {
        guard gate.shape == up.shape else { throw TensorError.shapeMismatch(op: "swiglu", "gate \(gate.shape), up \(up.shape)") }
        let n = gate.count
        func forward() throws -> Tensor {
            let out = try Tensor.empty(gate.shape, on: gate.device)
            switch try execution("swiglu", gate, up) {
            case .cpu:
                let o = out.floats, g = gate.floats, u = up.floats
                CPUParallel.forEach(n, grain: 1 << 12) { r in swigluForwardCPU(g + r.lowerBound, u + r.lowerBound, o + r.lowerBound, r.count) }
            case let .opencl(cl):
                try cl.swigluForward(.items(n), out: out, gate: gate, up: up, n: n)
            }
            return out
        }
        let out = try forward()
        GradientTape.record("swiglu", inputs: [gate, up], output: out) { dy in
            let dgate = try Tensor.empty(gate.shape, on: gate.device)
            let dup = try Tensor.empty(gate.shape, on: gate.device)
            switch try execution("swiglu", gate, dy) {
            case .cpu:
                let dg = dgate.floats, du = dup.floats, g = gate.floats, u = up.floats, d = dy.floats
                CPUParallel.forEach(n, grain: 1 << 12) { r in
                    let i = r.lowerBound
                    swigluBackwardCPU(g + i, u + i, d + i, dg + i, du + i, r.count)
                }
            case let .opencl(cl):
                try cl.swigluBackward(.items(n), dgate: dgate, dup: dup, gate: gate, up: up, dy: dy, n: n)
            }
            return [gate.requiresGrad ? dgate : nil, up.requiresGrad ? dup : nil]
        }
        // Recorded, the backward keeps gate and up: a later product that needs the output (the
        // down projection's LoRA input) makes it again from them instead of keeping it too.
        if out.requiresGrad { out.recompute = forward }
        return out
    }

    /// The same values with another shape of equal element count (storage is shared).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let rest = s.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            guard rest > 0, count % rest == 0 else { throw TensorError.shapeMismatch(op: "reshape", "\(shape) to \(newShape)") }
            s[i] = count / rest
        }
        guard s.reduce(1, *) == count else { throw TensorError.shapeMismatch(op: "reshape", "\(shape) to \(newShape)") }
        let out = Tensor(storage: storage, shape: s, dtype: dtype)
        out.hostIndexCopy = hostIndexCopy
        if let share = recomputeShare() { out.sharedRecompute = SharedRecompute(reshaping: share, to: s) }
        let original = shape
        GradientTape.record("reshape", inputs: [self], output: out) { g in [try g.reshaped(original)] }
        return out
    }
}
