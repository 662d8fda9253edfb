import XCTest
@testable import ITuneTensor

final class CrossEntropyTests: XCTestCase {
    /// −log softmax(row)[target] averaged over the rows that are not ignored, in Double.
    static func reference(_ logits: [Float], _ targets: [Int32], V: Int) -> Double {
        var total = 0.0, count = 0
        for (n, t) in targets.enumerated() where t != -100 {
            let row = logits[(n * V)..<((n + 1) * V)].map(Double.init)
            let m = row.max()!
            let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
            total += lse - row[Int(t)]
            count += 1
        }
        return count == 0 ? 0 : total / Double(count)
    }

    func testLossMatchesReferenceAndSkipsIgnoredRows() throws {
        let V = 11
        let logits = randomValues(4 * V, seed: 3, scale: 4)
        let targets: [Int32] = [3, -100, 0, 10]
        let loss = try Tensor(logits, shape: [2, 2, V]).crossEntropy(targets: Tensor(indices: targets, shape: [4])).item()
        XCTAssertEqual(Double(loss), Self.reference(logits, targets, V: V), accuracy: 1e-5)
        // Golden from torch.nn.functional.cross_entropy (0.7531090974807739) on logits [[1,2,3],[0,0,0]], targets [2,1]:
        // ((log(e+e²+e³) − 3) + log 3) / 2.
        let small = try Tensor([1, 2, 3, 0, 0, 0], shape: [2, 3]).crossEntropy(targets: Tensor(indices: [2, 1], shape: [2])).item()
        XCTAssertEqual(small, 0.7531091, accuracy: 1e-6)
    }

    func testCrossEntropyBackwardMatchesFiniteDifferences() throws {
        let targets = try Tensor(indices: [2, -100, 0, 6], shape: [4])
        try checkGradients([[4, 7]]) { try $0[0].crossEntropy(targets: targets) }
    }

    func testAllRowsIgnoredGivesZeroLossAndZeroGradient() throws {
        let x = try Tensor(randomValues(6, seed: 1), shape: [2, 3], requiresGrad: true)
        let loss = try x.crossEntropy(targets: Tensor(indices: [-100, -100], shape: [2]))
        XCTAssertEqual(try loss.item(), 0)
        try loss.backward()
        XCTAssertEqual(try x.grad!.toArray(), [Float](repeating: 0, count: 6))
    }

    func testTargetOutsideTheVocabularyIsAnErrorNamingTheRow() throws {
        let x = try Tensor.zeros([3, 5])
        XCTAssertThrowsError(try x.crossEntropy(targets: Tensor(indices: [1, 5, 0], shape: [3]))) { error in
            guard case .invalidArgument = error as? TensorError else { return XCTFail("not a TensorError: \(error)") }
            XCTAssertTrue("\(error)".contains("row 1") && "\(error)".contains("target 5"), "\(error)")
        }
        // Negative ids other than the ignore index are errors too, and a custom ignore index is honoured.
        XCTAssertThrowsError(try x.crossEntropy(targets: Tensor(indices: [0, 0, -1], shape: [3]))) { error in
            XCTAssertTrue("\(error)".contains("row 2") && "\(error)".contains("target -1"), "\(error)")
        }
        XCTAssertEqual(try x.crossEntropy(targets: Tensor(indices: [0, -1, -1], shape: [3]), ignoreIndex: -1).item(),
                       Float(log(5.0)), accuracy: 1e-6)
        XCTAssertThrowsError(try x.crossEntropy(targets: Tensor(indices: [0, 1], shape: [2])))
    }

    func testLossIsStableForLargeLogits() throws {
        // exp(±400) overflows f32; the max subtraction must keep the loss finite and exact.
        let V = 33
        let logits = randomValues(3 * V, seed: 9, scale: 400)
        let targets: [Int32] = [0, 32, 17]
        for device in [Device.cpu] + [try? TestDevices.requireOpenCL()].compactMap({ $0 }) {
            let loss = try Tensor(logits, shape: [3, V], on: device).crossEntropy(targets: Tensor(indices: targets, shape: [3], on: device))
            XCTAssertEqual(Double(try loss.item()), Self.reference(logits, targets, V: V), accuracy: 1e-4, "\(device)")
        }
    }

    func testCrossEntropyOpenCLMatchesCPU() throws {
        let cl = try TestDevices.requireOpenCL()
        let cases = [1, 7, 33].flatMap { N in (oddSizes + [1000, 32000, 32003]).map { (N, $0) } } + [(64, 1000), (0, 7)]
        for (N, V) in cases {
            var g = SplitMix64(seed: UInt64(N * V))
            let ids = (0..<N).map { n in n % 3 == 1 ? Int32(-100) : Int32(g.next() % UInt64(V)) }
            let values = randomValues(N * V, seed: 5, scale: 3)
            func run(_ device: Device) throws -> (Float, [Float]) {
                let x = try Tensor(values, shape: [N, V], on: device, requiresGrad: true)
                let loss = try x.crossEntropy(targets: Tensor(indices: ids, shape: [N], on: device))
                try loss.backward()
                return (try loss.item(), try x.grad!.toArray())
            }
            let (cpuLoss, cpuGrad) = try run(.cpu)
            let (clLoss, clGrad) = try run(cl)
            let want = Self.reference(values, ids, V: V)
            XCTAssertEqual(Double(cpuLoss), want, accuracy: 1e-5 * max(1, abs(want)), "CPU vs Double, N \(N) V \(V)")
            XCTAssertEqual(clLoss, cpuLoss, accuracy: 1e-4 * max(1, abs(cpuLoss)), "N \(N) V \(V)")
            assertClose(clGrad, cpuGrad, rtol: 1e-4, atol: 1e-7, "gradient N \(N) V \(V)")
        }
    }
}
