import ITuneTensor

// Greedy decoding for T5-family models: the encoder runs once; each decoder step feeds only the
// new token, with the self-attention keys and values of earlier steps in a KVCache and the
// cross-attention keys and values of the encoder output computed once per layer.

/// What one decoding run keeps between steps.
public final class T5DecodingState {
    /// The encoder output (B,Te,C) and its key mask bias (B,1,Te,1) or nil.
    let memory: Tensor
    let memoryBias: Tensor?
    /// Per decoder layer: the cross-attention keys and values (B,Te,NH,D).
    let crossKeys: [(Tensor, Tensor)]
    let cache: KVCache

    init(memory: Tensor, memoryBias: Tensor?, crossKeys: [(Tensor, Tensor)], layers: Int) {
        self.memory = memory
        self.memoryBias = memoryBias
        self.crossKeys = crossKeys
        cache = KVCache(layers: layers)
    }
}

extension T5Model {
    /// Runs the encoder and projects its output to every decoder layer's cross-attention keys
    /// and values: what each step of `decodeStep` reuses. ids i32 (B,Te); mask (B·Te) or nil.
    public func startDecoding(_ ids: Tensor, mask: [Int32]? = nil) throws -> T5DecodingState {
        let (B, Te) = (ids.shape[0], ids.shape[1])
        let memory = try encode(ids, mask: mask)
        let cross = try decoderBlocks.map { block -> (Tensor, Tensor) in
            guard let a = block.crossAttention else { fatalError("a T5 decoder block has cross-attention") }
            return (try a.k(memory).reshaped([B, Te, a.heads, a.headDim]), try a.v(memory).reshaped([B, Te, a.heads, a.headDim]))
        }
        return T5DecodingState(memory: memory, memoryBias: try keyMask(mask, batch: B, keys: Te), crossKeys: cross,
                               layers: decoderBlocks.count)
    }

    /// Logits (B,T,V) of the next T decoder tokens `ids` i32 (B,T), after what `state` holds.
    public func decodeStep(_ ids: Tensor, state: T5DecodingState) throws -> Tensor {
        let (B, T) = (ids.shape[0], ids.shape[1])
        let past = state.cache.length
        var h = try shared(ids)
        if let first = decoderBlocks.first {
            let H = config.numHeads
            let bias = try positionBias(first, queries: T, keys: past + T, queryOffset: past, bidirectional: false)
                .reshaped([1, T, past + T, H])
            for (i, block) in decoderBlocks.enumerated() {
                let a = block.selfAttention, x = try block.selfNorm(h)
                let y = try cachedAttention(q: a.q(x).reshaped([B, T, H, a.headDim]), k: a.k(x).reshaped([B, T, H, a.headDim]),
                                            v: a.v(x).reshaped([B, T, H, a.headDim]), cache: state.cache.layer(i), scale: 1,
                                            bias: bias)
                h = try h + a.o(y.reshaped([B, T, H * a.headDim]))
                if let c = block.crossAttention, let norm = block.crossNorm {
                    let xc = try norm(h)
                    let (ck, cv) = state.crossKeys[i]
                    let yc = try Tensor.scaledDotProductAttention(q: c.q(xc).reshaped([B, T, H, c.headDim]), k: ck, v: cv,
                                                                  causal: false, scale: 1, bias: state.memoryBias)
                    h = try h + c.o(yc.reshaped([B, T, H * c.headDim]))
                }
                h = try h + block.feedForward(block.ffNorm(h))
            }
        }
        state.cache.advance(by: T)
        var out = try decoderNorm(h)
        if config.scaleDecoderOutputs { out = try out.scaled(by: 1 / Float(config.dModel).squareRoot()) }
        return try out.reshaped([B * T, config.dModel]).linear(outputEmbedding).reshaped([B, T, config.vocabSize])
    }

    /// Greedy decoding of one input (ids i32 (1,Te)): up to `maxNewTokens` tokens after
    /// decoder_start_token_id, stopping after an eos id. Returns the new tokens.
    public func generateGreedy(_ ids: Tensor, maxNewTokens: Int, stopAtEOS: Bool = true) throws -> [Int32] {
        try noGrad {
            let state = try startDecoding(ids)
            var next = Int32(config.decoderStartTokenID)
            var out: [Int32] = []
            for _ in 0..<max(0, maxNewTokens) {
                let logits = try decodeStep(Tensor(indices: [next], shape: [1, 1], on: device), state: state).toArray()
                var best = 0
                for j in 1..<logits.count where logits[j] > logits[best] { best = j }
                next = Int32(best)
                out.append(next)
                if stopAtEOS && config.eosTokenIDs.contains(best) { break }
            }
            return out
        }
    }
}
