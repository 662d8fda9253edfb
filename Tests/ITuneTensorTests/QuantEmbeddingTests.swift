import Foundation
import XCTest
@testable import ITuneTensor

/// `--quantize-embeddings`: the token table and the head read from nf4/int8 blocks. The lookup
/// equals the dequantised rows (BlockQuantizedMatrix.dequantized(), the host decoder the GEMM
/// tests check against bitsandbytes' code book) on the CPU path and on OpenCL
/// (embedding_forward_quant); the chunked head + loss from the blocks equals the head + loss of
/// the dequantised matrix as an f32 tensor, loss and hidden gradient, on both.
final class QuantEmbeddingTests: XCTestCase {
    func table(V: Int, C: Int, _ format: QuantFormat, doubleQuant: Bool, seed: UInt64) throws -> BlockQuantizedMatrix {
        try quantizedMatrix(rows: V, cols: C, format, doubleQuant: doubleQuant, seed: seed, scale: 0.05)
    }

    var devices: [Device] {
        get throws { [.cpu] + [try? TestDevices.requireOpenCL()].compactMap { $0 } }
    }

    func testLookupEqualsTheDequantisedRowsOnEveryBackend() throws {
        _ = try TestDevices.requireOpenCL()  // fails under ITUNE_REQUIRE_OPENCL=1 without a device
        // C not a multiple of 64 (blocks straddle rows) and an odd nf4 count; a repeated id,
        // the first and the last row; > 256 blocks (two second-level blocks under double quant).
        let (V, C) = (301, 77)
        let ids: [Int32] = [0, 5, 300, 5, 17, 299, 1, 150]
        for (format, dq) in [(QuantFormat.nf4, false), (.nf4, true), (.int8, false)] {
            let q = try table(V: V, C: C, format, doubleQuant: dq, seed: 3)
            let all = q.dequantized()
            let want = ids.flatMap { all[(Int($0) * C)..<(Int($0) * C + C)] }
            for device in try devices {
                let out = try q.embedding(Tensor(indices: ids, shape: [2, 4], on: device))
                XCTAssertEqual(out.shape, [2, 4, C])
                XCTAssertEqual(try out.toArray(), want, "\(device) \(format)\(dq ? "+dq" : "")")
            }
        }
    }

    func testAnIDOutsideTheTableIsAnErrorNamingIt() throws {
        let q = try table(V: 10, C: 8, .nf4, doubleQuant: false, seed: 1)
        XCTAssertThrowsError(try q.embedding(Tensor(indices: [3, 10], shape: [2], on: .cpu))) { e in
            XCTAssertTrue("\(e)".contains("token id 10 (at index 1"), "\(e)")
        }
    }

    func testHeadAndLossFromBlocksEqualTheDequantisedTensorsOnEveryBackend() throws {
        _ = try TestDevices.requireOpenCL()
        let (N, C, V) = (37, 70, 259)
        var g = SplitMix64(seed: 9)
        let targets = (0..<N).map { i in i % 5 == 2 ? Int32(-100) : Int32(g.next() % UInt64(V)) }
        let h = randomValues(N * C, seed: 4)
        for (format, dq) in [(QuantFormat.nf4, true), (.int8, false)] {
            let q = try table(V: V, C: C, format, doubleQuant: dq, seed: 8)
            // The reference: the dequantised matrix as an ordinary frozen f32 weight, one chunk.
            let hiddenRef = try Tensor(h, shape: [N, C], requiresGrad: true)
            let ref = try hiddenRef.linearCrossEntropy(weight: Tensor(q.dequantized(), shape: [V, C]),
                                                       targets: Tensor(indices: targets, shape: [N]))
            try ref.scaled(by: 0.5).backward()
            let (l0, dh0) = (try ref.item(), try XCTUnwrap(hiddenRef.grad).toArray())
            for device in try devices {
                for chunk in [nil, 8] as [Int?] {
                    let hidden = try Tensor(h, shape: [N, C], on: device, requiresGrad: true)
                    let loss = try hidden.linearCrossEntropy(quantized: q, targets: Tensor(indices: targets, shape: [N], on: device),
                                                             chunkRows: chunk)
                    try loss.scaled(by: 0.5).backward()
                    let what = "\(device) \(format)\(dq ? "+dq" : "") chunk \(chunk.map(String.init) ?? "auto")"
                    XCTAssertEqual(try loss.item(), l0, accuracy: 1e-5 * max(1, abs(l0)), what)
                    assertClose(try XCTUnwrap(hidden.grad).toArray(), dh0, rtol: 1e-4, atol: 1e-6, what + " dHidden")
                }
            }
        }
    }
}
