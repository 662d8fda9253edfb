import Foundation

// config.json of the rotary decoder families (Llama, Mistral, Qwen2, Phi-3): the fields they
// share, read and written in one place; each family's registration adds its own.

extension ConfigFields {
    /// The shared fields: sizes, head_dim, RoPE, RMSNorm epsilon, tying, token ids, hidden_act.
    func rotaryDecoderConfig(_ architecture: Architecture, normEps: Float = 1e-6, maxPositions: Int = 2048) throws -> ModelConfig {
        let vocab = try size("vocab_size")
        let hidden = try size("hidden_size")
        let intermediate = try size("intermediate_size")
        let layers = try size("num_hidden_layers")
        let heads = try size("num_attention_heads")
        let kvHeads = try optionalSize("num_key_value_heads") ?? heads
        guard heads % kvHeads == 0 else {
            throw ModelFileError.malformed(file: file, "num_attention_heads \(heads) is not a multiple of num_key_value_heads \(kvHeads)")
        }
        let headDim: Int
        if let d = try optionalSize("head_dim") { headDim = d } else {
            guard hidden % heads == 0 else {
                throw ModelFileError.malformed(file: file, "hidden_size \(hidden) is not a multiple of num_attention_heads \(heads) (and no head_dim is given)")
            }
            headDim = hidden / heads
        }
        guard headDim % 2 == 0 else { throw ModelFileError.malformed(file: file, "head_dim \(headDim) must be even for rotary embeddings") }
        if let act = try string("hidden_act"), !["silu", "swish"].contains(act) {
            throw refuse("hidden_act", "is \(act) (only silu is implemented)")
        }
        let (theta, scaling) = try ropeSettings()
        return ModelConfig(architecture: architecture, vocabSize: vocab, hiddenSize: hidden, intermediateSize: intermediate,
                           numLayers: layers, numHeads: heads, numKVHeads: kvHeads, headDim: headDim,
                           normEps: try positiveFloat("rms_norm_eps", default: normEps, allowZero: true), ropeTheta: theta,
                           ropeScaling: scaling, maxPositions: try optionalSize("max_position_embeddings") ?? maxPositions,
                           tieWordEmbeddings: try bool("tie_word_embeddings") ?? false, bosTokenID: try int("bos_token_id"),
                           eosTokenIDs: try eosTokenIDs())
    }

    /// rope_theta and rope_scaling, top level or in newer transformers' `rope_parameters`.
    func ropeSettings() throws -> (theta: Float, scaling: RoPEScaling?) {
        let nested: [String: Any]?
        if has("rope_parameters") {
            guard let p = json["rope_parameters"] as? [String: Any] else { throw refuse("rope_parameters", "is not an object") }
            nested = p
        } else { nested = nil }
        var theta = try float("rope_theta")
        if theta == nil, let p = nested { theta = try ConfigFields(p, file: file).float("rope_theta") }
        let t = theta ?? 10000
        guard t > 0 else { throw ModelFileError.malformed(file: file, "rope_theta must be positive, got \(t)") }
        let key = has("rope_scaling") ? "rope_scaling" : "rope_parameters"
        guard has(key) else { return (t, nil) }
        guard let s = json[key] as? [String: Any] else { throw refuse(key, "is not an object") }
        let type = (s["rope_type"] as? String) ?? (s["type"] as? String) ?? "default"
        let f = ConfigFields(s, file: file)
        switch type {
        case "default": return (t, nil)
        case "linear":
            guard let factor = try f.float("factor"), factor > 0 else { throw ModelFileError.missingField(file: file, field: "\(key).factor") }
            return (t, .linear(factor: factor))
        case "llama3":
            guard let factor = try f.float("factor"), let low = try f.float("low_freq_factor"), let high = try f.float("high_freq_factor"),
                  let orig = try f.optionalSize("original_max_position_embeddings") else {
                throw ModelFileError.missingField(file: file, field: "\(key) (llama3 needs factor, low_freq_factor, high_freq_factor, original_max_position_embeddings)")
            }
            guard factor > 0, low > 0, high > low else {
                throw refuse("\(key)", "has llama3 factors \(factor), \(low), \(high) (need factor > 0 and high_freq_factor > low_freq_factor > 0)")
            }
            return (t, .llama3(factor: factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: orig))
        default:
            // longrope / su (Phi-3 128k), yarn, dynamic, …: different frequencies or attention scaling.
            throw refuse("\(key).rope_type", "is \(type) (implemented: default, linear, llama3)")
        }
    }

    /// `sliding_window` as Mistral and Phi-3 read it: null means full attention.
    func slidingWindow() throws -> Int? { try optionalSize("sliding_window") }

    /// Mistral's and Phi-3's reading: the shared fields, no biases (refused when asked for),
    /// an optional sliding window.
    func unbiasedWindowedConfig(_ architecture: Architecture, className: String, normEps: Float = 1e-6,
                                maxPositions: Int = 2048) throws -> ModelConfig {
        try refuseTrue("attention_bias", "mlp_bias", family: className)
        var c = try rotaryDecoderConfig(architecture, normEps: normEps, maxPositions: maxPositions)
        c.slidingWindow = try slidingWindow()
        return c
    }

    /// Refuses `key: true` for a family whose transformers class has no such option (its
    /// checkpoint would hold weights that transformers drops).
    func refuseTrue(_ keys: String..., family: String) throws {
        for key in keys where try bool(key) == true {
            throw refuse(key, "is true, but \(family) has no such biases")
        }
    }
}

extension ModelConfig {
    /// config.json keys shared by the rotary families.
    func rotaryDecoderJSON() -> [String: Any] {
        var j: [String: Any] = [
            "hidden_size": hiddenSize, "intermediate_size": intermediateSize, "num_hidden_layers": numLayers,
            "num_attention_heads": numHeads, "num_key_value_heads": numKVHeads, "head_dim": headDim,
            "rms_norm_eps": normEps, "rope_theta": ropeTheta, "max_position_embeddings": maxPositions,
            "tie_word_embeddings": tieWordEmbeddings, "hidden_act": "silu",
        ]
        switch ropeScaling {
        case nil: break
        case let .linear(factor)?: j["rope_scaling"] = ["rope_type": "linear", "factor": factor]
        case let .llama3(factor, low, high, orig)?:
            j["rope_scaling"] = ["rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                                 "high_freq_factor": high, "original_max_position_embeddings": orig]
        }
        return j
    }

    /// The shared keys and `sliding_window` (null for none), as Mistral and Phi-3 write them.
    func windowedRotaryDecoderJSON() -> [String: Any] {
        rotaryDecoderJSON().merging(["sliding_window": slidingWindow.map { $0 as Any } ?? NSNull()]) { $1 }
    }
}
