import XCTest
@testable import ITuneTensor

final class AttentionTests: XCTestCase {
    /// Textbook attention in Double with an explicit mask: q (B,Tq,NH,D), k/v (B,Tk,NKV,D).
    /// `visible(b, t, j)` says whether query t sees key j.
    static func reference(q: [Float], k: [Float], v: [Float], B: Int, Tq: Int, Tk: Int, NH: Int, NKV: Int, D: Int,
                          visible: (Int, Int, Int) -> Bool) -> [Float] {
        var out = [Float](repeating: 0, count: B * Tq * NH * D)
        let scale = 1 / Double(D).squareRoot()
        for b in 0..<B { for h in 0..<NH { for t in 0..<Tq {
            let kvh = h / (NH / NKV)
            var scores = [Double](repeating: -.infinity, count: Tk)
            for j in 0..<Tk where visible(b, t, j) {
                var s = 0.0
                for d in 0..<D { s += Double(q[((b * Tq + t) * NH + h) * D + d]) * Double(k[((b * Tk + j) * NKV + kvh) * D + d]) }
                scores[j] = s * scale
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

    /// Textbook attention's gradients in Double for the loss Σ o·w: dq (B,Tq,NH,D), dk and dv
    /// (B,Tk,NKV,D), with the same mask as `reference` (Tq = Tk).
    static func referenceGradients(q: [Float], k: [Float], v: [Float], w: [Float], B: Int, T: Int, NH: Int, NKV: Int,
                                   D: Int, visible: (Int, Int, Int) -> Bool) -> (dq: [Float], dk: [Float], dv: [Float]) {
        var dq = [Double](repeating: 0, count: q.count), dk = [Double](repeating: 0, count: k.count)
        var dv = [Double](repeating: 0, count: v.count)
        let scale = 1 / Double(D).squareRoot()
        for b in 0..<B { for h in 0..<NH { for t in 0..<T {
            let kvh = h / (NH / NKV), qo = ((b * T + t) * NH + h) * D
            let keys = (0..<T).filter { visible(b, t, $0) }
            let scores = keys.map { j in
                scale * (0..<D).reduce(0.0) { $0 + Double(q[qo + $1]) * Double(k[((b * T + j) * NKV + kvh) * D + $1]) }
            }
            let m = scores.max()!
            let e = scores.map { exp($0 - m) }, z = e.reduce(0, +)
            let p = e.map { $0 / z }
            // dP_j = dO·v_j, dS_j = p_j (dP_j − Σ p·dP)
            let dP = keys.map { j in (0..<D).reduce(0.0) { $0 + Double(w[qo + $1]) * Double(v[((b * T + j) * NKV + kvh) * D + $1]) } }
            let delta = zip(p, dP).reduce(0.0) { $0 + $1.0 * $1.1 }
            for (i, j) in keys.enumerated() {
                let ko = ((b * T + j) * NKV + kvh) * D, dS = p[i] * (dP[i] - delta)
                for d in 0..<D {
                    dq[qo + d] += scale * dS * Double(k[ko + d])
                    dk[ko + d] += scale * dS * Double(q[qo + d])
                    dv[ko + d] += p[i] * Double(w[qo + d])
                }
            }
        } } }
        return (dq.map(Float.init), dk.map(Float.init), dv.map(Float.init))
    }

    /// Long enough rows for blocks of 64 queries in the GEMM's packed path over keys and values
    /// packed once (AttentionPacking): head sizes below, at and past a panel's width (40 leaves a
    /// partial feature panel), examples packed at starts that are not multiples of a panel (the
    /// blocks start at the panel's first key, the ones before masked), grouped heads, causal and
    /// not; forward and gradients against textbook attention in Double.
    func testBlocksOverPackedKeysAndValuesMatchTextbookAttention() throws {
        let (B, T, NH, NKV) = (2, 100, 3, 1)  // blocks of 64 and 36 rows
        let segments = try AttentionSegments(lengths: [[37, 30, 33], [100]], rowLength: T)
        let starts = try segments.starts.toIndices()
        for D in [40, 64] {
            let q = randomValues(B * T * NH * D, seed: 41, scale: 2), k = randomValues(B * T * NKV * D, seed: 42, scale: 2)
            let v = randomValues(B * T * NKV * D, seed: 43), w = randomValues(B * T * NH * D, seed: 44)
            for causal in [true, false] {
                let visible: (Int, Int, Int) -> Bool = { b, t, j in
                    (!causal || j <= t) && starts[b * T + j] == starts[b * T + t]
                }
                let qt = try Tensor(q, shape: [B, T, NH, D], requiresGrad: true)
                let kt = try Tensor(k, shape: [B, T, NKV, D], requiresGrad: true)
                let vt = try Tensor(v, shape: [B, T, NKV, D], requiresGrad: true)
                let o = try Tensor.scaledDotProductAttention(q: qt, k: kt, v: vt, causal: causal, segments: segments)
                try (o * Tensor(w, shape: [B, T, NH, D])).sum().backward()
                let what = "D \(D) causal \(causal)"
                assertClose(try o.toArray(), Self.reference(q: q, k: k, v: v, B: B, Tq: T, Tk: T, NH: NH, NKV: NKV, D: D, visible: visible),
                            rtol: 1e-4, atol: 1e-5, "\(what): output")
                let want = Self.referenceGradients(q: q, k: k, v: v, w: w, B: B, T: T, NH: NH, NKV: NKV, D: D, visible: visible)
                assertClose(try XCTUnwrap(qt.grad).toArray(), want.dq, rtol: 1e-3, atol: 1e-4, "\(what): dq")
                assertClose(try XCTUnwrap(kt.grad).toArray(), want.dk, rtol: 1e-3, atol: 1e-4, "\(what): dk")
                assertClose(try XCTUnwrap(vt.grad).toArray(), want.dv, rtol: 1e-3, atol: 1e-4, "\(what): dv")
            }
        }
    }

    func testCausalGQAForwardMatchesTextbookAttention() throws {
        let (B, T, NH, NKV, D) = (2, 7, 4, 2, 5)
        let q = randomValues(B * T * NH * D, seed: 1, scale: 2), k = randomValues(B * T * NKV * D, seed: 2, scale: 2)
        let v = randomValues(B * T * NKV * D, seed: 3)
        for causal in [true, false] {
            let got = try Tensor.scaledDotProductAttention(
                q: Tensor(q, shape: [B, T, NH, D]), k: Tensor(k, shape: [B, T, NKV, D]), v: Tensor(v, shape: [B, T, NKV, D]),
                causal: causal).toArray()
            let want = Self.reference(q: q, k: k, v: v, B: B, Tq: T, Tk: T, NH: NH, NKV: NKV, D: D) { _, t, j in !causal || j <= t }
            assertClose(got, want, rtol: 1e-5, atol: 1e-6, "causal \(causal)")
        }
    }

    func testFewerQueriesThanKeysAreTheLastPositions() throws {
        // What decoding with a KV cache runs: 3 new queries against 9 cached + new keys.
        let (B, Tq, Tk, NH, NKV, D) = (1, 3, 9, 3, 1, 4)
        let q = randomValues(B * Tq * NH * D, seed: 4), k = randomValues(B * Tk * NKV * D, seed: 5)
        let v = randomValues(B * Tk * NKV * D, seed: 6)
        let got = try Tensor.scaledDotProductAttention(
            q: Tensor(q, shape: [B, Tq, NH, D]), k: Tensor(k, shape: [B, Tk, NKV, D]), v: Tensor(v, shape: [B, Tk, NKV, D])).toArray()
        let want = Self.reference(q: q, k: k, v: v, B: B, Tq: Tq, Tk: Tk, NH: NH, NKV: NKV, D: D) { _, t, j in j <= t + Tk - Tq }
        assertClose(got, want, rtol: 1e-5, atol: 1e-6)
    }

    func testPackedSegmentsEqualAttendingEachExampleAlone() throws {
        let (T, NH, D) = (10, 2, 4)
        let lengths = [[3, 4], [10]]  // row 0 also holds 3 padding positions: a segment of their own
        let q = randomValues(2 * T * NH * D, seed: 7), k = randomValues(2 * T * NH * D, seed: 8), v = randomValues(2 * T * NH * D, seed: 9)
        let segments = try AttentionSegments(lengths: lengths, rowLength: T)
        let got = try Tensor.scaledDotProductAttention(
            q: Tensor(q, shape: [2, T, NH, D]), k: Tensor(k, shape: [2, T, NH, D]), v: Tensor(v, shape: [2, T, NH, D]),
            segments: segments).toArray()
        let starts = try segments.starts.toIndices()
        XCTAssertEqual(Array(starts[0..<T]), [0, 0, 0, 3, 3, 3, 3, 7, 7, 7])
        let want = Self.reference(q: q, k: k, v: v, B: 2, Tq: T, Tk: T, NH: NH, NKV: NH, D: D) { b, t, j in
            j <= t && Int(starts[b * T + j]) == Int(starts[b * T + t])
        }
        assertClose(got, want, rtol: 1e-5, atol: 1e-6)
    }

    /// Left-padded rows decoded together (CausalLM's batched generate): the last Tq queries of
    /// each row see only their own segment of the Tk keys; the forward only, under no gradient.
    func testSegmentsWithFewerQueriesThanKeys() throws {
        let (B, Tq, Tk, NH, NKV, D) = (2, 2, 9, 4, 2, 4)
        let lengths = [[4, 5], [9]]  // row 0: 4 positions of padding, then its sequence
        let q = randomValues(B * Tq * NH * D, seed: 10), k = randomValues(B * Tk * NKV * D, seed: 11)
        let v = randomValues(B * Tk * NKV * D, seed: 12)
        let segments = try AttentionSegments(lengths: lengths, rowLength: Tk)
        let starts = try segments.starts.toIndices()
        let want = Self.reference(q: q, k: k, v: v, B: B, Tq: Tq, Tk: Tk, NH: NH, NKV: NKV, D: D) { b, t, j in
            j <= t + Tk - Tq && Int(starts[b * Tk + j]) == Int(starts[b * Tk + t + Tk - Tq])
        }
        let qt = try Tensor(q, shape: [B, Tq, NH, D], requiresGrad: true)
        let (kt, vt) = (try Tensor(k, shape: [B, Tk, NKV, D]), try Tensor(v, shape: [B, Tk, NKV, D]))
        let got = try noGrad { try Tensor.scaledDotProductAttention(q: qt, k: kt, v: vt, segments: segments).toArray() }
        assertClose(got, want, rtol: 1e-5, atol: 1e-6)
        XCTAssertThrowsError(try Tensor.scaledDotProductAttention(q: qt, k: kt, v: vt, segments: segments)) { error in
            XCTAssertTrue("\(error)".contains("Tq = Tk"), "\(error)")
        }
    }

    func testNonCausalPackedSegmentsMatchBlockDiagonalAttention() throws {
        // Without the causal mask a query sees its whole example, later positions included,
        // and nothing of the examples packed beside it.
        let (T, NH, NKV, D) = (10, 4, 2, 4)
        let lengths = [[3, 4], [2, 8]]  // row 0 ends with 3 padding positions, a segment of their own
        let q = randomValues(2 * T * NH * D, seed: 17, scale: 2), k = randomValues(2 * T * NKV * D, seed: 18, scale: 2)
        let v = randomValues(2 * T * NKV * D, seed: 19)
        let segments = try AttentionSegments(lengths: lengths, rowLength: T)
        let got = try Tensor.scaledDotProductAttention(
            q: Tensor(q, shape: [2, T, NH, D]), k: Tensor(k, shape: [2, T, NKV, D]), v: Tensor(v, shape: [2, T, NKV, D]),
            causal: false, segments: segments).toArray()
        let example = [[0, 0, 0, 1, 1, 1, 1, 2, 2, 2], [0, 0, 1, 1, 1, 1, 1, 1, 1, 1]]
        let want = Self.reference(q: q, k: k, v: v, B: 2, Tq: T, Tk: T, NH: NH, NKV: NKV, D: D) { b, t, j in
            example[b][j] == example[b][t]
        }
        assertClose(got, want, rtol: 1e-5, atol: 1e-6)
    }

    func testAttentionBackwardMatchesFiniteDifferences() throws {
        for causal in [true, false] {
            try checkGradients([[2, 5, 4, 3], [2, 5, 2, 3], [2, 5, 2, 3]]) {
                try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], causal: causal)
            }
        }
        // Fewer queries than keys, and packed segments.
        try checkGradients([[1, 2, 2, 3], [1, 6, 1, 3], [1, 6, 1, 3]]) {
            try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2])
        }
        let segments = try AttentionSegments(lengths: [[2, 3], [6]], rowLength: 6)
        for causal in [true, false] {
            try checkGradients([[2, 6, 2, 3], [2, 6, 1, 3], [2, 6, 1, 3]]) {
                try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], causal: causal, segments: segments)
            }
        }
    }

    /// Grouped-query attention's dK and dV are the sums, over each KV head's group of query heads,
    /// of what each query head gives with K and V repeated per query head (as many KV heads as
    /// query heads): the backward makes each query head's share on its own worker and adds the
    /// group's shares in order, so the two agree to the last bits whatever the thread count.
    func testGQAKeyGradientsAreTheGroupSumsOfPerHeadShares() throws {
        let (B, T, NH, NKV, D) = (2, 70, 14, 2, 8)
        let group = NH / NKV
        let q = randomValues(B * T * NH * D, seed: 11), k = randomValues(B * T * NKV * D, seed: 12)
        let v = randomValues(B * T * NKV * D, seed: 13), w = randomValues(B * T * NH * D, seed: 14)
        func repeated(_ x: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: B * T * NH * D)
            for row in 0..<(B * T) { for h in 0..<NH { for d in 0..<D {
                out[(row * NH + h) * D + d] = x[(row * NKV + h / group) * D + d]
            } } }
            return out
        }
        func grads(_ k: [Float], _ v: [Float], heads: Int) throws -> ([Float], [Float]) {
            let qt = try Tensor(q, shape: [B, T, NH, D], requiresGrad: true)
            let kt = try Tensor(k, shape: [B, T, heads, D], requiresGrad: true)
            let vt = try Tensor(v, shape: [B, T, heads, D], requiresGrad: true)
            let o = try Tensor.scaledDotProductAttention(q: qt, k: kt, v: vt)
            try (o * Tensor(w, shape: [B, T, NH, D])).sum().backward()
            return (try kt.grad!.toArray(), try vt.grad!.toArray())
        }
        let (dk, dv) = try grads(k, v, heads: NKV)
        let (dkHeads, dvHeads) = try grads(repeated(k), repeated(v), heads: NH)
        var (wantK, wantV) = ([Float](repeating: 0, count: dk.count), [Float](repeating: 0, count: dv.count))
        for row in 0..<(B * T) { for kvh in 0..<NKV { for d in 0..<D {
            let out = (row * NKV + kvh) * D + d
            wantK[out] = dkHeads[(row * NH + kvh * group) * D + d]
            wantV[out] = dvHeads[(row * NH + kvh * group) * D + d]
            for g in 1..<group {
                wantK[out] += dkHeads[(row * NH + kvh * group + g) * D + d]
                wantV[out] += dvHeads[(row * NH + kvh * group + g) * D + d]
            }
        } } }
        // Bit for bit: count the entries that differ (the arrays are too long to print).
        XCTAssertEqual(dk.count, wantK.count)
        XCTAssertEqual(zip(dk, wantK).filter { $0 != $1 }.count, 0, "dK entries that differ")
        XCTAssertEqual(zip(dv, wantV).filter { $0 != $1 }.count, 0, "dV entries that differ")
        XCTAssertGreaterThan(dk.map(abs).max() ?? 0, 0.01)
    }

    func testAttentionOpenCLMatchesCPU() throws {
        for T in oddSizes + [64] {
            for (NH, NKV, D) in [(4, 2, 8), (2, 1, 64)] {
                try compareBackends([[1, T, NH, D], [1, T, NKV, D], [1, T, NKV, D]], rtol: 1e-4, atol: 1e-5) {
                    try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2])
                }
            }
        }
        // dK/dV run a work-group per query head: as many KV heads as query heads (the shares are
        // the result), and 14 over 2 (Qwen2.5-0.5B's ratio: seven shares added per KV head).
        for (NH, NKV) in [(3, 3), (14, 2)] {
            try compareBackends([[2, 70, NH, 8], [2, 70, NKV, 8], [2, 70, NKV, 8]], rtol: 1e-4, atol: 1e-5) {
                try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2])
            }
        }
        // Non-causal, batch > 1, odd head size, big head size.
        try compareBackends([[3, 33, 6, 20], [3, 33, 2, 20], [3, 33, 2, 20]], rtol: 1e-4, atol: 1e-5) {
            try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], causal: false)
        }
        try compareBackends([[1, 40, 2, 128], [1, 40, 1, 128], [1, 40, 1, 128]], rtol: 1e-4, atol: 1e-5) {
            try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2])
        }
    }

    func testAttentionWithKVCacheAndSegmentsOpenCLMatchesCPU() throws {
        let cl = try TestDevices.requireOpenCL()
        try compareBackends([[2, 5, 4, 16], [2, 70, 2, 16], [2, 70, 2, 16]], rtol: 1e-4, atol: 1e-5) {
            try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2])
        }
        let lengths = [[1, 40, 30, 2], [75], [37, 37]]
        let cpuSegments = try AttentionSegments(lengths: lengths, rowLength: 75)
        let clSegments = try AttentionSegments(lengths: lengths, rowLength: 75, on: cl)
        // Causal and not: segments cross the 32-row blocks of the kernels in both directions.
        for causal in [true, false] {
            try compareBackends([[3, 75, 4, 8], [3, 75, 2, 8], [3, 75, 2, 8]], rtol: 1e-4, atol: 1e-5) {
                try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], causal: causal,
                                                     segments: $0[0].device == .cpu ? cpuSegments : clSegments)
            }
        }
    }

    /// (B, Tk, …) rows laid into buffers of `capacity` positions per row, NaN past Tk: a KV
    /// cache's buffers. Read, a NaN would poison every output it reached.
    static func paddedRows(_ x: [Float], B: Int, Tk: Int, capacity: Int, row: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: B * capacity * row)
        for b in 0..<B { for t in 0..<Tk { for i in 0..<row { out[(b * capacity + t) * row + i] = x[(b * Tk + t) * row + i] } } }
        return out
    }

    /// keyLength: keys read in place from buffers with room for more positions per row. A few
    /// queries under grouped-query attention (the grouped path; Qwen2.5-0.5B's 14 over 2 heads)
    /// and as many queries as keys (the blocked path), with and without left-padding segments,
    /// against textbook attention over the first Tk positions alone.
    func testKeyLengthReadsTheFirstPositionsOfLongerBuffers() throws {
        let (B, capacity, Tk, NH, NKV, D) = (3, 12, 9, 14, 2, 8)
        let segments = try AttentionSegments(lengths: [[4, 5], [9], [2, 7]], rowLength: Tk)
        let starts = try segments.starts.toIndices()
        let k = randomValues(B * Tk * NKV * D, seed: 30, scale: 2), v = randomValues(B * Tk * NKV * D, seed: 31)
        let kt = try Tensor(Self.paddedRows(k, B: B, Tk: Tk, capacity: capacity, row: NKV * D), shape: [B, capacity, NKV, D])
        let vt = try Tensor(Self.paddedRows(v, B: B, Tk: Tk, capacity: capacity, row: NKV * D), shape: [B, capacity, NKV, D])
        for Tq in [1, 3, 9] {
            let q = randomValues(B * Tq * NH * D, seed: 32 + UInt64(Tq), scale: 2)
            let qt = try Tensor(q, shape: [B, Tq, NH, D])
            for withSegments in [false, true] {
                let got = try noGrad {
                    try Tensor.scaledDotProductAttention(q: qt, k: kt, v: vt, segments: withSegments ? segments : nil,
                                                         keyLength: Tk).toArray()
                }
                let want = Self.reference(q: q, k: k, v: v, B: B, Tq: Tq, Tk: Tk, NH: NH, NKV: NKV, D: D) { b, t, j in
                    let p = t + Tk - Tq
                    return j <= p && (!withSegments || starts[b * Tk + j] == starts[b * Tk + p])
                }
                assertClose(got, want, rtol: 1e-5, atol: 1e-6, "Tq \(Tq), segments \(withSegments)")
            }
        }
        let q = try Tensor.zeros([B, 1, NH, D])
        XCTAssertThrowsError(try noGrad { try Tensor.scaledDotProductAttention(q: q, k: kt, v: vt, keyLength: capacity + 1) }) {
            XCTAssertTrue("\($0)".contains("keyLength 13"), "\($0)")
        }
        XCTAssertThrowsError(try Tensor.scaledDotProductAttention(q: q, k: kt, v: vt, keyLength: Tk)) {
            XCTAssertTrue("\($0)".contains("forward only"), "\($0)")
        }
    }

    /// The grouped path (a few queries, the group's heads as the rows of one product) against
    /// the blocked path it stands in for: each query alone, as a decoding step runs it, equals
    /// its row of the attention of all queries at once, with a per-head bias and segments.
    func testFewQueriesGroupedEqualTheirRowsOfTheFullAttention() throws {
        let (B, T, NH, NKV, D) = (2, 11, 6, 2, 16)
        let q = randomValues(B * T * NH * D, seed: 40, scale: 2), k = randomValues(B * T * NKV * D, seed: 41, scale: 2)
        let v = randomValues(B * T * NKV * D, seed: 42)
        let bias = randomValues(B * T * T * NH, seed: 43, scale: 3)  // (B, T, T, NH)
        let segments = try AttentionSegments(lengths: [[3, 8], [11]], rowLength: T)
        let (kt, vt) = (try Tensor(k, shape: [B, T, NKV, D]), try Tensor(v, shape: [B, T, NKV, D]))
        try noGrad {
            let full = try Tensor.scaledDotProductAttention(q: Tensor(q, shape: [B, T, NH, D]), k: kt, v: vt, segments: segments,
                                                            bias: Tensor(bias, shape: [B, T, T, NH])).toArray()
            for t in [0, 2, 3, 10] {
                // Query t alone sees keys 0 ... t: the first t + 1 positions, its own bias row.
                let row = NH * D
                var qt = [Float](), bt = [Float](), want = [Float]()
                for b in 0..<B {
                    let at: Int = (b * T + t) * row, biasAt: Int = (b * T + t) * T * NH
                    qt += q[at..<(at + row)]
                    want += full[at..<(at + row)]
                    bt += bias[biasAt..<(biasAt + (t + 1) * NH)]
                }
                let prefix = try AttentionSegments(lengths: t < 3 ? [[t + 1], [t + 1]] : [[3, t - 2], [t + 1]], rowLength: t + 1)
                let got = try Tensor.scaledDotProductAttention(
                    q: Tensor(qt, shape: [B, 1, NH, D]), k: kt, v: vt, segments: prefix,
                    bias: Tensor(bt, shape: [B, 1, t + 1, NH]), keyLength: t + 1).toArray()
                assertClose(got, want, rtol: 1e-5, atol: 1e-6, "query \(t)")
            }
        }
    }

    /// keyLength on OpenCL (the forward kernel reads k and v rows `kvRows` apart) against the CPU
    /// path, the buffers' unused positions NaN.
    func testKeyLengthOpenCLMatchesCPU() throws {
        let (B, capacity, Tk, NH, NKV, D) = (2, 40, 33, 14, 2, 16)
        for Tq in [1, 5, 33] {
            let k = Self.paddedRows(randomValues(B * Tk * NKV * D, seed: 50), B: B, Tk: Tk, capacity: capacity, row: NKV * D)
            let v = Self.paddedRows(randomValues(B * Tk * NKV * D, seed: 51), B: B, Tk: Tk, capacity: capacity, row: NKV * D)
            try compareBackends([[B, Tq, NH, D], [B, capacity, NKV, D], [B, capacity, NKV, D]], rtol: 1e-4, atol: 1e-5,
                                values: [randomValues(B * Tq * NH * D, seed: 52), k, v], backward: false) { x in
                try noGrad { try Tensor.scaledDotProductAttention(q: x[0], k: x[1], v: x[2], keyLength: Tk) }
            }
        }
    }

    func testMismatchedHeadsAreAClearError() throws {
        let q = try Tensor.zeros([1, 4, 3, 8]), kv = try Tensor.zeros([1, 4, 2, 8])
        XCTAssertThrowsError(try Tensor.scaledDotProductAttention(q: q, k: kv, v: kv)) { error in
            XCTAssertTrue("\(error)".contains("not a multiple"), "\(error)")
        }
    }
}
