import Foundation

// Embedding lookup (token ids → rows of a table) and its scatter-add backward.
// Kernels: Kernels/embedding.cl.

extension Tensor {
    /// Embedding lookup: self is the weight (V,C), ids an i32 tensor of any shape S; returns
    /// (S..., C), row ids[s] of the weight at s. How token ids become vectors.
    public func embedding(_ ids: Tensor) throws -> Tensor {
        // The table may be a frozen 16-bit one (f16, bf16): rows are converted as they are copied.
        guard dtype == .f32 || dtype.isHalfFloat else { throw TensorError.dtypeMismatch(op: "embedding", expected: .f32, got: dtype) }
        guard ids.dtype == .i32 else { throw TensorError.dtypeMismatch(op: "embedding", expected: .i32, got: ids.dtype) }
        guard rank == 2 else { throw TensorError.shapeMismatch(op: "embedding", "weight must be (V,C), got \(shape)") }
        let (V, C) = (shape[0], shape[1])
        let weight = self
        try checkSameDevice("embedding", weight, ids)
        // Ids are read to the host (they are B·T values): a bad id must be an error naming
        // it, not a read outside the table; the backward groups them there too.
        let hostIDs = try ids.toIndices()
        if let k = hostIDs.firstIndex(where: { $0 < 0 || Int($0) >= V }) {
            throw TensorError.invalidArgument(op: "embedding", "token id \(hostIDs[k]) (at index \(k) of ids \(ids.shape)) is out of range for a vocabulary of \(V) (valid ids 0..<\(V))")
        }
        let n = hostIDs.count
        let out = try Tensor.empty(ids.shape + [C], on: device)
        switch try execution("embedding", weight, ids) {
        case .cpu where weight.dtype.isHalfFloat:
            let w = weight.storage.host.assumingMemoryBound(to: UInt16.self), o = out.floats, idp = ids.ints
            let format = weight.dtype
            CPUParallel.forEach(n, grain: max(1, 16_384 / max(C, 1))) { rows in
                for i in rows { convertW16(w + Int(idp[i]) * C, count: C, format: format, into: o + i * C) }
            }
        case .cpu:
            let w = weight.floats, o = out.floats, idp = ids.ints
            CPUParallel.forEach(n, grain: max(1, 16_384 / max(C, 1))) { rows in
                for i in rows { (o + i * C).update(from: w + Int(idp[i]) * C, count: C) }
            }
        case let .opencl(cl) where weight.dtype.isHalfFloat:
            try cl.embeddingForwardW16(KernelGrid(global: [C, n]), out: out, weight: weight, ids: ids, n: n, C: C,
                                       format: weight.dtype.w16Format)
        case let .opencl(cl):
            try cl.embeddingForward(KernelGrid(global: [C, n]), out: out, weight: weight, ids: ids, n: n, C: C)
        }
        GradientTape.record("embedding", inputs: [weight, ids], output: out, freshGradients: true) { dy in
            guard weight.requiresGrad else { return [nil, nil] }
            // A gradient the table already owns (a tied head's, made earlier in this backward, or
            // an earlier micro-batch's) takes the rows of the ids in place: no (V, C) table of
            // zeros and no pass adding it (2.2 GB of traffic and a 545 MB buffer a step at
            // Qwen2.5-0.5B's tied 151,936 × 896 embedding). The same sums in the same order.
            if let existing = weight.grad, weight.ownsGrad {
                try embeddingBackward(dy, ids: hostIDs, vocab: V, channels: C, into: existing, accumulate: true)
                return [nil, nil]
            }
            let dw = try Tensor.zeros([V, C], on: weight.device)
            try embeddingBackward(dy, ids: hostIDs, vocab: V, channels: C, into: dw, accumulate: false)
            return [dw, nil]
        }
        return out
    }
}

/// The positions of each distinct id, in CSR form: ids[positions[offsets[u]..<offsets[u+1]]]
/// all equal uniqueIDs[u]; ids ascending, positions ascending within an id. Both backends sum
/// gradient rows in this order, so the weight gradient is deterministic and the same on both.
struct IDOccurrences {
    var uniqueIDs: [Int32] = []
    var offsets: [Int32] = [0]
    var positions: [Int32] = []

    init(_ ids: [Int32]) {
        // One sort of (id, position) keys; ids are non-negative, so the packed key orders by id, then position.
        var keys = ids.enumerated().map { UInt64(UInt32(bitPattern: $0.element)) << 32 | UInt64($0.offset) }
        keys.sort()
        positions.reserveCapacity(keys.count)
        for key in keys {
            let id = Int32(truncatingIfNeeded: key >> 32)
            if uniqueIDs.last != id {
                if !uniqueIDs.isEmpty { offsets.append(Int32(positions.count)) }
                uniqueIDs.append(id)
            }
            positions.append(Int32(truncatingIfNeeded: key & 0xFFFF_FFFF))
        }
        if !uniqueIDs.isEmpty { offsets.append(Int32(positions.count)) }
    }
}

// dy is (n,C) (any leading shape); row id of dw (V,C) gets Σ dy rows where ids == id, summed from
// zero in order: written over a zero-filled dw, or with `accumulate` added to the row there
// (existing + Σ, as the sum of a dense gradient and the existing one would be).
private func embeddingBackward(_ dy: Tensor, ids: [Int32], vocab V: Int, channels C: Int,
                               into dw: Tensor, accumulate: Bool) throws {
    guard dw.shape == [V, C] else {
        throw TensorError.shapeMismatch(op: "embedding backward", "gradient \(dw.shape) for a table of (\(V), \(C))")
    }
    let occ = IDOccurrences(ids)
    let U = occ.uniqueIDs.count
    guard U > 0, C > 0 else { return }
    switch try execution("embedding backward", dw, dy) {
    case .cpu:
        let o = dw.floats, d = dy.floats
        occ.uniqueIDs.withUnsafeBufferPointer { uniq in
            occ.offsets.withUnsafeBufferPointer { off in
                occ.positions.withUnsafeBufferPointer { pos in
                    // Each distinct id's row is written by one thread, summing its rows in order.
                    CPUParallel.forEach(U, grain: max(1, 16_384 / C)) { us in
                        withUnsafeTemporaryAllocation(of: Float.self, capacity: accumulate ? C : 0) { scratch in
                            for u in us {
                                let row = o + Int(uniq[u]) * C
                                // Accumulating: the sum is made apart, then added to the row.
                                let sum = accumulate ? scratch.baseAddress! : row
                                if accumulate { sum.update(repeating: 0, count: C) }
                                for k in Int(off[u])..<Int(off[u + 1]) {
                                    let src = d + Int(pos[k]) * C
                                    for c in 0..<C { sum[c] += src[c] }
                                }
                                if accumulate { for c in 0..<C { row[c] += sum[c] } }
                            }
                        }
                    }
                }
            }
        }
    case let .opencl(cl):
        let device = dw.device
        let uniq = try Tensor(indices: occ.uniqueIDs, shape: [U], on: device)
        let offsets = try Tensor(indices: occ.offsets, shape: [U + 1], on: device)
        let positions = try Tensor(indices: occ.positions, shape: [occ.positions.count], on: device)
        try cl.embeddingBackward(KernelGrid(global: [C, U]), dweight: dw, dy: dy, uniqueIds: uniq, offsets: offsets,
                                 positions: positions, U: U, C: C, accumulate: accumulate)
    }
}
