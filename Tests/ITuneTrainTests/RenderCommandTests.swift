import Foundation
import XCTest

/// `itune-gpu render`: what a record becomes before training, from the model's own template.
final class RenderCommandTests: XCTestCase {
    func testRenderPrintsTheTemplatesTextAndMarksTrainedTokens() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/chat_templates/qwen2.5-instruct")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-render-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("chat.jsonl")
        try #"{"messages": [{"role": "user", "content": "こんにちは"}, {"role": "assistant", "content": "はい"}]}"#
            .write(to: data, atomically: true, encoding: .utf8)
        let run = try runBuiltExecutable("itune-gpu", ["render", "--model", fixtures.path, "--data", data.path, "--ids"], from: self)
        XCTAssertEqual(run.status, 0, run.err)
        XCTAssertTrue(run.out.contains("template: model (the model's own chat_template"), run.out)
        // Qwen2.5's default system prompt is written by the template itself.
        XCTAssertTrue(run.out.contains("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            + "<|im_start|>user\nこんにちは<|im_end|>\n<|im_start|>assistant\nはい<|im_end|>\n"), run.out)
        XCTAssertTrue(run.out.contains(#"trained: "はい<|im_end|>\n""#), run.out)
        let idLine = run.out.split(separator: "\n").first { $0.contains("*") && $0.first?.isNumber == true } ?? ""
        let marked = idLine.split(separator: " ").filter { $0.hasSuffix("*") }.count
        XCTAssertGreaterThanOrEqual(marked, 3, String(idLine))
        // A named template still wins.
        let named = try runBuiltExecutable("itune-gpu", ["render", "--model", fixtures.path, "--data", data.path, "--template", "alpaca"], from: self)
        XCTAssertTrue(named.out.contains("### Instruction:\nこんにちは"), named.out)
    }

    /// `render --continue-final-message` prints the record with its final message left open,
    /// text and ids as transformers' apply_chat_template(…, continue_final_message=True) gives them
    /// (Tests/Fixtures/chat_templates/continue_final_message.json, Qwen2.5's prefill_ja case).
    func testRenderLeavesTheFinalMessageOpenAsTransformers() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/chat_templates")
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("continue_final_message.json"))) as! [String: Any]
        let c = (golden["cases"] as! [[String: Any]]).first {
            $0["model"] as? String == "qwen2.5-instruct" && $0["conversation"] as? String == "prefill_ja" && $0["add_generation_prompt"] as? Bool == false
        }!
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-render-open-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("prefill.jsonl")
        try #"{"messages": [{"role": "user", "content": "富士山の高さは？"}, {"role": "assistant", "content": "富士山の高さは"}]}"#
            .write(to: data, atomically: true, encoding: .utf8)
        let run = try runBuiltExecutable("itune-gpu", ["render", "--model", root.appendingPathComponent("qwen2.5-instruct").path, "--data", data.path,
                                                       "--ids", "--continue-final-message"], from: self)
        XCTAssertEqual(run.status, 0, run.err)
        let text = c["text"] as! String, ids = (c["ids"] as! [Int]).map(String.init).joined(separator: " ")
        XCTAssertTrue(run.out.contains("final message left open\n" + text + "\n" + ids + "\n"), run.out)
        XCTAssertTrue(text.hasSuffix("<|im_start|>assistant\n富士山の高さは"), text)
    }
}
