import Foundation
import XCTest
@testable import ITuneTokenizers

/// Swift's String == and String-keyed dictionaries compare by canonical equivalence ("é" U+00E9
/// equals "e" + U+0301); a tokenizer must not: a SentencePiece-style multilingual vocabulary
/// without a normaliser holds both spellings as different tokens. Golden ids from the
/// `tokenizers` library (scripts/make_canonical_equivalence_fixtures.py); texts compared as bytes.
final class CanonicalEquivalenceTests: XCTestCase {
    func testCanonicallyEquivalentTokensKeepTheirOwnIDs() throws {
        let name = "canonical_equivalence"
        let tokenizer = try Fixtures.tokenizer(name)
        let obj = try Fixtures.json(Fixtures.directory(name).appendingPathComponent("expected.json")) as! [String: Any]
        let pairs = obj["ids_of"] as! [[Any]]
        XCTAssertEqual(pairs.count, 10)
        var seen = Set<Int>()
        for p in pairs {
            let token = p[0] as! String, id = p[1] as! Int
            XCTAssertEqual(tokenizer.id(of: token), id, "id(of: \(token.unicodeScalars.map { String($0.value, radix: 16) }))")
            XCTAssertEqual(tokenizer.token(of: id).map { Array($0.utf8) }, Array(token.utf8), "token(of: \(id))")
            seen.insert(id)
        }
        XCTAssertEqual(seen.count, 10, "ten spellings, ten ids")
        let cases = obj["cases"] as! [[String: Any]]
        XCTAssertEqual(cases.count, 10)
        for c in cases {
            let text = c["text"] as! String
            let label = text.unicodeScalars.map { String($0.value, radix: 16) }.joined(separator: " ")
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            XCTAssertEqual(ids, c["ids"] as! [Int], "encode(\(label))")
            XCTAssertEqual(Array(tokenizer.decode(ids).utf8), Array((c["decoded"] as! String).utf8), "decode of \(label)")
            XCTAssertEqual(Array(tokenizer.decode(ids, skipSpecialTokens: true).utf8), Array((c["decoded_skip"] as! String).utf8),
                           "decode skipping specials of \(label)")
        }
    }
}
