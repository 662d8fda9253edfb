import Foundation

// The device's half of an optimizer step: the global gradient norm, the clipping scale, the
// divergence check and AdamW's bias corrections are computed where the gradients are, and the
// AdamW kernel reads them from there, so a training step needs no number from the device.
// The host reads the step's results (loss, norm, skipped) when it logs, many steps at once.
// Kernel: Kernels/optim.cl `optimizer_step_prepare`; the update: `Tensor.adamWUpdate(…control:)`.

/// A small f32 tensor on the parameters' device holding what an optimizer step decides there:
/// a header [t, halted, scale, skip, bc1, bc2_sqrt, 0, 0], then `records` records of
/// [loss, grad norm, skipped] that the steps between two reads fill in (record k: the k-th
/// step after the last read).
public final class StepControl {
    /// Offsets in the header.
    public enum Field {
        /// Updates applied so far (AdamW's t; a skipped step does not count).
        public static let step = 0
        /// 1 once a non-finite step was seen with `haltOnNonFinite`: every later update is skipped.
        public static let halted = 1
        /// This step's clipping coefficient min(1, maxNorm / (norm + 1e-6)).
        public static let scale = 2
        /// 1 when this step's update is skipped.
        public static let skip = 3
        /// 1 − β1ᵗ and √(1 − β2ᵗ) for this step's t.
        public static let bc1 = 4
        public static let bc2Sqrt = 5
    }

    public static let headerCount = 8
    public static let recordWidth = 3

    /// What one step left in its record.
    public struct Record: Sendable, Equatable {
        /// Σ of the step's weighted micro-batch losses (its token-weighted mean loss).
        public var loss: Float
        /// The global gradient norm before clipping.
        public var gradNorm: Float
        /// The update was not applied (a non-finite loss or norm, or a halted run).
        public var skipped: Bool
    }

    /// The header and the first records, as one read brings them back.
    public struct Readout: Sendable, Equatable {
        /// Updates applied so far (t).
        public var step: Int
        public var halted: Bool
        public var records: [Record]
    }

    /// (headerCount + recordWidth · records) floats on the device.
    public let tensor: Tensor
    /// Room for this many steps between two reads.
    public let records: Int
    public var device: Device { tensor.device }

    /// A zeroed control (t = 0, not halted) with room for `records` step records.
    public init(records: Int, on device: Device) throws {
        guard records >= 0 else { throw TensorError.invalidArgument(op: "StepControl", "records must be ≥ 0, got \(records)") }
        self.records = records
        tensor = try Tensor.zeros([Self.headerCount + Self.recordWidth * records], on: device)
    }

    /// Sets t (updates applied so far) and clears `halted`: a resumed run continues its count.
    /// A small write; t must be below 2²⁴, where a float stops counting whole numbers.
    public func setStep(_ step: Int) throws {
        guard step >= 0, step < 1 << 24 else {
            throw TensorError.invalidArgument(op: "StepControl.setStep", "step must be in [0, 2^24), got \(step)")
        }
        try write([Float(step), 0])
    }

    /// A header for an update whose step is known on the host: t = `step` (from 1), no
    /// clipping, not skipped, the bias corrections computed in Double.
    public func setHostStep(_ step: Int, config c: AdamWConfig) throws {
        guard step >= 1, step < 1 << 24 else {
            throw TensorError.invalidArgument(op: "adamWUpdate", "step counts from 1 and stays below 2^24, got \(step)")
        }
        // Bias corrections in Double: β2ᵗ is within a few ulps of 1 for thousands of steps.
        let bc1 = Float(1 - pow(Double(c.beta1), Double(step)))
        let bc2Sqrt = Float((1 - pow(Double(c.beta2), Double(step))).squareRoot())
        try write([Float(step), 0, 1, 0, bc1, bc2Sqrt])
    }

    /// The header and records 0..<count, in one read (one blocking synchronisation on OpenCL).
    public func read(records count: Int) throws -> Readout {
        guard count >= 0, count <= records else {
            throw TensorError.invalidArgument(op: "StepControl.read", "\(count) records asked, room for \(records)")
        }
        let n = Self.headerCount + Self.recordWidth * count
        var host = [Float](repeating: 0, count: n)
        try host.withUnsafeMutableBytes { try tensor.backend.read(tensor.storage, into: $0.baseAddress!, byteCount: n * 4) }
        let records = (0..<count).map { k -> Record in
            let o = Self.headerCount + Self.recordWidth * k
            return Record(loss: host[o], gradNorm: host[o + 1], skipped: host[o + 2] != 0)
        }
        return Readout(step: Int(host[Field.step]), halted: host[Field.halted] != 0, records: records)
    }

    /// Writes the first values of the header (a prefix write).
    private func write(_ values: [Float]) throws {
        try values.withUnsafeBytes { try tensor.backend.write(tensor.storage, from: $0.baseAddress!, byteCount: values.count * 4) }
    }
}

/// The device's half of one optimizer step, before `adamWUpdate(…control:)`: reduces every
/// gradient of `parameters` (those without one are skipped) to the global norm
/// √(Σ over parameters of Σ g²), sums `losses` (one element each: the step's micro-batch losses,
/// each already weighted by its share of the step), and writes into `control`:
/// - the clipping scale min(1, maxNorm / (norm + 1e-6)), as `torch.nn.utils.clip_grad_norm_`
///   (pass `.infinity` for no clipping), applied by the update as it reads each gradient;
/// - skip = the norm or the loss is not finite, or the run is halted; with `haltOnNonFinite`
///   such a step also halts the run (every later update is skipped until the host has read it);
/// - t (+1 unless skipped) and the bias corrections 1 − β1ᵗ, √(1 − β2ᵗ) for that t;
/// - record `record` (when ≥ 0): the loss, the norm and the skip flag.
/// Nothing is read back. Gradients, losses and control must be on one device.
public func prepareOptimizerStep(_ parameters: [Tensor], losses: [Tensor], maxNorm: Float, beta1: Float, beta2: Float,
                                 haltOnNonFinite: Bool, record: Int, control: StepControl) throws {
    for s in losses where s.count != 1 || s.dtype != .f32 {
        throw TensorError.shapeMismatch(op: "prepareOptimizerStep", "a loss has \(s.count) elements of \(s.dtype.rawValue)")
    }
    guard record < control.records else {
        throw TensorError.invalidArgument(op: "prepareOptimizerStep", "record \(record) of a control with room for \(control.records)")
    }
    guard !maxNorm.isNaN else { throw TensorError.invalidArgument(op: "prepareOptimizerStep", "maxNorm is NaN") }
    let grads = parameters.compactMap(\.grad)
    let device = control.device
    for t in grads + losses where t.device != device {
        throw TensorError.deviceMismatch(op: "prepareOptimizerStep", device, t.device)
    }
    // Each gradient's Σg², then the losses, side by side in one small buffer.
    let sums = try Tensor.empty([max(1, grads.count + losses.count)], on: device)
    for (i, g) in grads.enumerated() { try g.sumOfSquares(into: sums, at: i) }
    for (j, loss) in losses.enumerated() {
        try sums.backend.copy(from: loss.storage, at: 0, to: sums.storage, at: (grads.count + j) * 4, byteCount: 4)
    }
    switch try execution("optimizerStepPrepare", control.tensor, sums) {
    case .cpu:
        let k = control.tensor.floats, s = sums.floats
        // The kernel's arithmetic, in its order.
        var total: Float = 0, loss: Float = 0
        for i in 0..<grads.count { total += s[i] }
        for i in 0..<losses.count { loss += s[grads.count + i] }
        let norm = total.squareRoot()
        let finite = norm.isFinite && loss.isFinite
        let skip = !finite || k[StepControl.Field.halted] != 0
        if !finite && haltOnNonFinite { k[StepControl.Field.halted] = 1 }
        let coef = maxNorm / (norm + 1e-6)
        let t = k[StepControl.Field.step] + (skip ? 0 : 1)
        k[StepControl.Field.step] = t
        k[StepControl.Field.scale] = coef < 1 ? coef : 1
        k[StepControl.Field.skip] = skip ? 1 : 0
        k[StepControl.Field.bc1] = t > 0 ? -expm1(t * log(beta1)) : 1
        k[StepControl.Field.bc2Sqrt] = t > 0 ? (-expm1(t * log(beta2))).squareRoot() : 1
        if record >= 0 {
            let o = StepControl.headerCount + StepControl.recordWidth * record
            k[o] = loss
            k[o + 1] = norm
            k[o + 2] = skip ? 1 : 0
        }
    case let .opencl(cl):
        try cl.optimizerStepPrepare(.items(1), control: control.tensor, sums: sums, nSums: grads.count, nLosses: losses.count,
                                    maxNorm: maxNorm, beta1: beta1, beta2: beta2, halt: haltOnNonFinite, record: record)
    }
}
