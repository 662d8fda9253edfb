import Foundation
import XCTest
import ITuneModels
import ITuneTensor
@testable import ITuneTrain

/// Training state belongs to a run, not to the process: two models — here on two devices,
/// the CPU path and the OpenCL device (PoCL in CI) — train interleaved in one process and each
/// gives exactly the loss curve it gives alone.
final class TrainingContextTests: XCTestCase {
    /// The first OpenCL device; a failure under ITUNE_REQUIRE_OPENCL=1 when there is none.
    func openCLDevice() throws -> Device { try TrainerFixtures.openCLDevice() }

    /// A tiny Llama with LoRA adapters whose dropout is on, so that the masks (keyed by the
    /// run's context) matter to the curve.
    func loraModel(seed: UInt64, on device: Device) throws -> LlamaModel {
        let model = try LlamaModel(ModelConfig(vocabSize: 40, hiddenSize: 16, intermediateSize: 32, numLayers: 2, numHeads: 2,
                                               numKVHeads: 1, maxPositions: 64), seed: seed, on: device)
        try model.addLoRA(LoRAConfig(rank: 4, alpha: 8, dropout: 0.2), seed: seed)
        // Start B away from zero so that A's gradients are not zero and the curve moves at once.
        for (name, t) in model.loraParameters where name.contains("lora_B") {
            try t.assign(randomValues(t.count, seed: seed ^ fnv1a64(name), scale: 0.1))
        }
        return model
    }

    func randomValues(_ n: Int, seed: UInt64, scale: Float) -> [Float] {
        var g = SplitMix64(seed: seed)
        return (0..<n).map { _ in scale * (2 * g.nextFloat() - 1) }
    }

    func trainer(_ model: LlamaModel, seed: UInt64, steps: Int, _ name: String) throws -> Trainer {
        var o = TrainerOptions()
        o.batchSize = 4
        o.maxSteps = steps
        o.seed = seed
        o.warmupSteps = 1
        o.optimizer = AdamWConfig(learningRate: 1e-2, weightDecay: 0.01)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-context-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return try Trainer(model: model, trainable: model.loraParameters, options: o, train: TrainerTests.rows(24, seed: seed),
                           outputDirectory: dir)
    }

    /// Two trainers on two devices, on two threads, handing over after every optimizer step
    /// (A step 1, B step 1, A step 2, …): each curve equals its curve alone, bit for bit.
    func testTwoTrainersOnTwoDevicesInterleavedStepByStepGiveTheirSoloCurves() throws {
        let gpu = try openCLDevice()
        let steps = 6
        let soloA = try trainer(loraModel(seed: 5, on: .cpu), seed: 5, steps: steps, "soloA").run().history
        let soloB = try trainer(loraModel(seed: 9, on: gpu), seed: 9, steps: steps, "soloB").run().history

        let a = try trainer(loraModel(seed: 5, on: .cpu), seed: 5, steps: steps, "A")
        let b = try trainer(loraModel(seed: 9, on: gpu), seed: 9, steps: steps, "B")
        let turnA = DispatchSemaphore(value: 1), turnB = DispatchSemaphore(value: 0)
        let results = Results()
        @Sendable func run(_ t: Trainer, _ name: String, mine: DispatchSemaphore, theirs: DispatchSemaphore) {
            mine.wait()
            do {
                let summary = try t.run { event in
                    guard case .step = event else { return }
                    results.stepped(name)
                    theirs.signal()
                    mine.wait()
                }
                results.set(name, .success(summary.history.map { $0.1 }))
            } catch {
                results.set(name, .failure(error))
            }
            theirs.signal()
        }
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { run(a, "A", mine: turnA, theirs: turnB) }
        DispatchQueue.global().async(group: group) { run(b, "B", mine: turnB, theirs: turnA) }
        XCTAssertEqual(group.wait(timeout: .now() + 300), .success)

        XCTAssertEqual(results.order, Array(repeating: ["A", "B"], count: steps).flatMap { $0 }, "strictly interleaved")
        let curveA = try XCTUnwrap(results.get("A")).get(), curveB = try XCTUnwrap(results.get("B")).get()
        XCTAssertEqual(curveA, soloA.map { $0.1 }, "CPU model's curve beside the OpenCL one")
        XCTAssertEqual(curveB, soloB.map { $0.1 }, "OpenCL model's curve beside the CPU one")
        XCTAssertNotEqual(curveA.first, curveA.last, "the curve moves")
    }

    /// On one thread, finer than a step: A's forward, B's forward, B's backward, A's backward.
    /// With one process-wide tape B's backward would have consumed A's recording; with one
    /// context each, both gradients equal those of each model alone.
    func testTwoContextsOnOneThreadKeepTheirOwnTapesAndDropoutMasks() throws {
        let gpu = try openCLDevice()
        let rows = TrainerTests.rows(4)
        let ids = rows.flatMap(\.ids), labels = rows.flatMap(\.labels)

        func gradients(_ model: LlamaModel) -> [[Float]] {
            model.loraParameters.map { (try? $0.1.grad?.toArray()) ?? [] }
        }
        func solo(seed: UInt64, on device: Device) throws -> (Float, [[Float]]) {
            let model = try loraModel(seed: seed, on: device)
            let context = TrainingContext(seed: seed)
            let loss = try context.microBatch(3) {
                try model.loss(Tensor(indices: ids, shape: [4, 10], on: device), labels: labels)
            }
            try loss.backward()
            return (try loss.item(), gradients(model))
        }
        let (lossA, gradsA) = try solo(seed: 5, on: .cpu)
        let (lossB, gradsB) = try solo(seed: 9, on: gpu)

        let modelA = try loraModel(seed: 5, on: .cpu), modelB = try loraModel(seed: 9, on: gpu)
        let contextA = TrainingContext(seed: 5), contextB = TrainingContext(seed: 9)
        let forwardA = try contextA.microBatch(3) {
            try modelA.loss(Tensor(indices: ids, shape: [4, 10], on: .cpu), labels: labels)
        }
        let forwardB = try contextB.microBatch(3) {
            try modelB.loss(Tensor(indices: ids, shape: [4, 10], on: gpu), labels: labels)
        }
        XCTAssertGreaterThan(contextA.tape.count, 0)
        XCTAssertGreaterThan(contextB.tape.count, 0)
        try forwardB.backward()
        XCTAssertEqual(contextB.tape.count, 0, "B's backward consumed B's tape")
        XCTAssertGreaterThan(contextA.tape.count, 0, "and left A's alone")
        try forwardA.backward()

        XCTAssertEqual(try forwardA.item(), lossA)
        XCTAssertEqual(try forwardB.item(), lossB)
        XCTAssertEqual(gradients(modelA), gradsA)
        XCTAssertEqual(gradients(modelB), gradsB)
        XCTAssertTrue(gradsA.allSatisfy { !$0.isEmpty && $0.contains { $0 != 0 } }, "every adapter got a gradient")
    }

    /// Dropout is on only inside a micro-batch, and its masks come from the run's seed and the
    /// micro-batch index: another seed or index gives another loss, the same ones the same.
    func testDropoutMasksDeriveFromTheContextSeedAndMicroBatch() throws {
        let model = try loraModel(seed: 5, on: .cpu)
        let rows = TrainerTests.rows(4)
        let ids = try Tensor(indices: rows.flatMap(\.ids), shape: [4, 10]), labels = rows.flatMap(\.labels)
        func loss(_ context: TrainingContext?, _ index: Int) throws -> Float {
            try noGrad {
                guard let context else { return try model.loss(ids, labels: labels).item() }
                return try context.microBatch(index) { try model.loss(ids, labels: labels).item() }
            }
        }
        let plain = try loss(nil, 0)
        XCTAssertEqual(try loss(TrainingContext(seed: 1), 0), try loss(TrainingContext(seed: 1), 0))
        XCTAssertNotEqual(try loss(TrainingContext(seed: 1), 0), plain, "dropout on inside a micro-batch")
        XCTAssertNotEqual(try loss(TrainingContext(seed: 1), 0), try loss(TrainingContext(seed: 2), 0))
        XCTAssertNotEqual(try loss(TrainingContext(seed: 1), 0), try loss(TrainingContext(seed: 1), 1))
        XCTAssertEqual(try TrainingContext(seed: 1).run { try noGrad { try model.loss(ids, labels: labels).item() } }, plain,
                       "bound but outside a micro-batch: no dropout")
    }
}

/// Results of the two threads.
private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String: Result<[Double], Error>] = [:]
    private var steps: [String] = []
    /// Who finished an optimizer step, in order.
    var order: [String] { lock.lock(); defer { lock.unlock() }; return steps }
    func stepped(_ name: String) { lock.lock(); steps.append(name); lock.unlock() }
    func set(_ key: String, _ value: Result<[Double], Error>) { lock.lock(); values[key] = value; lock.unlock() }
    func get(_ key: String) -> Result<[Double], Error>? { lock.lock(); defer { lock.unlock() }; return values[key] }
}
