import XCTest
@testable import ITuneTensor

/// Clipping, the divergence check and AdamW's bias corrections decided on the device
/// (`prepareOptimizerStep` + `adamWUpdate(…control:)`): the same numbers as the host's two
/// passes (`clipGradients`, then `adamWUpdate(step:)`), on the CPU path and OpenCL alike, with
/// nothing read back.
final class OptimizerStepTests: XCTestCase {
    static let config = AdamWConfig(learningRate: 3e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1)
    static let shapes = [[7], [33, 5], [257]]

    var devices: [Device] { [Device.cpu] + [try? TestDevices.requireOpenCL()].compactMap { $0 } }

    /// Parameters with fresh gradients `scale`·random (seeded by `step`): tensor `a` is shared by
    /// two parameters, as autograd may hand one buffer to both sides of an addition.
    func setGradients(_ params: [Tensor], step: Int, scale: Float, device: Device) throws {
        for (i, p) in params.enumerated() {
            p.grad = try Tensor(randomValues(p.count, seed: UInt64(100 * step + i), scale: scale), shape: p.shape, on: device)
        }
    }

    func parameters(on device: Device) throws -> [Tensor] {
        try Self.shapes.enumerated().map { i, s in
            try Tensor(randomValues(s.reduce(1, *), seed: UInt64(i + 1)), shape: s, on: device, requiresGrad: true)
        }
    }

    /// Three steps, each with its own gradient scale: clipping on (scale 5), off (0.01), on.
    static let gradientScales: [Float] = [5, 0.01, 3]

    /// The host's way: clip in place (one read of the norm), then AdamW with t from the host.
    func twoPass(on device: Device, maxNorm: Float) throws -> (params: [Float], norms: [Float]) {
        let params = try parameters(on: device)
        let state = try params.map { (try Tensor.zeros($0.shape, on: device), try Tensor.zeros($0.shape, on: device)) }
        var norms: [Float] = []
        for (k, scale) in Self.gradientScales.enumerated() {
            try setGradients(params, step: k, scale: scale, device: device)
            norms.append(try clipGradients(params, maxNorm: maxNorm))
            for (p, s) in zip(params, state) {
                try p.adamWUpdate(grad: p.grad!, m: s.0, v: s.1, step: k + 1, config: Self.config, learningRate: 1e-2 * Float(k + 1))
            }
        }
        return (try params.flatMap { try $0.toArray() }, norms)
    }

    /// The device's way: one prepare, the updates, records read once at the end.
    func onDevice(on device: Device, maxNorm: Float) throws -> (params: [Float], readout: StepControl.Readout, syncs: Int, down: Int) {
        let params = try parameters(on: device)
        let state = try params.map { (try Tensor.zeros($0.shape, on: device), try Tensor.zeros($0.shape, on: device)) }
        let control = try StepControl(records: Self.gradientScales.count, on: device)
        let backend = try device.backend()
        try backend.synchronize()
        let before = backend.counters
        for (k, scale) in Self.gradientScales.enumerated() {
            try setGradients(params, step: k, scale: scale, device: device)
            let loss = try Tensor([Float(k) + 0.5], shape: [1], on: device)
            try prepareOptimizerStep(params, losses: [loss, loss], maxNorm: maxNorm, beta1: Self.config.beta1, beta2: Self.config.beta2,
                                     haltOnNonFinite: true, record: k, control: control)
            for (p, s) in zip(params, state) {
                try p.adamWUpdate(grad: p.grad!, m: s.0, v: s.1, config: Self.config, learningRate: 1e-2 * Float(k + 1), control: control)
            }
        }
        let during = backend.counters.since(before)
        return (try params.flatMap { try $0.toArray() }, try control.read(records: Self.gradientScales.count),
                during.blockingSyncs, during.bytesDownloaded)
    }

    func testDeviceClippedStepMatchesTheTwoPassClipAndUpdateOnBothBackends() throws {
        var results: [Device: [Float]] = [:]
        for device in devices {
            for maxNorm in [Float(1), .infinity] {
                let want = try twoPass(on: device, maxNorm: maxNorm)
                let got = try onDevice(on: device, maxNorm: maxNorm)
                assertClose(got.params, want.params, rtol: 2e-6, atol: 1e-7, "\(device), maxNorm \(maxNorm)")
                XCTAssertEqual(got.readout.step, 3, "t counts the applied updates")
                XCTAssertFalse(got.readout.halted)
                for (k, r) in got.readout.records.enumerated() {
                    XCTAssertEqual(r.gradNorm, want.norms[k], accuracy: 2e-6 * want.norms[k], "\(device) step \(k + 1)")
                    XCTAssertEqual(r.loss, 2 * (Float(k) + 0.5), "the step's loss is the sum of its weighted losses")
                    XCTAssertFalse(r.skipped)
                }
                // The step itself reads nothing back.
                XCTAssertEqual(got.syncs, 0, "\(device)")
                XCTAssertEqual(got.down, 0, "\(device)")
                if maxNorm == 1 { results[device] = got.params }
            }
            // Clipping was on in steps 1 and 3 (norms far above 1) and off in step 2.
            let norms = try twoPass(on: device, maxNorm: 1).norms
            XCTAssertGreaterThan(norms[0], 1)
            XCTAssertLessThan(norms[1], 1)
        }
        if let cl = devices.first(where: { $0 != .cpu }) {
            assertClose(results[cl]!, results[.cpu]!, rtol: 1e-6, atol: 1e-7, "OpenCL vs CPU")
        }
    }

    /// The bias corrections computed on the device (float, −expm1(t·log β)) against the
    /// host's Double 1 − βᵗ, over many steps.
    func testBiasCorrectionsOnTheDeviceMatchDoubleOverManySteps() throws {
        for device in devices {
            let control = try StepControl(records: 0, on: device)
            for t in 1...3000 {
                try prepareOptimizerStep([], losses: [], maxNorm: 1, beta1: 0.9, beta2: 0.999, haltOnNonFinite: false, record: -1,
                                         control: control)
                guard [1, 2, 10, 100, 999, 3000].contains(t) else { continue }
                let k = try control.tensor.toArray()
                XCTAssertEqual(k[StepControl.Field.step], Float(t))
                let want1 = 1 - pow(Double(Float(0.9)), Double(t)), want2 = (1 - pow(Double(Float(0.999)), Double(t))).squareRoot()
                XCTAssertEqual(Double(k[StepControl.Field.bc1]), want1, accuracy: 3e-7 * want1, "\(device) t \(t)")
                XCTAssertEqual(Double(k[StepControl.Field.bc2Sqrt]), want2, accuracy: 3e-7 * want2, "\(device) t \(t)")
                XCTAssertEqual(k[StepControl.Field.scale], 1, "no gradients: norm 0, no clipping")
            }
        }
    }

    /// A NaN gradient or loss skips the update on the device (parameters and moments stay,
    /// t does not move); with haltOnNonFinite every later update is skipped too, without it the
    /// next finite step goes on.
    func testNonFiniteStepIsSkippedOnTheDeviceAndHaltsOnlyWhenAsked() throws {
        for device in devices {
            for halt in [true, false] {
                let p = try Tensor([1, 2, 3], shape: [3], on: device, requiresGrad: true)
                let m = try Tensor.zeros([3], on: device), v = try Tensor.zeros([3], on: device)
                let control = try StepControl(records: 4, on: device)
                var after: [[Float]] = []
                let steps: [(grad: [Float], loss: Float)] = [([0.1, 0.2, 0.3], 1), ([.nan, 0, 0], 1), ([0.1, 0.1, 0.1], .infinity),
                                                             ([0.3, 0.2, 0.1], 2)]
                for (k, s) in steps.enumerated() {
                    p.grad = try Tensor(s.grad, shape: [3], on: device)
                    try prepareOptimizerStep([p], losses: [Tensor([s.loss], shape: [1], on: device)], maxNorm: 1, beta1: 0.9,
                                             beta2: 0.999, haltOnNonFinite: halt, record: k, control: control)
                    try p.adamWUpdate(grad: p.grad!, m: m, v: v, config: Self.config, control: control)
                    after.append(try p.toArray())
                }
                let r = try control.read(records: 4)
                XCTAssertEqual(r.records.map(\.skipped), [false, true, true, halt], "\(device) halt \(halt)")
                XCTAssertTrue(r.records[1].gradNorm.isNaN)
                XCTAssertTrue(r.records[2].loss.isInfinite)
                XCTAssertEqual(after[1], after[0], "a NaN gradient changes nothing")
                XCTAssertEqual(after[2], after[0], "an infinite loss changes nothing")
                XCTAssertEqual(r.halted, halt)
                if halt {
                    XCTAssertEqual(after[3], after[0], "halted: the finite step after is held too")
                    XCTAssertEqual(r.step, 1)
                } else {
                    XCTAssertNotEqual(after[3], after[0])
                    XCTAssertEqual(r.step, 2, "the skipped steps do not count for the bias correction")
                    XCTAssertTrue(after[3].allSatisfy(\.isFinite))
                }
                // setStep resumes a count and clears the halt.
                try control.setStep(7)
                let resumed = try control.read(records: 0)
                XCTAssertEqual(resumed.step, 7)
                XCTAssertFalse(resumed.halted)
            }
        }
    }

    func testPrepareRejectsBadLossesRecordsAndDevices() throws {
        let p = try Tensor([1, 2], shape: [2], requiresGrad: true)
        p.grad = try Tensor([1, 1], shape: [2])
        let control = try StepControl(records: 2, on: .cpu)
        XCTAssertThrowsError(try prepareOptimizerStep([p], losses: [p], maxNorm: 1, beta1: 0.9, beta2: 0.99, haltOnNonFinite: true,
                                                      record: 0, control: control))
        XCTAssertThrowsError(try prepareOptimizerStep([p], losses: [], maxNorm: 1, beta1: 0.9, beta2: 0.99, haltOnNonFinite: true,
                                                      record: 2, control: control))
        XCTAssertThrowsError(try control.read(records: 3))
        XCTAssertThrowsError(try control.setStep(-1))
        if let cl = try? TestDevices.requireOpenCL() {
            let remote = try StepControl(records: 1, on: cl)
            XCTAssertThrowsError(try prepareOptimizerStep([p], losses: [], maxNorm: 1, beta1: 0.9, beta2: 0.99, haltOnNonFinite: true,
                                                          record: 0, control: remote))
        }
    }
}
