import Foundation
import XCTest
@testable import ITuneTokenizers

/// Every line of three real prompt files from ../shared/data/t0-pool, encoded by each fixture
/// tokenizer, against digests of the ids the `tokenizers` library gives
/// (scripts/make_real_data_token_hashes.py). Skips when ../shared/data is absent.
final class RealDataTests: XCTestCase {
    static let data = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/data/t0-pool")

    static func fnv1a64(_ ids: [Int]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for id in ids {
            withUnsafeBytes(of: Int32(id).littleEndian) { bytes in
                for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
            }
        }
        return h
    }

    func testRealPromptsEncodeExactlyAsTheTokenizersLibrary() throws {
        guard FileManager.default.fileExists(atPath: Self.data.path) else {
            throw XCTSkip("../shared/data is absent: real-data tokenizer test skipped")
        }
        let golden = try Fixtures.json(Fixtures.root.appendingPathComponent("real_data_hashes.json")) as! [String: Any]
        let expected = golden["expected"] as! [String: [String: Any]]
        XCTAssertEqual(expected.count, 15)
        for (key, want) in expected.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "/").map(String.init)
            let tokenizer = try Fixtures.tokenizer(parts[0])
            let text = try String(contentsOf: Self.data.appendingPathComponent(parts[1]), encoding: .utf8)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
            let ids = tokenizer.encode(batch: lines, addSpecialTokens: false).flatMap { $0 }
            XCTAssertEqual(lines.count, want["lines"] as? Int, key)
            XCTAssertEqual(ids.count, want["tokens"] as? Int, key)
            XCTAssertEqual(String(format: "%016llx", Self.fnv1a64(ids)), want["fnv1a64"] as? String, key)
        }
    }
}
