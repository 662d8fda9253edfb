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
    /// `ignoreIndex` where no loss is taken: those rows get no logits (the products run over the
    /// scored rows only). Returns shape []. `chunkRows` scored rows at a time (default: even
    /// chunks of at most 256 MB of logits). The gradients of self and weight (for those that
    /// require them) are computed in the forward and scaled by the loss's gradient in the
    /// backward.
    public func linearCrossEntropy(weight: Tensor, targets: Tensor, ignoreIndex: Int32 = -100,
                                   chunkRows: Int? = nil) throws -> Tensor {
        guard let C = shape.last, weight.rank == 2, weight.shape[1] == C, weight.shape[0] > 0 else {
            throw TensorError.shapeMismatch(op: "linearCrossEntropy", "hidden \(shape) and weight \(weight.shape) (V, C) differ in C")
        }
        return try linearCrossEntropy(.tensor(weight), V: weight.shape[0], C: C, targets: targets, ignoreIndex: ignoreIndex,
                                      chunkRows: chunkRows)
    }

    /// The same with a blockwise-quantised frozen weight (`--quantize-embeddings`: the tied
    /// embedding or lm_head as nf4/int8 blocks, dequantised inside the GEMMs); only self gets a
    /// gradient.
    public func linearCrossEntropy(quantized weight: BlockQuantizedMatrix, targets: Tensor, ignoreIndex: Int32 = -100,
                                   chunkRows: Int? = nil) throws -> Tensor {
        guard let C = shape.last, dtype == .f32, weight.cols == C, weight.rows > 0 else {
            throw TensorError.shapeMismatch(op: "linearCrossEntropy", "hidden \(dtype.rawValue) \(shape) and a quantised weight of \(weight.rows)×\(weight.cols) (V, C) differ in C")
        }
        return try linearCrossEntropy(.quantized(weight), V: weight.rows, C: C, targets: targets, ignoreIndex: ignoreIndex,
                                      chunkRows: chunkRows)
    }

    /// The rows of hidden states the head scores at a time: even chunks of at most 256 MB of
    /// logits (or 512 rows, where a row is over 128 K floats), small enough that the whole matrix
    /// never exists at real sizes, large enough that each chunk's GEMMs run at full speed: the
    /// head's weight is read and packed once per chunk, and the weight gradient's depth is the
    /// chunk's rows (Qwen2.5's head of 151,936 rows ran 15% slower in chunks of 256 rows than of
    /// 512). A run that checkpoints its blocks has chosen memory over time: 64 MB there. The
    /// chunk's logits are the head's whole activation memory: they become their own gradient in
    /// place.
    public static func headChunkRows(rows N: Int, vocabulary V: Int, checkpointing: Bool) -> Int {
        let floor = V.multipliedReportingOverflow(by: 512)
        let budget = checkpointing ? 16 << 20 : Swift.max(64 << 20, floor.overflow ? 0 : floor.partialValue)  // floats
        let total = N.multipliedReportingOverflow(by: V)
        let chunks = total.overflow ? N : Swift.max(1, (total.partialValue + budget - 1) / budget)
        return Swift.max(1, Swift.min(N, (N + chunks - 1) / chunks))
    }

    /// The head's weight: a tensor (which may train), or frozen quantised blocks.
    private enum HeadWeight {
        case tensor(Tensor)
        case quantized(BlockQuantizedMatrix)
        var tensor: Tensor? { if case let .tensor(t) = self { return t }; return nil }

        /// a (rows, ·) · Wᵀ (the logits, (rows, V)) or, not transposed, a · W (rows, C).
        func product(_ a: Tensor, transposed: Bool, V: Int, C: Int) throws -> Tensor {
            let rows = a.shape[0]
            switch self {
            case let .tensor(weight):
                let out = try Tensor.empty([rows, transposed ? V : C], on: a.device)
                try gemm(a, weight, into: out, transA: false, transB: transposed, M: rows, N: transposed ? V : C,
                         K: transposed ? C : V, batch: 1)
                return out
            case let .quantized(w):
                return try a.quantizedProduct(w, transposed: transposed, outer: [rows])
            }
        }
    }

    private func linearCrossEntropy(_ head: HeadWeight, V: Int, C: Int, targets: Tensor, ignoreIndex: Int32,
                                    chunkRows: Int?) throws -> Tensor {
        let N = count / max(C, 1)
        guard targets.dtype == .i32, targets.count == N else {
            throw TensorError.shapeMismatch(op: "linearCrossEntropy", "targets must be \(N) i32 values for hidden \(shape), got \(targets.dtype) \(targets.shape)")
        }
        let hidden = self
        let ids = try targets.toIndices()
        // The scored rows, as runs of consecutive rows: a row whose target is ignored (the prompt
        // under an answer-only loss, padding) gets no logits at all — its loss is 0 and its
        // gradient 0 — so the head's three products run over the scored rows only.
        var runs: [(start: Int, count: Int)] = []
        for (i, id) in ids.enumerated() where id != ignoreIndex {
            if let last = runs.last, last.start + last.count == i { runs[runs.count - 1].count += 1 } else { runs.append((i, 1)) }
        }
        let valid = runs.reduce(0) { $0 + $1.count }
        let rowsPerChunk = Swift.max(1, Swift.min(Swift.max(valid, 1), chunkRows ?? Self.headChunkRows(
            rows: valid, vocabulary: V, checkpointing: TrainingContext.checkpointsBlocks)))
        let weight = head.tensor  // nil: quantised (frozen)
        let wantGrad = GradientTape.isRecording && (hidden.requiresGrad || weight?.requiresGrad == true)
        let backend = hidden.backend
        // dHidden (N, C) and dWeight (V, C), made in the forward on purpose: they replace the logits.
        // Rows not scored keep a zero gradient, as does the weight when no row is scored.
        let dHidden = wantGrad && hidden.requiresGrad
            ? try (valid < N ? Tensor.zeros([N, C], on: device) : Tensor.empty([N, C], on: device)) : nil
        let dWeight = wantGrad && weight?.requiresGrad == true
            ? try (valid == 0 ? Tensor.zeros([V, C], on: device) : Tensor.empty([V, C], on: device)) : nil
        // The mean's gradient per scored row; the loss's own gradient scales both in the backward.
        let invValid: Float = valid > 0 ? 1 / Float(valid) : 0
        let one = wantGrad ? try Tensor.full([1], 1, on: device) : nil
        var total: Tensor? = nil
        var first = true
        // One chunk: `pieces` are (first row in hidden, first row in the chunk, rows), `rows` in all.
        func score(_ pieces: [(row: Int, at: Int, count: Int)], rows: Int) throws {
            // This chunk's hidden rows and targets, copied out on the device (no upload).
            let h = try Tensor.empty([rows, C], on: device)
            let t = try Tensor.empty([rows], dtype: .i32, on: device)
            var chunkIds: [Int32] = []
            chunkIds.reserveCapacity(rows)
            for p in pieces {
                try backend.copy(from: hidden.storage, at: p.row * C * 4, to: h.storage, at: p.at * C * 4, byteCount: p.count * C * 4)
                try backend.copy(from: targets.storage, at: p.row * 4, to: t.storage, at: p.at * 4, byteCount: p.count * 4)
                chunkIds += ids[p.row..<(p.row + p.count)]
            }
            t.hostIndexCopy = chunkIds
            let logits = try head.product(h, transposed: true, V: V, C: C)
            let (lossRows, lse, _) = try logits.crossEntropyRows(targets: t, ignoreIndex: ignoreIndex)
            let chunkLoss = try lossRows.sum()
            total = try total.map { try $0 + chunkLoss } ?? chunkLoss
            guard let one else { return }
            // The logits become their own gradient (softmax − onehot, over the scored rows), in
            // place: no second (rows, V) matrix.
            try logits.crossEntropyGradient(lse: lse, targets: t, dy: one, scale: invValid, ignoreIndex: ignoreIndex,
                                            into: logits)
            if let dHidden {
                let dh = try head.product(logits, transposed: false, V: V, C: C)
                for p in pieces {
                    try backend.copy(from: dh.storage, at: p.at * C * 4, to: dHidden.storage, at: p.row * C * 4,
                                     byteCount: p.count * C * 4)
                }
            }
            if let dWeight {
                try gemm(logits, h, into: dWeight, transA: true, transB: false, M: V, N: C, K: rows, batch: 1,
                         beta: first ? 0 : 1)
            }
            first = false
        }
        try noGrad {
            var pieces: [(row: Int, at: Int, count: Int)] = [], filled = 0
            for run in runs {
                var row = run.start, left = run.count
                while left > 0 {
                    let take = Swift.min(left, rowsPerChunk - filled)
                    pieces.append((row, filled, take))
                    filled += take; row += take; left -= take
                    if filled == rowsPerChunk {
                        try score(pieces, rows: filled)
                        pieces.removeAll(keepingCapacity: true); filled = 0
                    }
                }
            }
            if filled > 0 { try score(pieces, rows: filled) }
        }
        // A fresh scalar: the mean over the scored rows.
        let result = try total.map { try $0.scaled(by: invValid).detached() } ?? Tensor.zeros([], on: device)
        let hiddenShape = hidden.shape  // the gradients are made: neither operand is kept
        // The gradients are the closure's own (made in the forward), one to each input: fresh,
        // so that a tied embedding's lookup adds its rows into the head's weight gradient in place.
        GradientTape.record("linearCrossEntropy", inputs: [hidden] + (weight.map { [$0] } ?? []), output: result,
                            freshGradients: true) { dy in
            // The usual loss's gradient is 1: on the CPU (where reading it costs nothing) the
            // gradients are then given as made, not copied through a product with 1 (a pass over
            // the (V, C) weight gradient: 0.15 s a step at Qwen2.5-0.5B's head).
            let unit = try dy.device == .cpu && dy.count == 1 && dy.item() == 1
            let scaled = { (g: Tensor) throws -> Tensor in unit ? g : try g * dy }
            return [try dHidden.map { try scaled($0).reshaped(hiddenShape) }] + (weight != nil ? [try dWeight.map(scaled)] : [])
        }
        return result
    }
}
