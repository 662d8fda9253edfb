import Foundation
import XCTest
import ITune

/// Every numeric option is refused up front, with the option named, where PyTorch's AdamW and
/// PEFT's LoRA refuse it (or where it would trap or train nonsense).
final class OptionValidationTests: XCTestCase {
    /// A config that passes validation.
    var valid: FineTuneConfig { FineTuneConfig(model: "model", data: ["data.jsonl"]) }

    /// Asserts that `change` makes validation fail on `option`, and returns the message.
    @discardableResult
    func assertRefused(_ option: String, _ change: (inout FineTuneConfig) -> Void, file: StaticString = #filePath,
                       line: UInt = #line) -> String {
        var c = valid
        change(&c)
        do {
            try c.validate()
            XCTFail("--\(option) accepted", file: file, line: line)
        } catch let e as OptionError {
            XCTAssertEqual(e.option, option, "\(e)", file: file, line: line)
            XCTAssertTrue(e.description.hasPrefix("--\(option) "), e.description, file: file, line: line)
            return e.description
        } catch {
            XCTFail("not an OptionError: \(error)", file: file, line: line)
        }
        return ""
    }

    func testTheDefaultsAreValid() throws {
        XCTAssertNoThrow(try valid.validate())
        XCTAssertNoThrow(try TrainerOptions().validate())
        XCTAssertNoThrow(try GenerationOptions().validate())
    }

    func testLengthsCountsAndStepsMustBePositive() {
        XCTAssertEqual(assertRefused("max-length") { $0.maxLength = 0 }, "--max-length must be at least 1, not 0")
        assertRefused("max-length") { $0.maxLength = -5 }
        assertRefused("epochs") { $0.trainer.epochs = -1 }
        assertRefused("epochs") { $0.trainer.epochs = 0 }
        XCTAssertEqual(assertRefused("max-steps") { $0.trainer.maxSteps = -1 }, "--max-steps must be at least 1, not -1")
        assertRefused("max-steps") { $0.trainer.maxSteps = 0 }
        assertRefused("batch-size") { $0.trainer.batchSize = 0 }
        assertRefused("grad-accum") { $0.trainer.gradientAccumulation = 0 }
        assertRefused("warmup-steps") { $0.trainer.warmupSteps = -3 }
        assertRefused("save-every") { $0.trainer.saveEvery = -1 }
        assertRefused("eval-every") { $0.trainer.evalEvery = -2 }
        assertRefused("keep-checkpoints") { $0.trainer.keepCheckpoints = 0 }
        assertRefused("samples") { $0.samples = -1 }
        assertRefused("pad-id") { $0.padID = -1 }
        assertRefused("data") { $0.data = [] }
        assertRefused("model") { $0.model = "" }
    }

    func testFractionsMustLieInTheirIntervals() {
        XCTAssertEqual(assertRefused("validation-split") { $0.validationSplit = 1.5 }, "--validation-split must be in [0.0, 1.0), not 1.5")
        assertRefused("validation-split") { $0.validationSplit = 1 }
        assertRefused("validation-split") { $0.validationSplit = -0.1 }
        assertRefused("warmup-ratio") { $0.trainer.warmupRatio = 1.5 }
        assertRefused("warmup-ratio") { $0.trainer.warmupRatio = -0.1 }
        assertRefused("lora-dropout") { $0.lora.dropout = 1 }
        assertRefused("lora-dropout") { $0.lora.dropout = -0.5 }
        var edge = valid
        edge.validationSplit = 0
        edge.trainer.warmupRatio = 1
        edge.lora.dropout = 0
        XCTAssertNoThrow(try edge.validate())
    }

    func testAdamWOptionsAsPyTorchChecksThem() {
        // torch.optim.AdamW: lr ≥ 0, eps ≥ 0, 0 ≤ beta < 1, weight_decay ≥ 0.
        XCTAssertEqual(assertRefused("lr") { $0.trainer.optimizer.learningRate = -1 }, "--lr must be a finite number ≥ 0, not -1.0")
        assertRefused("lr") { $0.trainer.optimizer.learningRate = .nan }
        assertRefused("lr") { $0.trainer.optimizer.learningRate = .infinity }
        assertRefused("beta1") { $0.trainer.optimizer.beta1 = 1 }
        assertRefused("beta1") { $0.trainer.optimizer.beta1 = -0.1 }
        assertRefused("beta2") { $0.trainer.optimizer.beta2 = 1.5 }
        assertRefused("adam-eps") { $0.trainer.optimizer.eps = -1e-8 }
        assertRefused("weight-decay") { $0.trainer.optimizer.weightDecay = -0.01 }
        assertRefused("max-grad-norm") { $0.trainer.maxGradNorm = .nan }
        var edge = valid
        edge.trainer.optimizer.learningRate = 0
        edge.trainer.optimizer.beta1 = 0
        edge.trainer.optimizer.eps = 0
        edge.trainer.maxGradNorm = 0  // clipping off, as in transformers
        XCTAssertNoThrow(try edge.validate())
    }

    func testLoRAOptionsAsPEFTChecksThem() {
        assertRefused("lora-rank") { $0.lora.rank = -4 }
        assertRefused("lora-rank") { $0.lora.rank = 0 }
        assertRefused("lora-alpha") { $0.lora.alpha = 0 }
        assertRefused("lora-targets") { $0.lora.targetModules = [] }
        // Full fine-tuning has no adapter: its LoRA options are not looked at.
        var full = valid
        full.mode = .full
        full.lora.rank = 0
        XCTAssertNoThrow(try full.validate())
    }

    func testLoRARankIsBoundedByTheSmallerDimensionOfEachAdaptedLayer() throws {
        // hidden 32, 4 heads of 8 with 2 kv heads: k_proj and v_proj are 16×32, so r ≤ 16.
        let model = try LlamaModel(ModelConfig(vocabSize: 50, hiddenSize: 32, intermediateSize: 64, numLayers: 1, numHeads: 4,
                                               numKVHeads: 2, maxPositions: 64), seed: 1, on: .cpu)
        var c = valid
        c.lora.rank = 16
        XCTAssertNoThrow(try c.validate(for: model, lora: c.lora))
        c.lora.rank = 100_000
        XCTAssertThrowsError(try c.validate(for: model, lora: c.lora)) { e in
            XCTAssertEqual("\(e)", "--lora-rank must be at most 16, the smaller dimension of model.layers.0.self_attn.k_proj (16×32), not 100000")
        }
        XCTAssertTrue(model.loraAdapters.isEmpty, "nothing allocated")
        c.lora.rank = 17
        XCTAssertThrowsError(try c.validate(for: model, lora: c.lora))
        // Adapting only q_proj (32×32) allows r = 32.
        c.lora.rank = 32
        c.lora.targetModules = ["q_proj"]
        XCTAssertNoThrow(try c.validate(for: model, lora: c.lora))
        c.lora.targetModules = ["c_attn"]
        XCTAssertThrowsError(try c.validate(for: model, lora: c.lora)) { e in
            XCTAssertTrue("\(e)".hasPrefix("--lora-targets matches no module of this model (c_attn)"), "\(e)")
        }
        c.lora.targetModules = ["q_proj"]
        c.padID = 50
        XCTAssertThrowsError(try c.validate(for: model, lora: c.lora)) { e in
            XCTAssertEqual("\(e)", "--pad-id must be below the vocabulary size 50, not 50")
        }
    }

    func testFineTuneJobValidatesBeforeLoadingTheModel() {
        // The model directory does not exist: the option is what is reported, not the missing file.
        var c = FineTuneConfig(model: "/nonexistent/model", data: ["/nonexistent/data.jsonl"])
        c.trainer.epochs = -1
        XCTAssertThrowsError(try FineTuneJob(config: c, device: .cpu).run(log: { _ in })) { e in
            XCTAssertEqual(e as? OptionError, OptionError(option: "epochs", message: "must be at least 1, not -1"))
        }
    }

    func testTrainerAndEvaluationRefuseBadOptionsToo() throws {
        let model = try LlamaModel(ModelConfig(vocabSize: 20, hiddenSize: 8, intermediateSize: 16, numLayers: 1, numHeads: 2,
                                               numKVHeads: 1, maxPositions: 16), seed: 1, on: .cpu)
        var o = TrainerOptions()
        o.optimizer.beta2 = 1
        XCTAssertThrowsError(try Trainer(model: model, trainable: [], options: o, train: [TrainingRow(ids: [1, 2], labels: [1, 2])],
                                         outputDirectory: FileManager.default.temporaryDirectory)) { e in
            XCTAssertEqual((e as? OptionError)?.option, "beta2")
        }
        XCTAssertThrowsError(try evaluate(model, sequences: [([1, 2, 3], [1, 2, 3])], batchSize: 0)) { e in
            XCTAssertEqual("\(e)", "--batch-size must be at least 1, not 0")
        }
    }

    func testGenerationOptionsAreChecked() {
        func refused(_ o: GenerationOptions) -> String? {
            do { try o.validate(); return nil } catch { return (error as? OptionError)?.option }
        }
        XCTAssertEqual(refused(GenerationOptions(maxNewTokens: 0)), "max-new-tokens")
        XCTAssertEqual(refused(GenerationOptions(sampling: SamplingOptions(temperature: -0.5))), "temperature")
        XCTAssertEqual(refused(GenerationOptions(sampling: SamplingOptions(topK: -1))), "top-k")
        XCTAssertEqual(refused(GenerationOptions(sampling: SamplingOptions(topP: 0))), "top-p")
        XCTAssertEqual(refused(GenerationOptions(sampling: SamplingOptions(topP: 1.5))), "top-p")
        XCTAssertNil(refused(GenerationOptions(maxNewTokens: 1, sampling: SamplingOptions(temperature: 0.7, topK: 40, topP: 0.9))))
    }
}
