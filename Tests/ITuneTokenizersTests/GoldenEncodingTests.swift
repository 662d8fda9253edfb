import Foundation
import XCTest
@testable import ITuneTokenizers

/// Ids and decoded text of the fixture strings (empty, whitespace runs, Japanese, emoji with ZWJ,
/// NFD accents, contractions, code, embedded special tokens…) equal the `tokenizers` library's.
final class GoldenEncodingTests: XCTestCase {
    func testGPT2StyleEncodeMatchesTokenizersLibrary() throws { try assertEncodingMatchesLibrary("gpt2_style") }
    func testGPT2StyleDecodeMatchesTokenizersLibrary() throws { try assertDecodingMatchesLibrary("gpt2_style") }

    func testLlama3StyleEncodeMatchesTokenizersLibrary() throws { try assertEncodingMatchesLibrary("llama3_style") }
    func testLlama3StyleDecodeMatchesTokenizersLibrary() throws { try assertDecodingMatchesLibrary("llama3_style") }

    func testQwen2StyleEncodeMatchesTokenizersLibrary() throws { try assertEncodingMatchesLibrary("qwen2_style") }
    func testQwen2StyleDecodeMatchesTokenizersLibrary() throws { try assertDecodingMatchesLibrary("qwen2_style") }

    func testLlama2LegacyByteFallbackEncodeMatchesTokenizersLibrary() throws {
        try assertEncodingMatchesLibrary("llama2_legacy_bytefallback")
    }
    func testLlama2LegacyByteFallbackDecodeMatchesTokenizersLibrary() throws {
        try assertDecodingMatchesLibrary("llama2_legacy_bytefallback")
    }

    func testLlama2MetaspaceByteFallbackEncodeMatchesTokenizersLibrary() throws {
        try assertEncodingMatchesLibrary("llama2_metaspace_bytefallback")
    }
    func testLlama2MetaspaceByteFallbackDecodeMatchesTokenizersLibrary() throws {
        try assertDecodingMatchesLibrary("llama2_metaspace_bytefallback")
    }

    func testBertWordPieceEncodeMatchesTokenizersLibrary() throws { try assertEncodingMatchesLibrary("bert_wordpiece") }
    func testBertWordPieceDecodeMatchesTokenizersLibrary() throws { try assertDecodingMatchesLibrary("bert_wordpiece") }

    func testRobertaStyleAddedTokenStripAndSingleWordMatchTokenizersLibrary() throws {
        try assertEncodingMatchesLibrary("roberta_style")
    }
    func testRobertaStyleDecodeMatchesTokenizersLibrary() throws { try assertDecodingMatchesLibrary("roberta_style") }

    func testPipelineMixOfNormalizersAndPreTokenizersMatchesTokenizersLibrary() throws {
        try assertEncodingMatchesLibrary("pipeline_mix")
    }
    func testPipelineMixDecodeMatchesTokenizersLibrary() throws { try assertDecodingMatchesLibrary("pipeline_mix") }

    func testFixturesCoverBothMergeSerialisations() throws {
        // The loader must read "a b" strings and ["a", "b"] pairs; make sure the fixtures keep both.
        func firstMerge(_ name: String) throws -> Any {
            let obj = try Fixtures.json(Fixtures.directory(name).appendingPathComponent("tokenizer.json")) as! [String: Any]
            return ((obj["model"] as! [String: Any])["merges"] as! [Any])[0]
        }
        XCTAssertTrue(try firstMerge("gpt2_style") is String)
        XCTAssertTrue(try firstMerge("llama3_style") is [Any])
    }

    func testVocabularySizeMatchesTokenizersLibrary() throws {
        for name in ["gpt2_style", "llama3_style", "qwen2_style", "llama2_legacy_bytefallback",
                     "llama2_metaspace_bytefallback", "bert_wordpiece", "roberta_style", "pipeline_mix"] {
            XCTAssertEqual(try Fixtures.tokenizer(name).vocabularySize, try Fixtures.expected(name).vocabSize, name)
        }
    }
}

/// decode(encode(x)) == x where the pipeline loses nothing: byte-level BPE with no normalizer,
/// and SentencePiece-style BPE with byte fallback, on text the fixtures did not list.
final class RoundTripTests: XCTestCase {
    /// Deterministic strings mixing scripts, emoji, combining marks, controls and whitespace.
    static func randomTexts(count: Int, seed: UInt64) -> [String] {
        var state = seed
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        let pool: [Unicode.Scalar] = Array("aZ zé ñ'sT\t\n\r  0123456789,.!?#<>|_-日本語のテキスト한국어Ελλάδαпривет".unicodeScalars)
            + ["\u{301}", "\u{308}", "\u{200D}", "\u{1F600}", "\u{1F468}", "\u{1F3FD}", "\u{FE0F}", "\u{A0}", "\u{3000}",
               "\u{0}", "\u{7F}", "\u{85}", "\u{2028}", "\u{10FFFF}", "\u{E000}", "\u{1D11E}", "\u{2581}", "\u{120}"]
        return (0..<count).map { _ in
            var s = String.UnicodeScalarView()
            for _ in 0..<(Int(next() % 40)) { s.append(pool[Int(next() % UInt64(pool.count))]) }
            return String(s)
        }
    }

    /// `dropping` removes scalars the pipeline maps on purpose (SentencePiece's `▁` is its space).
    func assertRoundTrip(_ name: String, dropping dropped: Set<Unicode.Scalar> = [],
                         file: StaticString = #filePath, line: UInt = #line) throws {
        let tokenizer = try Fixtures.tokenizer(name)
        for raw in Self.randomTexts(count: 400, seed: 7) {
            let text = String(String.UnicodeScalarView(raw.unicodeScalars.filter { !dropped.contains($0) }))
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            XCTAssertEqual(tokenizer.decode(ids), text, "\(name): \(text.debugDescription)", file: file, line: line)
        }
    }

    func testGPT2StyleDecodeOfEncodeIsIdentity() throws { try assertRoundTrip("gpt2_style") }
    func testLlama3StyleDecodeOfEncodeIsIdentity() throws { try assertRoundTrip("llama3_style") }
    func testLlama2LegacyByteFallbackDecodeOfEncodeIsIdentity() throws {
        // Like sentencepiece, a literal U+2581 in the input decodes as a space.
        try assertRoundTrip("llama2_legacy_bytefallback", dropping: ["\u{2581}"])
    }

    func testQwen2StyleDecodeOfEncodeIsTheNFCForm() throws {
        let tokenizer = try Fixtures.tokenizer("qwen2_style")
        for text in Self.randomTexts(count: 400, seed: 11) {
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            XCTAssertEqual(tokenizer.decode(ids), text.precomposedStringWithCanonicalMapping, text.debugDescription)
        }
    }

    func testBatchEncodingEqualsOneByOneEncoding() throws {
        let tokenizer = try Fixtures.tokenizer("llama3_style")
        let texts = Self.randomTexts(count: 300, seed: 3)
        XCTAssertEqual(tokenizer.encode(batch: texts), texts.map { tokenizer.encode($0) })
    }

    func testRepeatedEncodingIsUnchangedByTheWordCache() throws {
        let tokenizer = try Fixtures.tokenizer("gpt2_style")
        let text = Self.randomTexts(count: 50, seed: 5).joined(separator: " ")
        let first = tokenizer.encode(text)
        XCTAssertEqual(tokenizer.encode(text), first)
        XCTAssertFalse(first.isEmpty)
    }
}
