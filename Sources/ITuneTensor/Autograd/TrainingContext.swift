import Foundation

/// The state of one training run that ops and models read while it runs: the gradient tape
/// its forward passes record on, and the key of the micro-batch being computed (which decides
/// the dropout masks).
///
/// The trainer creates one per run and binds it around each forward and backward
/// (`microBatch(_:_:)`, `run(_:)`); the binding is task-local, so two runs — two models on two
/// devices, a policy beside a frozen reference — each keep their own tape and masks in one
/// process, whether they interleave on one thread or run on several.
public final class TrainingContext {
    /// Where the forward passes run inside this context record.
    public let tape = GradientTape()
    /// The run's seed: dropout masks derive from it and the micro-batch index.
    public let seed: UInt64
    /// The micro-batch being computed; nil outside one (dropout is then off, as in inference).
    public private(set) var microBatchIndex: UInt64?

    /// The precision of the linear layers' matmuls in this run's forward passes: `.bf16` rounds
    /// their inputs and outputs to bf16 and reads a bf16 copy of the f32 master weight, as
    /// PyTorch's autocast does (accumulation stays f32). Outside a context: f32.
    public var matmulPrecision = MatmulPrecision.f32

    /// The context bound to the current task or thread, if any.
    @TaskLocal public static var current: TrainingContext?

    public init(seed: UInt64) { self.seed = seed }

    /// Runs `body` with this context bound: ops record on its tape.
    public func run<T>(_ body: () throws -> T) rethrows -> T {
        try Self.$current.withValue(self, operation: body)
    }

    /// Runs the forward (and backward) of micro-batch `index` of the run: ops record on this
    /// context's tape and dropout draws the masks of (seed, index), so that a resumed run that
    /// replays the index replays the masks.
    public func microBatch<T>(_ index: Int, _ body: () throws -> T) rethrows -> T {
        let saved = microBatchIndex
        microBatchIndex = UInt64(truncatingIfNeeded: index)
        defer { microBatchIndex = saved }
        return try run(body)
    }

    /// The dropout seed of one dropout site (`site`: a stable hash of its module's name) in
    /// the current micro-batch of the bound context; nil when no micro-batch is running, which
    /// turns dropout off.
    public static func dropoutSeed(site: UInt64) -> UInt64? {
        guard let context = current, let index = context.microBatchIndex else { return nil }
        var mix = SplitMix64(seed: context.seed ^ (index &* 0x9E37_79B9_7F4A_7C15))
        return site ^ mix.next()
    }
}

/// The precision of the linear layers' matmuls (`--precision`).
public enum MatmulPrecision: String, Sendable, Codable, CaseIterable {
    /// f32 operands (the reference).
    case f32
    /// bf16 operands and results (f32 accumulation), f32 master weights and optimizer state.
    case bf16

    /// The precision of the bound training context (f32 outside one).
    public static var current: MatmulPrecision { TrainingContext.current?.matmulPrecision ?? .f32 }
}

extension Tensor {
    /// self (…, in) · weightᵀ (out, in) + bias at `precision`: under `.bf16` the input, the
    /// weight and the result are rounded to bf16 (the weight through a bf16 copy whose
    /// gradient goes to the f32 weight), as autocast computes `F.linear`.
    public func linear(_ weight: Tensor, bias: Tensor?, precision: MatmulPrecision) throws -> Tensor {
        guard precision == .bf16 else { return try linear(weight, bias: bias) }
        let y = try roundedToBFloat16().matmul(weight.converted(to: .bf16), transposeB: true)
        return try (bias.map { try y + $0 } ?? y).roundedToBFloat16()
    }
}
