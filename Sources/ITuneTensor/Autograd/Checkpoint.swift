import Foundation

// Gradient checkpointing (`--grad-checkpoint`): a segment of the forward — one decoder block —
// runs without recording, so that only its input and output stay alive; the backward runs it
// again with recording on (same weights, same dropout masks, same precision) on a tape of its
// own and propagates the output's gradient through that recomputation.

extension GradientTape {
    /// The tape a checkpoint's recomputation records on, over the context's and the thread's.
    @TaskLocal static var recomputing: GradientTape?
}

extension TrainingContext {
    /// Whether this context's forward passes checkpoint their blocks (models ask through
    /// `Tensor.checkpointed`).
    public static var checkpointsBlocks: Bool {
        GradMode.enabled && (current?.gradientCheckpointing ?? false)
    }
}

extension Tensor {
    /// `body(x)` computed with gradient checkpointing when the bound training context asks for
    /// it and grad mode is on; else `body(x)` as is. `parameters` are every tensor `body` reads
    /// that may require gradients (the block's weights, its LoRA factors): they receive their
    /// gradients during the recomputation, as if `body` had recorded on the outer tape.
    /// `body` must be a function of `x` and `parameters` only: it is called twice.
    public static func checkpointed(_ x: Tensor, parameters: [Tensor],
                                    _ body: @escaping (Tensor) throws -> Tensor) throws -> Tensor {
        guard TrainingContext.checkpointsBlocks,
              x.requiresGrad || parameters.contains(where: { $0.requiresGrad }) else { return try body(x) }
        return try checkpoint(x, parameters: parameters, body)
    }

    /// Always checkpoints (tests call it directly; models go through `checkpointed`).
    static func checkpoint(_ x: Tensor, parameters: [Tensor],
                           _ body: @escaping (Tensor) throws -> Tensor) throws -> Tensor {
        // What decides the recomputation besides x and the weights: the context (its dropout
        // seed, matmul precision) and the micro-batch index (the dropout masks).
        let context = TrainingContext.current
        let index = context?.microBatchIndex
        let output = try noGrad { try body(x) }
        let xRequiresGrad = x.requiresGrad
        GradientTape.record("checkpoint", inputs: [x] + parameters, output: output) { g in
            // A leaf over x's storage: the recomputation's gradient for x collects on it.
            let input = Tensor(storage: x.storage, shape: x.shape, dtype: x.dtype, requiresGrad: xRequiresGrad)
            let tape = GradientTape()
            let run = {
                try GradMode.$enabled.withValue(true) {
                    try GradientTape.$recomputing.withValue(tape) { try body(input) }
                }
            }
            let y: Tensor
            if let context {
                if let index { y = try context.microBatch(Int(truncatingIfNeeded: index), run) } else { y = try context.run(run) }
            } else {
                y = try run()
            }
            // Parameters are leaves: the recomputation's backward accumulates into their gradients.
            if y.requiresGrad { try tape.backward(from: y, seed: g) }
            return [xRequiresGrad ? input.grad : nil] + parameters.map { _ in nil }
        }
        return output
    }
}
