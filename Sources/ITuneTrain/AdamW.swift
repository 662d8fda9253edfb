import ITuneTensor

/// AdamW over a fixed list of parameters, with its moment buffers allocated once.
///
/// Two ways to step: `update(learningRate:)` takes t from the host (after the caller clipped,
/// e.g. with `clipGradients`), and `step(losses:maxGradNorm:…)` decides clipping, divergence
/// and t on the parameters' device (`prepareOptimizerStep`), so that nothing is read back until
/// `readSteps` brings the steps' records home.
public final class AdamW {
    public var config: AdamWConfig
    public let parameters: [Tensor]
    /// Steps taken so far; the next update uses step + 1 for bias correction. After `step(…)`
    /// it is brought up to date by `readSteps` (t lives on the device in between).
    public private(set) var step = 0
    /// First and second moments of each parameter, in `parameters` order.
    public private(set) var moments: [(m: Tensor, v: Tensor)]
    /// The device-side state of the steps (t, halted, the current step's scale and bias
    /// corrections, and records of the steps since the last read).
    public let control: StepControl

    /// `stepRecords`: how many `step(…)` calls may come between two `readSteps`.
    public init(parameters: [Tensor], config: AdamWConfig, stepRecords: Int = 1) throws {
        self.config = config
        self.parameters = parameters.filter(\.requiresGrad)
        moments = try self.parameters.map {
            (try Tensor.zeros($0.shape, on: $0.device), try Tensor.zeros($0.shape, on: $0.device))
        }
        control = try StepControl(records: max(1, stepRecords), on: self.parameters.first?.device ?? .cpu)
    }

    /// Applies one update to every parameter that has a gradient, at `learningRate` (default
    /// the config's), with t counted on the host and the gradients as they are (clip first).
    public func update(learningRate: Float? = nil) throws {
        step += 1
        try control.setHostStep(step, config: config)
        for (p, state) in zip(parameters, moments) {
            guard let g = p.grad else { continue }
            try p.adamWUpdate(grad: g, m: state.m, v: state.v, config: config, learningRate: learningRate, control: control)
        }
    }

    /// One optimizer step decided on the device: the gradients' global norm, clipping to
    /// `maxGradNorm` (≤ 0: no clipping), the divergence check of the norm and of `losses` (the
    /// step's weighted micro-batch losses, which sum to its loss), then the update of every
    /// parameter with a gradient, skipped on the device when the step is not finite.
    /// `haltOnNonFinite`: a non-finite step also skips every later update until the host reads.
    /// The step's loss, norm and skip flag go to record `record` (0 for the first step after a
    /// read). Reads nothing back.
    public func step(losses: [Tensor], maxGradNorm: Float, learningRate: Float? = nil, haltOnNonFinite: Bool,
                     record: Int) throws {
        try prepareOptimizerStep(parameters, losses: losses, maxNorm: maxGradNorm > 0 ? maxGradNorm : .infinity,
                                 beta1: config.beta1, beta2: config.beta2, haltOnNonFinite: haltOnNonFinite,
                                 record: record, control: control)
        for (p, state) in zip(parameters, moments) {
            guard let g = p.grad else { continue }
            try p.adamWUpdate(grad: g, m: state.m, v: state.v, config: config, learningRate: learningRate, control: control)
        }
    }

    /// The records of the last `count` `step(…)` calls, in one read; `step` becomes the
    /// device's count of applied updates.
    public func readSteps(_ count: Int) throws -> StepControl.Readout {
        let r = try control.read(records: count)
        step = r.step
        return r
    }

    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    /// Restores a checkpoint's step count and moments (values in `parameters` order).
    public func restore(step: Int, moments values: [(m: [Float], v: [Float])]) throws {
        guard values.count == moments.count else {
            throw TensorError.invalidArgument(op: "AdamW.restore", "\(values.count) moment pairs for \(moments.count) parameters")
        }
        for (state, v) in zip(moments, values) {
            try state.m.assign(v.m)
            try state.v.assign(v.v)
        }
        try control.setStep(step)
        self.step = step
    }
}
