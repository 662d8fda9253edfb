import Foundation

// Dropout. Kernel: Kernels/elementwise.cl (dropout_apply).
//
// The mask is a hash of (seed, element index), not a stream of random numbers: the CPU path and
// every OpenCL device drop the same elements for the same seed, the backward rebuilds the mask
// instead of storing it, and a resumed run that replays the seed gets the same masks.

/// The same 32-bit mixing as dropout_hash in elementwise.cl.
@inline(__always)
func dropoutHash(_ seedLo: UInt32, _ seedHi: UInt32, _ i: UInt32) -> UInt32 {
    var h = (i &* 0x9E37_79B9) ^ seedLo
    h ^= h >> 16; h = h &* 0x85EB_CA6B
    h ^= h >> 13; h = h &* 0xC2B2_AE35
    h ^= h >> 16
    h ^= seedHi; h = h &* 0x27D4_EB2F
    h ^= h >> 15
    return h
}

extension Tensor {
    /// Zeroes each element with probability p and scales the rest by 1/(1 − p), the mask drawn
    /// from `seed` (use a new seed per step and per layer). p = 0 returns self unchanged.
    public func dropout(p: Float, seed: UInt64) throws -> Tensor {
        guard p >= 0, p < 1 else { throw TensorError.invalidArgument(op: "dropout", "p must be in [0, 1), got \(p)") }
        if p == 0 { return self }
        let threshold = UInt32(min(Double(p) * 4_294_967_296.0, 4_294_967_295.0))
        let invKeep = 1 / (1 - p)
        let (lo, hi) = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
        func apply(_ x: Tensor) throws -> Tensor {
            let out = try Tensor.empty(x.shape, on: x.device)
            let n = x.count
            switch try execution("dropout", x) {
            case .cpu:
                let xp = x.floats, o = out.floats
                CPUParallel.forEach(n, grain: 16384) { r in
                    for i in r { o[i] = dropoutHash(lo, hi, UInt32(truncatingIfNeeded: i)) >= threshold ? xp[i] * invKeep : 0 }
                }
            case let .opencl(cl):
                try cl.dropoutApply(.items(n, groupSize: try cl.elementwiseGroupSize()), out: out, x: x, n: n,
                                    seedLo: lo, seedHi: hi, threshold: threshold, invKeep: invKeep)
            }
            return out
        }
        let out = try apply(self)
        GradientTape.record("dropout", inputs: [self], output: out) { dy in [try apply(dy)] }
        // The mask is a hash: a backward that needs the output (LoRA's A gradient) applies it
        // again to the input (kept anyway, and shared by the projections that read it).
        if GradMode.enabled {
            let input = keptForBackward()
            out.recompute = { try apply(input()) }
        }
        return out
    }
}
