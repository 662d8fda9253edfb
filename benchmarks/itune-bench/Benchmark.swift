import Foundation
import ITune

// What every itune-bench subcommand shares: options, the device list, timing, results.
// A benchmark is a `Benchmark` (one file each, e.g. MatmulBench.swift) with a subcommand in
// BenchCommands.swift; it reports `BenchResult`s to a `ResultPrinter`.

/// One subcommand of itune-bench.
protocol Benchmark {
    /// The subcommand name, e.g. "matmul".
    var name: String { get }
    /// One line for the usage text.
    var summary: String { get }
    /// Runs every case on every device in `options`, reporting each result as it comes.
    func run(_ options: BenchOptions, _ report: (BenchResult) -> Void) throws
}

/// What a benchmark runs with (filled from the subcommand's options, BenchOptionGroups.swift).
struct BenchOptions {
    var devices: [Device] = [.cpu]
    var json = false
    /// Square sizes (n for n×n×n); nil = the benchmark's defaults.
    var sizes: [Int]? = nil
    /// matmul: only these products (with `sizes`, the squares too); nil = the defaults.
    var shapes: [Shape]? = nil
    struct Shape { let M: Int, N: Int, K: Int, transposeA: Bool, transposeB: Bool }
    /// matmul: the operands evicted from the caches before each timed product.
    var cold = false
    /// matmul: storage of B (f32, bf16, f16; nil = f32).
    var bDTypes: [String]? = nil
    /// Tiny sizes, one repetition: checks that everything runs, not how fast.
    var smoke = false
    /// Time spent per case after warm-up, in seconds (at least `minReps` runs).
    var secondsPerCase = 1.5
    var minReps = 3
    /// step: reference configurations and modes to run (nil = all).
    var configs: [String]? = nil
    var modes: [String]? = nil
    /// step: optimizer steps per read of their losses; a per-kernel profile of the timed steps.
    var logEvery = 1
    var profile = false
    /// step: storage of the frozen base under LoRA (f32, bf16, f16); full rows are always f32.
    var baseDTypes: [String]? = nil
    /// step: each case also with --grad-checkpoint.
    var gradCheckpoint = false
    var gradCheckpointOnly = false
    /// step: quantised rows with double quantisation, with the embeddings and head quantised.
    var doubleQuant = false
    var quantizeEmbeddings = false
    /// Untimed runs before the timed ones (step).
    var warmup = 1
    /// step: one untimed forward first, reporting what the backward keeps by producing op.
    var savedTensors = false
    var answerFraction = 1.0
    /// generate: prompts decoded together as one batch's rows.
    var rows = 1
    /// generate: tokens in each prompt.
    var promptTokens = 16
    /// step: compare 1 rank, N ranks (mpirun) and one process of N threads (RankScalingBench.swift).
    var ranks: Int? = nil
    /// step --ranks: the gradient buckets' size in MB.
    var bucketMB = 25.0
    /// softmax/attention: sequence lengths (nil = defaults).
    var lengths: [Int]? = nil

    /// `all` is the CPU path plus every OpenCL device; anything else is one device.
    static func parseDevices(_ text: String) throws -> [Device] {
        let lower = text.lowercased()
        if lower != "all" && lower != "opencl" && lower != "gpu" { return [try Device(parsing: text).resolved] }
        var devices: [Device] = lower == "all" ? [.cpu] : []
        var gpus: [Device] = []
        for p in OpenCLRuntime.listDevices().platforms {
            for d in p.devices {
                devices.append(.opencl(platform: p.index, device: d.index))
                if d.isGPUOrAccelerator { gpus.append(.opencl(platform: p.index, device: d.index)) }
            }
        }
        // gpu: the OpenCL GPUs and accelerators, not a CPU OpenCL (PoCL) installed beside them;
        // every OpenCL device where there is none.
        return lower == "gpu" && !gpus.isEmpty ? gpus : devices
    }
}

enum BenchError: Error, CustomStringConvertible {
    case usage(String)
    var description: String {
        switch self { case let .usage(s): return s }
    }
}

/// A device's names for results: what it is and which driver ran it.
struct DeviceLabel {
    let id: String
    let name: String
    let driver: String

    init(_ device: Device) throws {
        let backend = try device.backend()
        id = device.description
        switch device {
        case let .opencl(p, d):
            let listing = OpenCLRuntime.listDevices()
            let platform = listing.platforms.first { $0.index == p }
            let info = platform?.devices.first { $0.index == d }
            name = info?.name ?? backend.name
            driver = "\(platform?.name ?? "OpenCL") \(info?.driverVersion ?? "")"
                .trimmingCharacters(in: .whitespaces)
        default:
            name = cpuModelName()
            driver = "pure Swift (\(CPUParallel.threadCount) threads, \(cpuSgemmKernelDescription))"
        }
    }
}

/// The CPU model, e.g. "AMD EPYC" (from /proc/cpuinfo where there is one).
func cpuModelName() -> String {
    if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) {
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
    }
    #if arch(arm64)
    return "arm64 CPU"
    #else
    return "x86-64 CPU"
    #endif
}

/// One measured case.
struct BenchResult {
    /// The subcommand, e.g. "matmul".
    var bench: String
    /// What ran, e.g. "matmul" or "opencl-own-gemm".
    var name: String
    /// The case, e.g. "square 1024" or "smollm2-135m q_proj".
    var label: String
    var device: DeviceLabel
    /// Shape in the benchmark's own terms (matmul: [M, N, K]).
    var shape: [Int]
    /// Floating-point operations of one run.
    var flops: Double
    var timing: Timing

    /// The unit of the rate columns; `flops` then holds the work in that unit's base (bytes
    /// for MB/s, parameters for Mparam/s) and `unitScale` its factor.
    var unit = "GFLOP/s"
    var unitScale = 1e9
    /// Further fields of the JSON line (memory, formula, mode).
    var extra: [String: Any] = [:]

    var gflopsMedian: Double { flops / timing.median / unitScale }
    var gflopsMin: Double { flops / timing.max / unitScale }
    var gflopsMax: Double { flops / timing.min / unitScale }

    var json: [String: Any] {
        [
            "bench": bench, "name": name, "label": label,
            "device": device.id, "device_name": device.name, "driver": device.driver,
            "shape": shape, "flops": flops, "reps": timing.seconds.count,
            "median_ms": timing.median * 1e3, "min_ms": timing.min * 1e3, "max_ms": timing.max * 1e3,
            "rate": gflopsMedian, "rate_min": gflopsMin, "rate_max": gflopsMax, "unit": unit,
        ].merging(unit == "GFLOP/s" ? ["gflops": gflopsMedian, "gflops_min": gflopsMin, "gflops_max": gflopsMax] : [:]) { a, _ in a }
            .merging(extra) { a, _ in a }
    }
}

/// Wall-clock times of the timed runs, in seconds.
struct Timing {
    var seconds: [Double]
    var median: Double {
        let s = seconds.sorted(), n = s.count
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
    }
    var min: Double { seconds.min()! }
    var max: Double { seconds.max()! }
}

/// Runs `body` `warmup` times untimed, then times it until `seconds` have passed and at
/// least `minReps` runs are done. `body` must wait for its device (synchronize) itself.
/// A run longer than `longRun` seconds in warm-up makes that one warm-up run plus one timed
/// run the whole measurement (without warm-up, that one timed run): the numbers are then stable
/// enough, and the suite finishes.
/// Times `body`: `warmup` untimed runs, then at least `minReps` timed ones for `seconds`;
/// `prepare` runs untimed before each.
func measure(warmup: Int = 1, seconds: Double, minReps: Int, longRun: Double = 10,
             prepare: () throws -> Void = {}, _ body: () throws -> Void) throws -> Timing {
    var warmupTime = 0.0
    for _ in 0..<warmup {
        try prepare()
        let t0 = now()
        try body()
        warmupTime = now() - t0
    }
    var times: [Double] = []
    let reps = warmupTime > longRun ? 1 : minReps
    let start = now()
    // Without warm-up, a first timed run longer than `longRun` is the measurement too.
    while (times.count < reps || (now() - start < seconds && times.count < 1000)) && (times.first ?? 0) <= longRun {
        try prepare()
        let t0 = now()
        try body()
        times.append(now() - t0)
    }
    return Timing(seconds: times)
}

/// Monotonic seconds.
func now() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) * 1e-9
}

/// Prints results as a table (columns fixed by the first header) or as JSON lines.
final class ResultPrinter {
    let json: Bool
    private var headerPrinted = false

    init(json: Bool) { self.json = json }

    func print(_ r: BenchResult) {
        if json {
            let data = try! JSONSerialization.data(withJSONObject: r.json, options: [.sortedKeys])
            Swift.print(String(decoding: data, as: UTF8.self))
        } else {
            if !headerPrinted {
                Swift.print(row("bench", "what", "case", "shape", "device", "rate", "min–max", "median ms", "reps"))
                headerPrinted = true
            }
            let shape = r.shape.map(String.init).joined(separator: "×")
            Swift.print(row(r.bench, r.name, r.label, shape, "\(r.device.id) \(r.device.name)",
                            "\(fmt(r.gflopsMedian)) \(r.unit)", "\(fmt(r.gflopsMin))–\(fmt(r.gflopsMax))",
                            String(format: "%.3f", r.timing.median * 1e3), "\(r.timing.seconds.count)"))
        }
        fflush(stdout)
    }

    /// Drivers are printed once per device below a table (they are long).
    func printDrivers(_ devices: [DeviceLabel]) {
        guard !json else { return }
        for d in devices { Swift.print("  \(d.id): \(d.name) — \(d.driver)") }
    }

    private func fmt(_ x: Double) -> String { String(format: x >= 100 ? "%.0f" : "%.1f", x) }

    private func row(_ c: String...) -> String {
        let widths = [8, 16, 26, 18, 40, 14, 12, 10, 5]
        return zip(c, widths).map { $0.padding(toLength: max($1, $0.count), withPad: " ", startingAt: 0) }
            .joined(separator: " ")
    }
}
