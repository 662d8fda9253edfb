import CGemmKernels
import Foundation

// Which GEMM micro-kernel and cache blocking this process uses, chosen once when it starts
// from the CPU it runs on (cpuid + xgetbv on x86-64, hwcap / sysctl on arm64, cache sizes from
// sysfs / sysconf / sysctl), so that one generic binary runs the AVX2+FMA or AVX-512 kernel
// where the CPU has it, and the NEON kernel on arm64. The kernels with wider instructions than
// the build's baseline live in the C target CGemmKernels, each compiled with its own target
// attribute (Swift has no per-function target features); the NEON one (neon.c) is built from
// portable C elsewhere, so that its 12 × 8 tile is tested on any machine. The pure-Swift kernel
// (Gemm.swift) is the fallback: the build's own vectors (SSE on a portable x86-64 build, or
// what -DITUNE_FMA / -DITUNE_AVX512 with -target-cpu allow). Each C kernel has a two-pair form
// for LoRA's K + r products (GemmLowRank.swift).
//
// ITUNE_GEMM_KERNEL=swift|avx2|avx512|neon forces a kernel (for comparisons); one the CPU lacks is
// refused with a message on stderr and the automatic choice is kept. ITUNE_GEMM_KC, _MC and
// _NC override the blocking (for tuning; rounded to the tile, non-positive values ignored).

/// A micro-kernel: c (MR,NR) = alpha · packed A (kc,MR) · packed B (kc,NR) + beta · c.
typealias GemmMicroKernel = @convention(c) (Int, UnsafePointer<Float>?, UnsafePointer<Float>?,
                                            UnsafeMutablePointer<Float>?, Int, Float, Float) -> Void

/// A micro-kernel over two pairs of packed panels: c = alpha · (a (kc,MR) · b (kc,NR) + a2 (kc2,MR) ·
/// b2 (kc2,NR)) + beta · c, with one load and store of c (cpuSgemmPlusLowRank's last K block).
typealias GemmMicroKernel2 = @convention(c) (Int, UnsafePointer<Float>?, UnsafePointer<Float>?, Int,
                                             UnsafePointer<Float>?, UnsafePointer<Float>?,
                                             UnsafeMutablePointer<Float>?, Int, Float, Float) -> Void

/// The micro-kernels this binary carries.
public enum GemmKernelKind: String, Sendable, CaseIterable {
    /// Gemm.swift's SIMD kernel, 6 × 2 vectors of the build's width.
    case swift
    /// CGemmKernels' 6 × 16 kernel: 12 ymm accumulators, AVX2 + FMA.
    case avx2
    /// CGemmKernels' 12 × 32 kernel: 24 zmm accumulators, AVX-512F.
    case avx512
    /// CGemmKernels' 12 × 8 kernel: 24 NEON accumulators (arm64; portable C elsewhere, for tests).
    case neon

    /// Whether the running CPU can execute it.
    public var isSupported: Bool {
        let f = GemmCPU.features
        switch self {
        case .swift: return true
        case .avx2: return f & UInt32(ITUNE_CPU_X86_AVX2) != 0 && f & UInt32(ITUNE_CPU_X86_FMA) != 0
        case .avx512: return f & UInt32(ITUNE_CPU_X86_AVX512F) != 0
        case .neon: return f & UInt32(ITUNE_CPU_ARM_ASIMD) != 0 && itune_neon_kernel_is_native() != 0
        }
    }
}

/// The running CPU as the GEMM sees it.
public enum GemmCPU {
    /// itune_cpu_features() bits.
    public static let features: UInt32 = UInt32(itune_cpu_features())

    /// Data cache sizes in bytes (0 where unknown): L1d, L2, L3.
    public static let caches: (l1d: Int, l2: Int, l3: Int) = {
        var l1 = 0, l2 = 0, l3 = 0
        itune_cpu_cache_sizes(&l1, &l2, &l3)
        return (l1, l2, l3)
    }()

    /// Feature names, e.g. "avx2 fma" or "asimd fp16".
    public static var featureNames: String {
        let names: [(UInt32, String)] = [
            (UInt32(ITUNE_CPU_X86_AVX2), "avx2"), (UInt32(ITUNE_CPU_X86_FMA), "fma"),
            (UInt32(ITUNE_CPU_X86_AVX512F), "avx512f"), (UInt32(ITUNE_CPU_X86_AVX512VL), "avx512vl"),
            (UInt32(ITUNE_CPU_ARM_ASIMD), "asimd"), (UInt32(ITUNE_CPU_ARM_FP16), "fp16"),
            (UInt32(ITUNE_CPU_ARM_SVE), "sve"), (UInt32(ITUNE_CPU_ARM_BF16), "bf16"),
        ]
        let on = names.filter { features & $0.0 != 0 }.map(\.1)
        return on.isEmpty ? "baseline" : on.joined(separator: " ")
    }
}

/// A micro-kernel with its tile and the cache blocking around it.
struct GemmConfig: Sendable {
    let kind: GemmKernelKind
    /// Micro-tile rows and columns.
    let mr: Int, nr: Int
    /// Nominal depth of a packed block (B micro-panel (KC,NR) in 1/16 of L2; K is cut into the
    /// nearest count of equal blocks, gemmKBlock), rows of a packed A block ((MC,KC) in half of
    /// L2), columns of a packed B block ((KC,NC) in a quarter of L3; less for a tall C strip,
    /// gemmNCLimit).
    private(set) var kc: Int, mcMax: Int, nc: Int
    /// The L3 (or last-level) cache in bytes, for the blocking of N against the C strip
    /// (sgemmPackedRegion).
    let l3Bytes: Int
    /// Vector width in floats, for reports.
    let vectorWidth: Int
    let kernel: GemmMicroKernel?
    /// The two-pair form of `kernel` where there is one (AVX2, AVX-512); elsewhere two calls of `kernel`.
    let kernel2: GemmMicroKernel2?

    /// The configuration for `kind` on this CPU's caches.
    init(kind: GemmKernelKind, caches: (l1d: Int, l2: Int, l3: Int) = GemmCPU.caches) {
        self.kind = kind
        switch kind {
        case .swift:
            mr = 6; nr = 2 * GemmVector.scalarCount; vectorWidth = GemmVector.scalarCount; kernel = nil; kernel2 = nil
        case .avx2:
            mr = 6; nr = 16; vectorWidth = 8; kernel = itune_sgemm_ukr_avx2_6x16; kernel2 = itune_sgemm_ukr2_avx2_6x16
        case .avx512:
            mr = 12; nr = 32; vectorWidth = 16; kernel = itune_sgemm_ukr_avx512_12x32
            kernel2 = itune_sgemm_ukr2_avx512_12x32
        case .neon:
            mr = 12; nr = 8; vectorWidth = 4; kernel = itune_sgemm_ukr_neon_12x8; kernel2 = itune_sgemm_ukr2_neon_12x8
        }
        // Unknown sizes fall back to a common modern core: 512 KiB L2, 8 MiB L3. (L1d sizes no
        // block since KC moved to L2, 2026-11-30.)
        let l2 = caches.l2 > 0 ? caches.l2 : 512 << 10
        let l3 = caches.l3 > 0 ? caches.l3 : 8 << 20
        // KC: the B micro-panel (KC,NR) in 1/16 of L2 (512 on a Zen 3: 32 KiB, streamed from L2 as
        // much as from L1). Until 2026-11-30 it was half of L1 (256), which cut the step's K = 576
        // into three passes over C; one pass of 576 measured 5–20% faster at its shapes (2 threads,
        // bench-results/gemm-driver-2026-11-30).
        kc = min(768, max(128, l2 / 16 / (nr * 4) / 8 * 8))
        mcMax = min(600, max(4 * mr, l2 / 2 / (kc * 4) / mr * mr))
        nc = min(4096, max(16 * nr, l3 / 4 / (kc * 4) / nr * nr))
        l3Bytes = l3
    }

    /// Whether packing uses CGemmKernels' AVX2 transposes: with the x86 C kernels (the Swift
    /// kernel keeps the Swift packing, so that the per-kernel tests run both; the NEON kernel
    /// packs in Swift as it does on arm64).
    var packsWithAVX2: Bool { (kind == .avx2 || kind == .avx512) && GemmKernelKind.avx2.isSupported }

    /// This configuration with KC, MC or NC replaced where given (positive), MC and NC rounded
    /// up to the tile.
    func with(kc newKC: Int?, mc newMC: Int?, nc newNC: Int?) -> GemmConfig {
        var c = self
        if let v = newKC, v > 0 { c.kc = v }
        if let v = newMC, v > 0 { c.mcMax = gemmRoundUp(v, mr) }
        if let v = newNC, v > 0 { c.nc = gemmRoundUp(v, nr) }
        return c
    }

    /// The kernel in use: ITUNE_GEMM_KERNEL if set and supported, else the widest the CPU runs.
    static let current: GemmConfig = {
        let env = ProcessInfo.processInfo.environment
        return chosenKind(env).with(kc: env["ITUNE_GEMM_KC"].flatMap { Int($0) }, mc: env["ITUNE_GEMM_MC"].flatMap { Int($0) },
                                    nc: env["ITUNE_GEMM_NC"].flatMap { Int($0) })
    }()

    private static func chosenKind(_ env: [String: String]) -> GemmConfig {
        if let name = env["ITUNE_GEMM_KERNEL"], !name.isEmpty {
            if let kind = GemmKernelKind(rawValue: name.lowercased()), kind.isSupported {
                return GemmConfig(kind: kind)
            }
            let known = GemmKernelKind.allCases.map(\.rawValue).joined(separator: ", ")
            FileHandle.standardError.write(Data(
                "itune: ITUNE_GEMM_KERNEL=\(name) is not a kernel this CPU runs (kernels: \(known)); choosing automatically\n".utf8))
        }
        return GemmConfig(kind: bestKind)
    }

    /// The automatic choice: the widest C kernel the CPU runs (AVX-512, else AVX2+FMA), unless
    /// this build's own Swift vectors are 16 wide and the CPU has no C kernel as wide. The C
    /// loops run at the FMA ports' rate where the Swift kernel does not: in L1 on an AMD EPYC
    /// Zen 3 core the AVX2 kernel (assembly) runs 80 of the core's 92 GFLOP/s, where the C loop
    /// clang scheduled itself ran 35 (it spilled accumulators) and a native build's Swift kernel
    /// 45–55. The AVX-512 kernel first ran on an AVX-512 CPU on 2026-12-01 (an Ice Lake Xeon,
    /// bench-results/cpu-quiet-2026-12-01-icelake): 148–155 of a core's 178 GFLOP/s over a packed
    /// A block, where the AVX2 kernel runs 103–106 (its own peak is 109); on 2 threads 153–221
    /// GFLOP/s at the step's shapes against the AVX2 kernel's 97–126, the 135M step 1.29–1.64×.
    /// On arm64 the NEON kernel (C intrinsics, 24 accumulators) where the Swift kernel's 6 × 2
    /// SIMD8 tile is left to the compiler's register allocation; it has not yet been timed
    /// against the Swift kernel on arm64 hardware (its results are checked under qemu).
    static var bestKind: GemmKernelKind {
        if GemmKernelKind.avx512.isSupported { return .avx512 }
        if GemmKernelKind.avx2.isSupported && GemmVector.scalarCount < 16 { return .avx2 }
        if GemmKernelKind.neon.isSupported { return .neon }
        return .swift
    }

    /// Whether the few-row paths may use the AVX2 + FMA helpers: with a C micro-kernel in use
    /// (ITUNE_GEMM_KERNEL=swift keeps the few-row paths in Swift too, so that it measures the
    /// Swift code alone).
    static let fewRowsAVX2: Bool = current.kind != .swift && GemmKernelKind.avx2.isSupported && GemmVector.scalarCount < 16
    /// The few-row dot products and row sums in the AVX-512 C tiles (any build, where the
    /// AVX-512 kernel is in use: the CPU's choice where it has AVX-512F, and not under
    /// ITUNE_GEMM_KERNEL=avx2 or swift): at LoRA's rank-8 products (1024 × 8 × 576) 2–3× the
    /// 4-row Swift loop.
    static let fewRowsAVX512: Bool = current.kind == .avx512

    var description: String {
        let isa: String
        switch kind {
        case .swift:
#if ITUNE_AVX512 || ITUNE_FMA || arch(arm64)
            isa = "Swift SIMD, FMA"
#else
            isa = "Swift SIMD, no FMA"
#endif
        case .avx2: isa = "AVX2+FMA"
        case .avx512: isa = "AVX-512"
        case .neon: isa = itune_neon_kernel_is_native() != 0 ? "NEON" : "portable C (NEON's arithmetic)"
        }
        return "\(mr)x\(nr) micro-kernel, \(vectorWidth)-wide \(isa), KC \(kc) MC \(mcMax) NC \(nc)"
    }
}

/// What the CPU GEMM runs in this process, e.g. "6x16 micro-kernel, 8-wide AVX2+FMA, KC 256
/// MC 252 NC 4096", for benchmark reports.
public var cpuSgemmKernelDescription: String { GemmConfig.current.description }

/// The kind of micro-kernel in use (`ITUNE_GEMM_KERNEL` or the CPU's widest).
public var cpuSgemmKernelKind: GemmKernelKind { GemmConfig.current.kind }
