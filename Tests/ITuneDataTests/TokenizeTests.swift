import Foundation
import XCTest
@testable import ITuneData
import ITuneTokenizers

/// Ids and loss masks: exact against the `tokenizers` library, bos and eos placed once,
/// truncation counted.
final class TokenizeGoldenTests: XCTestCase {
    /// Every record format × every template × 3 tokenizers, and truncated cases, against
    /// scripts/make_data_fixtures.py (records parsed and templates spelled independently there).
    func testIdsAndMasksMatchTheTokenizersLibrary() throws {
        let data = try DatasetReader.read([DataFixtures.root.appendingPathComponent("data/records").path])
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: DataFixtures.root.appendingPathComponent("data/expected.json"))) as! [String: Any]
        XCTAssertEqual(data.examples.count, expected["examples"] as? Int)
        let cases = expected["cases"] as! [[String: Any]]
        XCTAssertEqual(cases.count, 336)
        var tokenizers: [String: Tokenizer] = [:]
        var checked = 0, dropped = 0
        for c in cases {
            let name = c["tokenizer"] as! String, template = c["template"] as! String, index = c["example"] as! Int
            let tok = try tokenizers[name] ?? DataFixtures.tokenizer(name)
            tokenizers[name] = tok
            let what = "\(name) \(template) example \(index) (\(data.examples[index].source))"
            let options = TokenizeOptions(template: try PromptTemplate.named(template), maxLength: c["maxLength"] as? Int ?? 4096)
            let (rows, stats) = try DatasetTokenizer.tokenize([data.examples[index]], tok, options)
            if c["dropped"] as? Bool == true {
                XCTAssertEqual(rows.count, 0, what)
                XCTAssertEqual(stats.droppedNoAnswer, 1, what)
                dropped += 1
                continue
            }
            guard rows.count == 1 else { XCTFail("dropped: \(what)"); continue }
            XCTAssertEqual(rows[0].ids.map(Int.init), c["ids"] as! [Int], what)
            XCTAssertEqual(rows[0].labels.map(Int.init), c["labels"] as! [Int], what)
            let single = try DatasetTokenizer.tokenize(data.examples[index], tok, options)
            XCTAssertEqual(single, rows[0], "one example alone tokenizes the same: \(what)")
            checked += 1
        }
        XCTAssertEqual(checked + dropped, cases.count)
        XCTAssertGreaterThan(dropped, 0, "some truncated cases lose their whole answer")
    }
}

final class TokenizeTests: XCTestCase {
    func testLossIsOnlyOnAnswersByDefaultAndEverywhereWithTrainOnInputs() throws {
        let tok = try DataFixtures.tokenizer("llama2_metaspace_bytefallback")
        let e = DataFixtures.chat("Say hi", "hi there")
        let t = try DatasetTokenizer.tokenize(e, tok, TokenizeOptions(template: PromptTemplate(.alpaca), maxLength: 100))
        let answer = tok.encode("hi there", addSpecialTokens: false).map(Int32.init) + [Int32(tok.eosTokenID!)]
        XCTAssertEqual(Array(t.ids.suffix(answer.count)), answer)
        XCTAssertEqual(t.labels.filter { $0 != -100 }, answer, "only the answer and eos carry a loss")
        let all = try DatasetTokenizer.tokenize(e, tok, TokenizeOptions(template: PromptTemplate(.alpaca), maxLength: 100, trainOnInputs: true))
        XCTAssertEqual(all.ids, t.ids)
        XCTAssertEqual(all.labels, all.ids)
    }

    func testBeginTokensFollowTheTokenizerAndAreNeverDoubled() throws {
        let llama2 = try DataFixtures.tokenizer("llama2_metaspace_bytefallback")
        let llama3 = try DataFixtures.tokenizer("llama3_style")
        let qwen = try DataFixtures.tokenizer("qwen2_style")
        XCTAssertEqual(DatasetTokenizer.beginTokens(llama2), [Int32(llama2.bosTokenID!)])
        XCTAssertEqual(DatasetTokenizer.beginTokens(llama3), [Int32(llama3.bosTokenID!)])
        XCTAssertEqual(DatasetTokenizer.beginTokens(qwen), [], "Qwen2 puts nothing before a text")
        let e = DataFixtures.chat("q", "a")
        // Llama 3's template writes <|begin_of_text|> itself: exactly one at the start.
        let t3 = try DatasetTokenizer.tokenize(e, llama3, TokenizeOptions(template: PromptTemplate(.llama3), maxLength: 100))
        XCTAssertEqual(t3.ids.filter { $0 == Int32(llama3.bosTokenID!) }.count, 1)
        XCTAssertEqual(t3.ids.first, Int32(llama3.bosTokenID!))
        let alpaca3 = try DatasetTokenizer.tokenize(e, llama3, TokenizeOptions(template: PromptTemplate(.alpaca), maxLength: 100))
        XCTAssertEqual(alpaca3.ids.first, Int32(llama3.bosTokenID!))
        XCTAssertEqual(alpaca3.ids.filter { $0 == Int32(llama3.bosTokenID!) }.count, 1)
    }

    func testAddBosTokenInTheConfigOverridesThePostProcessor() throws {
        let dir = DataFixtures.root.appendingPathComponent("tokenizers/llama2_metaspace_bytefallback")
        let json = try Data(contentsOf: dir.appendingPathComponent("tokenizer.json"))
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("tokenizer_config.json"))) as! [String: Any]
        config["add_bos_token"] = false
        let noBos = try Tokenizer(tokenizerJSON: json, config: JSONSerialization.data(withJSONObject: config))
        XCTAssertEqual(DatasetTokenizer.beginTokens(noBos), [])
    }

    func testEndMarkersCloseEveryAnswer() throws {
        let qwen = try DataFixtures.tokenizer("qwen2_style")
        let imEnd = Int32(qwen.id(of: "<|im_end|>")!)
        let e = Example(conversation: Conversation(turns: [Turn(instruction: "u1", response: "a1"), Turn(instruction: "u2", response: "a2")]),
                        source: DataFixtures.source())
        let t = try DatasetTokenizer.tokenize(e, qwen, TokenizeOptions(template: PromptTemplate(.chatml), maxLength: 200))
        // Both answers and both <|im_end|> after them are trained on; the user turns' are not.
        let scored = zip(t.ids, t.labels).filter { $0.1 != -100 }.map(\.0)
        XCTAssertEqual(scored, qwen.encode("a1<|im_end|>", addSpecialTokens: false).map(Int32.init)
                       + qwen.encode("a2<|im_end|>", addSpecialTokens: false).map(Int32.init))
        XCTAssertEqual(t.ids.filter { $0 == imEnd }.count, 4)
        XCTAssertEqual(scored.filter { $0 == imEnd }.count, 2)
    }

    func testTruncationIsCountedAndAnswerlessExamplesDropped() throws {
        let tok = try DataFixtures.tokenizer("qwen2_style")
        let long = String(repeating: "word ", count: 200)
        let examples = [DataFixtures.chat("short", "ok"), DataFixtures.chat(long, "answer"), DataFixtures.chat("q", long)]
        let full = try examples.map { try DatasetTokenizer.tokenize($0, tok, TokenizeOptions(template: PromptTemplate(.chatml), maxLength: 100_000)) }
        let (rows, stats) = try DatasetTokenizer.tokenize(examples, tok, TokenizeOptions(template: PromptTemplate(.chatml), maxLength: 64))
        XCTAssertEqual(stats.examples, 3)
        XCTAssertEqual(stats.truncated, 2)
        XCTAssertEqual(stats.truncatedTokens, full[1].ids.count - 64 + full[2].ids.count - 64)
        XCTAssertEqual(stats.droppedNoAnswer, 1, "the long prompt leaves no answer inside 64 tokens")
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows[0], full[0])
        XCTAssertEqual(rows[1].ids, Array(full[2].ids.prefix(64)))
        XCTAssertEqual(rows[1].labels, Array(full[2].labels.prefix(64)))
        XCTAssertEqual(stats.tokens, full[0].ids.count + 64)
        XCTAssertEqual(stats.scoredTokens, rows.reduce(0) { $0 + $1.labels.dropFirst().filter { $0 != -100 }.count })
    }

    func testMissingEosIsAnErrorNamingTheExample() throws {
        let dir = DataFixtures.root.appendingPathComponent("tokenizers/qwen2_style")
        let json = try Data(contentsOf: dir.appendingPathComponent("tokenizer.json"))
        let noEos = try Tokenizer(tokenizerJSON: json, config: Data(#"{"eos_token": null}"#.utf8))
        let e = Example(conversation: Conversation(turns: [Turn(instruction: "q", response: "a")]),
                        source: Example.Source(file: "f.jsonl", line: 7, task: "t"))
        let message = errorMessage(try DatasetTokenizer.tokenize([e], noEos, TokenizeOptions(template: PromptTemplate(.alpaca), maxLength: 10)))
        XCTAssertTrue(message.hasPrefix("f.jsonl:7: the tokenizer has no eos token"), message)
    }

    func testBatchTokenizationKeepsTheInputOrder() throws {
        let tok = try DataFixtures.tokenizer("llama3_style")
        let examples = (0..<300).map { DataFixtures.chat("instruction \($0)", "answer \($0 * 7)") }
        let o = TokenizeOptions(template: PromptTemplate(.alpaca), maxLength: 512)
        let (rows, _) = try DatasetTokenizer.tokenize(examples, tok, o)
        XCTAssertEqual(rows, try examples.map { try DatasetTokenizer.tokenize($0, tok, o) })
    }
}
