import Foundation
import XCTest

/// CI proves that itune-bench runs: every benchmark in its smoke mode, on the CPU path and every
/// OpenCL device, one JSON line per result.
final class BenchSmokeTests: XCTestCase {
    func testItuneBenchSmokeRunsEveryBenchmark() throws {
        // The test bundle sits beside the package's built executables.
        var dir = Bundle(for: Self.self).bundleURL.deletingLastPathComponent()
        if !FileManager.default.fileExists(atPath: dir.appendingPathComponent("itune-bench").path) {
            dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        }
        let exe = dir.appendingPathComponent("itune-bench")
        guard FileManager.default.isExecutableFile(atPath: exe.path) else {
            throw XCTSkip("itune-bench is not built next to the tests (\(exe.path))")
        }
        let p = Process()
        p.executableURL = exe
        p.arguments = ["all", "--smoke", "--device", "all", "--json"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let rows = String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let benches = Set(rows.compactMap { $0["bench"] as? String })
        XCTAssertEqual(benches, ["matmul", "softmax", "attention", "step", "tokenize", "load"])
        XCTAssertTrue(rows.allSatisfy { (($0["rate"] as? Double) ?? 0) > 0 }, "every result has a positive rate")
        XCTAssertTrue(rows.contains { ($0["device"] as? String) == "cpu" })
    }
}
