import ITuneTensor

/// Keys and values of the positions seen so far, per layer: decoding then runs one new token
/// through the model instead of the whole sequence again.
///
/// Each layer keeps one buffer per side, (B, capacity, NKV, D), that grows geometrically (up to
/// `maxLength`), so that a token costs a copy of its own keys and values, not of the whole
/// cache. Attention reads the buffers in place (`appendInPlace`, then `keyLength`), with any
/// number of rows.
public final class KVCache {
    public final class Layer {
        /// (B, capacity, NKV, D); nil before the first append.
        private var keyBuffer: Tensor?
        private var valueBuffer: Tensor?
        /// Positions held.
        public private(set) var count = 0
        let maxLength: Int

        init(maxLength: Int) { self.maxLength = maxLength }

        /// Positions the buffers hold room for.
        public var capacity: Int { keyBuffer?.shape[1] ?? 0 }

        /// Everything cached, (B, count, NKV, D); nil before the first append.
        public var keys: Tensor? { get throws { try keyBuffer.map(prefix) } }
        public var values: Tensor? { get throws { try valueBuffer.map(prefix) } }

        /// keys and values are (B,T,NKV,D); returns everything cached so far, these included,
        /// each (B, count+T, NKV, D) (a copy when the batch has more than one row and the buffers
        /// room for more positions: attention reads them in place through `appendInPlace`).
        public func append(keys k: Tensor, values v: Tensor) throws -> (Tensor, Tensor) {
            let held = try appendInPlace(keys: k, values: v)
            return (try prefix(held.keys), try prefix(held.values))
        }

        /// The buffers after an append, as attention reads them: keys and values
        /// (B, capacity, NKV, D), of whose rows the first `length` positions are cached.
        public struct Held {
            public let keys, values: Tensor
            public let length: Int
        }

        /// Appends keys and values (B,T,NKV,D) and returns the buffers holding everything cached,
        /// these included, without copying them: pass `keyLength: length` to
        /// scaledDotProductAttention.
        public func appendInPlace(keys k: Tensor, values v: Tensor) throws -> Held {
            guard k.rank == 4, k.shape == v.shape else {
                throw TensorError.shapeMismatch(op: "KVCache", "keys \(k.shape) and values \(v.shape) must be one (B,T,NKV,D) shape")
            }
            let (B, T) = (k.shape[0], k.shape[1])
            if let held = keyBuffer, held.shape[0] != B || held.shape[2...] != k.shape[2...] {
                throw TensorError.shapeMismatch(op: "KVCache", "keys \(k.shape) do not continue the cached \(held.shape)")
            }
            let (needed, overflow) = count.addingReportingOverflow(T)
            guard !overflow, needed <= maxLength else {
                throw TensorError.invalidArgument(op: "KVCache", "\(count) cached + \(T) new positions exceed the cache's \(maxLength)")
            }
            if needed > capacity {
                // Double (at least 16 positions), never past maxLength: amortised O(1) copies per position.
                let grown = min(maxLength, max(needed, 2 * capacity, 16))
                keyBuffer = try regrow(keyBuffer, like: k, to: grown)
                valueBuffer = try regrow(valueBuffer, like: v, to: grown)
            }
            guard let keyBuffer, let valueBuffer else { fatalError("KVCache buffers allocated above") }
            try write(k, into: keyBuffer, at: count)
            try write(v, into: valueBuffer, at: count)
            count = needed
            return Held(keys: keyBuffer, values: valueBuffer, length: count)
        }

        /// A new (B, positions, NKV, D) buffer holding the `count` cached positions of `old`.
        private func regrow(_ old: Tensor?, like x: Tensor, to positions: Int) throws -> Tensor {
            var shape = x.shape
            shape[1] = positions
            let buffer = try Tensor.empty(shape, dtype: x.dtype, on: x.device)
            if let old, count > 0 {
                let row = x.shape[2] * x.shape[3] * x.dtype.byteSize
                for b in 0..<x.shape[0] {
                    try x.backend.copy(from: old.storage, at: b * old.shape[1] * row, to: buffer.storage,
                                       at: b * positions * row, byteCount: count * row)
                }
            }
            return buffer
        }

        /// Copies x (B,T,NKV,D) into positions start..<start+T of buffer.
        private func write(_ x: Tensor, into buffer: Tensor, at start: Int) throws {
            let (B, T, cap) = (x.shape[0], x.shape[1], buffer.shape[1])
            let row = x.shape[2] * x.shape[3] * x.dtype.byteSize
            for b in 0..<B {
                try x.backend.copy(from: x.storage, at: b * T * row, to: buffer.storage, at: (b * cap + start) * row,
                                   byteCount: T * row)
            }
        }

        /// Keeps batch rows `rows` (ascending) in that order and drops the others: each kept row
        /// moves down into the first rows of the same buffers, which are then viewed as
        /// (rows.count, capacity, NKV, D).
        func keepRows(_ rows: [Int]) throws {
            guard let k = keyBuffer, let v = valueBuffer else { return }
            let B = k.shape[0]
            guard rows.indices.allSatisfy({ rows[$0] >= 0 && rows[$0] < B && ($0 == 0 || rows[$0 - 1] < rows[$0]) }) else {
                throw TensorError.invalidArgument(op: "KVCache", "rows to keep \(rows) must ascend within the batch's \(B)")
            }
            guard rows.count < B, !rows.isEmpty else { return }
            let rowBytes = k.shape[1] * k.shape[2] * k.shape[3] * k.dtype.byteSize
            for (i, r) in rows.enumerated() where i != r {
                // i < r: the regions of rows i and r never overlap.
                try k.backend.copy(from: k.storage, at: r * rowBytes, to: k.storage, at: i * rowBytes, byteCount: rowBytes)
                try v.backend.copy(from: v.storage, at: r * rowBytes, to: v.storage, at: i * rowBytes, byteCount: rowBytes)
            }
            var shape = k.shape
            shape[0] = rows.count
            keyBuffer = Tensor(storage: k.storage, shape: shape, dtype: k.dtype)
            valueBuffer = Tensor(storage: v.storage, shape: shape, dtype: v.dtype)
        }

        /// The first `count` positions of buffer: a view when they are contiguous (one row).
        private func prefix(_ buffer: Tensor) throws -> Tensor {
            if buffer.shape[0] == 1 || count == buffer.shape[1] {
                var shape = buffer.shape
                shape[1] = count
                return Tensor(storage: buffer.storage, shape: shape, dtype: buffer.dtype)
            }
            return try noGrad { try buffer.narrow(axis: 1, start: 0, length: count) }
        }
    }

    public let layers: [Layer]
    /// Positions cached.
    public private(set) var length = 0

    /// `maxLength` bounds the positions a layer will hold (the model's max_position_embeddings
    /// or sliding window).
    public init(layers: Int, maxLength: Int = Int(Int32.max)) {
        self.layers = (0..<layers).map { _ in Layer(maxLength: maxLength) }
    }

    func layer(_ i: Int) -> Layer { layers[i] }

    /// Keeps batch rows `rows` (ascending) of every layer, in that order, and drops the others:
    /// a batch whose other rows have finished goes on decoding these alone.
    public func keepRows(_ rows: [Int]) throws {
        for l in layers { try l.keepRows(rows) }
    }
    func advance(by n: Int) { length += n }
}

/// Attention of q over the new keys and values k, v and, with a cache, everything cached before
/// them: k and v are appended to the cache and its buffers read in place (`keyLength`). The one
/// place the decoders' self-attention meets the cache.
func cachedAttention(q: Tensor, k: Tensor, v: Tensor, cache: KVCache.Layer?, causal: Bool = true, scale: Float? = nil,
                     segments: AttentionSegments? = nil, bias: Tensor? = nil) throws -> Tensor {
    guard let cache else {
        return try Tensor.scaledDotProductAttention(q: q, k: k, v: v, causal: causal, scale: scale, segments: segments, bias: bias)
    }
    let held = try cache.appendInPlace(keys: k, values: v)
    return try Tensor.scaledDotProductAttention(q: q, k: held.keys, v: held.values, causal: causal, scale: scale,
                                                segments: segments, bias: bias, keyLength: held.length)
}
