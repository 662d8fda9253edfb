import XCTest
@testable import ITuneTensor

final class SoftmaxTests: XCTestCase {
    func testSoftmaxRowsSumToOneAndAreStableForLargeLogits() throws {
        let y = try Tensor([1000, 1001, 1002, -5, 0, 5], shape: [2, 3]).softmax().toArray()
        XCTAssertEqual(y[0] + y[1] + y[2], 1, accuracy: 1e-6)
        XCTAssertEqual(y[2], Float(1 / (1 + exp(-1.0) + exp(-2.0))), accuracy: 1e-6)
        XCTAssertFalse(y.contains { $0.isNaN })
    }

    func testSoftmaxBackwardMatchesFiniteDifferences() throws {
        try checkGradients([[3, 7]]) { try $0[0].softmax() }
    }

    func testSoftmaxOpenCLMatchesCPU() throws {
        for n in oddSizes + [1024] {
            try compareBackends([[5, n]], rtol: 1e-4, atol: 1e-7) { try $0[0].softmax() }
        }
    }
}
