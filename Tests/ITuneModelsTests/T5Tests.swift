import Foundation
import XCTest
@testable import ITuneModels
import ITuneTensor

/// T5, T5 v1.1 and mT5 against transformers, with the fixtures of scripts/make_t5_fixtures.py.
final class T5GoldenTests: XCTestCase {
    struct Expected {
        let inputIDs: [Int32], mask: [Int32], labels: [Int32]
        let B, Te, Td, V: Int
        let logits: [Float]
        let loss: Float
        let tied: Bool
    }

    func expected(_ name: String) throws -> Expected {
        let url = modelFixtures.appendingPathComponent(name).appendingPathComponent("expected.json")
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let ids = try XCTUnwrap(obj["input_ids"] as? [[Int]]), mask = try XCTUnwrap(obj["attention_mask"] as? [[Int]])
        let labels = try XCTUnwrap(obj["labels"] as? [[Int]]), shape = try XCTUnwrap(obj["logits_shape"] as? [Int])
        return Expected(inputIDs: ids.flatMap { $0 }.map(Int32.init), mask: mask.flatMap { $0 }.map(Int32.init),
                        labels: labels.flatMap { $0 }.map(Int32.init), B: ids.count, Te: ids[0].count,
                        Td: labels[0].count, V: shape[2],
                        logits: try XCTUnwrap(obj["logits"] as? [Double]).map(Float.init),
                        loss: Float(try XCTUnwrap(obj["loss"] as? Double)), tied: try XCTUnwrap(obj["lm_head_tied"] as? Bool))
    }

    func assertMatchesTransformers(_ name: String, architecture: Architecture, gated: Bool, tied: Bool,
                                   file: StaticString = #filePath, line: UInt = #line) throws {
        let e = try expected(name)
        XCTAssertEqual(e.tied, tied, "fixture layout", file: file, line: line)
        for device in testDevices() {
            let model = try T5Model.load(directory: modelFixtures.appendingPathComponent(name), on: device)
            XCTAssertEqual(model.config.architecture, architecture, file: file, line: line)
            XCTAssertEqual(model.config.gated, gated, file: file, line: line)
            XCTAssertEqual(model.lmHead == nil, tied, file: file, line: line)
            XCTAssertEqual(model.config.scaleDecoderOutputs, tied, file: file, line: line)
            let ids = try Tensor(indices: e.inputIDs, shape: [e.B, e.Te], on: device)
            let decoderIDs = try Tensor(indices: model.decoderInputs(forLabels: e.labels, batch: e.B), shape: [e.B, e.Td], on: device)
            let logits = try noGrad { try model.logits(inputIDs: ids, mask: e.mask, decoderInputIDs: decoderIDs) }
            XCTAssertEqual(logits.shape, [e.B, e.Td, e.V], file: file, line: line)
            let err = worstRelativeError(try logits.toArray(), e.logits)
            XCTAssertLessThan(err, 1e-4, "\(name) logits on \(device)", file: file, line: line)
            let loss = try noGrad { try model.loss(inputIDs: ids, mask: e.mask, labels: e.labels, decoderLength: e.Td).item() }
            XCTAssertEqual(loss, e.loss, accuracy: 1e-4 * abs(e.loss), "\(name) loss on \(device)", file: file, line: line)
        }
    }

    func testOriginalT5ReluTiedLogitsAndLossMatchTransformers() throws {
        try assertMatchesTransformers("t5_relu_tied", architecture: .t5, gated: false, tied: true)
    }

    func testT5v11GatedGeluUntiedLogitsAndLossMatchTransformers() throws {
        try assertMatchesTransformers("t5v11_gated_untied", architecture: .t5, gated: true, tied: false)
    }

    func testMT5LogitsAndLossMatchTransformers() throws {
        try assertMatchesTransformers("mt5_gated_untied", architecture: .mt5, gated: true, tied: false)
    }

    func testPaddingOfTheEncoderInputDoesNotChangeTheOtherRow() throws {
        // Row 1 (padded) alone, unpadded, and beside row 0 give the same logits: the mask works.
        let e = try expected("t5v11_gated_untied")
        let model = try T5Model.load(directory: modelFixtures.appendingPathComponent("t5v11_gated_untied"), on: .cpu)
        let decoder = model.decoderInputs(forLabels: e.labels, batch: e.B)
        let both = try noGrad {
            try model.logits(inputIDs: Tensor(indices: e.inputIDs, shape: [e.B, e.Te]), mask: e.mask,
                             decoderInputIDs: Tensor(indices: decoder, shape: [e.B, e.Td])).toArray()
        }
        let rowLength = 6  // row 1's real tokens; its logits alone, without padding
        let alone = try noGrad {
            try model.logits(inputIDs: Tensor(indices: Array(e.inputIDs[e.Te..<(e.Te + rowLength)]), shape: [1, rowLength]),
                             decoderInputIDs: Tensor(indices: Array(decoder[e.Td...]), shape: [1, e.Td])).toArray()
        }
        XCTAssertEqual(Array(e.mask[e.Te...]), [1, 1, 1, 1, 1, 1, 0, 0, 0])
        assertCloseArrays(Array(both[(e.Td * e.V)...]), alone, rtol: 1e-5)
    }

    func testRelativePositionBucketsMatchTransformers() throws {
        let url = modelFixtures.appendingPathComponent("t5_relative_buckets.json")
        let cases = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [[String: Any]])
        XCTAssertEqual(cases.count, 8)
        for c in cases {
            let got = t5RelativePositionBuckets(queries: c["queries"] as! Int, keys: c["keys"] as! Int,
                                                queryOffset: c["query_offset"] as! Int,
                                                bidirectional: c["bidirectional"] as! Bool,
                                                numBuckets: c["num_buckets"] as! Int, maxDistance: c["max_distance"] as! Int)
            XCTAssertEqual(got.map(Int.init), c["buckets"] as! [Int], "\(c.filter { $0.key != "buckets" })")
        }
    }

    func testConfigFieldsWhoseMathsIsNotImplementedAreRefusedByName() throws {
        func config(_ extra: [String: Any]) throws -> T5Config {
            var json: [String: Any] = ["model_type": "t5", "vocab_size": 32, "d_model": 8, "d_kv": 2, "d_ff": 16,
                                       "num_layers": 1, "num_heads": 4]
            json.merge(extra) { $1 }
            return try T5Config(json: json, file: "config.json")
        }
        XCTAssertEqual(try config([:]).activation, .relu)
        XCTAssertEqual(try config(["feed_forward_proj": "gated-gelu"]).activation, .geluNew)
        XCTAssertEqual(try config(["feed_forward_proj": "gated-silu"]).gated, true)
        assertRefused(try config(["feed_forward_proj": "gated-swish"]), naming: "feed_forward_proj")
        assertRefused(try config(["feed_forward_proj": "relu-gated-x"]), naming: "feed_forward_proj")
        assertRefused(try config(["d_kv": 0]), naming: "d_kv")
        assertRefused(try config(["decoder_start_token_id": 99]), naming: "decoder_start_token_id")
        assertRefused(try config(["is_decoder": true]), naming: "is_decoder")
        assertRefused(try T5Config(json: ["model_type": "llama"], file: "config.json"), naming: "T5ForConditionalGeneration")
    }

    func testLossGradientsOfPositionBiasAndProjectionsMatchFiniteDifferences() throws {
        // Through the bucket lookup, the broadcast padding mask and the attention bias, both stacks.
        let c = T5Config(vocabSize: 24, dModel: 8, dKV: 3, dFF: 12, numLayers: 2, numHeads: 2, numBuckets: 6,
                         maxDistance: 8, activation: .geluNew, gated: true, tieWordEmbeddings: false)
        let model = try T5Model(c, seed: 3, on: .cpu)
        // Bigger weights than the 0.02 init so that the finite differences are well above noise.
        for (name, p) in model.namedParameters() where !name.hasSuffix("layer_norm.weight") {
            try p.assign(try p.toArray().enumerated().map { i, v in v * 20 + (name.contains("relative") ? Float(i % 5) * 0.3 : 0) })
        }
        model.setTrainable(true)
        let ids = try Tensor(indices: [3, 4, 5, 6, 7, 8, 9, 0], shape: [2, 4])
        let mask: [Int32] = [1, 1, 1, 1, 1, 1, 1, 0]
        let labels: [Int32] = [5, 6, 7, 1, 9, 10, -100, -100]
        let loss = try model.loss(inputIDs: ids, mask: mask, labels: labels, decoderLength: 4)
        try loss.backward()
        let params = Dictionary(uniqueKeysWithValues: model.namedParameters())
        for name in ["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                     "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                     "decoder.block.1.layer.1.EncDecAttention.k.weight", "encoder.block.1.layer.0.SelfAttention.q.weight"] {
            let p = try XCTUnwrap(params[name], name)
            let grad = try XCTUnwrap(p.grad, name).toArray()
            let base = try p.toArray()
            let eps: Float = 1e-2
            for i in Swift.stride(from: 0, to: base.count, by: max(1, base.count / 5)) {
                func at(_ v: Float) throws -> Double {
                    var w = base
                    w[i] = v
                    try p.assign(w)
                    return Double(try noGrad { try model.loss(inputIDs: ids, mask: mask, labels: labels, decoderLength: 4).item() })
                }
                let numeric = Float((try at(base[i] + eps) - at(base[i] - eps)) / Double(2 * eps))
                try p.assign(base)
                XCTAssertEqual(grad[i], numeric, accuracy: 2e-3 + 2e-2 * abs(numeric), "\(name)[\(i)]")
            }
        }
    }

    /// PEFT's LoRA on T5 (its module names q, k, v, o, wi_0, wi_1, wo), loaded from PEFT's files:
    /// the loss and the adapter gradients PEFT computes, and what we save back carries PEFT's names.
    func testPEFTAdapterGivesPEFTsLossAndGradientsAndSavesUnderItsNames() throws {
        let e = try expected("t5v11_gated_untied")
        let adapter = modelFixtures.appendingPathComponent("t5v11_gated_untied_lora")
        let want = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: adapter.appendingPathComponent("expected.json")))
            as? [String: Any])
        let gradients = try XCTUnwrap(want["gradients"] as? [String: [Double]])
        XCTAssertEqual(gradients.count, 8)
        for device in testDevices() {
            let model = try T5Model.load(directory: modelFixtures.appendingPathComponent("t5v11_gated_untied"), on: device)
            let config = try model.loadAdapter(from: adapter, trainable: true)
            XCTAssertEqual(model.loraAdapters.count, 7 * 2 + 11 * 2, "q k v o wi_0 wi_1 wo per encoder block, + cross q k v o per decoder block")
            XCTAssertEqual(config.rank, 4)
            let ids = try Tensor(indices: e.inputIDs, shape: [e.B, e.Te], on: device)
            let loss = try model.loss(inputIDs: ids, mask: e.mask, labels: e.labels, decoderLength: e.Td)
            let peftLoss = Float(try XCTUnwrap(want["loss"] as? Double))
            XCTAssertEqual(try loss.item(), peftLoss, accuracy: 1e-4 * peftLoss, "loss on \(device)")
            XCTAssertNotEqual(peftLoss, e.loss, accuracy: 1e-3, "the adapter must change the loss")
            try loss.backward()
            let params = Dictionary(uniqueKeysWithValues: model.loraParameters)
            for (name, g) in gradients {
                let got = try XCTUnwrap(XCTUnwrap(params[name], name).grad, name).toArray()
                XCTAssertLessThan(worstRelativeError(got, g.map(Float.init)), 1e-3, "\(name) on \(device)")
            }
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("t5-lora-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: out) }
            try model.saveAdapter(to: out, config: config, baseModel: "t5v11_gated_untied")
            let saved = try SafetensorsFile(url: out.appendingPathComponent("adapter_model.safetensors"))
            let peft = try SafetensorsFile(url: adapter.appendingPathComponent("adapter_model.safetensors"))
            XCTAssertEqual(Set(saved.names), Set(peft.names))
            let savedConfig = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("adapter_config.json"))) as? [String: Any]
            XCTAssertEqual(savedConfig?["task_type"] as? String, "SEQ_2_SEQ_LM")
        }
    }

    func testGreedyGenerationWithCachesMatchesTransformers() throws {
        for name in ["t5_relu_tied", "t5v11_gated_untied", "mt5_gated_untied"] {
            let url = modelFixtures.appendingPathComponent(name).appendingPathComponent("expected.json")
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            let want = try XCTUnwrap(obj["greedy_tokens"] as? [Int]).map(Int32.init)
            let e = try expected(name)
            for device in testDevices() {
                let model = try T5Model.load(directory: modelFixtures.appendingPathComponent(name), on: device)
                let got = try model.generateGreedy(Tensor(indices: Array(e.inputIDs.prefix(e.Te)), shape: [1, e.Te], on: device),
                                                   maxNewTokens: want.count, stopAtEOS: false)
                XCTAssertEqual(got, want, "\(name) on \(device)")
            }
        }
    }

    func testCachedDecodingStepByStepEqualsTeacherForcedLogits() throws {
        // Padded batch, one token per step through the KV cache and the cached cross keys.
        let e = try expected("mt5_gated_untied")
        for device in testDevices() {
            let model = try T5Model.load(directory: modelFixtures.appendingPathComponent("mt5_gated_untied"), on: device)
            let ids = try Tensor(indices: e.inputIDs, shape: [e.B, e.Te], on: device)
            let decoder = model.decoderInputs(forLabels: e.labels, batch: e.B)
            let state = try noGrad { try model.startDecoding(ids, mask: e.mask) }
            var steps = [[Float]](repeating: [], count: e.B)
            for t in 0..<e.Td {
                let column = (0..<e.B).map { decoder[$0 * e.Td + t] }
                let logits = try noGrad { try model.decodeStep(Tensor(indices: column, shape: [e.B, 1], on: device), state: state) }
                let values = try logits.toArray()
                for b in 0..<e.B { steps[b] += values[(b * e.V)..<((b + 1) * e.V)] }
            }
            XCTAssertLessThan(worstRelativeError(steps.flatMap { $0 }, e.logits), 1e-4, "\(device)")
        }
    }

    func testDecoderInputsAreTheLabelsShiftedRight() throws {
        let model = try T5Model(T5Config(vocabSize: 16, dModel: 8, dKV: 2, dFF: 8, numLayers: 1, numHeads: 2,
                                         decoderStartTokenID: 0, padTokenID: 0), on: .cpu)
        XCTAssertEqual(model.decoderInputs(forLabels: [5, 6, 1, -100, 7, 1, -100, -100], batch: 2), [0, 5, 6, 1, 0, 7, 1, 0])
    }
}

private func assertCloseArrays(_ a: [Float], _ b: [Float], rtol: Float, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    XCTAssertLessThan(worstRelativeError(a, b), rtol, file: file, line: line)
}
