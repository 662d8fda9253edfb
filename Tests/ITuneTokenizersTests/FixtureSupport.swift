import Foundation
import XCTest
@testable import ITuneTokenizers

/// Golden fixtures written by scripts/make_tokenizer_fixtures.py with the `tokenizers` library.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent("tokenizers")

    struct Case {
        let text: String
        let ids: [Int]
        let idsWithoutSpecialTokens: [Int]
        let decoded: String
        let decodedSkippingSpecialTokens: String
    }

    static func directory(_ name: String) -> URL { root.appendingPathComponent(name) }

    static func json(_ url: URL) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url), options: [.fragmentsAllowed])
    }

    static func expected(_ name: String) throws -> (vocabSize: Int, cases: [Case]) {
        let obj = try json(directory(name).appendingPathComponent("expected.json")) as! [String: Any]
        let cases = (obj["cases"] as! [[String: Any]]).map { c in
            Case(text: c["text"] as! String, ids: c["ids"] as! [Int],
                 idsWithoutSpecialTokens: c["ids_without_special_tokens"] as! [Int],
                 decoded: c["decoded"] as! String,
                 decodedSkippingSpecialTokens: c["decoded_skipping_special_tokens"] as! String)
        }
        return (obj["vocab_size"] as! Int, cases)
    }

    static func tokenizer(_ name: String) throws -> Tokenizer {
        try Tokenizer(directory: directory(name))
    }
}

/// Encodes every fixture string and compares ids with the library's, with and without special
/// tokens; reports each mismatch with the text so that a failure says what broke.
func assertEncodingMatchesLibrary(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
    let tokenizer = try Fixtures.tokenizer(name)
    let (_, cases) = try Fixtures.expected(name)
    XCTAssertGreaterThan(cases.count, 40, file: file, line: line)
    for c in cases {
        let without = tokenizer.encode(c.text, addSpecialTokens: false)
        XCTAssertEqual(without, c.idsWithoutSpecialTokens,
                       "\(name): encode(\(c.text.debugDescription), addSpecialTokens: false)", file: file, line: line)
        let with = tokenizer.encode(c.text)
        XCTAssertEqual(with, c.ids, "\(name): encode(\(c.text.debugDescription))", file: file, line: line)
    }
}

func assertDecodingMatchesLibrary(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
    let tokenizer = try Fixtures.tokenizer(name)
    let (_, cases) = try Fixtures.expected(name)
    for c in cases {
        XCTAssertEqual(tokenizer.decode(c.ids), c.decoded,
                       "\(name): decode(ids of \(c.text.debugDescription))", file: file, line: line)
        XCTAssertEqual(tokenizer.decode(c.ids, skipSpecialTokens: true), c.decodedSkippingSpecialTokens,
                       "\(name): decode(ids of \(c.text.debugDescription), skipSpecialTokens: true)", file: file, line: line)
    }
}
