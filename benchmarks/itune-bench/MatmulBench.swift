import Foundation
import ITune

/// `itune-bench matmul`: C = A·B at square sizes and at the projection shapes of a
/// reference model, on each device; on OpenCL devices both CLBlast and our own kernel.
struct MatmulBench: Benchmark {
    let name = "matmul"
    let summary = "C = A·B: square sizes, smollm2-135m and qwen2.5-0.5b projections (GFLOP/s = 2·M·N·K / time; CPU rows: fraction of the measured peak)"

    static let defaultSizes = [256, 512, 1024, 2048, 4096]
    static let smokeSizes = [64, 128]

    /// One product: A (M,K) times B (K,N), or times Wᵀ for a weight W stored (N,K) as
    /// linear layers keep it.
    struct Case {
        let label: String
        let M: Int, N: Int, K: Int
        let transposeB: Bool
        /// op(A) = Aᵀ for A stored (K,M): a weight gradient, dW = dYᵀ·X.
        var transposeA = false
    }

    /// The projections of a model's training step: q_proj, gate_proj, down_proj and the LM
    /// head over a batch of `tokens`.
    static func projections(_ model: String, tokens: Int, hidden: Int, intermediate: Int, vocab: Int) -> [Case] {
        [Case(label: "\(model) q_proj", M: tokens, N: hidden, K: hidden, transposeB: true),
         Case(label: "\(model) gate_proj", M: tokens, N: intermediate, K: hidden, transposeB: true),
         Case(label: "\(model) down_proj", M: tokens, N: hidden, K: intermediate, transposeB: true),
         Case(label: "\(model) lm_head", M: tokens, N: vocab, K: hidden, transposeB: true)]
    }

    /// The other products of a training step at one projection (hidden → out): the input
    /// gradient dX = dY·W (W stored (out, hidden)), the weight gradient dW = dYᵀ·X (full
    /// fine-tuning), and LoRA's rank-r products: X·Aᵀ, its input gradient dXA·A, and the
    /// adapters' gradients dA = dXAᵀ·X and dB = dYᵀ·XA.
    static func stepProducts(_ model: String, tokens: Int, hidden: Int, out: Int, rank: Int) -> [Case] {
        [Case(label: "\(model) dX = dY·W", M: tokens, N: hidden, K: out, transposeB: false),
         Case(label: "\(model) dW = dYᵀ·X", M: out, N: hidden, K: tokens, transposeB: false, transposeA: true),
         Case(label: "\(model) lora X·Aᵀ", M: tokens, N: rank, K: hidden, transposeB: true),
         Case(label: "\(model) lora dXA·A", M: tokens, N: hidden, K: rank, transposeB: false),
         Case(label: "\(model) lora dA = dXAᵀ·X", M: rank, N: hidden, K: tokens, transposeB: false, transposeA: true),
         Case(label: "\(model) lora dB = dYᵀ·XA", M: out, N: rank, K: tokens, transposeB: false, transposeA: true)]
    }

    /// smollm2-135m (hidden 576, intermediate 1536, vocab 49152, a batch of 4×256 tokens) and
    /// Qwen2.5-0.5B (hidden 896, intermediate 4864, vocab 151,936, 2×256 tokens); the backward
    /// and LoRA (r 8) products at smollm2's gate_proj.
    static let modelCases = projections("smollm2-135m", tokens: 1024, hidden: 576, intermediate: 1536, vocab: 49152)
        + stepProducts("smollm2-135m gate", tokens: 1024, hidden: 576, out: 1536, rank: 8)
        + projections("qwen2.5-0.5b", tokens: 512, hidden: 896, intermediate: 4864, vocab: 151_936)

    func cases(_ options: BenchOptions) -> [Case] {
        if let shapes = options.shapes {
            let given = shapes.map {
                Case(label: "\($0.M)x\($0.N)x\($0.K):\($0.transposeA ? "t" : "n")\($0.transposeB ? "t" : "n")",
                     M: $0.M, N: $0.N, K: $0.K, transposeB: $0.transposeB, transposeA: $0.transposeA)
            }
            return (options.sizes ?? []).map { Case(label: "square \($0)", M: $0, N: $0, K: $0, transposeB: false) } + given
        }
        let sizes = options.sizes ?? (options.smoke ? Self.smokeSizes : Self.defaultSizes)
        let square = sizes.map { Case(label: "square \($0)", M: $0, N: $0, K: $0, transposeB: false) }
        return options.smoke ? square : square + Self.modelCases
    }

    /// The implementations to time on a device: the CPU path; on OpenCL, CLBlast (when it
    /// loads) and our own kernel.
    func variants(_ device: Device) -> [(name: String, ownKernel: Bool)] {
        guard case .opencl = device else { return [("swift-sgemm", false)] }
        return CLBlast.isAvailable ? [("clblast", false), ("opencl-own-gemm", true)] : [("opencl-own-gemm", true)]
    }

    func run(_ options: BenchOptions, _ report: (BenchResult) -> Void) throws {
        // --b-dtype, checked before anything runs.
        let bDTypes = try (options.bDTypes ?? ["f32"]).map { name -> DType in
            guard let t = DType(rawValue: name), t == .f32 || t.isHalfFloat else {
                throw BenchError.usage("matmul: unknown --b-dtype '\(name)' (f32, bf16, f16)")
            }
            return t
        }
        for device in options.devices {
            let label = try DeviceLabel(device)
            for c in cases(options) {
                // Inputs in [-1, 1); the weight is stored (N,K) when the case multiplies by Wᵀ.
                let a = try Tensor.uniform(c.transposeA ? [c.K, c.M] : [c.M, c.K], -1, 1, seed: 1, on: device)
                let bF32 = try Tensor.uniform(c.transposeB ? [c.N, c.K] : [c.K, c.N], -1, 1, seed: 2, on: device)
                for bDType in bDTypes {
                    let b = bDType == .f32 ? bF32 : try noGrad { try bF32.converted(to: bDType) }
                    for variant in variants(device) {
                        // The choice is the device's own: set it for this variant, then put it back.
                        let cl = try device.backend() as? OpenCLBackend
                        let saved = cl?.gemmImplementation
                        cl?.gemmImplementation = variant.ownKernel ? .own : .clblast
                        defer { if let saved { cl?.gemmImplementation = saved } }
                        let timing = try measure(seconds: options.secondsPerCase, minReps: options.minReps, prepare: {
                            if options.cold { CacheSweep.run() }
                        }) {
                            let out = try noGrad { try a.matmul(b, transposeA: c.transposeA, transposeB: c.transposeB) }
                            try out.backend.synchronize()
                        }
                        let suffix = (bDType == .f32 ? "" : " B \(bDType.rawValue)") + (options.cold ? " cold" : "")
                        var result = BenchResult(bench: name, name: variant.name, label: c.label + suffix, device: label,
                                                 shape: [c.M, c.N, c.K], flops: 2 * Double(c.M) * Double(c.N) * Double(c.K),
                                                 timing: timing)
                        result.extra["transpose_a"] = c.transposeA
                        result.extra["transpose_b"] = c.transposeB
                        if options.cold { result.extra["cold"] = true }
                        result.extra["b_dtype"] = bDType.rawValue
                        if device == .cpu {
                            // The fraction of this machine's measured FMA peak (itune-bench peak).
                            let peak = MachinePeak.ofThisMachine(smoke: options.smoke).gflops
                            result.extra["peak_fraction"] = result.gflopsMedian / peak
                            result.extra["peak_gflops"] = peak
                        }
                        report(result)
                    }
                }
                try device.backend().releaseCachedBuffers()
            }
        }
    }
}

/// `--cold`: a write to every 64-byte line of 256 MiB, several times any L3, so that what a
/// product reads next comes from memory.
enum CacheSweep {
    private static let floats = 64 << 20
    private static let buffer: UnsafeMutablePointer<Float> = {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: floats)
        p.initialize(repeating: 0, count: floats)
        return p
    }()
    static func run() {
        for i in stride(from: 0, to: floats, by: 16) { buffer[i] += 1 }
    }
}
