import Foundation

// Full reductions: sum and mean of every element. Both backends reduce fixed chunks in a
// fixed order, so the result does not depend on scheduling (same seed, same loss curve).

extension Tensor {
    /// The sum of all elements, shape [].
    public func sum() throws -> Tensor {
        let out = try sumRaw()
        let shape = self.shape
        GradientTape.record("sum", inputs: [self], output: out) { g in [try g.broadcastScalar(to: shape, scale: 1)] }
        return out
    }

    /// The mean of all elements, shape [].
    public func mean() throws -> Tensor {
        let n = Float(max(count, 1))
        let total = try sumRaw()
        let out = try noGrad { try total.scaled(by: 1 / n) }
        let shape = self.shape
        GradientTape.record("mean", inputs: [self], output: out) { g in [try g.broadcastScalar(to: shape, scale: 1 / n)] }
        return out
    }

    /// Chunks of this many elements are reduced in order, then the chunk sums in order.
    static let reductionChunk = 4096

    private func sumRaw() throws -> Tensor {
        let n = count
        let out = try Tensor.empty([], on: device)
        let chunk = Tensor.reductionChunk
        let groups = max(1, (n + chunk - 1) / chunk)
        switch try execution("sum", self) {
        case .cpu:
            out.floats[0] = cpuChunkedSum(floats, n, squared: false)
        case let .opencl(cl):
            let ls = try cl.rowGroupSize(long: true, kernel: "sum_partial", family: "elementwise")
            let partial = try Tensor.empty([groups], on: device)
            try cl.sumPartial(.rows(groups, groupSize: ls), partial: partial, x: self, n: n, chunk: chunk,
                              scratch: .floats(ls))
            // The chunk sums are added in the same tree order by a single group.
            try cl.sumPartial(.rows(1, groupSize: ls), partial: out, x: partial, n: groups, chunk: groups,
                              scratch: .floats(ls))
        }
        return out
    }

    /// A tensor of `shape` filled with this one-element tensor's value times `scale`.
    func broadcastScalar(to shape: [Int], scale: Float) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        let n = out.count
        switch try execution("broadcastScalar", self) {
        case .cpu:
            // The gradient of a sum over a large tensor (softmax's benchmark, 9216 × 256): a
            // parallel fill, as the other elementwise ops (one thread took 0.77 ms there).
            let v = floats[0] * scale, o = out.floats
            CPUParallel.forEach(n, grain: 16384) { r in (o + r.lowerBound).update(repeating: v, count: r.count) }
        case let .opencl(cl):
            try cl.fill(.items(n), out: out, value: self, s: scale, n: n)
        }
        return out
    }
}

/// Σ x[i] (or Σ x[i]²) over n floats: fixed chunks of `Tensor.reductionChunk` summed in parallel,
/// then the chunk sums in order, so the result does not depend on scheduling. The OpenCL
/// kernels (elementwise.cl sum_partial, optim.cl sum_squares_partial) use the same chunks.
func cpuChunkedSum(_ x: UnsafePointer<Float>, _ n: Int, squared: Bool) -> Float {
    let chunk = Tensor.reductionChunk
    let groups = max(1, (n + chunk - 1) / chunk)
    var partial = [Float](repeating: 0, count: groups)
    partial.withUnsafeMutableBufferPointer { p in
        let base = p.baseAddress!
        CPUParallel.forEach(groups) { r in
            for g in r {
                let start = g * chunk
                base[g] = cpuChunkSum(x + start, min(n, start + chunk) - start, squared: squared)
            }
        }
    }
    return partial.reduce(0, +)
}

/// Σ x (or Σ x²) over one chunk, in 32 lanes (cpuLaneSum): a single running sum is one dependent
/// add per element, which no compiler may reorder, and ran the gradient-norm pass of a 0.5B model
/// at a third of memory speed.
@inline(__always) func cpuChunkSum(_ p: UnsafePointer<Float>, _ count: Int, squared: Bool) -> Float {
    let raw = UnsafeRawPointer(p)
    return cpuLaneSum(count, { offset in
        let v = raw.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
        // A multiply, not addProduct: without FMA in the build (a portable x86-64 one)
        // addProduct is a libm call per lane.
        return squared ? v * v : v
    }, { i in squared ? p[i] * p[i] : p[i] })
}

/// Σ term(i) for i < n in 32 lanes: four 8-wide accumulators over runs of 32, the first over a
/// last run of 8s, the lanes added in a fixed order, then the rest one at a time. `vector(o)` is
/// the 8 terms from byte offset o (value o / 4), `scalar(i)` term i. The row reductions below use
/// it; written as one running sum, a row of RMSNorm was one dependent add per value (the forward
/// and backward of the 135M step's norms took 3.9% of it on an Ice Lake, at a fifth of memory
/// speed).
@inline(__always) func cpuLaneSum(_ n: Int, _ vector: (Int) -> SIMD8<Float>, _ scalar: (Int) -> Float) -> Float {
    typealias V = SIMD8<Float>
    var a0 = V(), a1 = V(), a2 = V(), a3 = V()
    var i = 0
    while i + 32 <= n {
        a0 += vector(i * 4); a1 += vector(i * 4 + 32); a2 += vector(i * 4 + 64); a3 += vector(i * 4 + 96)
        i += 32
    }
    while i + 8 <= n {
        a0 += vector(i * 4)
        i += 8
    }
    var acc = ((a0 + a1) + (a2 + a3)).sum()
    while i < n {
        acc += scalar(i)
        i += 1
    }
    return acc
}

/// Σ a[i]·b[i] (with `times: c`, Σ a[i]·b[i]·(c[i] − centre)) over n floats (cpuLaneSum): the row
/// reductions of the norms, attention and the softmax fallback.
@inline(__always) func cpuDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int,
                              times c: UnsafePointer<Float>? = nil, centre: Float = 0) -> Float {
    typealias V = SIMD8<Float>
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b), vc = V(repeating: centre)
    return cpuLaneSum(n, { offset in
        // A multiply and an add, not addProduct: without FMA in the build (a portable x86-64
        // one) addProduct is a libm call per lane.
        let ab = ra.loadUnaligned(fromByteOffset: offset, as: V.self) * rb.loadUnaligned(fromByteOffset: offset, as: V.self)
        guard let c else { return ab }
        return ab * (UnsafeRawPointer(c).loadUnaligned(fromByteOffset: offset, as: V.self) - vc)
    }, { i in c.map { a[i] * b[i] * ($0[i] - centre) } ?? a[i] * b[i] })
}
