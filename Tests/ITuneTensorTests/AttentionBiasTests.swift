import XCTest
@testable import ITuneTensor

/// The additive score bias of the fused attention (T5's relative positions and padding masks),
/// cross-attention with more queries than keys, and ReLU.
final class AttentionBiasTests: XCTestCase {
    /// softmax(q·kᵀ·scale + bias)·v in Double; bias(b, t, j, h) gives the term, nil = masked key.
    static func reference(q: [Float], k: [Float], v: [Float], B: Int, Tq: Int, Tk: Int, NH: Int, NKV: Int, D: Int,
                          scale: Double, bias: (Int, Int, Int, Int) -> Double?) -> [Float] {
        var out = [Float](repeating: 0, count: B * Tq * NH * D)
        for b in 0..<B { for h in 0..<NH { for t in 0..<Tq {
            let kvh = h / (NH / NKV)
            var scores = [Double](repeating: -.infinity, count: Tk)
            for j in 0..<Tk {
                guard let extra = bias(b, t, j, h) else { continue }
                var s = 0.0
                for d in 0..<D { s += Double(q[((b * Tq + t) * NH + h) * D + d]) * Double(k[((b * Tk + j) * NKV + kvh) * D + d]) }
                scores[j] = s * scale + extra
            }
            let m = scores.max()!
            let e = scores.map { exp($0 - m) }
            let z = e.reduce(0, +)
            for d in 0..<D {
                var acc = 0.0
                for j in 0..<Tk { acc += e[j] / z * Double(v[((b * Tk + j) * NKV + kvh) * D + d]) }
                out[((b * Tq + t) * NH + h) * D + d] = Float(acc)
            }
        } } }
        return out
    }

    func testPerHeadBiasMatchesTextbookAttention() throws {
        let (B, T, NH, NKV, D) = (2, 7, 4, 2, 5)
        let q = randomValues(B * T * NH * D, seed: 1, scale: 2), k = randomValues(B * T * NKV * D, seed: 2, scale: 2)
        let v = randomValues(B * T * NKV * D, seed: 3)
        let bias = randomValues(T * T * NH, seed: 4, scale: 3)  // (1, Tq, Tk, NH)
        for causal in [true, false] {
            let got = try Tensor.scaledDotProductAttention(
                q: Tensor(q, shape: [B, T, NH, D]), k: Tensor(k, shape: [B, T, NKV, D]), v: Tensor(v, shape: [B, T, NKV, D]),
                causal: causal, scale: 1, bias: Tensor(bias, shape: [1, T, T, NH])).toArray()
            let want = Self.reference(q: q, k: k, v: v, B: B, Tq: T, Tk: T, NH: NH, NKV: NKV, D: D, scale: 1) { _, t, j, h in
                causal && j > t ? nil : Double(bias[(t * T + j) * NH + h])
            }
            assertClose(got, want, rtol: 1e-5, atol: 1e-6, "causal \(causal)")
        }
    }

    func testPaddingMaskBiasAndCrossAttentionWithMoreQueriesThanKeys() throws {
        // Cross-attention: 9 decoder queries over 4 encoder keys, row 1's last two keys padding,
        // as a (B, 1, Tk, 1) mask of 0 and −1e9.
        let (B, Tq, Tk, NH, D) = (2, 9, 4, 3, 4)
        let q = randomValues(B * Tq * NH * D, seed: 5), k = randomValues(B * Tk * NH * D, seed: 6)
        let v = randomValues(B * Tk * NH * D, seed: 7)
        let mask: [Float] = [0, 0, 0, 0, 0, 0, -1e9, -1e9]
        let got = try Tensor.scaledDotProductAttention(
            q: Tensor(q, shape: [B, Tq, NH, D]), k: Tensor(k, shape: [B, Tk, NH, D]), v: Tensor(v, shape: [B, Tk, NH, D]),
            causal: false, scale: 1, bias: Tensor(mask, shape: [B, 1, Tk, 1])).toArray()
        let want = Self.reference(q: q, k: k, v: v, B: B, Tq: Tq, Tk: Tk, NH: NH, NKV: NH, D: D, scale: 1) { b, _, j, _ in
            b == 1 && j >= 2 ? nil : 0
        }
        assertClose(got, want, rtol: 1e-5, atol: 1e-6)
        // Causal attention still needs as many keys as queries.
        XCTAssertThrowsError(try Tensor.scaledDotProductAttention(
            q: Tensor(q, shape: [B, Tq, NH, D]), k: Tensor(k, shape: [B, Tk, NH, D]), v: Tensor(v, shape: [B, Tk, NH, D])))
    }

    func testBiasOfTheWrongShapeIsAClearError() throws {
        let q = try Tensor.zeros([1, 3, 2, 4]), k = try Tensor.zeros([1, 3, 2, 4])
        XCTAssertThrowsError(try Tensor.scaledDotProductAttention(q: q, k: k, v: k, bias: Tensor.zeros([1, 3, 2, 2]))) {
            XCTAssertTrue("\($0)".contains("bias"), "\($0)")
        }
        let broadcastWithGradient = try Tensor.zeros([1, 1, 3, 1], requiresGrad: true)
        XCTAssertThrowsError(try Tensor.scaledDotProductAttention(q: q, k: k, v: k, bias: broadcastWithGradient))
    }

    func testAttentionBiasBackwardMatchesFiniteDifferences() throws {
        // Gradients of q, k, v and a per-batch-row bias (B,Tq,Tk,NH), causal and not.
        for causal in [true, false] {
            try checkGradients([[2, 5, 4, 3], [2, 5, 2, 3], [2, 5, 2, 3], [2, 5, 5, 4]]) {
                try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], causal: causal, scale: 1, bias: $0[3])
            }
        }
        // A bias shared by the batch rows (1,Tq,Tk,NH): its gradient sums them.
        try checkGradients([[3, 4, 2, 3], [3, 4, 2, 3], [3, 4, 2, 3], [1, 4, 4, 2]]) {
            try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], causal: false, bias: $0[3])
        }
        // Cross-attention with more queries than keys, and a constant padding mask beside it.
        try checkGradients([[2, 6, 2, 3], [2, 3, 2, 3], [2, 3, 2, 3]]) {
            let mask = try Tensor([0, 0, 0, 0, -1e9, 0], shape: [2, 1, 3, 1])
            return try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], causal: false, bias: mask)
        }
    }

    func testAttentionBiasOpenCLMatchesCPU() throws {
        // Shapes that cross the kernels' block sizes, per-row and shared biases.
        for (B, Tq, Tk, NH, NKV, D, causal) in [(2, 37, 37, 4, 2, 8, true), (1, 70, 70, 2, 2, 16, false),
                                                 (3, 45, 13, 4, 4, 8, false)] {
            try compareBackends([[B, Tq, NH, D], [B, Tk, NKV, D], [B, Tk, NKV, D], [B, Tq, Tk, NH]], rtol: 1e-4, atol: 1e-5) {
                try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], causal: causal, bias: $0[3])
            }
            try compareBackends([[B, Tq, NH, D], [B, Tk, NKV, D], [B, Tk, NKV, D], [1, Tq, Tk, NH]], rtol: 1e-4, atol: 1e-5) {
                try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], causal: causal, scale: 1, bias: $0[3])
            }
            try compareBackends([[B, Tq, NH, D], [B, Tk, NKV, D], [B, Tk, NKV, D]], rtol: 1e-4, atol: 1e-5) {
                let mask = try Tensor((0..<(B * Tk)).map { $0 % Tk >= Tk - 1 - ($0 / Tk) ? -1e9 : 0 }, shape: [B, 1, Tk, 1],
                                      on: $0[0].device)
                return try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], causal: causal, bias: mask)
            }
        }
    }

    func testReluMatchesDefinitionAndFiniteDifferences() throws {
        let x: [Float] = [-2, -0.5, 0, 0.25, 3]
        XCTAssertEqual(try Tensor(x, shape: [5]).relu().toArray(), [0, 0, 0, 0.25, 3])
        // Values kept away from the kink, where a finite difference straddles it.
        let values = randomValues(21, seed: 3).map { $0 < 0 ? $0 - 0.05 : $0 + 0.05 }
        try checkGradients([[3, 7]], values: [values]) { try $0[0].relu() }
        for n in oddSizes {
            try compareBackends([[2, n]], rtol: 1e-5) { try $0[0].relu() }
        }
    }
}
