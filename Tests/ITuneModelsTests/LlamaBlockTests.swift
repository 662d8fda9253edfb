import Foundation
import XCTest
@testable import ITuneModels
@testable import ITuneTensor

/// The first OpenCL device (PoCL in CI); see ITuneTensorTests/TestSupport.swift.
private func openCLDevice() throws -> Device {
    let listing = OpenCLRuntime.listDevices()
    for p in listing.platforms { if let d = p.devices.first { return .opencl(platform: p.index, device: d.index) } }
    if ProcessInfo.processInfo.environment["ITUNE_REQUIRE_OPENCL"] == "1" { XCTFail("no OpenCL device") }
    throw XCTSkip("no OpenCL device")
}

final class LlamaBlockTests: XCTestCase {
    /// Two layers, GQA (4 heads over 2 kv-heads), an odd vocabulary and sequence length.
    let config = ModelConfig(vocabSize: 61, hiddenSize: 48, intermediateSize: 80, numLayers: 2, numHeads: 4,
                             numKVHeads: 2, maxPositions: 32, tieWordEmbeddings: false)
    let (B, T) = (2, 9)

    func batch(on device: Device) throws -> (Tensor, Tensor) {
        var g = SplitMix64(seed: 5)
        let ids = (0..<B * T).map { _ in Int32(g.next() % UInt64(config.vocabSize)) }
        var targets = (0..<B * T).map { _ in Int32(g.next() % UInt64(config.vocabSize)) }
        targets[0] = -100; targets[3] = -100; targets[T] = -100
        return (try Tensor(indices: ids, shape: [B, T], on: device), try Tensor(indices: targets, shape: [B, T], on: device))
    }

    func lossAndGradients(on device: Device) throws -> (Float, [(String, [Float])]) {
        let model = try LlamaModel(config, seed: 11, on: device)
        model.setTrainable(true)
        let (ids, targets) = try batch(on: device)
        let loss = try model.loss(ids, targets: targets)
        try loss.backward()
        return (try loss.item(), try model.namedParameters().map { name, p in
            guard let g = p.grad else { throw TensorError.noGradient("no gradient for \(name)") }
            return (name, try g.toArray())
        })
    }

    func testTwoLayerModelLossAndEveryGradientEqualAcrossBackends() throws {
        let cl = try openCLDevice()
        let (cpuLoss, cpuGrads) = try lossAndGradients(on: .cpu)
        let (clLoss, clGrads) = try lossAndGradients(on: cl)
        XCTAssertEqual(clLoss, cpuLoss, accuracy: 1e-4 * abs(cpuLoss))
        // Random init gives a loss near ln(V).
        XCTAssertEqual(cpuLoss, log(Float(config.vocabSize)), accuracy: 0.2)
        XCTAssertEqual(cpuGrads.count, 2 * 9 + 3)
        for ((name, a), (_, b)) in zip(cpuGrads, clGrads) {
            let scale = a.map { abs($0) }.max() ?? 1
            XCTAssertGreaterThan(scale, 0, "\(name) has an all-zero gradient")
            for i in a.indices where abs(a[i] - b[i]) > 1e-4 * abs(a[i]) + 1e-4 * scale {
                XCTFail("\(name)[\(i)]: cpu \(a[i]) vs opencl \(b[i])")
                break
            }
        }
    }

    func testModelGradientsMatchFiniteDifferences() throws {
        let model = try LlamaModel(config, seed: 11, on: .cpu)
        model.setTrainable(true)
        let (ids, targets) = try batch(on: .cpu)
        try model.loss(ids, targets: targets).backward()
        let eps: Float = 1e-2
        var g = SplitMix64(seed: 9)
        for (name, p) in model.namedParameters() {
            let grad = try p.grad!.toArray()
            var values = try p.toArray()
            for _ in 0..<3 {
                let i = Int(g.next() % UInt64(values.count))
                let saved = values[i]
                values[i] = saved + eps; try p.assign(values)
                let plus = try noGrad { try model.loss(ids, targets: targets).item() }
                values[i] = saved - eps; try p.assign(values)
                let minus = try noGrad { try model.loss(ids, targets: targets).item() }
                values[i] = saved; try p.assign(values)
                let numeric = (plus - minus) / (2 * eps)
                XCTAssertEqual(grad[i], numeric, accuracy: 3e-3 + 0.05 * abs(numeric), "\(name)[\(i)]")
            }
        }
    }

    func testFrozenParametersRecordNothingAndGetNoGradient() throws {
        let model = try LlamaModel(config, seed: 11, on: .cpu)
        model.setTrainable(false)
        model.layers[1].mlp.down.weight.requiresGrad = true
        let (ids, targets) = try batch(on: .cpu)
        let context = TrainingContext(seed: 0)
        let loss = try context.run { try model.loss(ids, targets: targets) }
        // Only ops downstream of the one trainable weight are on the tape.
        XCTAssertGreaterThan(context.tape.count, 0)
        XCTAssertLessThan(context.tape.count, 12)
        try loss.backward()
        for (name, p) in model.namedParameters() {
            if name == "model.layers.1.mlp.down_proj.weight" { XCTAssertNotNil(p.grad, name) } else { XCTAssertNil(p.grad, name) }
        }
        XCTAssertEqual(context.tape.count, 0)
        _ = try context.run { try noGrad { try model.loss(ids, targets: targets) } }
        XCTAssertEqual(context.tape.count, 0, "noGrad records nothing")
    }
}
