import XCTest
@testable import ITuneTensor

final class NarrowConcatTests: XCTestCase {
    func testNarrowPicksTheRangeAlongAnyAxis() throws {
        let x = try Tensor((0..<24).map(Float.init), shape: [2, 3, 4])
        XCTAssertEqual(try x.narrow(axis: 1, start: 1, length: 2).toArray(), [4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23])
        XCTAssertEqual(try x.narrow(axis: 2, start: 3, length: 1).toArray(), [3, 7, 11, 15, 19, 23])
        XCTAssertEqual(try x.narrow(axis: 0, start: 1, length: 1).toArray(), (12..<24).map(Float.init))
        XCTAssertThrowsError(try x.narrow(axis: 1, start: 2, length: 2))
    }

    func testConcatenatedInvertsNarrow() throws {
        let x = try Tensor(randomValues(2 * 7 * 3, seed: 1), shape: [2, 7, 3])
        let parts = try [x.narrow(axis: 1, start: 0, length: 2), x.narrow(axis: 1, start: 2, length: 5)]
        XCTAssertEqual(try Tensor.concatenated(parts, axis: 1).toArray(), try x.toArray())
        XCTAssertThrowsError(try Tensor.concatenated([x, Tensor.zeros([2, 7, 4])], axis: 1))
    }

    func testNarrowAndConcatenatedBackwardMatchFiniteDifferences() throws {
        try checkGradients([[3, 5, 2]]) { try $0[0].narrow(axis: 1, start: 1, length: 3) }
        try checkGradients([[2, 3, 4], [2, 1, 4]]) { try Tensor.concatenated([$0[0], $0[1]], axis: 1) }
    }

    func testNarrowAndConcatenatedOpenCLMatchCPU() throws {
        for n in oddSizes {
            try compareBackends([[2, n, 5], [2, 3, 5]], rtol: 0) {
                try Tensor.concatenated([$0[0], $0[1]], axis: 1).narrow(axis: 1, start: n / 2, length: 3)
            }
        }
    }
}
