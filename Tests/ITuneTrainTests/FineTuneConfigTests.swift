import Foundation
import XCTest
import ITune

/// `--config` and `itune_config.json` are one format (keys as the long option names), a run's
/// config file reproduces it, and `--resume` refuses options that would change its loss curve.
final class FineTuneConfigTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// A fresh directory for one test, removed at the end of it.
    func workDirectory(_ name: String) -> URL {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-config-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        addTeardownBlock { try? FileManager.default.removeItem(at: work) }
        return work
    }

    /// A one-layer Llama-shaped model on the llama3_style tokenizer (no pad token: batches pad
    /// with its eos, id 985), or Qwen2-shaped on the qwen2_style one, saved in `work`/model, and
    /// a short LoRA run over the records fixture writing to `work`/out.
    static func tinyRun(in work: URL, qwen2: Bool = false) throws -> FineTuneConfig {
        let tokenizerDir = fixtures.appendingPathComponent(qwen2 ? "tokenizers/qwen2_style" : "tokenizers/llama3_style")
        let vocab = try Tokenizer(directory: tokenizerDir).vocabularySize
        let base = try LlamaModel(ModelConfig(architecture: qwen2 ? .qwen2 : .llama, vocabSize: vocab, hiddenSize: 32, intermediateSize: 64,
                                              numLayers: 1, numHeads: 4, numKVHeads: 2, maxPositions: 256, qkvBias: qwen2),
                                  seed: 1, on: .cpu)
        try base.savePretrained(to: work.appendingPathComponent("model"), tokenizerDirectory: tokenizerDir)
        var config = FineTuneConfig(model: work.appendingPathComponent("model").path,
                                    data: [fixtures.appendingPathComponent("data/records.jsonl").path])
        config.output = work.appendingPathComponent("out").path
        config.trainer.maxSteps = 4
        config.trainer.batchSize = 2
        config.trainer.optimizer.learningRate = 1e-3
        config.lora.rank = 4
        config.samples = 0
        return config
    }

    func testConfigIsWrittenWithTheLongOptionNamesAsKeys() throws {
        var c = FineTuneConfig(model: "m", data: ["a.jsonl", "b.jsonl"])
        c.lora.rank = 16
        c.trainer.batchSize = 2
        c.trainer.gradientAccumulation = 3
        c.trainer.optimizer.learningRate = 5e-4
        c.trainer.maxSteps = 7
        c.trainer.decay = .linear
        c.mode = .full
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(c)) as? [String: Any])
        XCTAssertEqual(object["lora-rank"] as? Int, 16)
        XCTAssertEqual(object["batch-size"] as? Int, 2)
        XCTAssertEqual(object["grad-accum"] as? Int, 3)
        XCTAssertEqual((object["lr"] as? Double).map(Float.init), 5e-4)
        XCTAssertEqual(object["max-steps"] as? Int, 7)
        XCTAssertEqual(object["schedule"] as? String, "linear")
        XCTAssertEqual(object["full"] as? Bool, true)
        XCTAssertEqual(object["data"] as? [String], ["a.jsonl", "b.jsonl"])
        // Every default is written out (nil ones as null), so the file states the whole run.
        XCTAssertEqual(Set(object.keys), Set(FineTuneConfig.options.map(\.name)))
        XCTAssertTrue(object["warmup-steps"] is NSNull)
        XCTAssertNil(object["lora"], "no nested Swift field names")
        XCTAssertEqual(try JSONDecoder().decode(FineTuneConfig.self, from: JSONEncoder().encode(c)), c)
    }

    func testConfigMappingAcceptsUnderscoresStringsAndCommaLists() throws {
        let c = try FineTuneConfig(options: ["model": "m", "data": "one.jsonl", "lora_rank": 12, "lr": "2e-4",
                                             "lora-targets": "q_proj, v_proj", "grad_accum": 2, "max-steps": NSNull(),
                                             "packing": true, "schedule": "constant", "seed": 7],
                                   source: "run.yaml")
        XCTAssertEqual(c.data, ["one.jsonl"])
        XCTAssertEqual(c.lora.rank, 12)
        XCTAssertEqual(c.trainer.optimizer.learningRate, Float(2e-4))
        XCTAssertEqual(c.lora.targetModules, ["q_proj", "v_proj"])
        XCTAssertEqual(c.trainer.gradientAccumulation, 2)
        XCTAssertNil(c.trainer.maxSteps)
        XCTAssertTrue(c.packing)
        XCTAssertEqual(c.trainer.decay, .constant)
        XCTAssertEqual(c.trainer.seed, 7)
        // Untouched options keep the struct's defaults.
        XCTAssertEqual(c.trainer.batchSize, FineTuneConfig().trainer.batchSize)
    }

    func testUnknownKeysAndBadValuesNameTheFileAndTheKey() {
        XCTAssertThrowsError(try FineTuneConfig(options: ["model": "m", "lora-rnak": 8, "batch": 2], source: "run.yaml")) { e in
            let text = "\(e)"
            XCTAssertTrue(text.hasPrefix("run.yaml: 'batch', 'lora-rnak': unknown options"), text)
        }
        XCTAssertThrowsError(try FineTuneConfig(options: ["batch-size": "four"], source: "run.yaml")) { e in
            XCTAssertEqual("\(e)", "run.yaml: 'batch-size': expected a whole number")
        }
        XCTAssertThrowsError(try FineTuneConfig(options: ["schedule": "cosin"], source: "run.yaml")) { e in
            XCTAssertEqual("\(e)", "run.yaml: 'schedule': 'cosin' is not one of cosine, linear, constant")
        }
        // A non-finite number (YAML's .nan, `--lr inf`) reads, and validation then refuses it by name.
        XCTAssertThrowsError(try FineTuneConfig(options: ["model": "m", "data": "d", "lr": Double.nan], source: "run.yaml").validate()) { e in
            XCTAssertEqual("\(e)", "--lr must be a finite number ≥ 0, not nan")
        }
        XCTAssertThrowsError(try FineTuneConfig(options: ["model": "m", "data": "d", "beta1": Float.infinity], source: "run.yaml").validate()) { e in
            XCTAssertEqual("\(e)", "--beta1 must be in [0.0, 1.0), not inf")
        }
        XCTAssertThrowsError(try FineTuneConfig(options: ["lora-rank": 8, "lora_rank": 4], source: "run.yaml")) { e in
            XCTAssertTrue("\(e)".contains("the same option given twice"), "\(e)")
        }
        XCTAssertThrowsError(try FineTuneConfig(json: Data("{\"trainer\": {}}".utf8), source: "old/itune_config.json")) { e in
            XCTAssertTrue("\(e)".hasPrefix("old/itune_config.json: 'trainer': unknown option"), "\(e)")
        }
    }

    func testEveryFieldOfTheConfigHasAKey() {
        // The Swift fields and the option each is read and written as. A field added to
        // FineTuneConfig, TrainerOptions, LoRAConfig or AdamWConfig fails here until it has one.
        let keys: [String: String] = [
            "model": "model", "data": "data", "mixture": "mixture", "format": "format", "validationData": "validation-data",
            "validationSplit": "validation-split", "template": "template", "output": "output", "mode": "full", "lora": "",
            "trainer": "", "maxLength": "max-length", "packing": "packing", "trainOnInputs": "train-on-inputs",
            "skipBadRecords": "skip-bad-records", "initAdapter": "init-adapter", "padID": "pad-id", "resume": "resume",
            "resumeAnyway": "resume-anyway", "samples": "samples", "baseDType": "base-dtype", "precision": "precision",
            "gradCheckpoint": "grad-checkpoint", "quantize": "quantize", "doubleQuant": "double-quant", "quantizeEmbeddings": "quantize-embeddings",
            "bucketMB": "bucket-mb", "ranks": "ranks", "method": "method", "beta": "beta", "labelSmoothing": "label-smoothing",
            "lossType": "loss-type", "lambda": "lambda", "precomputeRef": "precompute-ref",
            "rank": "lora-rank", "alpha": "lora-alpha", "dropout": "lora-dropout", "targetModules": "lora-targets",
            "useRSLoRA": "rslora",
            "batchSize": "batch-size", "gradientAccumulation": "grad-accum", "epochs": "epochs", "maxSteps": "max-steps",
            "optimizer": "", "warmupRatio": "warmup-ratio", "warmupSteps": "warmup-steps", "decay": "schedule",
            "maxGradNorm": "max-grad-norm", "seed": "seed", "evalEvery": "eval-every", "saveEvery": "save-every",
            "keepCheckpoints": "keep-checkpoints", "nanPolicy": "nan-policy", "logEvery": "log-every", "profile": "profile",
            "learningRate": "lr", "beta1": "beta1", "beta2": "beta2", "eps": "adam-eps", "weightDecay": "weight-decay",
        ]
        let d = FineTuneConfig()
        for value in [d, d.lora, d.trainer, d.trainer.optimizer] as [Any] {
            for label in Mirror(reflecting: value).children.compactMap(\.label) {
                // TrainerOptions.padID is filled by the job from FineTuneConfig.padID.
                if value is TrainerOptions && label == "padID" { continue }
                // TrainerOptions.preference is filled by the job from method, beta, label-smoothing, loss-type, lambda.
                if value is TrainerOptions && label == "preference" { continue }
                guard let key = keys[label] else { XCTFail("\(type(of: value)).\(label) has no config key"); continue }
                XCTAssertTrue(key.isEmpty || FineTuneConfig.option(key) != nil, "\(label) → \(key)")
            }
        }
    }

    func testHelpStatesTheDefaultsOfTheStruct() {
        let d = FineTuneConfig()
        XCTAssertTrue(FineTuneConfig.help(for: "lora-rank").hasSuffix("(default \(d.lora.rank))."))
        XCTAssertTrue(FineTuneConfig.help(for: "batch_size").hasSuffix("(default \(d.trainer.batchSize))."))
        XCTAssertTrue(FineTuneConfig.help(for: "lr").hasSuffix("(default \(d.trainer.optimizer.learningRate))."))
        XCTAssertTrue(FineTuneConfig.options.allSatisfy { !$0.help.isEmpty })
        XCTAssertEqual(Set(FineTuneConfig.options.map(\.name)).count, FineTuneConfig.options.count)
    }

    func testWrittenConfigReproducesTheRunAndRecordsThePadIDUsed() throws {
        let work = workDirectory("reproduce")
        let config = try Self.tinyRun(in: work)
        let first = try FineTuneJob(config: config, device: .cpu).run(log: { _ in })
        let written = work.appendingPathComponent("out/itune_config.json")

        // The pad id recorded is the one batches were padded with: this tokenizer has no pad
        // token, so its eos, looked up here in the fixture's own files.
        let dir = Self.fixtures.appendingPathComponent("tokenizers/llama3_style")
        let tokenizerConfig = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("tokenizer_config.json")))
            as? [String: Any]
        XCTAssertNil(tokenizerConfig?["pad_token"])
        let eos = try XCTUnwrap(tokenizerConfig?["eos_token"] as? String)
        let tokenizerJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("tokenizer.json")))
            as? [String: Any]
        let added = (tokenizerJSON?["added_tokens"] as? [[String: Any]]) ?? []
        let padID = try XCTUnwrap(added.first { $0["content"] as? String == eos }?["id"] as? Int)
        XCTAssertEqual(padID, 985)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: written)) as? [String: Any])
        XCTAssertEqual(object["pad-id"] as? Int, padID)
        XCTAssertNotEqual(padID, 0)

        // Read back as `--config` reads a mapping, into a new output directory: the same curve.
        var again = try FineTuneConfig(options: object, source: written.path)
        XCTAssertEqual(again.lora.rank, 4)
        XCTAssertEqual(again.trainer.maxSteps, 4)
        again.output = work.appendingPathComponent("again").path
        let second = try FineTuneJob(config: again, device: .cpu).run(log: { _ in })
        XCTAssertEqual(second.summary.history.count, 4)
        XCTAssertEqual(second.summary.history.map(\.1), first.summary.history.map(\.1))
    }

    func testResumeRefusesOptionsThatChangeTheLossCurveAndNamesEach() throws {
        let work = workDirectory("resume")
        var config = try Self.tinyRun(in: work)
        config.trainer.saveEvery = 2
        _ = try FineTuneJob(config: config, device: .cpu).run(log: { _ in })

        var changed = config
        changed.resume = true
        changed.trainer.batchSize = 1
        changed.trainer.seed = 43
        changed.lora.rank = 2
        changed.trainer.saveEvery = 1  // how often it saves does not change the curve
        changed.samples = 1
        XCTAssertThrowsError(try FineTuneJob(config: changed, device: .cpu).run(log: { _ in })) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("--batch-size 2 → 1"), text)
            XCTAssertTrue(text.contains("--seed 42 → 43"), text)
            XCTAssertTrue(text.contains("--lora-rank 4 → 2"), text)
            XCTAssertFalse(text.contains("save-every"), text)
            XCTAssertFalse(text.contains("samples"), text)
            XCTAssertTrue(text.contains("--resume-anyway"), text)
        }
        // What the refusal compares, directly: only the curve-changing options.
        XCTAssertEqual(changed.curveChanges(from: config), ["--lora-rank 4 → 2", "--batch-size 2 → 1", "--seed 42 → 43"])

        // Unchanged options (but the checkpoint interval) resume; --resume-anyway overrides a change.
        var same = config
        same.resume = true
        same.trainer.saveEvery = 1
        XCTAssertNoThrow(try FineTuneJob(config: same, device: .cpu).run(log: { _ in }))
        var anyway = changed
        anyway.lora.rank = 4
        anyway.resumeAnyway = true
        var logged: [String] = []
        XCTAssertNoThrow(try FineTuneJob(config: anyway, device: .cpu).run(log: { logged.append($0) }))
        XCTAssertTrue(logged.contains { $0.hasPrefix("warning: --resume-anyway with changed options: --batch-size 2 → 1; --seed 42 → 43") },
                      "\(logged)")
    }
}
