import Foundation
import XCTest

/// CI proves that itune-bench runs: every benchmark in its smoke mode, on the CPU path and every
/// OpenCL device, one JSON line per result.
final class BenchSmokeTests: XCTestCase {
    func testItuneBenchSmokeRunsEveryBenchmark() throws {
        let r = try runBuiltExecutable("itune-bench", ["all", "--smoke", "--device", "all", "--json"], from: self)
        XCTAssertEqual(r.status, 0, r.err)
        let rows = r.out.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let benches = Set(rows.compactMap { $0["bench"] as? String })
        XCTAssertEqual(benches, ["matmul", "softmax", "attention", "step", "tokenize", "load"])
        XCTAssertTrue(rows.allSatisfy { (($0["rate"] as? Double) ?? 0) > 0 }, "every result has a positive rate")
        XCTAssertTrue(rows.contains { ($0["device"] as? String) == "cpu" })
    }
}
