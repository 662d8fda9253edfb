import Foundation
import ITuneModels
import ITuneTensor
import ITuneTokenizers

/// A Hugging Face model directory loaded for use: the model on a device and its tokenizer.
public struct ModelBundle {
    public let directory: URL
    public let model: any CausalLM
    public let tokenizer: Tokenizer
    /// Seconds spent reading and converting the weights.
    public let loadSeconds: Double

    /// `matrices`: the storage of the projection and embedding weights (`loadPretrained`).
    public init(directory: URL, on device: Device, matrices: DType = .f32) throws {
        self.directory = directory
        let start = Date()
        model = try loadPretrained(directory, on: device, matrices: matrices)
        try model.device.backend().synchronize()
        loadSeconds = Date().timeIntervalSince(start)
        tokenizer = try Tokenizer(directory: directory)
    }

    /// The storage of the matrices for inference (generation) when none is asked for: the
    /// checkpoint's own dtype, so that a bf16 or f16 checkpoint stays 16-bit (each new token
    /// reads every weight once: half the bytes, and the exact values of the file). The CPU's
    /// GEMV and the OpenCL GEMM kernels read 16-bit weights as stored.
    public static func inferenceMatrices(_ directory: URL) throws -> DType {
        try Checkpoint(directory: directory).matrixDType()
    }

    /// Token ids that end generation: the model's eos ids and the tokenizer's eos token.
    public var stopTokens: Set<Int32> {
        var s = Set(model.config.eosTokenIDs.map(Int32.init))
        if let e = tokenizer.eosTokenID { s.insert(Int32(e)) }
        return s
    }

    /// Generates a continuation of `prompt`, calling `onText` with each new piece of decoded
    /// text as it becomes complete (a token that ends inside a UTF-8 character waits for the
    /// next). Stops at eos, at any of `stopStrings` (which is cut from the text), or at the
    /// token limit. Returns the whole generated text and the generation result.
    public func generate(prompt: String, options: GenerationOptions, stopStrings: [String] = [], addSpecialTokens: Bool = true,
                         onText: (String) -> Void = { _ in }) throws -> (text: String, result: GenerationResult) {
        let ids = tokenizer.encode(prompt, addSpecialTokens: addSpecialTokens).map(Int32.init)
        var opts = options
        opts.stopTokens.formUnion(stopTokens)
        var generated: [Int] = []
        var emitted = ""
        var stopped = false
        var result = try model.generate(prompt: ids, options: opts) { token in
            generated.append(Int(token))
            var text = tokenizer.decode(generated, skipSpecialTokens: true)
            if text.hasSuffix("\u{FFFD}") { return true }  // an incomplete character: wait
            if let cut = stopStrings.compactMap({ text.range(of: $0)?.lowerBound }).min() {
                text = String(text[..<cut])
                stopped = true
            }
            if text.utf8.starts(with: emitted.utf8) {
                onText(String(decoding: text.utf8.dropFirst(emitted.utf8.count), as: UTF8.self))
            }
            emitted = text
            return !stopped
        }
        if stopped { result.stopReason = .caller }
        let final = stopped ? emitted : tokenizer.decode(generated, skipSpecialTokens: true)
        if !stopped, final.utf8.count > emitted.utf8.count, final.utf8.starts(with: emitted.utf8) {
            onText(String(decoding: final.utf8.dropFirst(emitted.utf8.count), as: UTF8.self))
        }
        return (final, result)
    }

    /// `generate` for several prompts, decoded together as the rows of one batch (CausalLM's
    /// `generate(prompts:)`: the weights are read once per step for all of them), `batch` rows at
    /// a time. Each row stops at eos, at any of `stopStrings` (cut from its text) or at the token
    /// limit (`limits[i]` for prompt i where given, at most options.maxNewTokens), as `generate`
    /// would for that prompt alone. Returns one (text, result) per prompt.
    public func generate(prompts: [String], options: GenerationOptions, stopStrings: [String] = [],
                         addSpecialTokens: Bool = true, batch: Int = 8,
                         limits: [Int]? = nil) throws -> [(text: String, result: GenerationResult)] {
        if let limits, limits.count != prompts.count || limits.contains(where: { $0 < 1 }) {
            throw OptionError(option: "limits", message: "\(limits.count) token limits for \(prompts.count) prompts, each at least 1")
        }
        var opts = options
        opts.stopTokens.formUnion(stopTokens)
        var all: [(text: String, result: GenerationResult)] = []
        var start = 0
        while start < prompts.count {
            let group = Array(prompts[start..<min(prompts.count, start + max(1, batch))])
            let ids = group.map { tokenizer.encode($0, addSpecialTokens: addSpecialTokens).map(Int32.init) }
            var generated = [[Int]](repeating: [], count: group.count)
            var cut = [String?](repeating: nil, count: group.count)
            var limited = [Bool](repeating: false, count: group.count)
            let ownLimits = limits.map { Array($0[start..<(start + group.count)]) }
            var results = try model.generate(prompts: ids, options: opts) { row, token in
                generated[row].append(Int(token))
                if !stopStrings.isEmpty {
                    let text = tokenizer.decode(generated[row], skipSpecialTokens: true)
                    if let at = stopStrings.compactMap({ text.range(of: $0)?.lowerBound }).min() {
                        cut[row] = String(text[..<at])
                        return false
                    }
                }
                if let ownLimits, generated[row].count >= ownLimits[row] { limited[row] = true; return false }
                return true
            }
            for row in results.indices {
                if cut[row] != nil { results[row].stopReason = .caller } else if limited[row] { results[row].stopReason = .maxNewTokens }
                all.append((cut[row] ?? tokenizer.decode(generated[row], skipSpecialTokens: true), results[row]))
            }
            start += group.count
        }
        return all
    }
}
