import ArgumentParser
import Foundation
import ITune

// The option groups of itune-bench's subcommands; each fills part of a `BenchOptions`.

/// Options every subcommand takes.
struct CommonBenchOptions: ParsableArguments {
    @Option(help: "cpu, auto, opencl:P:D, opencl (every OpenCL device), gpu (every OpenCL GPU or accelerator; every OpenCL device where there is none) or all (cpu and every OpenCL device).")
    var device = "cpu"
    @Flag(help: "One JSON object per result instead of a table.")
    var json = false
    @Flag(help: "Tiny sizes, one repetition: checks that everything runs, not how fast.")
    var smoke = false
    @Option(help: "Seconds per case after warm-up (at least three runs).")
    var seconds = BenchOptions().secondsPerCase

    func validate() throws {
        guard seconds > 0, seconds.isFinite else { throw ValidationError("--seconds takes a positive number, not \(seconds)") }
    }

    func benchOptions() throws -> BenchOptions {
        var o = BenchOptions()
        o.devices = try BenchOptions.parseDevices(device)
        o.json = json
        o.smoke = smoke
        o.secondsPerCase = seconds
        if smoke { o.minReps = 1; o.secondsPerCase = 0 }
        return o
    }
}

/// Options particular to some subcommands; each fills its part of a `BenchOptions`.
protocol BenchOptionGroup: ParsableArguments {
    func apply(to o: inout BenchOptions)
}

/// tokenize, load: nothing beyond the common options.
struct NoOptions: BenchOptionGroup {
    func apply(to o: inout BenchOptions) {}
}

/// matmul: square sizes, or given shapes.
struct SizeOptions: BenchOptionGroup {
    @Option(help: "matmul: square sizes n (n×n×n), positive and comma-separated, instead of the defaults.")
    var sizes: PositiveList?
    @Option(help: "matmul: only these products, comma-separated MxNxK with an optional :nn, :nt, :tn or :tt (op(A), op(B) transposed; default nn), e.g. 1024x1536x576:nt; with --sizes, the squares too.")
    var shapes: ShapeList?
    @Flag(help: "matmul: before each timed product, sweep 256 MiB through the caches, so that the operands come from memory as they do in a training step (each op's inputs were made ops before), not from the cache the previous repetition left them in.")
    var cold = false
    @Option(name: .customLong("b-dtype"), help: "matmul: storage of the right operand B, comma-separated (f32, bf16, f16; default f32): a 16-bit B is converted as the product reads it, as LoRA's frozen base is.")
    var bDtype: String?
    func apply(to o: inout BenchOptions) {
        if let sizes { o.sizes = sizes.values }
        if let shapes { o.shapes = shapes.values }
        o.cold = cold
        if let bDtype { o.bDTypes = bDtype.split(separator: ",").map(String.init) }
    }
}

/// `MxNxK[:nn|nt|tn|tt]`, comma-separated: products C (M,N) = op(A) (M,K) · op(B) (K,N).
struct ShapeList: ExpressibleByArgument {
    let values: [BenchOptions.Shape]
    init?(argument: String) {
        var out: [BenchOptions.Shape] = []
        for item in argument.split(separator: ",") {
            let parts = item.trimmingCharacters(in: .whitespaces).lowercased().split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 1 || parts.count == 2 else { return nil }
            let dims = parts[0].split(separator: "x").map { Int($0) }
            guard dims.count == 3, let m = dims[0], let n = dims[1], let k = dims[2], m > 0, n > 0, k > 0 else { return nil }
            let flags = parts.count == 2 ? String(parts[1]) : "nn"
            guard ["nn", "nt", "tn", "tt"].contains(flags) else { return nil }
            out.append(BenchOptions.Shape(M: m, N: n, K: k, transposeA: flags.first == "t", transposeB: flags.last == "t"))
        }
        guard !out.isEmpty else { return nil }
        values = out
    }
    static var defaultValueDescription: String { "MxNxK[:nt],…" }
}

/// softmax and attention: sequence lengths.
struct LengthOptions: BenchOptionGroup {
    @Option(help: "softmax/attention: sequence lengths, positive and comma-separated (default 128,256,512,1024,2048).")
    var lengths: PositiveList?
    func apply(to o: inout BenchOptions) { if let lengths { o.lengths = lengths.values } }
}

/// step: which reference configurations and modes.
struct StepOptions: BenchOptionGroup {
    @Option(help: "step: reference configurations, comma-separated (tiny, smollm2-135m).")
    var configs: String?
    @Option(help: "step: modes, comma-separated (full, lora).")
    var modes: String?
    @Option(help: "step: storage of the frozen base in LoRA rows, comma-separated (f32, bf16, f16, nf4, int8; default f32). Full rows are f32. generate: storage of the matrices, comma-separated (f32, bf16, f16; default bf16).")
    var baseDtype: String?
    @Option(help: "step: data-parallel scaling on the CPU path: 1 rank of 1 thread, N ranks of 1 thread (mpirun) and 1 process of N threads, with the allreduce time per step.")
    var ranks: Int?
    @Option(help: "step --ranks: gradient bucket size in MB, as itune-gpu train --bucket-mb (default 25).")
    var bucketMb: Double?
    @Option(help: "step: optimizer steps per read of the losses, as itune-gpu train --log-every (one timed run is this many steps).")
    var logEvery = 1
    @Flag(help: "step: end each case with a per-kernel table (per op on the CPU path) of the timed steps; in --json, a \"profile\" field. generate: the same table per generate call.")
    var profile = false
    @Flag(help: "step: also run each case with gradient checkpointing (each block recomputed in the backward).")
    var gradCheckpoint = false
    @Flag(help: "step: run each case with gradient checkpointing only (one process per case, for its own peak RSS).")
    var gradCheckpointOnly = false
    @Option(help: "step: untimed runs before the timed ones (0 times the first step too: for shapes where a step takes minutes).")
    var warmup = 1
    @Flag(help: "step: nf4 and int8 rows with the absmax constants quantised too (train --double-quant).")
    var doubleQuant = false
    @Flag(help: "step: nf4 and int8 rows with the token embeddings and head quantised too (train --quantize-embeddings).")
    var quantizeEmbeddings = false
    @Flag(help: "step: first run one untimed forward and report the activations it leaves for the backward, in MB by the op that made them (\"saved_mb\", \"saved_by_op_mb\").")
    var savedTensors = false
    @Option(help: "step: the share of each row's tokens that are scored, as an answer-only loss scores the answer and not the prompt before it (the first tokens of each row are ignored; real Self-Instruct records under the alpaca template: 0.46). Default 1: every token.")
    var answerFraction = 1.0
    @Option(help: "generate: prompts decoded together as the rows of one batch (each its own 16 tokens), as itune-gpu train's sample generations are; tokens/s counts every row's tokens. Default 1.")
    var rows = 1
    @Option(help: "generate: tokens in each prompt (its prefill is timed as prefill_ms). Default 16.")
    var promptTokens = 16

    func validate() throws {
        guard answerFraction > 0, answerFraction <= 1 else { throw ValidationError("--answer-fraction must be in (0, 1], not \(answerFraction)") }
        guard logEvery >= 1, logEvery <= 100_000 else { throw ValidationError("--log-every must be in [1, 100000], not \(logEvery)") }
        guard warmup >= 0, warmup <= 100 else { throw ValidationError("--warmup must be in [0, 100], not \(warmup)") }
        guard rows >= 1, rows <= 256 else { throw ValidationError("--rows must be in [1, 256], not \(rows)") }
        guard promptTokens >= 1, promptTokens <= 32768 else { throw ValidationError("--prompt-tokens must be in [1, 32768], not \(promptTokens)") }
        if let bucketMb { guard bucketMb.isFinite, bucketMb * 1_048_576 >= 4, bucketMb <= 1024 else { throw ValidationError("--bucket-mb must be in [4 bytes, 1024 MB], not \(bucketMb)") } }
    }

    func apply(to o: inout BenchOptions) {
        o.ranks = ranks
        if let bucketMb { o.bucketMB = bucketMb }
        if let configs { o.configs = configs.split(separator: ",").map(String.init) }
        if let modes { o.modes = modes.split(separator: ",").map(String.init) }
        o.logEvery = logEvery
        o.profile = profile
        o.gradCheckpoint = gradCheckpoint
        o.gradCheckpointOnly = gradCheckpointOnly
        o.warmup = warmup
        o.savedTensors = savedTensors
        o.answerFraction = answerFraction
        o.rows = rows
        o.promptTokens = promptTokens
        o.doubleQuant = doubleQuant
        o.quantizeEmbeddings = quantizeEmbeddings
        if let baseDtype { o.baseDTypes = baseDtype.split(separator: ",").map(String.init) }
    }
}

/// Positive whole numbers separated by commas: `256,512`.
struct PositiveList: ExpressibleByArgument {
    let values: [Int]
    init?(argument: String) {
        let parts = argument.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        values = parts.compactMap { $0 }
    }
    static var defaultValueDescription: String { "n,n,…" }
}
