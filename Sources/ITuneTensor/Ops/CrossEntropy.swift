import Foundation

// Cross-entropy over vocab logits with an ignore index. Kernels: Kernels/loss.cl.
//
// Fused: the forward keeps only the logsumexp of each row (N floats); the backward rebuilds
// softmax − onehot from the logits and it, so no (N, V) probability tensor lives between the
// two passes. At a 49k vocab that is the largest activation of a step.

extension Tensor {
    /// Mean over the rows whose target is not `ignoreIndex` of −log softmax(logits)[target],
    /// as `F.cross_entropy(logits, targets, ignore_index=-100)` computes it.
    ///
    /// self is logits (N, V) (leading dims flattened); targets is i32 (N). Returns shape [].
    /// When every row is ignored the loss and its gradient are 0 (PyTorch gives nan).
    public func crossEntropy(targets: Tensor, ignoreIndex: Int32 = -100) throws -> Tensor {
        let logits = self
        // lse (N): log Σ exp of each row, kept on purpose for the backward.
        let (lossRows, lse, valid) = try logits.crossEntropyRows(targets: targets, ignoreIndex: ignoreIndex)
        let invCount: Float = valid > 0 ? 1 / Float(valid) : 0
        let out = try noGrad { try lossRows.sum().scaled(by: invCount) }
        GradientTape.record("crossEntropy", inputs: [logits], output: out) { dy in
            let dx = try Tensor.empty(logits.shape, on: logits.device)
            try logits.crossEntropyGradient(lse: lse, targets: targets, dy: dy, scale: invCount, ignoreIndex: ignoreIndex, into: dx)
            return [dx]
        }
        return out
    }

    /// Each row's −log softmax(self)[target] (0 where the target is `ignoreIndex`), each row's
    /// logsumexp, and the number of scored rows: the forward of `crossEntropy` and of the
    /// head's fused loss. self is logits (N, V); targets i32 (N), checked against V.
    func crossEntropyRows(targets: Tensor, ignoreIndex: Int32) throws -> (lossRows: Tensor, lse: Tensor, valid: Int) {
        guard let V = shape.last, V > 0 else {
            throw TensorError.shapeMismatch(op: "crossEntropy", "logits need a non-empty last dim, got \(shape)")
        }
        let N = count / V
        guard targets.dtype == .i32, targets.count == N else {
            throw TensorError.shapeMismatch(op: "crossEntropy", "targets must be \(N) i32 values for logits \(shape), got \(targets.dtype) \(targets.shape)")
        }
        // Validated on the host copy the ids were built from (no device read-back).
        let ids = try targets.toIndices()
        var valid = 0
        for (row, t) in ids.enumerated() where t != ignoreIndex {
            guard t >= 0, Int(t) < V else {
                throw TensorError.invalidArgument(op: "crossEntropy", "target \(t) of row \(row) is outside the vocabulary 0..<\(V) (and is not the ignore index \(ignoreIndex))")
            }
            valid += 1
        }
        let logits = self
        let lse = try Tensor.empty([N], on: device)
        let lossRows = try Tensor.empty([N], on: device)
        switch try execution("crossEntropy", logits, targets) {
        case .cpu:
            let x = logits.floats, t = targets.ints, lp = lse.floats, lr = lossRows.floats
            CPUParallel.forEach(N, grain: max(1, 4096 / V)) { rows in
                for n in rows {
                    let row = x + n * V
                    let m = maxOf(row, V)
                    let z = m + logf(sumExpShifted(row, V, shift: m))
                    lp[n] = z
                    lr[n] = t[n] == ignoreIndex ? 0 : z - row[Int(t[n])]
                }
            }
        case let .opencl(cl):
            let ls = try cl.rowGroupSize(long: V >= 1024, kernel: "cross_entropy_forward", family: "loss")
            try cl.crossEntropyForward(.rows(N, groupSize: ls), lossRows: lossRows, lse: lse, logits: logits,
                                       targets: targets, V: V, ignoreIndex: Int(ignoreIndex), scratch: .floats(ls))
        }
        return (lossRows, lse, valid)
    }

    /// dx = (softmax(self) − onehot(target)) · dy · scale per row (0 for ignored rows), from the
    /// rows' logsumexp `lse`: the backward of `crossEntropy`. dx may be self (each element is
    /// read before it is written), which the head's fused loss uses to turn a chunk's logits
    /// into their gradient in place. dy is a device scalar (the loss's gradient).
    func crossEntropyGradient(lse: Tensor, targets: Tensor, dy: Tensor, scale: Float, ignoreIndex: Int32,
                              into dx: Tensor) throws {
        guard let V = shape.last, V > 0, dx.shape == shape else {
            throw TensorError.shapeMismatch(op: "crossEntropy", "gradient \(dx.shape) for logits \(shape)")
        }
        let N = count / V
        let logits = self
        switch try execution("crossEntropy", logits, dy) {
        case .cpu:
            let x = logits.floats, t = targets.ints, lp = lse.floats, d = dx.floats
            let s = dy.floats[0] * scale
            CPUParallel.forEach(N, grain: max(1, 4096 / V)) { rows in
                for n in rows {
                    let row = x + n * V, drow = d + n * V
                    guard t[n] != ignoreIndex else {
                        drow.update(repeating: 0, count: V)
                        continue
                    }
                    _ = expShifted(row, drow, V, shift: lp[n])
                    scaleRow(drow, V, s)
                    drow[Int(t[n])] -= s
                }
            }
        case let .opencl(cl):
            try cl.crossEntropyBackward(KernelGrid(global: [V, N], local: [try cl.elementwiseGroupSize(), 1]),
                                        dlogits: dx, logits: logits, lse: lse, targets: targets, dy: dy, N: N, V: V,
                                        ignoreIndex: Int(ignoreIndex), invCount: scale)
        }
    }
}
