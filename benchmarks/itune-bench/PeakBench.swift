import Foundation
import ITune

/// `itune-bench peak`: the CPU's own limits — f32 multiply-add throughput of all threads with
/// the widest vectors the CPU runs, and memory bandwidth (streaming read, copy). `matmul` and `step`
/// report their CPU rows as fractions of these, so that a figure means the same on any machine.
struct PeakBench: Benchmark {
    let name = "peak"
    let summary = "the CPU's limits: f32 FMA GFLOP/s of all threads, read and copy GB/s (matmul and step report fractions of them)"

    func run(_ options: BenchOptions, _ report: (BenchResult) -> Void) throws {
        let peak = MachinePeak.ofThisMachine(smoke: options.smoke)
        let label = try DeviceLabel(.cpu)
        let once = Timing(seconds: [1])
        report(BenchResult(bench: name, name: "fma", label: peak.vector, device: label, shape: [peak.threads],
                           flops: peak.gflops * 1e9, timing: once, extra: ["what": "independent FMA chains on registers in every thread: 12 of 8 lanes, 24 of 16"]))
        report(BenchResult(bench: name, name: "read", label: "128 MiB", device: label, shape: [peak.threads],
                           flops: peak.readGBs * 1e9, timing: once, unit: "GB/s", unitScale: 1e9))
        report(BenchResult(bench: name, name: "copy", label: "128 MiB (read + write)", device: label, shape: [peak.threads],
                           flops: peak.copyGBs * 1e9, timing: once, unit: "GB/s", unitScale: 1e9))
    }
}

extension MachinePeak {
    /// Measured once per process (a few seconds; a fraction of that in smoke runs).
    static func ofThisMachine(smoke: Bool) -> MachinePeak {
        if let cached = peakCache.value { return cached }
        let p = MachinePeak.measure(seconds: smoke ? 0.2 : 3)
        peakCache.value = p
        return p
    }
}

private final class PeakCache: @unchecked Sendable { var value: MachinePeak? }
private let peakCache = PeakCache()
