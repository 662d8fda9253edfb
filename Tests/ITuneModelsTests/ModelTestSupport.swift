import Foundation
import XCTest
@testable import ITuneModels
import ITuneTensor

/// The fixtures written by scripts/make_model_fixtures.py.
let modelFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../Fixtures/models").standardized

/// The CPU, and the first OpenCL device when there is one (required with ITUNE_REQUIRE_OPENCL=1).
func testDevices() -> [Device] {
    let cl = OpenCLRuntime.listDevices().platforms.filter { !$0.devices.isEmpty }.map { Device.opencl(platform: $0.index, device: 0) }
    if cl.isEmpty, ProcessInfo.processInfo.environment["ITUNE_REQUIRE_OPENCL"] == "1" { XCTFail("no OpenCL device") }
    return [.cpu] + cl.prefix(1)
}

/// max |got − want| / max(|want|, 0.1·max|want|): relative error that does not blow up near zero.
func worstRelativeError(_ got: [Float], _ want: [Float]) -> Float {
    let scale = want.map(abs).max() ?? 1
    return zip(got, want).map { abs($0 - $1) / max(abs($1), 0.1 * scale) }.max() ?? 0
}

/// Parses config.json text the way loadPretrained does.
func parseConfig(_ text: String) throws -> ModelConfig {
    guard let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw ModelFileError.malformed(file: "config.json", "test config is not an object")
    }
    return try ModelConfig(json: json, file: "config.json")
}

/// Asserts that `body` throws an error whose text contains every needle (the field it names).
func assertRefused<T>(_ body: @autoclosure () throws -> T, naming needles: String..., file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try body(), file: file, line: line) { e in
        let text = "\(e)"
        for n in needles { XCTAssertTrue(text.contains(n), "\(n) not named in: \(text)", file: file, line: line) }
    }
}
