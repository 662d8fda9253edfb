import XCTest
@testable import ITuneTensor

final class CosineTests: XCTestCase {
    func testCosineOfRowsMatchesTheFormula() throws {
        let c = try Tensor([1, 0, 0, 1, 2, 3], shape: [2, 3]).cosineSimilarity(Tensor([0, 1, 0, 2, 4, 6], shape: [2, 3])).toArray()
        XCTAssertEqual(c[0], 0, accuracy: 1e-7)
        XCTAssertEqual(c[1], 1, accuracy: 1e-6)
    }

    func testCosineBackwardMatchesFiniteDifferences() throws {
        try checkGradients([[3, 5], [3, 5]]) { try $0[0].cosineSimilarity($0[1]) }
    }

    func testCosineOpenCLMatchesCPU() throws {
        for n in oddSizes {
            try compareBackends([[4, n], [4, n]], rtol: 1e-4, atol: 1e-6) { try $0[0].cosineSimilarity($0[1]) }
        }
    }
}
