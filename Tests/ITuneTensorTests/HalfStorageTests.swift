import XCTest
@testable import ITuneTensor

/// Frozen weights kept as bf16 or f16: the matmul (forward and the input's gradient) and the
/// embedding read them as stored and give what f32 gives on the exactly converted weights.
final class HalfStorageTests: XCTestCase {
    /// (M, N, K): few rows (the unpacked path), odd sizes, and a depth past one converted block
    /// (GemmHalfBlocking.kb = 2048) so that the K-blocks' accumulation is exercised.
    let shapes = [(1, 7, 5), (7, 33, 127), (45, 257, 33), (33, 19, 2500), (64, 600, 96)]

    /// The 16-bit bits of seeded values in [-1, 1).
    func bits(_ n: Int, seed: UInt64, _ format: DType) -> [UInt16] {
        randomValues(n, seed: seed).map { format == .bf16 ? floatToBFloat16($0) : floatToHalf($0) }
    }

    /// y = x · op(W) and dX for W stored 16-bit and for the f32 of the same values, on `device`.
    func forwardAndInputGradient(M: Int, N: Int, K: Int, transB: Bool, format: DType, on device: Device,
                                 asF32: Bool) throws -> (y: [Float], dx: [Float]) {
        let w16 = try Tensor(storing: bits(N * K, seed: 2, format), dtype: format, shape: transB ? [N, K] : [K, N], on: device)
        let w = asF32 ? try w16.converted(to: .f32) : w16
        let x = try Tensor(randomValues(M * K, seed: 1), shape: [M, K], on: device, requiresGrad: true)
        let r = try Tensor(randomValues(M * N, seed: 3), shape: [M, N], on: device)
        let y = try x.matmul(w, transposeB: transB)
        try (y * r).sum().backward()
        return (try y.toArray(), try XCTUnwrap(x.grad).toArray())
    }

    func testCPU16BitMatmulAndInputGradientEqualF32OfTheConvertedWeight() throws {
        for format in [DType.bf16, .f16] { for (M, N, K) in shapes { for transB in [true, false] {
            let half = try forwardAndInputGradient(M: M, N: N, K: K, transB: transB, format: format, on: .cpu, asF32: false)
            let full = try forwardAndInputGradient(M: M, N: N, K: K, transB: transB, format: format, on: .cpu, asF32: true)
            // Only the order of the K-block sums differs (above K = 2048): 1e-5 relative, and an
            // absolute floor of a few ulps of the sums' magnitude (√K · 1/3).
            let atol: Float = K > 2048 ? 1e-4 : 1e-5
            assertClose(half.y, full.y, rtol: 1e-5, atol: atol, "\(format) y \(M)x\(N)x\(K) transB=\(transB)")
            assertClose(half.dx, full.dx, rtol: 1e-5, atol: atol, "\(format) dX \(M)x\(N)x\(K) transB=\(transB)")
        } } }
    }

    func testOpenCL16BitMatmulAndInputGradientEqualF32OfTheConvertedWeight() throws {
        let device = try TestDevices.requireOpenCL()
        let cl = try XCTUnwrap(try device.backend() as? OpenCLBackend)
        let saved = cl.gemmImplementation
        defer { cl.gemmImplementation = saved }
        for format in [DType.bf16, .f16] { for (M, N, K) in shapes { for transB in [true, false] {
            let what = "\(format) \(M)x\(N)x\(K) transB=\(transB)"
            // The own f32 kernel on the converted weights. The tuning table may pick another own
            // kernel for f32 (gemm_direct on PoCL) that sums K in another order than the 16-bit
            // kernel: the matmul tolerance between kernels, 1e-4 relative.
            cl.gemmImplementation = .own
            let half = try forwardAndInputGradient(M: M, N: N, K: K, transB: transB, format: format, on: device, asF32: false)
            let own = try forwardAndInputGradient(M: M, N: N, K: K, transB: transB, format: format, on: device, asF32: true)
            assertClose(half.y, own.y, rtol: 1e-4, atol: 1e-5, "OpenCL own f32 vs 16-bit y \(what)")
            assertClose(half.dx, own.dx, rtol: 1e-4, atol: 1e-5, "OpenCL own f32 vs 16-bit dX \(what)")
            // And the CPU path on f32 weights, at the matmul tolerance between backends.
            let cpu = try forwardAndInputGradient(M: M, N: N, K: K, transB: transB, format: format, on: .cpu, asF32: true)
            assertClose(half.y, cpu.y, rtol: 1e-4, atol: 1e-4, "OpenCL 16-bit vs CPU f32 y \(what)")
            assertClose(half.dx, cpu.dx, rtol: 1e-4, atol: 1e-4, "OpenCL 16-bit vs CPU f32 dX \(what)")
        } } }
        cl.gemmImplementation = saved
        // Under CLBlast the 16-bit weight still takes the own kernel.
        let half = try forwardAndInputGradient(M: 7, N: 33, K: 127, transB: true, format: .bf16, on: device, asF32: false)
        let cpu = try forwardAndInputGradient(M: 7, N: 33, K: 127, transB: true, format: .bf16, on: .cpu, asF32: true)
        assertClose(half.y, cpu.y, rtol: 1e-4, atol: 1e-5, "OpenCL (CLBlast chosen) 16-bit y")
    }

    func testBatched16BitMatmulMatchesPerMatrix() throws {
        var devices: [Device] = [.cpu]
        if let cl = TestDevices.opencl { devices.append(cl) }
        for device in devices {
            let w16 = try Tensor(storing: bits(3 * 9 * 5, seed: 4, .bf16), dtype: .bf16, shape: [3, 9, 5], on: device)
            let x = try Tensor(randomValues(3 * 4 * 9, seed: 5), shape: [3, 4, 9], on: device)
            let y = try x.matmul(w16).toArray()
            let ref = try x.matmul(w16.converted(to: .f32)).toArray()
            assertClose(y, ref, rtol: 1e-5, atol: 1e-6, "batched bf16 on \(device)")
        }
    }

    func testEmbeddingFrom16BitTableEqualsTheConvertedRows() throws {
        var devices: [Device] = [.cpu]
        if let cl = TestDevices.opencl { devices.append(cl) }
        for device in devices { for format in [DType.bf16, .f16] {
            let (V, C) = (11, 37)
            let table = try Tensor(storing: bits(V * C, seed: 6, format), dtype: format, shape: [V, C], on: device)
            let ids = try Tensor(indices: [3, 0, 10, 3, 7], shape: [5], on: device)
            let y = try table.embedding(ids).toArray()
            let ref = try table.converted(to: .f32).embedding(ids).toArray()
            XCTAssertEqual(y, ref, "\(format) on \(device)")
            XCTAssertEqual(Array(y[0..<C]), Array(try table.toArray()[(3 * C)..<(4 * C)]))
        } }
    }

    func testConversionsRoundToNearestEvenOnBothBackends() throws {
        // Ties, subnormals, overflow to infinity in f16, NaN.
        let values: [Float] = [1, -2.5, 1 + 1.0 / 256, 1 + 3.0 / 256, 65520, 1e-7, 6e-8, -0.0, .infinity, .nan, 3.14159]
            + randomValues(301, seed: 8, scale: 100)
        var devices: [Device] = [.cpu]
        if let cl = TestDevices.opencl { devices.append(cl) }
        for device in devices {
            let x = try Tensor(values, shape: [values.count], on: device)
            for format in [DType.bf16, .f16] {
                let expected = values.map { format == .bf16 ? floatToBFloat16($0) : floatToHalf($0) }
                let got = try x.converted(to: format).toBits()
                for (i, (g, e)) in zip(got, expected).enumerated() where g != e {
                    // NaN may be any NaN: check the class, not the payload.
                    let isNaN = format == .bf16 ? bfloat16ToFloat(g).isNaN : halfToFloat(g).isNaN
                    XCTAssertTrue(values[i].isNaN && isNaN, "\(format) of \(values[i]) on \(device): \(g) vs \(e)")
                }
                let back = try x.converted(to: format).converted(to: .f32).toArray()
                let exact = expected.map { format == .bf16 ? bfloat16ToFloat($0) : halfToFloat($0) }
                XCTAssertEqual(back.map(\.bitPattern).filter { !Float(bitPattern: $0).isNaN },
                               exact.map(\.bitPattern).filter { !Float(bitPattern: $0).isNaN }, "\(format) round trip on \(device)")
            }
            let rounded = try x.roundedToBFloat16().toArray()
            let exact = values.map { bfloat16ToFloat(floatToBFloat16($0)) }
            for (r, e) in zip(rounded, exact) { XCTAssertTrue(r == e || (r.isNaN && e.isNaN), "\(r) vs \(e) on \(device)") }
        }
    }

    func testConvertedWeightPassesItsGradientToTheF32Master() throws {
        // --precision bf16: a bf16 copy of an f32 master goes into the matmul; the master's
        // gradient is the matmul's gradient of that copy, xᵀ·dY.
        let master = try Tensor(randomValues(6 * 4, seed: 9), shape: [6, 4], requiresGrad: true)
        let x = try Tensor(randomValues(3 * 4, seed: 10), shape: [3, 4])
        try x.matmul(master.converted(to: .bf16), transposeB: true).sum().backward()
        let g = try XCTUnwrap(master.grad).toArray()
        let xs = try x.toArray()
        for o in 0..<6 { for i in 0..<4 {
            let expected = (0..<3).reduce(Float(0)) { $0 + xs[$1 * 4 + i] }
            XCTAssertEqual(g[o * 4 + i], expected, accuracy: 1e-5)
        } }
    }

    func testMatmulRefusesA16BitLeftOperandNamingTheDTypes() throws {
        let a = try Tensor(storing: [0, 0, 0, 0], dtype: .bf16, shape: [2, 2])
        let b = try Tensor([1, 2, 3, 4], shape: [2, 2])
        XCTAssertThrowsError(try a.matmul(b)) { XCTAssertTrue("\($0)".contains("bf16"), "\($0)") }
    }
}
