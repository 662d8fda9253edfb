import XCTest
@testable import ITuneTensor

final class DropoutTests: XCTestCase {
    func testDropoutKeepsAboutOneMinusPAndRescales() throws {
        let n = 100_000
        let y = try Tensor.full([n], 2).dropout(p: 0.25, seed: 9).toArray()
        let kept = y.filter { $0 != 0 }
        XCTAssertEqual(Double(kept.count) / Double(n), 0.75, accuracy: 0.01)
        XCTAssertTrue(kept.allSatisfy { abs($0 - 2 / 0.75) < 1e-6 })
        XCTAssertNotEqual(y, try Tensor.full([n], 2).dropout(p: 0.25, seed: 10).toArray(), "another seed, another mask")
        XCTAssertEqual(try Tensor.full([5], 1).dropout(p: 0, seed: 1).toArray(), [1, 1, 1, 1, 1])
    }

    func testDropoutBackwardUsesTheSameMask() throws {
        // The function is linear in x for a fixed seed, so FD is exact up to rounding.
        try checkGradients([[3, 17]]) { try $0[0].dropout(p: 0.5, seed: 4) }
    }

    func testDropoutOpenCLDrawsTheSameMaskAsCPU() throws {
        for n in oddSizes + [4096] {
            try compareBackends([[n]], rtol: 0, atol: 0) { try $0[0].dropout(p: 0.3, seed: 0xDEAD_BEEF_1234) }
        }
    }
}
