import Foundation
import XCTest
@testable import ITuneModels
@testable import ITuneTensor

/// Logits, losses and greedy tokens of tiny random models against transformers
/// (fixtures written by scripts/make_model_fixtures.py).
final class PretrainedGoldenTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/models").standardized
    static let names = ["llama_gqa_untied", "llama_tied_headdim20_llama3rope", "qwen2_qkv_bias", "mistral_gqa", "gpt2", "phi3_fused"]

    struct Expected: Decodable {
        let input_ids: [[Int32]]
        let labels: [[Int32]]
        let logits: [Float]
        let logits_shape: [Int]
        let loss: Float
        let greedy_prompt: [Int32]
        let greedy_tokens: [Int32]
    }

    /// Every fixture on the CPU and, where there is one, the first OpenCL device.
    static func devicesAndNames() -> [(Device, String)] {
        var devices: [Device] = [.cpu]
        if let p = OpenCLRuntime.listDevices().platforms.first(where: { !$0.devices.isEmpty }) {
            devices.append(.opencl(platform: p.index, device: 0))
        }
        return devices.flatMap { d in names.map { (d, $0) } }
    }

    func expected(_ name: String) throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("\(name)/expected.json")))
    }

    func checkLogitsAndLoss(on device: Device) throws {
        for name in Self.names {
            let e = try expected(name)
            let model = try loadPretrained(Self.fixtures.appendingPathComponent(name), on: device)
            let B = e.input_ids.count, T = e.input_ids[0].count
            let ids = try Tensor(indices: e.input_ids.flatMap { $0 }, shape: [B, T], on: device)
            let logits = try noGrad { try model(ids) }
            XCTAssertEqual(logits.shape, e.logits_shape, name)
            let got = try logits.toArray()
            let scale = e.logits.map { abs($0) }.max()!
            var worst: Float = 0
            for i in got.indices { worst = max(worst, abs(got[i] - e.logits[i]) / max(abs(e.logits[i]), 0.1 * scale)) }
            XCTAssertLessThan(worst, 1e-4, "\(name) on \(device): worst relative logit error \(worst)")
            let loss = try noGrad { try model.loss(ids, labels: e.labels.flatMap { $0 }).item() }
            XCTAssertEqual(loss, e.loss, accuracy: 1e-4 * e.loss, "\(name) loss on \(device)")
        }
    }

    func testLogitsAndLossMatchTransformersOnCPU() throws {
        try checkLogitsAndLoss(on: .cpu)
    }

    func testLogitsAndLossMatchTransformersOnOpenCL() throws {
        let listing = OpenCLRuntime.listDevices()
        guard let p = listing.platforms.first(where: { !$0.devices.isEmpty }) else {
            if ProcessInfo.processInfo.environment["ITUNE_REQUIRE_OPENCL"] == "1" { XCTFail("no OpenCL device") }
            throw XCTSkip("no OpenCL device")
        }
        try checkLogitsAndLoss(on: .opencl(platform: p.index, device: 0))
    }

    func testGreedyTokensMatchTransformers() throws {
        for name in Self.names {
            let e = try expected(name)
            let model = try loadPretrained(Self.fixtures.appendingPathComponent(name), on: .cpu)
            var ids = e.greedy_prompt
            try noGrad {
                for _ in e.greedy_tokens {
                    let logits = try model(Tensor(indices: ids, shape: [1, ids.count])).toArray()
                    let V = model.config.vocabSize
                    let last = Array(logits[(ids.count - 1) * V..<ids.count * V])
                    ids.append(Int32(last.indices.max { last[$0] < last[$1] }!))
                }
            }
            XCTAssertEqual(Array(ids.dropFirst(e.greedy_prompt.count)), e.greedy_tokens, name)
        }
    }

    /// The same tokens through `generate`, which runs the prompt once and then one token at a
    /// time against the KV cache, on both backends.
    func testKVCacheGenerationMatchesTransformersGreedyTokens() throws {
        for (device, name) in Self.devicesAndNames() {
            let e = try expected(name)
            let model = try loadPretrained(Self.fixtures.appendingPathComponent(name), on: device)
            var streamed: [Int32] = []
            let result = try model.generate(prompt: e.greedy_prompt,
                                            options: GenerationOptions(maxNewTokens: e.greedy_tokens.count)) {
                streamed.append($0)
                return true
            }
            XCTAssertEqual(result.tokens, e.greedy_tokens, "\(name) on \(device)")
            XCTAssertEqual(streamed, result.tokens)
            XCTAssertEqual(result.stopReason, .maxNewTokens)
        }
    }

    /// Several prompts of different lengths decoded together (`generate(prompts:)`: left-padded
    /// rows, the padding a segment of its own): the fixture's prompt gives transformers' tokens,
    /// the prompt with its first two greedy tokens appended gives the rest of them, a two-token
    /// prefix gives what `generate` gives for it alone; a stop token ends one row while the
    /// others go on. Every family, both backends.
    func testBatchedGenerationMatchesEachPromptAlone() throws {
        for (device, name) in Self.devicesAndNames() {
            let e = try expected(name)
            let n = e.greedy_tokens.count
            XCTAssertGreaterThanOrEqual(n, 4, name)
            let model = try loadPretrained(Self.fixtures.appendingPathComponent(name), on: device)
            let prompts = [e.greedy_prompt, e.greedy_prompt + e.greedy_tokens.prefix(2), Array(e.greedy_prompt.prefix(2))]
            let options = GenerationOptions(maxNewTokens: n)
            var streamed = [[Int32]](repeating: [], count: prompts.count)
            let rows = try model.generate(prompts: prompts, options: options) { row, token in
                streamed[row].append(token)
                return true
            }
            XCTAssertEqual(rows.map(\.tokens), streamed, "\(name) on \(device)")
            XCTAssertEqual(rows[0].tokens, e.greedy_tokens, "\(name) on \(device)")
            XCTAssertEqual(Array(rows[1].tokens.prefix(n - 2)), Array(e.greedy_tokens.dropFirst(2)), "\(name) on \(device)")
            XCTAssertEqual(rows[2].tokens, try model.generate(prompt: prompts[2], options: options).tokens, "\(name) on \(device)")
            XCTAssertEqual(rows.map(\.stopReason), [.maxNewTokens, .maxNewTokens, .maxNewTokens])

            // greedy_tokens[2] stops the first row where it first comes (some fixtures repeat
            // a token: then before it) and the second at once.
            var stopping = options
            stopping.stopTokens = [e.greedy_tokens[2]]
            let stopped = try model.generate(prompts: prompts, options: stopping)
            XCTAssertEqual(stopped[0].tokens, Array(e.greedy_tokens.prefix { $0 != e.greedy_tokens[2] }), "\(name) on \(device)")
            XCTAssertEqual(stopped[0].stopReason, .stopToken)
            XCTAssertEqual(stopped[1].tokens, [], "\(name) on \(device)")
            XCTAssertEqual(stopped[1].stopReason, .stopToken)
            let alone = try model.generate(prompt: prompts[2], options: stopping)
            XCTAssertEqual(stopped[2].tokens, alone.tokens, "\(name) on \(device)")
            XCTAssertEqual(stopped[2].stopReason, alone.stopReason)
        }
    }

    func testMissingTensorNamesTheTensorAndTheDirectory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-missing-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("mistral_gqa"), to: dir)
        defer { try? FileManager.default.removeItem(at: dir) }
        let st = try SafetensorsFile(url: dir.appendingPathComponent("model.safetensors"))
        let kept = try st.names.filter { $0 != "model.layers.1.mlp.up_proj.weight" }.map { ($0, try st.tensor($0, on: .cpu)) }
        try SafetensorsFile.write(kept.map { (name: $0.0, tensor: $0.1) }, to: dir.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try loadPretrained(dir, on: .cpu)) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("model.layers.1.mlp.up_proj.weight") && text.contains(dir.path), text)
        }
    }
}
