import Foundation
import ITuneModels
import ITuneTensor

/// Peak memory of a run: the process's maximum resident set (what the operating system
/// charged, libraries and allocator caches included) and the backend's peak bytes in tensors
/// (live tensors plus its buffer pool). The gap between the two is memory outside tensors.
public struct PeakMemory: Sendable, Equatable, CustomStringConvertible {
    /// getrusage's ru_maxrss, in bytes; 0 where unavailable.
    public var residentBytes = 0
    /// `Backend.peakBytesInUse` of the run's device; 0 where unavailable.
    public var tensorBytes = 0

    public init(residentBytes: Int = 0, tensorBytes: Int = 0) {
        self.residentBytes = residentBytes
        self.tensorBytes = tensorBytes
    }

    /// Measures now: the process's peak so far and `device`'s backend peak.
    public static func measure(_ device: Device) -> PeakMemory {
        var usage = rusage()
        var resident = 0
        #if os(Linux)
        if getrusage(RUSAGE_SELF.rawValue, &usage) == 0 { resident = Int(usage.ru_maxrss) * 1024 }  // kilobytes on Linux
        #else
        if getrusage(RUSAGE_SELF, &usage) == 0 { resident = Int(usage.ru_maxrss) }  // bytes on Darwin
        #endif
        let tensors = (try? device.backend().peakBytesInUse) ?? 0
        return PeakMemory(residentBytes: resident, tensorBytes: tensors)
    }

    /// The process's resident set now (Linux: /proc/self/statm), in bytes; nil where unavailable.
    public static func currentResidentBytes() -> Int? {
        #if os(Linux)
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
        return nil
        #endif
    }

    /// The resident peak since the last `resetResidentPeak()` (Linux: VmHWM of
    /// /proc/self/status), in bytes; nil where unavailable.
    public static func residentPeakBytes() -> Int? {
        #if os(Linux)
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        return kb * 1024
        #else
        return nil
        #endif
    }

    /// Starts a new resident peak at the current resident set (Linux ≥ 4.0: "5" written to
    /// /proc/self/clear_refs), so that a phase's peak (a training step's, not the loading's)
    /// can be read with `residentPeakBytes()`. Returns false where that is not possible.
    @discardableResult
    public static func resetResidentPeak() -> Bool {
        #if os(Linux)
        return (try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)) != nil
        #else
        return false
        #endif
    }

    /// Hands the allocator's free memory back to the system (glibc's malloc_trim), so that
    /// what a phase freed (the loading's temporaries) stops counting as resident.
    public static func trimAllocator() {
        #if os(Linux)
        // Looked up: <malloc.h> is not part of Swift's Glibc module.
        typealias Trim = @convention(c) (Int) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {
            _ = unsafeBitCast(symbol, to: Trim.self)(0)
        }
        #endif
    }

    public var description: String {
        String(format: "peak memory: %.1f MB resident (process max RSS), %.1f MB in tensors (backend peak)",
               Double(residentBytes) / 1e6, Double(tensorBytes) / 1e6)
    }
}

/// What a training run is expected to hold at its peak, from the model's shapes (printed by
/// `itune-gpu train` before the first step, beside the measured peak at the end). Exact for
/// weights and optimizer state; the activations are counted as the backward keeps them: per
/// decoder layer and token 4·C + 2·KV + 2·I + H floats (the two norms' inputs, q and k after
/// RoPE, v, the attention output and its logsumexp, the MLP's gate and up; norm and SwiGLU
/// outputs are recomputed, no T×T probabilities are kept); with checkpointing one C-vector per
/// token per layer plus one layer's set; and the head's chunk of logits (Tensor.headChunkRows × V).
public struct MemoryEstimate: Sendable, Equatable, CustomStringConvertible {
    public var weightBytes: Int
    public var optimizerBytes: Int
    public var activationBytes: Int
    public var totalBytes: Int { weightBytes + optimizerBytes + activationBytes }

    public init(weightBytes: Int, optimizerBytes: Int, activationBytes: Int) {
        self.weightBytes = weightBytes
        self.optimizerBytes = optimizerBytes
        self.activationBytes = activationBytes
    }

    /// `trainable`: the tensors that train (each gets a gradient and two AdamW moments, f32);
    /// `tokensPerMicroBatch`: batch size × the longest row.
    public init(model: any CausalLM, trainable: [Tensor], tokensPerMicroBatch tokens: Int, checkpointing: Bool) {
        var weights = model.parameters.reduce(0) { $0 + $1.count * $1.dtype.byteSize }
        weights += model.projections().compactMap { $0.quantizedWeight?.byteCount }.reduce(0, +)
        weights += model.quantizedEmbeddings.reduce(0) { $0 + $1.byteCount }
        weights += model.projections().compactMap(\.lora).reduce(0) { $0 + 4 * ($1.a.count + $1.b.count) }
        let trainableFloats = trainable.reduce(0) { $0 + $1.count }
        let c = model.config
        let perLayer = Double(tokens) * Double(4 * c.hiddenSize + 2 * c.numKVHeads * c.headDim + 2 * c.intermediateSize + c.numHeads) * 4
        let layers = Double(c.numLayers)
        // The head's chunk of logits (turned into its gradient in place).
        let head = Double(Tensor.headChunkRows(rows: tokens, vocabulary: c.vocabSize, checkpointing: checkpointing)) * Double(c.vocabSize) * 4
        let activations = (checkpointing ? layers * Double(tokens * c.hiddenSize * 4) + perLayer : layers * perLayer) + head
        self.init(weightBytes: weights, optimizerBytes: 12 * trainableFloats,
                  activationBytes: Int(min(activations, Double(Int.max / 4))))
    }

    public var description: String {
        String(format: "expected peak memory: about %.1f MB (weights %.1f MB, gradients and AdamW state %.1f MB, activations ≈ %.1f MB)",
               Double(totalBytes) / 1e6, Double(weightBytes) / 1e6, Double(optimizerBytes) / 1e6, Double(activationBytes) / 1e6)
    }
}
