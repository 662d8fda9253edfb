import XCTest
@testable import ITuneTensor

final class EmbeddingTests: XCTestCase {
    func testEmbeddingPicksTheRowsOfKnownIds() throws {
        let weight = try Tensor((0..<12).map(Float.init), shape: [4, 3])
        let y = try weight.embedding(Tensor(indices: [3, 0, 1, 3], shape: [2, 2]))
        XCTAssertEqual(y.shape, [2, 2, 3])
        XCTAssertEqual(try y.toArray(), [9, 10, 11, 0, 1, 2, 3, 4, 5, 9, 10, 11])
    }

    func testEmbeddingRejectsOutOfRangeIdsNamingTheIdAndVocabSize() throws {
        var devices: [Device] = [.cpu]
        if let cl = TestDevices.opencl { devices.append(cl) }
        for device in devices {
            let weight = try Tensor.zeros([4, 3], on: device)
            for bad: Int32 in [4, -1, 50_000] {
                XCTAssertThrowsError(try weight.embedding(Tensor(indices: [0, bad], shape: [2], on: device))) { error in
                    let text = "\(error)"
                    XCTAssertTrue(text.contains("token id \(bad)") && text.contains("vocabulary of 4"), text)
                }
            }
            XCTAssertThrowsError(try weight.embedding(Tensor([0, 1], shape: [2], on: device)))  // f32 ids
        }
    }

    func testEmbeddingBackwardScatterAddsRepeatedIds() throws {
        let weight = try Tensor.zeros([4, 2], requiresGrad: true)
        let ids = try Tensor(indices: [1, 3, 1, 1], shape: [4])
        let dy = try Tensor([1, 2, 10, 20, 100, 200, 1000, 2000], shape: [4, 2])
        try weight.embedding(ids).backward(seed: dy)
        XCTAssertEqual(try weight.grad!.toArray(), [0, 0, 1101, 2202, 0, 0, 10, 20])
        XCTAssertNil(ids.grad)
    }

    func testEmbeddingBackwardMatchesFiniteDifferences() throws {
        let ids = try Tensor(indices: [2, 0, 2, 4, 2, 0], shape: [2, 3])
        try checkGradients([[5, 3]]) { try $0[0].embedding(ids) }
    }

    func testEmbeddingOpenCLMatchesCPU() throws {
        // Both backends sum repeated ids in the same order, so the results are equal bit for bit.
        for c in oddSizes + [1024] {
            for n in [1, 7, 33] {
                let vocab = 50
                var g = SplitMix64(seed: UInt64(c * 1000 + n))
                let ids = (0..<(2 * n)).map { _ in Int32(g.next() % UInt64(vocab)) }
                try compareBackends([[vocab, c]], rtol: 0, atol: 0) { inputs in
                    try inputs[0].embedding(Tensor(indices: ids, shape: [2, n], on: inputs[0].device))
                }
            }
        }
    }

    func testEmbeddingBackwardIsDeterministicOnOpenCL() throws {
        let cl = try TestDevices.requireOpenCL()
        // Few distinct ids, each repeated hundreds of times: where atomics would reorder the sums.
        let ids = (0..<1500).map { Int32(($0 * 7) % 3) }
        func gradient() throws -> [UInt32] {
            let weight = try Tensor.randn([10, 33], seed: 1, on: cl, requiresGrad: true)
            let dy = try Tensor.randn([1500, 33], seed: 2, on: cl)
            try weight.embedding(Tensor(indices: ids, shape: [1500], on: cl)).backward(seed: dy)
            return try weight.grad!.toArray().map(\.bitPattern)
        }
        XCTAssertEqual(try gradient(), try gradient())
    }
}
