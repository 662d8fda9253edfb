import Foundation
import XCTest
@testable import ITuneData
import ITuneTokenizers
import ITuneJinja

/// Preference records ({prompt, chosen, rejected}) as TRL reads them, rendered with the same
/// templates as instruction data, the loss on the compared answer alone.
final class PreferenceDataTests: XCTestCase {
    func write(_ lines: [Any], _ name: String = #function) throws -> String {
        let dir = try DataFixtures.directory(name)
        let text = try lines.map { String(decoding: try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]), as: UTF8.self) }
            .joined(separator: "\n")
        let path = dir.appendingPathComponent("pairs.jsonl").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Conversational pairs in the model's chat template: the chosen side's ids are what
    /// transformers' apply_chat_template gives for the whole conversation, and its scored
    /// positions are transformers' assistant mask of the LAST assistant turn only
    /// (Tests/Fixtures/chat_templates, scripts/make_chat_template_fixtures.py).
    func testConversationalPairsUseTheModelsChatTemplateAndScoreOnlyTheLastAnswer() throws {
        let cases = try ChatTemplateTrainingTests.json("assistant_masks.json")["cases"] as! [[String: Any]]
        let conversations = try ChatTemplateTrainingTests.json("conversations.json")["conversations"] as! [String: [[String: Any]]]
        var checked = 0
        for c in cases {
            let model = c["model"] as! String, name = c["conversation"] as! String
            let messages = conversations[name]!
            let tok = try ChatTemplateTrainingTests.tokenizer(model)
            let template = try ChatTemplateTrainingTests.modelTemplate(tok)
            let path = try write([["prompt": Array(messages.dropLast()), "chosen": [messages.last!],
                                   "rejected": [["role": "assistant", "content": "No."]]]], "conv\(checked)")
            let pairs = try PreferenceReader.read([path]).pairs
            let (tokenized, stats) = try DatasetTokenizer.tokenizePairs(pairs, tok, TokenizeOptions(template: template, maxLength: 4096))
            XCTAssertEqual(stats.droppedNoAnswer, 0)
            let ids = (c["ids"] as! [Int]).map(Int32.init)
            var mask = c["assistant_masks"] as! [Int]
            // The last run of the mask is the chosen answer; earlier answers are context.
            let last = mask.lastIndex(of: 1)!
            var start = last
            while start > 0, mask[start - 1] == 1 { start -= 1 }
            for k in 0..<start { mask[k] = 0 }
            let chosen = tokenized[0].chosen, rejected = tokenized[0].rejected
            XCTAssertEqual(chosen.ids, ids, "\(model)/\(name): ids")
            XCTAssertEqual(chosen.labels.map { $0 == -100 ? 0 : 1 }, mask, "\(model)/\(name): scored positions")
            // The rejected side: the same prompt tokens, then its own scored answer.
            XCTAssertEqual(Array(rejected.ids.prefix(start)), Array(ids.prefix(start)), "\(model)/\(name): shared prompt")
            XCTAssertEqual(rejected.labels.prefix(start).allSatisfy { $0 == -100 }, true)
            XCTAssertGreaterThan(rejected.labels.filter { $0 != -100 }.count, 0)
            checked += 1
        }
        XCTAssertEqual(checked, 7)
    }

    /// String pairs go through the named template exactly as an instruction record with that
    /// prompt and answer does (the SFT path's ids and labels), both sides.
    func testStringPairsRenderAsInstructionRecordsDo() throws {
        let tok = try DataFixtures.tokenizer("gpt2_style")
        let template = try PromptTemplate.named("alpaca")
        let path = try write([["prompt": "Add 2 and 3.", "chosen": "5", "rejected": "6"],
                              ["prompt": "Reverse 'abc'.", "chosen": "cba", "rejected": "abc"]])
        let pairs = try PreferenceReader.read([path]).pairs
        XCTAssertEqual(pairs.count, 2)
        XCTAssertEqual(pairs[1].source.line, 2)
        let options = TokenizeOptions(template: template, maxLength: 512)
        let (tokenized, _) = try DatasetTokenizer.tokenizePairs(pairs, tok, options)
        for (p, t) in zip(pairs, tokenized) {
            for (answer, side) in [(p.chosen, t.chosen), (p.rejected, t.rejected)] {
                let sft = try DatasetTokenizer.tokenize(Example(conversation: Conversation(turns: [Turn(instruction: p.prompt.turns[0].instruction,
                                                                                                       response: answer)]),
                                                                source: p.source), tok, options)
                XCTAssertEqual(side.ids, sft.ids)
                XCTAssertEqual(side.labels, sft.labels)
                XCTAssertTrue(side.labels.contains(-100) && side.labels.contains { $0 != -100 })
            }
        }
    }

    /// The demonstration's rejected answers: wrong, and close to the right one.
    func testPlausibleWrongAnswersDifferFromTheAnswerAndStayClose() {
        for (i, e) in SyntheticTasks.examples(count: 400, seed: 3).enumerated() {
            let answer = e.conversation.turns[0].response
            let wrong = SyntheticTasks.plausibleWrongAnswer(answer, seed: UInt64(i))
            XCTAssertNotEqual(wrong, answer, e.source.task)
            if let n = Int(answer) {
                let w = Int(wrong)!
                XCTAssertTrue([1, 2, 10].contains(abs(w - n)) && (n < 0 || w >= 0), "\(answer) → \(wrong)")
            } else {
                XCTAssertEqual(wrong.sorted(), answer.count > 1 && Set(answer).count > 1 ? answer.sorted() : wrong.sorted(), "\(answer) → \(wrong)")
                XCTAssertEqual(wrong.count, answer.count)
            }
        }
    }

    func testBadRecordsNameFileLineAndField() throws {
        let cases: [([String: Any], String, String)] = [
            (["prompt": "p", "chosen": "a"], "rejected", "missing"),
            (["prompt": "p", "chosen": 3, "rejected": "b"], "chosen", "must be a string or a list of messages"),
            (["prompt": "p", "chosen": [["role": "user", "content": "a"]], "rejected": [["role": "assistant", "content": "b"]]],
             "chosen[0].role", "must be 'assistant'"),
            (["prompt": [["role": "user", "content": "q"], ["role": "assistant", "content": "x"]],
              "chosen": [["role": "assistant", "content": "a"]], "rejected": [["role": "assistant", "content": "b"]]],
             "prompt", "must end with a user message"),
            (["prompt": [["role": "user", "content": "q"]], "chosen": [["role": "assistant", "content": "a"]], "rejected": "b"],
             "rejected", "same form as chosen"),
            (["prompt": "  ", "chosen": "a", "rejected": "b"], "prompt", "is empty"),
            (["chosen": [["role": "user", "content": "q"]], "rejected": [["role": "user", "content": "q"]]], "prompt", "missing"),
        ]
        for (i, (record, field, reason)) in cases.enumerated() {
            let path = try write([["prompt": "ok", "chosen": "a", "rejected": "b"], record], "bad\(i)")
            do {
                _ = try PreferenceReader.read([path])
                XCTFail("record \(i) was accepted")
            } catch let e as DataError {
                XCTAssertEqual(e.source, "\(path):2", "\(i)")
                XCTAssertEqual(e.field, field, "\(i): \(e)")
                XCTAssertTrue(e.reason.contains(reason), "\(i): \(e)")
            }
            XCTAssertEqual(try PreferenceReader.read([path], skipBadRecords: true).skipped, 1)
        }
    }
}
