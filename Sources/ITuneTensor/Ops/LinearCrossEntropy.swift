import Foundation

// The language-model head and its loss in one op, in chunks of rows: logits = hidden · Wᵀ are
// made for a few rows at a time, scored, and — when gradients are wanted — turned into the
// gradients of hidden and W at once, so the (N, V) logits matrix never exists whole. At a
// 152k vocabulary and 512 tokens that matrix and its gradient are 0.6 GB of a step's memory
// and as much traffic. The pieces are the ordinary ops: the GEMM and the fused cross-entropy
// (its backward run on a chunk's own tape).

extension Tensor {
    /// Mean cross-entropy of `self · weightᵀ` against `targets`, as
    /// `hidden.linear(weight).crossEntropy(targets:)` gives it, without keeping the logits.
    ///
    /// self is hidden (N, C) (leading dims flattened), weight (V, C), targets i32 (N) with
    /// `ignoreIndex` where no loss is taken. Returns shape []. `chunkRows` rows are scored at a
    /// time (default: even chunks of at most 256 MB of logits). The gradients of self and weight (for those that
    /// require them) are computed in the forward and scaled by the loss's gradient in the
    /// backward.
    public func linearCrossEntropy(weight: Tensor, targets: Tensor, ignoreIndex: Int32 = -100,
                                   chunkRows: Int? = nil) throws -> Tensor {
        guard let C = shape.last, weight.rank == 2, weight.shape[1] == C, weight.shape[0] > 0 else {
            throw TensorError.shapeMismatch(op: "linearCrossEntropy", "hidden \(shape) and weight \(weight.shape) (V, C) differ in C")
        }
        let V = weight.shape[0], N = count / max(C, 1)
        guard targets.dtype == .i32, targets.count == N else {
            throw TensorError.shapeMismatch(op: "linearCrossEntropy", "targets must be \(N) i32 values for hidden \(shape), got \(targets.dtype) \(targets.shape)")
        }
        let hidden = self
        let ids = try targets.toIndices()
        let valid = ids.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }
        // Even chunks of at most 256 MB of logits: small enough that the whole matrix never
        // exists at real sizes, large enough that each chunk's GEMMs run at full speed (the
        // weight gradient's depth is the chunk's rows).
        let budget = 64 << 20  // floats
        let chunks = Swift.max(1, (N * V + budget - 1) / budget)
        let rowsPerChunk = Swift.max(1, Swift.min(N, chunkRows ?? (N + chunks - 1) / chunks))
        let wantGrad = GradientTape.isRecording && (hidden.requiresGrad || weight.requiresGrad)
        let backend = hidden.backend
        // dHidden (N, C) and dWeight (V, C), made in the forward on purpose: they replace the logits.
        let dHidden = wantGrad && hidden.requiresGrad ? try Tensor.empty([N, C], on: device) : nil
        let dWeight = wantGrad && weight.requiresGrad ? try Tensor.empty([V, C], on: device) : nil
        var total: Tensor? = nil
        try noGrad {
            var r0 = 0
            while r0 < N {
                let rows = Swift.min(rowsPerChunk, N - r0)
                let chunkIDs = Array(ids[r0..<(r0 + rows)])
                let chunkValid = chunkIDs.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }
                // This chunk's hidden rows and targets, copied out (a few rows × C).
                let h = try Tensor.empty([rows, C], on: device)
                try backend.copy(from: hidden.storage, at: r0 * C * 4, to: h.storage, at: 0, byteCount: rows * C * 4)
                let t = try Tensor.empty([rows], dtype: .i32, on: device)
                try backend.copy(from: targets.storage, at: r0 * 4, to: t.storage, at: 0, byteCount: rows * 4)
                t.hostIndexCopy = chunkIDs
                let logits = try Tensor.empty([rows, V], on: device)
                try gemm(h, weight, into: logits, transA: false, transB: true, M: rows, N: V, K: C, batch: 1)
                // The chunk's mean loss, weighted by its share of the scored rows.
                let share = valid > 0 ? Float(chunkValid) / Float(valid) : 0
                let loss: Tensor
                if wantGrad {
                    logits.requiresGrad = true
                    let tape = TrainingContext(seed: 0)
                    loss = try GradMode.$enabled.withValue(true) {
                        try tape.run { try logits.crossEntropy(targets: t, ignoreIndex: ignoreIndex).scaled(by: share) }
                    }
                    try loss.backward()
                    guard let dLogits = logits.grad else { fatalError("linearCrossEntropy: the chunk's logits got no gradient") }
                    if let dHidden {
                        let dh = try Tensor.empty([rows, C], on: device)
                        try gemm(dLogits, weight, into: dh, transA: false, transB: false, M: rows, N: C, K: V, batch: 1)
                        try backend.copy(from: dh.storage, at: 0, to: dHidden.storage, at: r0 * C * 4, byteCount: rows * C * 4)
                    }
                    if let dWeight {
                        try gemm(dLogits, h, into: dWeight, transA: true, transB: false, M: V, N: C, K: rows, batch: 1,
                                 beta: r0 == 0 ? 0 : 1)
                    }
                } else {
                    loss = try logits.crossEntropy(targets: t, ignoreIndex: ignoreIndex).scaled(by: share)
                }
                total = try total.map { try $0 + loss } ?? loss
                r0 += rows
            }
        }
        // A fresh scalar: the chunks' sum carries their own (finished) tapes' marks.
        let result = try total?.detached() ?? Tensor.zeros([], on: device)
        let hiddenShape = hidden.shape  // the gradients are made: neither operand is kept
        GradientTape.record("linearCrossEntropy", inputs: [hidden, weight], output: result) { dy in
            [try dHidden.map { try ($0 * dy).reshaped(hiddenShape) }, try dWeight.map { try $0 * dy }]
        }
        return result
    }
}
