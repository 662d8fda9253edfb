import Foundation
import XCTest
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers
@testable import ITuneTrain

/// `itune-gpu generate --prompts FILE`: every prompt of the file decoded in batches, one JSON
/// line each, the same text as `generate` gives for the prompt alone; a bad line is named.
final class GenerateCommandLineTests: XCTestCase {
    func testPromptsFileGivesEachPromptsOwnTextAsJSONLines() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-cli-prompts-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures")
        let tokDir = fixtures.appendingPathComponent("tokenizers/llama3_style")
        let model = try LlamaModel(ModelConfig(vocabSize: try Tokenizer(directory: tokDir).vocabularySize, hiddenSize: 32,
                                               intermediateSize: 64, numLayers: 2, numHeads: 4, numKVHeads: 2, maxPositions: 256),
                                   seed: 4, on: .cpu)
        let modelDir = work.appendingPathComponent("model")
        try model.savePretrained(to: modelDir, tokenizerDirectory: tokDir)
        let bundle = try ModelBundle(directory: modelDir, on: .cpu)
        let prompts = ["Hello 日本語", "a", "The quick brown fox jumps over", "日本"]

        let text = work.appendingPathComponent("prompts.txt")
        try (prompts[0] + "\n\n" + prompts[1...].joined(separator: "\r\n") + "\n").write(to: text, atomically: true, encoding: .utf8)
        let jsonl = work.appendingPathComponent("prompts.jsonl")
        try prompts.map { "{\"prompt\": \"\($0)\", \"id\": 1}" }.joined(separator: "\n").write(to: jsonl, atomically: true, encoding: .utf8)
        for (file, template) in [(text, nil), (jsonl, "alpaca")] as [(URL, String?)] {
            let out = work.appendingPathComponent("out.jsonl")
            let r = try runBuiltExecutable("itune-gpu", ["generate", "--model", modelDir.path, "--prompts", file.path, "--output", out.path,
                                                         "--max-new-tokens", "7", "--batch", "3", "--device", "cpu"]
                                                        + (template.map { ["--template", $0] } ?? []), from: self)
            XCTAssertEqual(r.status, 0, r.err)
            let lines = try String(contentsOf: out, encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.count, prompts.count, "\(file.lastPathComponent)")
            let t = try template.map { try PromptTemplate.resolve($0, tokenizer: bundle.tokenizer).template }
            for (line, prompt) in zip(lines, prompts) {
                let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                XCTAssertEqual(object["prompt"] as? String, prompt)
                let rendered = try t.map { try $0.generationPrompt(instruction: prompt) } ?? prompt
                let alone = try bundle.generate(prompt: rendered, options: GenerationOptions(maxNewTokens: 7),
                                                stopStrings: t?.stopStrings ?? [], addSpecialTokens: !(t?.writesOwnSpecialTokens ?? false))
                XCTAssertEqual(object["output"] as? String, alone.text, "\(file.lastPathComponent): \(prompt)")
                XCTAssertEqual(object["tokens"] as? Int, alone.result.tokens.count)
                XCTAssertEqual(object["stop"] as? String, alone.result.stopReason.rawValue)
            }
        }

        // A line without a string "prompt" is named by file, line and field.
        try "{\"prompt\": \"ok\"}\n{\"text\": \"no prompt\"}\n".write(to: jsonl, atomically: true, encoding: .utf8)
        let bad = try runBuiltExecutable("itune-gpu", ["generate", "--model", modelDir.path, "--prompts", jsonl.path, "--device", "cpu"],
                                         from: self)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("\(jsonl.path):2: field 'prompt': missing"), bad.err)
        let both = try runBuiltExecutable("itune-gpu", ["generate", "--model", modelDir.path, "--prompt", "x", "--prompts", jsonl.path],
                                          from: self)
        XCTAssertTrue(both.err.contains("give --prompt TEXT or --prompts FILE"), both.err)
    }
}
