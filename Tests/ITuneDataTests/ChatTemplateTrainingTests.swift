import Foundation
import XCTest
@testable import ITuneData
import ITuneTokenizers
import ITuneJinja

/// Conversations trained in the model's own chat template: ids as apply_chat_template gives them,
/// the loss on every assistant turn and nowhere else, as transformers' own assistant masks
/// (scripts/make_chat_template_fixtures.py → Tests/Fixtures/chat_templates/assistant_masks.json).
final class ChatTemplateTrainingTests: XCTestCase {
    static let dir = DataFixtures.root.appendingPathComponent("chat_templates")

    static func json(_ name: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent(name))) as? [String: Any] ?? [:]
    }

    static func tokenizer(_ model: String) throws -> Tokenizer { try Tokenizer(directory: dir.appendingPathComponent(model)) }

    static func modelTemplate(_ tok: Tokenizer, source: String? = nil) throws -> PromptTemplate {
        PromptTemplate(model: try ChatTemplate(source: source ?? tok.chatTemplate!, config: tok.config))
    }

    /// A fixture conversation (system?, then user/assistant pairs) as an example.
    static func example(_ name: String) throws -> Example {
        let conversations = try json("conversations.json")["conversations"] as! [String: [[String: Any]]]
        var system: String? = nil
        var turns: [Turn] = []
        var pending: String? = nil
        for m in conversations[name]! {
            let role = m["role"] as! String, content = m["content"] as! String
            switch role {
            case "system": system = content
            case "user": pending = content
            default: turns.append(Turn(instruction: pending!, response: content))
            }
        }
        return Example(conversation: Conversation(system: system, turns: turns), source: .init(file: name, task: "t"))
    }

    func testModelTemplateLossMatchesTransformersAssistantMasks() throws {
        let cases = try Self.json("assistant_masks.json")["cases"] as! [[String: Any]]
        XCTAssertEqual(cases.count, 7)
        for c in cases {
            let model = c["model"] as! String, conv = c["conversation"] as! String
            let tok = try Self.tokenizer(model)
            let ids = (c["ids"] as! [Int]).map(Int32.init), mask = c["assistant_masks"] as! [Int]
            XCTAssertGreaterThan(mask.reduce(0, +), 0)
            // The plain template, assistant turns found by rendering; and the {% generation %} one.
            for (how, source) in [("rendered prefixes", nil), ("generation blocks", c["annotated_template"] as? String)] {
                let t = try DatasetTokenizer.tokenize(try Self.example(conv), tok,
                                                      TokenizeOptions(template: try Self.modelTemplate(tok, source: source), maxLength: 4096))
                XCTAssertEqual(t.ids, ids, "\(model)/\(conv) (\(how)): ids")
                XCTAssertEqual(t.labels.map { $0 == -100 ? 0 : 1 }, mask, "\(model)/\(conv) (\(how)): trained positions")
                XCTAssertEqual(zip(t.labels, t.ids).filter { $0.0 != -100 }.allSatisfy { $0.0 == $0.1 }, true)
            }
        }
    }

    func testMessagesAndShareGPTRecordsTrainOnEveryAssistantTurnInTheModelsFormat() throws {
        let dir = try DataFixtures.directory()
        let file = dir.appendingPathComponent("chat.jsonl")
        try """
        {"messages": [{"role": "system", "content": "あなたは親切なアシスタントです。"}, {"role": "user", "content": "一つ目"}, {"role": "assistant", "content": "答え一"}, {"role": "user", "content": "二つ目"}, {"role": "assistant", "content": "答え二"}]}
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}, {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "See you."}]}
        """.write(to: file, atomically: true, encoding: .utf8)
        let examples = try DatasetReader.read([file.path]).examples
        XCTAssertEqual(examples.count, 2)
        let tok = try Self.tokenizer("qwen2.5-instruct")
        let (template, _) = try PromptTemplate.resolve(nil, tokenizer: tok)
        XCTAssertEqual(template.style, .model)
        let (rows, stats) = try DatasetTokenizer.tokenize(examples, tok, TokenizeOptions(template: template, maxLength: 4096))
        XCTAssertEqual(stats.droppedNoAnswer, 0)
        let expectedTrained = [["答え一<|im_end|>\n", "答え二<|im_end|>\n"], ["Hello!<|im_end|>\n", "See you.<|im_end|>\n"]]
        for (row, expected) in zip(rows, expectedTrained) {
            var runs: [[Int]] = [], cur: [Int] = []
            for (id, l) in zip(row.ids, row.labels) {
                if l != -100 { cur.append(Int(id)) } else if !cur.isEmpty { runs.append(cur); cur = [] }
            }
            if !cur.isEmpty { runs.append(cur) }
            XCTAssertEqual(runs.map { tok.decode($0) }, expected)
            // The whole row is the template's text, tokenized as apply_chat_template tokenizes it.
            let text = try template.renderConversation(examples[rows.firstIndex(of: row)!].conversation).text
            XCTAssertEqual(row.ids.map(Int.init), tok.encode(text, addSpecialTokens: false))
            XCTAssertTrue(text.hasPrefix("<|im_start|>system\n"), text)
        }
    }

    func testTemplateThatRewritesEarlierTurnsIsAnErrorNotAGuess() throws {
        // Mistral v0.3 writes the system prompt into the last user message only: the prompt of
        // turn 1 is not the start of the whole conversation.
        let tok = try Self.tokenizer("mistral-7b-instruct-v0.3")
        let e = try Self.example("system_multi_turn")
        XCTAssertThrowsError(try DatasetTokenizer.tokenize(e, tok, TokenizeOptions(template: try Self.modelTemplate(tok), maxLength: 4096))) { err in
            XCTAssertTrue("\(err)".contains("system_multi_turn"), "\(err)")
            XCTAssertTrue("\(err)".contains("cannot be found by rendering"), "\(err)")
        }
        // Without a system prompt the same template splits cleanly.
        let plain = try DatasetTokenizer.tokenize(try Self.example("japanese_multi_turn"), tok,
                                                  TokenizeOptions(template: try Self.modelTemplate(tok), maxLength: 4096))
        XCTAssertGreaterThan(plain.labels.filter { $0 != -100 }.count, 4)
        // A template's own refusal names the record and the template's message.
        let gemma = try Self.tokenizer("gemma-2-it")
        XCTAssertThrowsError(try DatasetTokenizer.tokenize(e, gemma, TokenizeOptions(template: try Self.modelTemplate(gemma), maxLength: 4096))) { err in
            XCTAssertTrue("\(err)".contains("System role not supported"), "\(err)")
        }
    }

    func testGenerationPromptAndStopStringsComeFromTheTemplate() throws {
        let expectedStops = ["qwen2.5-instruct": "<|im_end|>", "gemma-2-it": "<end_of_turn>", "llama-3.2-instruct": "<|eot_id|>",
                             "phi-3-mini-instruct": "<|end|>", "llama-2-chat": "</s>", "llm-jp-3-instruct": "</s>"]
        for (model, stop) in expectedStops {
            let tok = try Self.tokenizer(model)
            var chat = try ChatTemplate(source: tok.chatTemplate!, config: tok.config)
            chat.variables["date_string"] = .string("26 Jul 2024")  // as the fixture script renders
            let template = PromptTemplate(model: chat)
            XCTAssertEqual(template.stopStrings.first, stop, model)
            // The prompt of a one-question conversation is apply_chat_template's with the generation prompt.
            let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.dir.appendingPathComponent("\(model)/expected.json"))) as! [String: Any]
            let golden = (cases["cases"] as! [[String: Any]]).first { $0["conversation"] as? String == "single_user" && $0["add_generation_prompt"] as? Bool == true }!
            let prompt = try template.generationPrompt(instruction: "Write a haiku about autumn.")
            XCTAssertEqual(prompt, golden["text"] as? String, model)
        }
    }

    func testResolveChoosesTheModelsOwnTemplateByDefault() throws {
        let qwen = try Self.tokenizer("qwen2.5-instruct")
        XCTAssertEqual(try PromptTemplate.resolve(nil, tokenizer: qwen).template.style, .model)
        XCTAssertEqual(try PromptTemplate.resolve("model", tokenizer: qwen).template.style, .model)
        XCTAssertEqual(try PromptTemplate.resolve("alpaca-ja", tokenizer: qwen).template.style, .alpacaJA)
        let plain = try DataFixtures.tokenizer("gpt2_style")
        if plain.chatTemplate == nil {
            XCTAssertEqual(try PromptTemplate.resolve(nil, tokenizer: plain).template.style, .alpaca)
            XCTAssertThrowsError(try PromptTemplate.resolve("model", tokenizer: plain)) { e in
                XCTAssertTrue("\(e)".contains("no chat_template"), "\(e)")
            }
        }
    }
}

/// A `messages` record with tool calls and tool results (and its `tools`), rendered by the model's
/// template as transformers renders the same record (tool_records.json), trained on both
/// assistant messages: the tool call and the final answer.
final class ToolRecordTrainingTests: XCTestCase {
    func testToolCallRecordsRenderAsTransformersAndTrainOnEveryAssistantMessage() throws {
        let fixture = try ChatTemplateTrainingTests.json("tool_records.json")
        let record = try JSONSerialization.data(withJSONObject: fixture["record"]!, options: [.sortedKeys])
        let file = try DataFixtures.directory().appendingPathComponent("tools.jsonl")
        try record.write(to: file)
        let examples = try DatasetReader.read([file.path]).examples
        XCTAssertEqual(examples.count, 1)
        XCTAssertEqual(examples[0].conversation.messages?.map(\.role), ["user", "assistant", "tool", "assistant"])
        for c in fixture["cases"] as! [[String: Any]] {
            let model = c["model"] as! String
            let tok = try ChatTemplateTrainingTests.tokenizer(model)
            var chat = try ChatTemplate(source: tok.chatTemplate!, config: tok.config)
            chat.variables["date_string"] = .string("26 Jul 2024")
            let template = PromptTemplate(model: chat)
            let rendered = try template.renderConversation(examples[0].conversation)
            XCTAssertEqual(rendered.text, c["text"] as? String, model)
            let t = try DatasetTokenizer.tokenize(examples[0], tok, TokenizeOptions(template: template, maxLength: 4096))
            XCTAssertEqual(t.ids, (c["ids"] as! [Int]).map(Int32.init), model)
            // Two trained runs: the call (its arguments among them) and the answer.
            var runs: [[Int]] = [], cur: [Int] = []
            for (id, l) in zip(t.ids, t.labels) { if l != -100 { cur.append(Int(id)) } else if !cur.isEmpty { runs.append(cur); cur = [] } }
            if !cur.isEmpty { runs.append(cur) }
            XCTAssertEqual(runs.count, 2, model)
            XCTAssertTrue(tok.decode(runs.first ?? []).contains("get_weather"), model)
            XCTAssertTrue(tok.decode(runs.last ?? []).contains("東京は晴れで、気温は25度です。"), model)
            XCTAssertFalse(runs.map { tok.decode($0) }.joined().contains("晴れ、25度"), "\(model): the tool's result is not trained on")
        }
        // A named template has no place for tool messages: an error naming the record.
        XCTAssertThrowsError(try DatasetTokenizer.tokenize(examples[0], try ChatTemplateTrainingTests.tokenizer("qwen2.5-instruct"),
                                                           TokenizeOptions(template: PromptTemplate(.alpaca), maxLength: 4096))) { e in
            XCTAssertTrue("\(e)".contains("tools.jsonl:1"), "\(e)")
            XCTAssertTrue("\(e)".contains("--template model"), "\(e)")
        }
    }
}
