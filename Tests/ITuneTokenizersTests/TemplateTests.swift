import Foundation
import XCTest
@testable import ITuneTokenizers

/// Templates render the documented strings, mark exactly the answers trainable, and are found by
/// name or from a model's chat_template.
final class TemplateTests: XCTestCase {
    func text(_ segments: [TemplateSegment], eos: String = "</s>") -> String {
        segments.map { if case let .text(s, _) = $0 { return s } else { return eos } }.joined()
    }

    func trainable(_ segments: [TemplateSegment]) -> [String] {
        segments.compactMap { if case let .text(s, true) = $0 { return s } else if case .eos = $0 { return "<eos>" } else { return nil } }
    }

    func testAlpacaRendersStanfordAlpacasPrompts() {
        let t = PromptTemplate(.alpaca)
        XCTAssertEqual(t.prompt(instruction: "Name a color."),
                       "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nName a color.\n\n### Response:\n")
        XCTAssertEqual(t.prompt(instruction: "Translate.", input: "Hallo"),
                       "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nTranslate.\n\n### Input:\nHallo\n\n### Response:\n")
        let segments = t.render(Conversation(turns: [Turn(instruction: "Name a color.", response: "Blue.")]))
        XCTAssertEqual(trainable(segments), ["Blue.", "<eos>"])
    }

    func testJapaneseTemplatesRenderTheIchikaraAndLlmJPForms() {
        XCTAssertEqual(PromptTemplate(.alpacaJA).prompt(instruction: "指示文"), "### 指示:\n指示文\n\n### 回答:\n")
        XCTAssertEqual(PromptTemplate(.alpacaJA).prompt(instruction: "指示文", input: "入力文"),
                       "### 指示:\n指示文\n\n### 入力:\n入力文\n\n### 回答:\n")
        XCTAssertEqual(PromptTemplate(.llmJP).prompt(instruction: "指示文"),
                       "以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。\n\n### 指示:\n指示文\n\n### 応答:\n")
        XCTAssertEqual(PromptTemplate(.llmJP).prompt(instruction: "指示文", input: "入力文"),
                       "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n### 指示:\n指示文\n\n### 入力:\n入力文\n\n### 応答:\n")
    }

    func testChatMLAndLlama3RenderTheirMarkers() {
        let c = Conversation(system: "S", turns: [Turn(instruction: "u1", response: "a1"), Turn(instruction: "u2", input: "x", response: "a2")])
        let chatml = PromptTemplate(.chatml).render(c)
        XCTAssertEqual(text(chatml), "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nu1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n"
                       + "<|im_start|>user\nu2\n\nx<|im_end|>\n<|im_start|>assistant\na2<|im_end|>\n")
        XCTAssertEqual(trainable(chatml), ["a1<|im_end|>", "a2<|im_end|>"], "every assistant turn is trainable, with its end marker")
        let llama3 = PromptTemplate(.llama3).render(c)
        XCTAssertEqual(text(llama3), "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
                       + "<|start_header_id|>user<|end_header_id|>\n\nu1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\na1<|eot_id|>"
                       + "<|start_header_id|>user<|end_header_id|>\n\nu2\n\nx<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\na2<|eot_id|>")
        XCTAssertEqual(trainable(llama3), ["a1<|eot_id|>", "a2<|eot_id|>"])
        XCTAssertEqual(PromptTemplate(.chatml).prompt(instruction: "hi"), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(PromptTemplate(.llama3).prompt(instruction: "hi"),
                       "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    }

    func testMultiTurnAlpacaTrainsEveryAnswer() {
        let c = Conversation(turns: [Turn(instruction: "a", response: "1"), Turn(instruction: "b", response: "2")])
        let segments = PromptTemplate(.alpaca).render(c)
        XCTAssertEqual(trainable(segments), ["1", "<eos>", "2", "<eos>"])
        XCTAssertTrue(text(segments).hasSuffix("### Response:\n1</s>\n\n### Instruction:\nb\n\n### Response:\n2</s>"), text(segments))
    }

    func testPlainTextIsTrainableWhole() {
        let segments = PromptTemplate(.chatml).render(Conversation(text: "just text"))
        XCTAssertEqual(segments, [.text("just text", trainable: true), .eos])
    }

    func testNamesAliasesAndTheUnknownNameError() throws {
        XCTAssertEqual(PromptTemplate.all.map(\.name), ["alpaca", "alpaca-ja", "llm-jp", "chatml", "llama3", "plain"])
        XCTAssertEqual(PromptTemplate.descriptions.map(\.0), PromptTemplate.all.map(\.name))
        for t in PromptTemplate.all { XCTAssertEqual(try PromptTemplate.named(t.name.uppercased()), t) }
        XCTAssertEqual(try PromptTemplate.named("alpaca-ja-outou").style, .llmJP)
        XCTAssertEqual(try PromptTemplate.named("qwen2").style, .chatml)
        XCTAssertThrowsError(try PromptTemplate.named("vicuna")) { error in
            let message = "\(error)"
            for name in ["vicuna", "alpaca", "alpaca-ja", "llm-jp", "chatml", "llama3", "plain"] {
                XCTAssertTrue(message.contains(name), message)
            }
        }
    }

    func testDetectionFromTheModelsChatTemplate() throws {
        let qwen = try Fixtures.tokenizer("qwen2_style")
        XCTAssertEqual(PromptTemplate.detect(chatTemplate: qwen.chatTemplate)?.style, .chatml)
        XCTAssertEqual(PromptTemplate.detect(chatTemplate: try Fixtures.tokenizer("llama3_style").chatTemplate)?.style, .llama3)
        XCTAssertNil(PromptTemplate.detect(chatTemplate: "{{ messages }}"))
        XCTAssertNil(PromptTemplate.detect(chatTemplate: nil))
        XCTAssertNil(PromptTemplate.detect(chatTemplate: qwen.chatTemplate)?.defaultSystem, "a template without a default system prompt")
    }

    func testQwenDefaultSystemPromptIsKept() {
        // As Qwen2-Instruct's tokenizer_config.json writes it (a Jinja string literal, \n escaped).
        let qwen2 = #"{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"#
        let t = PromptTemplate.detect(chatTemplate: qwen2)
        XCTAssertEqual(t?.defaultSystem, "You are a helpful assistant.")
        XCTAssertEqual(t?.prompt(instruction: "hi"),
                       "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(t?.prompt(instruction: "hi", system: "Be brief."),
                       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        // The system turn built from the conversation is not a default.
        XCTAssertNil(PromptTemplate.defaultChatMLSystem(#"{{ '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"#))
    }

    func testMarkersMissingFromATokenizerAreListed() throws {
        let qwen = try Fixtures.tokenizer("qwen2_style")
        XCTAssertEqual(PromptTemplate(.chatml).markersMissing(in: qwen), [])
        XCTAssertEqual(PromptTemplate(.llama3).markersMissing(in: qwen),
                       ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
        XCTAssertEqual(PromptTemplate(.alpaca).markersMissing(in: qwen), [])
    }
}
