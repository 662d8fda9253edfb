import Foundation
import XCTest
@testable import ITuneTokenizers

/// SentencePiece Unigram tokenizers (T5 / FLAN-T5 / mT5) against the `tokenizers` library, with
/// fixtures from scripts/make_unigram_fixtures.py.
final class UnigramGoldenTests: XCTestCase {
    func testT5UnigramEncodeMatchesTokenizersLibrary() throws { try assertEncodingMatchesLibrary("t5_unigram") }
    func testT5UnigramDecodeMatchesTokenizersLibrary() throws { try assertDecodingMatchesLibrary("t5_unigram") }

    func testMT5ByteFallbackEncodeMatchesTokenizersLibrary() throws {
        try assertEncodingMatchesLibrary("mt5_unigram_bytefallback")
    }
    func testMT5ByteFallbackDecodeMatchesTokenizersLibrary() throws {
        try assertDecodingMatchesLibrary("mt5_unigram_bytefallback")
    }

    func testUnigramVocabularySizeMatchesTokenizersLibrary() throws {
        for name in ["t5_unigram", "mt5_unigram_bytefallback"] {
            XCTAssertEqual(try Fixtures.tokenizer(name).vocabularySize, try Fixtures.expected(name).vocabSize, name)
        }
    }

    func testT5AppendsEndOfSequenceAndKnowsItsSpecialTokens() throws {
        let t = try Fixtures.tokenizer("t5_unigram")
        XCTAssertEqual(t.eosTokenID, 1)
        XCTAssertEqual(t.padTokenID, 0)
        let ids = t.encode("translate English to German: The house is wonderful.")
        XCTAssertEqual(ids.last, 1)
        XCTAssertEqual(Array(ids.dropLast()), t.encode("translate English to German: The house is wonderful.",
                                                       addSpecialTokens: false))
        XCTAssertEqual(t.id(of: "<extra_id_0>"), t.vocabularySize - 1)
    }

    /// The Precompiled normaliser alone, string by string: a mismatch here points at the charsmap
    /// reader rather than at the Viterbi search.
    func testPrecompiledCharsmapNormalizesAsTokenizersLibrary() throws {
        let tokenizerJSON = try Data(contentsOf: Fixtures.directory("t5_unigram").appendingPathComponent("tokenizer.json"))
        let root = JSONCursor(try JSONParser.parse([UInt8](tokenizerJSON), file: "tokenizer.json"), file: "tokenizer.json")
        let first = try root["normalizer"]["normalizers"].array()[0]
        let normalizer = try XCTUnwrap(try Normalizers.load(first))
        XCTAssertTrue(normalizer is PrecompiledNormalizer)
        let cases = try Fixtures.json(Fixtures.root.appendingPathComponent("unigram_precompiled.json")) as! [String: Any]
        let pairs = cases["cases"] as! [[String]]
        XCTAssertGreaterThan(pairs.count, 50)
        var changed = 0
        for pair in pairs {
            let out = String(decoding: normalizer.normalize(Array(pair[0].utf8)), as: UTF8.self)
            XCTAssertEqual(out, pair[1], pair[0].debugDescription)
            if pair[0] != pair[1] { changed += 1 }
        }
        XCTAssertGreaterThan(changed, 10, "the fixture must exercise the charsmap, not only identity")
    }
}

/// Unigram segmentation on hand-written vocabularies, where the answer can be worked out on paper.
final class UnigramViterbiTests: XCTestCase {
    func tokenizer(vocab: [(String, Double)], unkID: Int? = 0, byteFallback: Bool = false) throws -> Tokenizer {
        let entries = vocab.map { "[\(jsonString($0.0)), \($0.1)]" }.joined(separator: ",")
        let unk = unkID.map(String.init) ?? "null"
        let json = """
        {"model": {"type": "Unigram", "unk_id": \(unk), "byte_fallback": \(byteFallback), "vocab": [\(entries)]}}
        """
        return try Tokenizer(tokenizerJSON: Data(json.utf8))
    }

    func jsonString(_ s: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: [s]), as: UTF8.self).dropFirst().dropLast().description
    }

    func testHighestTotalScoreWinsOverLongestMatch() throws {
        // "abc": a+bc = -1 + -1 = -2 beats ab+c = -0.5 + -3 = -3.5 and abc = -2.5.
        let t = try tokenizer(vocab: [("<unk>", 0), ("a", -1), ("b", -4), ("c", -3), ("ab", -0.5), ("bc", -1), ("abc", -2.5)])
        XCTAssertEqual(t.encode("abc"), [1, 5])
        // Make abc cheaper than the pair: it wins whole.
        let u = try tokenizer(vocab: [("<unk>", 0), ("a", -1), ("b", -4), ("c", -3), ("ab", -0.5), ("bc", -1), ("abc", -1.5)])
        XCTAssertEqual(u.encode("abc"), [6])
    }

    func testUnknownCharactersFuseIntoOneUnk() throws {
        let t = try tokenizer(vocab: [("<unk>", 0), ("a", -1)])
        XCTAssertEqual(t.encode("a日本a"), [1, 0, 1])
    }

    func testByteFallbackSpellsUnknownStretchAsBytes() throws {
        var vocab: [(String, Double)] = [("<unk>", 0), ("a", -1)]
        for b in 0..<256 { vocab.append((String(format: "<0x%02X>", b), 0)) }
        let t = try tokenizer(vocab: vocab, byteFallback: true)
        // 日 = E6 97 A5: three byte pieces at ids 2 + byte.
        XCTAssertEqual(t.encode("a日"), [1, 2 + 0xE6, 2 + 0x97, 2 + 0xA5])
    }

    func testMalformedModelFieldsAreNamed() throws {
        XCTAssertThrowsError(try tokenizer(vocab: [("<unk>", 0), ("a", -1)], unkID: 5)) { error in
            XCTAssertTrue("\(error)".contains("model.unk_id"), "\(error)")
        }
        let badScore = """
        {"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0], ["a", "x"]]}}
        """
        XCTAssertThrowsError(try Tokenizer(tokenizerJSON: Data(badScore.utf8))) { error in
            XCTAssertTrue("\(error)".contains("model.vocab[1][1]"), "\(error)")
        }
        let empty = """
        {"model": {"type": "Unigram", "unk_id": null, "vocab": []}}
        """
        XCTAssertThrowsError(try Tokenizer(tokenizerJSON: Data(empty.utf8))) { error in
            XCTAssertTrue("\(error)".contains("empty"), "\(error)")
        }
    }

    func testMalformedCharsmapIsNamed() throws {
        for blob in ["!!!not base64", "AAAA", Data([0xFF, 0, 0, 0, 1, 2]).base64EncodedString()] {
            let json = """
            {"normalizer": {"type": "Precompiled", "precompiled_charsmap": "\(blob)"},
             "model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0]]}}
            """
            XCTAssertThrowsError(try Tokenizer(tokenizerJSON: Data(json.utf8)), blob) { error in
                XCTAssertTrue("\(error)".contains("normalizer.precompiled_charsmap"), "\(error)")
            }
        }
    }
}
