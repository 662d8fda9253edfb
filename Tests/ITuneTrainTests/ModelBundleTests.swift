import Foundation
import XCTest
import ITuneModels
import ITuneTensor
import ITuneTokenizers
@testable import ITuneTrain

/// A model saved with `savePretrained` beside a tokenizer loads back as the same model, and
/// generates and scores text end to end.
final class ModelBundleTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")

    func makeModelDirectory() throws -> (URL, LlamaModel) {
        let tokenizerDir = Self.fixtures.appendingPathComponent("tokenizers/llama3_style")
        let tokenizer = try Tokenizer(directory: tokenizerDir)
        var config = ModelConfig(vocabSize: tokenizer.vocabularySize, hiddenSize: 32, intermediateSize: 64, numLayers: 2,
                                 numHeads: 4, numKVHeads: 2, maxPositions: 128)
        config.eosTokenIDs = tokenizer.eosTokenID.map { [$0] } ?? []
        let model = try LlamaModel(config, seed: 3, on: .cpu)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-bundle-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try model.savePretrained(to: dir, tokenizerDirectory: tokenizerDir)
        return (dir, model)
    }

    func testSavedModelLoadsBackWithTheSameLogits() throws {
        let (dir, model) = try makeModelDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bundle = try ModelBundle(directory: dir, on: .cpu)
        XCTAssertEqual(bundle.model.config, model.config)
        let ids = try Tensor(indices: [5, 17, 99, 3, 250], shape: [1, 5])
        let want = try noGrad { try model(ids).toArray() }
        let got = try noGrad { try bundle.model(ids).toArray() }
        XCTAssertEqual(got, want)
    }

    func testInferenceKeepsTheCheckpointsDType() throws {
        // A bf16 checkpoint stays bf16 for generation, an f16 one f16, an f32 one f32.
        let models = Self.fixtures.appendingPathComponent("models")
        let bf16 = models.appendingPathComponent("llama_tied_headdim20_llama3rope")
        XCTAssertEqual(try ModelBundle.inferenceMatrices(bf16), .bf16)
        XCTAssertEqual(try ModelBundle.inferenceMatrices(models.appendingPathComponent("qwen2_qkv_bias")), .f16)
        XCTAssertEqual(try ModelBundle.inferenceMatrices(models.appendingPathComponent("llama_gqa_untied")), .f32)
        let model = try loadPretrained(bf16, on: .cpu, matrices: try ModelBundle.inferenceMatrices(bf16))
        XCTAssertEqual(model.outputEmbedding.dtype, .bf16, "the tied head reads the bf16 embedding table")
    }

    func testGenerateStreamsTheSameTextItReturnsAndHonoursStopStrings() throws {
        let (dir, _) = try makeModelDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let openCL = OpenCLRuntime.listDevices().platforms.filter { !$0.devices.isEmpty }
            .map { Device.opencl(platform: $0.index, device: 0) }
        for device in [Device.cpu] + openCL {
            let bundle = try ModelBundle(directory: dir, on: device)
            var streamed = ""
            let (text, result) = try bundle.generate(prompt: "Hello 日本語", options: GenerationOptions(maxNewTokens: 12)) {
                streamed += $0
            }
            XCTAssertEqual(streamed, text, "\(device)")
            XCTAssertLessThanOrEqual(result.tokens.count, 12)
            // A stop string taken from the unconstrained output cuts the text just before it.
            let chars = Array(text)
            if chars.count >= 4 {
                let stop = String(chars[2..<4])
                let (cut, r2) = try bundle.generate(prompt: "Hello 日本語", options: GenerationOptions(maxNewTokens: 12),
                                                    stopStrings: [stop])
                XCTAssertEqual(cut, String(text[..<text.range(of: stop)!.lowerBound]), "\(device)")
                XCTAssertEqual(r2.stopReason, .caller)
            }
        }
    }

    /// Prompts decoded together (`generate(prompts:)`, in batches of two here so that the
    /// groups are exercised) give each prompt's text and stop reason as `generate` gives them
    /// alone, with and without a stop string.
    func testBatchedGenerateGivesEachPromptsOwnText() throws {
        let (dir, _) = try makeModelDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bundle = try ModelBundle(directory: dir, on: .cpu)
        let prompts = ["Hello 日本語", "a", "The quick brown fox jumps", "日本"]
        let options = GenerationOptions(maxNewTokens: 10)
        let alone = try prompts.map { try bundle.generate(prompt: $0, options: options) }
        let together = try bundle.generate(prompts: prompts, options: options, batch: 2)
        XCTAssertEqual(together.map(\.text), alone.map(\.text))
        XCTAssertEqual(together.map(\.result.tokens), alone.map(\.result.tokens))
        XCTAssertEqual(together.map(\.result.stopReason), alone.map(\.result.stopReason))
        // A stop string from the first prompt's text: the rows that meet it are cut there.
        let chars = Array(alone[0].text)
        guard chars.count >= 3 else { throw XCTSkip("the first text is too short for a stop string") }
        let stop = String(chars[1..<3])
        let cutAlone = try prompts.map { try bundle.generate(prompt: $0, options: options, stopStrings: [stop]) }
        let cutTogether = try bundle.generate(prompts: prompts, options: options, stopStrings: [stop], batch: 3)
        XCTAssertEqual(cutTogether.map(\.text), cutAlone.map(\.text))
        XCTAssertEqual(cutTogether.map(\.result.stopReason), cutAlone.map(\.result.stopReason))
        XCTAssertEqual(cutTogether[0].result.stopReason, .caller)
    }

    func testEvaluateAveragesOverTokensNotSequences() throws {
        let (dir, _) = try makeModelDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bundle = try ModelBundle(directory: dir, on: .cpu)
        let a: [Int32] = [5, 6, 7, 8, 9, 10], b: [Int32] = [11, 12, 13]
        let r = try evaluate(bundle.model, sequences: [(a, a), (b, b)])
        let la = try noGrad { try bundle.model.loss(Tensor(indices: a, shape: [1, 6]), labels: a).item() }
        let lb = try noGrad { try bundle.model.loss(Tensor(indices: b, shape: [1, 3]), labels: b).item() }
        XCTAssertEqual(r.tokens, 7)
        XCTAssertEqual(r.meanLoss, (Double(la) * 5 + Double(lb) * 2) / 7, accuracy: 1e-5)
        XCTAssertEqual(r.perplexity, exp(r.meanLoss), accuracy: 1e-9)
    }
}
