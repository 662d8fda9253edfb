import CGemmKernels
import Foundation

// Vectorised exp for the CPU path. Attention and cross-entropy spend much of their time in exp
// (a training step of smollm2-135m takes ~2·10⁸ of them); libm's expf is one call per element,
// ~11 ns here, this ~1.7 ns. The classic range reduction: exp(x) = 2ⁿ·exp(r), n = round(x·log₂e)
// by the 1.5·2²³ trick (the integer lands in the low mantissa bits, so 2ⁿ is a shift away),
// r = x − n·ln2 in two parts (Cody–Waite), exp(r) by a degree-5 polynomial on |r| ≤ ln2/2
// fitted for relative error (scripts/fit_exp_polynomial.py; it was the degree-6 Taylor series).
// Every step is a plain vector instruction: no rounding calls, no lane-by-lane selects.
// Relative error below 3·10⁻⁷ (1.6·10⁻⁷ in the script's f32 simulation; the Taylor form measured
// 2.4·10⁻⁷) for x in [−87.3, 88.3]; 0 below (−inf included); inputs above 88.37 saturate at
// 2.5·10³⁸ instead of +inf (the callers pass x − max ≤ 0). NaN is handled by the callers (`expShifted` with a NaN shift gives NaN).
//
// Where the CPU has AVX2 + FMA the row functions below call their C versions (CGemmKernels/
// rowmath.c: the same algorithm at the CPU's width, with fused multiply-adds), so that a portable
// build, whose 8-wide Swift vectors are SSE pairs without FMA, is not several times slower.
// The Swift code is the fallback (arm64 NEON, x86-64 without AVX2).

/// Whether the row functions run the C AVX2 + FMA versions (decided once per process; each
/// function takes `avx2:` so that tests run both versions).
let rowMathAVX2: Bool = GemmKernelKind.avx2.isSupported
/// Whether the softmax and SwiGLU row functions run rowmath.c's AVX-512 versions: where the GEMM runs its
/// AVX-512 kernel (so ITUNE_GEMM_KERNEL=avx2 turns both off, for comparisons).
let rowMathAVX512: Bool = rowMathAVX2 && GemmConfig.current.kind == .avx512

/// Lane-wise max and min. The standard library's pointwiseMax/Min were not inlined (a call per
/// vector that ran each lane apart: 3–5× slower exp); a compare and blend is.
@inline(__always)
func lanesMax(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a.replacing(with: b, where: a .< b) }
@inline(__always)
func lanesMin(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a.replacing(with: b, where: b .< a) }

@inline(__always)
func simdExp(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let lo = SIMD8<Float>(repeating: -87.33654), hi = SIMD8<Float>(repeating: 88.37626)
    let xc = lanesMin(lanesMax(x, lo), hi)
    let magic = SIMD8<Float>(repeating: 12_582_912)
    let t = xc * 1.442_695_04 + magic
    let n = t - magic
    var r = xc - n * 0.693_145_75  // ln2 high part
    r = r - n * 1.428_606_8e-6     // ln2 low part
    // exp(r) ≈ 1 + r·q(r), q of degree 4 fitted for relative error on |r| ≤ ln2/2
    // (scripts/fit_exp_polynomial.py), Horner form; exp(0) = 1 exactly.
    var p = SIMD8<Float>(repeating: 0.008290229)
    p = p * r + 0.04189839
    p = p * r + 0.1666764
    p = p * r + 0.49999145
    p = p * r + 0.9999997
    p = p * r + 1
    // 2ⁿ: (bits(t) − bits(magic) + 127) << 23, n ∈ [−126, 127] after the clamp.
    let ni = unsafeBitCast(t, to: SIMD8<Int32>.self) &- SIMD8<Int32>(repeating: 0x4B40_0000 - 127)
    let scale = unsafeBitCast(ni &<< 23, to: SIMD8<Float>.self)
    // 0 at or below lo, exactly: w = clamp((x − lo)·10³⁰, 0, 1).
    let w = lanesMin(lanesMax((x - lo) * 1e30, SIMD8(repeating: 0)), SIMD8(repeating: 1))
    return p * scale * w
}

/// y[i] = exp(x[i] − shift) for i < n; returns Σ y (summed in SIMD lanes, then the lanes).
@inline(__always)
func expShifted(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, shift: Float,
                avx2: Bool = rowMathAVX2, avx512: Bool = rowMathAVX512) -> Float {
    if shift.isNaN {
        y.update(repeating: .nan, count: n)
        return .nan
    }
    if avx2 && avx512 { return itune_exp_shifted_avx512(x, y, n, shift) }
    if avx2 { return itune_exp_shifted_avx2(x, y, n, shift) }
    var acc = SIMD8<Float>(repeating: 0)
    var i = 0
    let s = SIMD8<Float>(repeating: shift)
    while i + 8 <= n {
        let e = simdExp(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) - s)
        UnsafeMutableRawPointer(y + i).storeBytes(of: e, as: SIMD8<Float>.self)
        acc += e
        i += 8
    }
    var total = acc.sum()
    if i < n {
        var tail = SIMD8<Float>(repeating: -.infinity)
        for k in 0..<(n - i) { tail[k] = x[i + k] }
        let e = simdExp(tail - s)
        for k in 0..<(n - i) { y[i + k] = e[k]; total += e[k] }
    }
    return total
}

/// Σ exp(x[i] − shift), nothing written.
@inline(__always)
func sumExpShifted(_ x: UnsafePointer<Float>, _ n: Int, shift: Float, avx2: Bool = rowMathAVX2,
                   avx512: Bool = rowMathAVX512) -> Float {
    if shift.isNaN { return .nan }
    if avx2 && avx512 { return itune_sum_exp_shifted_avx512(x, n, shift) }
    if avx2 { return itune_sum_exp_shifted_avx2(x, n, shift) }
    var acc = SIMD8<Float>(repeating: 0)
    var i = 0
    let s = SIMD8<Float>(repeating: shift)
    while i + 8 <= n {
        acc += simdExp(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) - s)
        i += 8
    }
    var total = acc.sum()
    if i < n {
        var tail = SIMD8<Float>(repeating: -.infinity)
        for k in 0..<(n - i) { tail[k] = x[i + k] }
        total += simdExp(tail - s).sum()
    }
    return total
}

/// max of x[0..<n] (−inf for n = 0), NaN when any element is NaN: a NaN logit must make the
/// loss NaN, not vanish in a vector max. A running sum detects it for one add per element.
@inline(__always)
func maxOf(_ x: UnsafePointer<Float>, _ n: Int, avx2: Bool = rowMathAVX2, avx512: Bool = rowMathAVX512) -> Float {
    if avx2 && avx512 { return itune_max_avx512(x, n) }
    if avx2 { return itune_max_avx2(x, n) }
    var m = SIMD8<Float>(repeating: -.infinity)
    var s = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= n {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        m = lanesMax(m, v)
        s += v
        i += 8
    }
    var r = m.max()
    var nan = s.sum().isNaN
    while i < n { r = max(r, x[i]); nan = nan || x[i].isNaN; i += 1 }
    if nan {
        // The sum is also NaN for +inf and −inf together; look.
        for k in 0..<n where x[k].isNaN { return .nan }
    }
    return r
}

/// x[i] *= s for i < n.
@inline(__always)
func scaleRow(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ s: Float, avx2: Bool = rowMathAVX2,
              avx512: Bool = rowMathAVX512) {
    if avx2 && avx512 { itune_scale_avx512(x, n, s); return }
    if avx2 { itune_scale_avx2(x, n, s); return }
    for i in 0..<n { x[i] *= s }
}

/// One row of the softmax backward: dx = y ⊙ (dy − Σ y·dy).
@inline(__always)
func softmaxBackwardRow(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int,
                        avx2: Bool = rowMathAVX2, avx512: Bool = rowMathAVX512) {
    if avx2 && avx512 { itune_softmax_backward_row_avx512(y, dy, dx, n); return }
    if avx2 { itune_softmax_backward_row_avx2(y, dy, dx, n); return }
    let dot = cpuDot(y, dy, n)
    for c in 0..<n { dx[c] = y[c] * (dy[c] - dot) }
}

/// out = silu(g) ⊙ u over n values.
@inline(__always)
func swigluForwardCPU(_ g: UnsafePointer<Float>, _ u: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int,
                      avx2: Bool = rowMathAVX2, avx512: Bool = rowMathAVX512) {
    if avx2 && avx512 { itune_swiglu_forward_avx512(g, u, out, n); return }
    if avx2 { itune_swiglu_forward_avx2(g, u, out, n); return }
    for i in 0..<n { let v = g[i]; out[i] = v / (1 + expf(-v)) * u[i] }
}

/// The SwiGLU backward over n values: du = dy·g·σ(g), dg = dy·u·σ(g)·(1 + g·(1 − σ(g))); a nil
/// output is not computed.
@inline(__always)
func swigluBackwardCPU(_ g: UnsafePointer<Float>, _ u: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                       _ dg: UnsafeMutablePointer<Float>?, _ du: UnsafeMutablePointer<Float>?, _ n: Int,
                       avx2: Bool = rowMathAVX2, avx512: Bool = rowMathAVX512) {
    if avx2 && avx512 { itune_swiglu_backward_avx512(g, u, dy, dg, du, n); return }
    if avx2 { itune_swiglu_backward_avx2(g, u, dy, dg, du, n); return }
    for i in 0..<n {
        let v = g[i], s = 1 / (1 + expf(-v))
        du?[i] = dy[i] * v * s
        dg?[i] = dy[i] * u[i] * s * (1 + v * (1 - s))
    }
}
