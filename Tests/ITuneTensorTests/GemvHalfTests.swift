import Foundation
import XCTest
@testable import ITuneTensor

/// The 16-bit weight read as stored: the few-row GEMV (decoding) against a double-precision
/// product of the exactly widened values, and the packed path's one-pass conversion against
/// the packing of the converted f32 and the earlier two-pass product.
final class GemvHalfTests: XCTestCase {
    func bits(_ n: Int, seed: UInt64, _ format: DType) -> [UInt16] {
        randomValues(n, seed: seed).map { format == .bf16 ? floatToBFloat16($0) : floatToHalf($0) }
    }

    /// The values in memory of their own (readers hold the pointer); deallocate when done.
    func stored(_ b: [UInt16]) -> UnsafeMutablePointer<UInt16> {
        let p = UnsafeMutablePointer<UInt16>.allocate(capacity: max(b.count, 1))
        p.initialize(from: b, count: b.count)
        return p
    }

    func quantized(_ values: [Float], rows: Int, cols: Int, _ format: QuantFormat) throws -> BlockQuantizedMatrix {
        try values.withUnsafeBufferPointer { try BlockQuantizedMatrix(quantizing: $0, rows: rows, cols: cols, format: format) }
    }

    func widened(_ b: [UInt16], _ format: DType) -> [Float] {
        b.map { format == .bf16 ? bfloat16ToFloat($0) : halfToFloat($0) }
    }

    /// C (M,N) = alpha · op(A) · Bᵀ + beta · C in Double, B (N,K) with row stride ldb, C with ldc.
    func naive(_ a: [Float], tA: Bool, _ b: [Float], ldb: Int, _ c0: [Float], ldc: Int, M: Int, N: Int, K: Int,
               alpha: Float, beta: Float) -> [Float] {
        var c = c0
        for i in 0..<M { for j in 0..<N {
            var acc = 0.0
            for k in 0..<K { acc += Double(tA ? a[k * M + i] : a[i * K + k]) * Double(b[j * ldb + k]) }
            c[i * ldc + j] = Float(Double(alpha) * acc + (beta == 0 ? 0 : Double(beta) * Double(c0[i * ldc + j])))
        } }
        return c
    }

    func testGemvMatchesTheNaiveDoubleProductOnOddShapes() throws {
        // N and K no multiple of the 8-wide vectors or of the kernel's row groups; K past the
        // L1 block of 8 rows of A (768) and N·K past the threshold that splits N over threads.
        let shapes = [(1, 1), (5, 3), (13, 7), (37, 129), (19, 1700), (301, 300)]
        // Every loop this CPU runs (for f16 the AVX2 kernel also needs F16C).
        let kernels = Gemv16.Kernel.allCases.filter { $0.runs(.bf16) }
        for format in [DType.bf16, .f16] { for M in 1...Gemv16.maxRows { for (N, K) in shapes {
            // op(A) transposed on half the cases, so that both layouts meet every M and shape.
            let tA = (M + N) % 2 == 1
            for kernel in kernels where kernel.runs(format) { for beta: Float in [0, 0.5] {
                // The weight with a row stride past K (a slice), C with one past N.
                let ldb = K + (N % 2), ldc = N + 1
                let b16 = bits(N * ldb, seed: UInt64(N + K), format)
                let a = randomValues(M * K, seed: UInt64(M))
                let c0 = beta == 0 ? [Float](repeating: .nan, count: M * ldc) : randomValues(M * ldc, seed: 9)
                let want = naive(a, tA: tA, widened(b16, format), ldb: ldb, c0, ldc: ldc, M: M, N: N, K: K, alpha: 0.75, beta: beta)
                // One worker and two (only products past Gemv16.parallelElements are split).
                for workers in N * K >= Gemv16.parallelElements ? [1, 2] : [2] {
                    var c = c0
                    a.withUnsafeBufferPointer { ap in b16.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                        cpuGemv16(transA: tA, M: M, N: N, K: K, alpha: 0.75, A: ap.baseAddress!, lda: tA ? M : K,
                                  B: bp.baseAddress!, format: format, ldb: ldb, beta: beta, C: cp.baseAddress!, ldc: ldc,
                                  workers: workers, kernel: kernel)
                    } } }
                    // The padding column of C is left as it was (NaN under beta = 0).
                    for i in 0..<M { XCTAssertEqual(c[i * ldc + N].bitPattern, c0[i * ldc + N].bitPattern) }
                    let what = "\(format) M \(M) N \(N) K \(K) tA \(tA) beta \(beta) workers \(workers) \(kernel)"
                    assertClose(c.enumerated().filter { $0.offset % ldc != N }.map(\.element),
                                want.enumerated().filter { $0.offset % ldc != N }.map(\.element), rtol: 1e-5, atol: 2e-5, what)
                }
            } }
        } } }
        print("[itune-tests] 16-bit GEMV checked: \(kernels.map { "\($0)" }.joined(separator: ", "))")
    }

    func testFewRowLinearWith16BitWeightEqualsTheConvertedWeight() throws {
        // Through the op, as a decode step calls it: (1, C) · Wᵀ with W (V, C) stored 16-bit.
        for format in [DType.bf16, .f16] { for M in [1, 3, 8] {
            let (N, K) = (1003, 77)
            let w16 = try Tensor(storing: bits(N * K, seed: 21, format), dtype: format, shape: [N, K])
            let x = try Tensor(randomValues(M * K, seed: 22), shape: [M, K])
            let y = try noGrad { try x.linear(w16) }.toArray()
            let ref = try noGrad { try x.linear(w16.converted(to: .f32)) }.toArray()
            assertClose(y, ref, rtol: 1e-5, atol: 1e-5, "\(format) M \(M)")
        } }
    }

    /// The panels Gemm.swift's packing writes from the f32 of the same values, at panel edges
    /// (a width short of NR, and short of the 8 rows the transposing packer takes at a time), and
    /// for B stored (K, N) over more columns than one run of full panels (256 values) covers,
    /// from a panel inside a run.
    func testConvertingPackerWritesThePanelsOfTheConvertedMatrix() throws {
        let nr = GemmBlocking.nr
        for (rows, cols) in [(61, 53), (40, 600)] {
        for transB in [false, true] {
            // op(B) is (K, N): B stored (K, N), or (N, K) when transposed.
            let (K, N) = transB ? (cols, rows) : (rows, cols)
            let (k0, kc, j0) = (3, 37, 5)
            let width = N - j0 - 1
            let panels = (width + nr - 1) / nr
            var readers: [(String, StoredRowReader, [Float])] = []
            var buffers: [UnsafeMutablePointer<UInt16>] = []
            defer { buffers.forEach { $0.deallocate() } }
            for format in [DType.bf16, .f16] {
                let b = bits(rows * cols, seed: 31, format)
                buffers.append(stored(b))
                readers.append(("\(format)", w16RowReader(buffers.last!, format: format, ldb: cols), widened(b, format)))
            }
            for format in [QuantFormat.nf4, .int8] {
                let q = try quantized(randomValues(rows * cols, seed: 32), rows: rows, cols: cols, format)
                readers.append(("\(format)", q.rowReader, q.dequantized()))
            }
            for (name, reader, f32) in readers {
                var want = [Float](repeating: .nan, count: panels * kc * nr), got = want, wantC = want
                f32.withUnsafeBufferPointer { bp in want.withUnsafeMutableBufferPointer { w in
                    packBPanels(transB: transB, B: bp.baseAddress!, ldb: cols, k0: k0, kc: kc, j0: j0, cols: width,
                                panels: 0..<panels, nr: nr, dst: w.baseAddress!, avx2: false)
                } }
                if GemmKernelKind.avx2.isSupported {
                    // The C packer of an f32 B (8×8 register transposes) writes the same panels.
                    f32.withUnsafeBufferPointer { bp in wantC.withUnsafeMutableBufferPointer { w in
                        packBPanels(transB: transB, B: bp.baseAddress!, ldb: cols, k0: k0, kc: kc, j0: j0, cols: width,
                                    panels: 0..<panels, nr: nr, dst: w.baseAddress!, avx2: true)
                    } }
                    XCTAssertEqual(wantC.map(\.bitPattern), want.map(\.bitPattern), "f32 C packer, transB \(transB)")
                }
                // In two calls, as two workers would pack their share.
                got.withUnsafeMutableBufferPointer { g in
                    packStoredBPanels(reader, transB: transB, k0: k0, kc: kc, j0: j0, cols: width, panels: 0..<1, nr: nr,
                                      dst: g.baseAddress!)
                    packStoredBPanels(reader, transB: transB, k0: k0, kc: kc, j0: j0, cols: width, panels: 1..<panels, nr: nr,
                                      dst: g.baseAddress!)
                }
                XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "\(name) transB \(transB) (op(B) \(K)×\(N))")
            }
        }
        }
    }

    func testOnePassConversionEqualsTheTwoPassProduct() throws {
        // More rows than the few-row paths take (32), K past one converted block (2048), odd N.
        let shapes = [(45, 257, 33), (64, 600, 96), (33, 19, 2500), (100, 70, 300)]
        for (M, N, K) in shapes { for tA in [false, true] { for tB in [false, true] {
            let a = randomValues(M * K, seed: 41)
            let c0 = randomValues(M * N, seed: 42)
            var cases: [(String, StoredRowReader, [Float])] = []
            let storedRows = tB ? N : K, storedCols = tB ? K : N
            let b16 = bits(N * K, seed: 43, .bf16), h16 = bits(N * K, seed: 44, .f16)
            let pb = stored(b16), ph = stored(h16)
            defer { pb.deallocate(); ph.deallocate() }
            cases.append(("bf16", w16RowReader(pb, format: .bf16, ldb: storedCols), widened(b16, .bf16)))
            cases.append(("f16", w16RowReader(ph, format: .f16, ldb: storedCols), widened(h16, .f16)))
            let q = try quantized(randomValues(N * K, seed: 45), rows: storedRows, cols: storedCols, .nf4)
            cases.append(("nf4", q.rowReader, q.dequantized()))
            for (name, reader, f32) in cases { for beta: Float in [0, 0.5] {
                func run(_ onePass: Bool) -> [Float] {
                    var c = c0
                    a.withUnsafeBufferPointer { ap in c.withUnsafeMutableBufferPointer { cp in
                        cpuSgemmConvertingB(transA: tA, transB: tB, M: M, N: N, K: K, alpha: 1.25, A: ap.baseAddress!,
                                            lda: tA ? M : K, beta: beta, C: cp.baseAddress!, ldc: N, reader: reader, onePass: onePass)
                    } }
                    return c
                }
                let what = "\(name) \(M)x\(N)x\(K) tA \(tA) tB \(tB) beta \(beta)"
                let one = run(true), two = run(false)
                // The same packed f32 operands and kernel; only the K-blocks' order of sums differs
                // past K = 2048.
                assertClose(one, two, rtol: K > 2048 ? 1e-5 : 1e-6, atol: K > 2048 ? 1e-4 : 1e-6, "one pass vs two \(what)")
                var ref = c0
                a.withUnsafeBufferPointer { ap in f32.withUnsafeBufferPointer { bp in ref.withUnsafeMutableBufferPointer { cp in
                    cpuSgemm(transA: tA, transB: tB, M: M, N: N, K: K, alpha: 1.25, A: ap.baseAddress!, lda: tA ? M : K,
                             B: bp.baseAddress!, ldb: storedCols, beta: beta, C: cp.baseAddress!, ldc: N)
                } } }
                assertClose(one, ref, rtol: 1e-5, atol: K > 2048 ? 1e-4 : 1e-5, "one pass vs f32 \(what)")
            } }
        } } }
    }
}
