import Foundation
import XCTest
import ITuneJinja
@testable import ITuneTokenizers

/// Real models' chat templates rendered by transformers' apply_chat_template
/// (scripts/make_chat_template_fixtures.py → Tests/Fixtures/chat_templates): our text must be
/// byte-identical, our token ids identical, and a conversation the template refuses refused.
final class ChatTemplateGoldenTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/chat_templates")

    static let models = ["llama-3.2-instruct", "llama-3.1-instruct", "qwen2.5-instruct", "mistral-7b-instruct-v0.3", "gemma-2-it",
                         "phi-3-mini-instruct", "smollm2-instruct", "llm-jp-3-instruct", "llama-2-chat", "tinyllama-chat"]

    static func load(_ url: URL) throws -> JinjaDict {
        guard case .dict(let d) = try JinjaValue.parseJSON(String(contentsOf: url, encoding: .utf8)) else {
            throw JinjaError(message: "\(url.lastPathComponent): expected an object")
        }
        return d
    }

    func testRealTemplatesRenderByteIdenticalToTransformers() throws {
        let shared = try Self.load(Self.root.appendingPathComponent("conversations.json"))
        guard case .dict(let conversations)? = shared["conversations"], case .list(let tools)? = shared["tools"],
              case .list(let usesTools)? = shared["uses_tools"], case .dict(let kwargs)? = shared["template_kwargs"] else {
            return XCTFail("conversations.json lacks its fields")
        }
        var extra: [String: JinjaValue] = [:]
        for (k, v) in kwargs.entries { extra[k] = v }
        var rendered = 0, refused = 0, tokenCount = 0
        for model in Self.models {
            let dir = Self.root.appendingPathComponent(model)
            let tokenizer = try Tokenizer(directory: dir)
            guard let template = try ChatTemplate(config: tokenizer.config) else { return XCTFail("\(model): no chat_template") }
            guard case .list(let cases)? = try Self.load(dir.appendingPathComponent("expected.json"))["cases"] else {
                return XCTFail("\(model): expected.json lacks cases")
            }
            for c in cases {
                guard case .dict(let d) = c, case .string(let name)? = d["conversation"], case .bool(let gen)? = d["add_generation_prompt"],
                      case .list(let messages)? = conversations[name] else { return XCTFail("\(model): bad case") }
                let withTools = usesTools.contains { if case .string(name) = $0 { return true } else { return false } }
                let label = "\(model) / \(name) / add_generation_prompt=\(gen)"
                let result = Result { try template.render(messages: messages, tools: withTools ? tools : nil, addGenerationPrompt: gen, extra: extra) }
                switch (result, d["text"]) {
                case (.success(let text), .string(let expected)?):
                    XCTAssertEqual(Array(text.utf8), Array(expected.utf8), "\(label): text differs\nours:   \(text.debugDescription)\ntheirs: \(expected.debugDescription)")
                    guard case .list(let ids)? = d["ids"] else { return XCTFail("\(label): no ids") }
                    let expectedIDs = ids.compactMap { v -> Int? in if case .int(let i) = v { return i } else { return nil } }
                    XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: false), expectedIDs, "\(label): ids differ")
                    rendered += 1
                    tokenCount += expectedIDs.count
                case (.failure(let e), nil):
                    XCTAssertNotNil(e as? JinjaError, "\(label): \(e)")
                    refused += 1
                case (.success(let text), nil):
                    XCTFail("\(label): transformers refused (\(d["error"]?.pythonString ?? "")) but we rendered \(text.debugDescription)")
                case (.failure(let e), _):
                    XCTFail("\(label): we failed: \(e)")
                case (.success, _):
                    XCTFail("\(label): the fixture's text is not a string")
                }
            }
        }
        XCTAssertEqual(rendered, 84)
        XCTAssertEqual(refused, 16)
        XCTAssertGreaterThan(tokenCount, 5000)
    }

    /// transformers' continue_final_message (the final message left open for generation to
    /// continue): partial answers, one with a trailing space that trimming templates cut,
    /// finished conversations, one ending in a user message, a tool call; byte-identical text,
    /// identical ids, the same refusals, and add_generation_prompt with it refused as transformers
    /// refuses it.
    func testContinueFinalMessageRendersAsTransformers() throws {
        let fixture = try Self.load(Self.root.appendingPathComponent("continue_final_message.json"))
        let shared = try Self.load(Self.root.appendingPathComponent("conversations.json"))
        guard case .dict(let conversations)? = fixture["conversations"], case .list(let tools)? = fixture["tools"],
              case .list(let usesTools)? = fixture["uses_tools"], case .list(let cases)? = fixture["cases"],
              case .dict(let kwargs)? = shared["template_kwargs"] else { return XCTFail("continue_final_message.json lacks its fields") }
        var extra: [String: JinjaValue] = [:]
        for (k, v) in kwargs.entries { extra[k] = v }
        var templates: [String: (ChatTemplate, Tokenizer)] = [:]
        var rendered = 0, refused = 0, incompatible = 0, cutInsideMessage = 0
        for c in cases {
            guard case .dict(let d) = c, case .string(let model)? = d["model"], case .string(let name)? = d["conversation"],
                  case .bool(let gen)? = d["add_generation_prompt"], case .list(let messages)? = conversations[name] else { return XCTFail("bad case") }
            if templates[model] == nil {
                let tokenizer = try Tokenizer(directory: Self.root.appendingPathComponent(model))
                guard let template = try ChatTemplate(config: tokenizer.config) else { return XCTFail("\(model): no chat_template") }
                templates[model] = (template, tokenizer)
            }
            let (template, tokenizer) = templates[model]!
            let withTools = usesTools.contains { if case .string(name) = $0 { return true } else { return false } }
            let label = "\(model) / \(name) / add_generation_prompt=\(gen)"
            let result = Result { try template.render(messages: messages, tools: withTools ? tools : nil, addGenerationPrompt: gen,
                                                      continueFinalMessage: true, extra: extra) }
            switch (result, d["text"]) {
            case (.success(let text), .string(let expected)?):
                XCTAssertEqual(Array(text.utf8), Array(expected.utf8), "\(label): text differs\nours:   \(text.debugDescription)\ntheirs: \(expected.debugDescription)")
                guard case .list(let ids)? = d["ids"] else { return XCTFail("\(label): no ids") }
                let expectedIDs = ids.compactMap { v -> Int? in if case .int(let i) = v { return i } else { return nil } }
                XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: false), expectedIDs, "\(label): ids differ")
                // Left open: the plain rendering goes on past the final message's text.
                if let plain = try? template.render(messages: messages, tools: withTools ? tools : nil, extra: extra),
                   plain.utf8.count > text.utf8.count { cutInsideMessage += 1 }
                rendered += 1
            case (.failure(let e), nil):
                if gen {
                    XCTAssertTrue("\(e)".contains("not compatible"), "\(label): \(e)")
                    incompatible += 1
                } else {
                    XCTAssertTrue(e is JinjaError || e is TokenizerError, "\(label): \(e)")
                }
                refused += 1
            case (.success(let text), nil):
                XCTFail("\(label): transformers refused (\(d["error"]?.pythonString ?? "")) but we rendered \(text.debugDescription)")
            case (.failure(let e), _):
                XCTFail("\(label): we failed: \(e)")
            case (.success, _):
                XCTFail("\(label): the fixture's text is not a string")
            }
        }
        XCTAssertEqual(rendered, 52)
        XCTAssertEqual(refused, 18)
        XCTAssertEqual(incompatible, 10)
        XCTAssertEqual(cutInsideMessage, 51)  // llm-jp writes nothing after a final user message
    }

    /// The refusals transformers makes before rendering, with ours naming the reason.
    func testContinueFinalMessageRefusesWhatTransformersRefuses() throws {
        let template = try ChatTemplate(source: "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}",
                                        config: TokenizerConfig())
        let user = ChatTemplate.message(role: "user", content: "hi")
        XCTAssertEqual(try template.render(messages: [user, ChatTemplate.message(role: "assistant", content: "Hel")], continueFinalMessage: true),
                       "user: hi\nassistant: Hel")
        XCTAssertThrowsError(try template.render(messages: [], continueFinalMessage: true)) { XCTAssertTrue("\($0)".contains("empty"), "\($0)") }
        let noContent = JinjaValue.dict(JinjaDict([("role", .string("assistant")), ("content", .none)]))
        XCTAssertThrowsError(try template.render(messages: [user, noContent], continueFinalMessage: true)) {
            XCTAssertTrue("\($0)".contains("no \"content\""), "\($0)")
        }
        XCTAssertThrowsError(try template.render(messages: [user], addGenerationPrompt: true, continueFinalMessage: true)) {
            XCTAssertTrue("\($0)".contains("not compatible"), "\($0)")
        }
        // A template that drops the final message's text cannot leave it open.
        let dropping = try ChatTemplate(source: "{% for m in messages %}{{ m['role'] }}{% if m['content'] == 'x' %}{% endif %}\n{% endfor %}",
                                        config: TokenizerConfig())
        XCTAssertThrowsError(try dropping.render(messages: [user], continueFinalMessage: true)) {
            XCTAssertTrue("\($0)".contains("does not appear"), "\($0)")
        }
        // Content blocks: the last one with text is continued.
        let blocks = JinjaValue.dict(JinjaDict([("role", .string("assistant")), ("content", .list([
            .dict(JinjaDict([("type", .string("text")), ("text", .string("A"))])),
            .dict(JinjaDict([("type", .string("text")), ("text", .string("B"))])),
            .dict(JinjaDict([("type", .string("image"))]))]))]))
        let joining = try ChatTemplate(source: "{% for m in messages %}{% for b in m['content'] %}{{ b['text'] }}|{% endfor %}{% endfor %}",
                                       config: TokenizerConfig())
        XCTAssertEqual(try joining.render(messages: [blocks], continueFinalMessage: true), "A|B")
    }
}
