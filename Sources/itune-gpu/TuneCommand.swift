import ArgumentParser
import Foundation
import ITune

struct TuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Search the OpenCL kernels' tile and work-group sizes (and CLBlast's GEMM parameters) on a device at a model's shapes, and keep the fastest that match the CPU path for later runs.")

    @Option(help: "The device to tune (opencl:PLATFORM:DEVICE); default: what auto picks, else the first OpenCL device.")
    var device: String?

    @Option(help: "A model folder (Hugging Face config.json) whose training shapes to tune at; default: the embedded demo model.")
    var model: String?

    @Option(help: "Seconds for the whole search (each kernel family gets a share; the values in force always run).")
    var budget: Double = 120

    @Option(help: "Rows of a micro-batch for the shapes from --model.")
    var batchSize: Int = 4

    @Option(help: "Tokens per row for the shapes from --model (at most the model's context).")
    var maxLength: Int = 256

    @Option(help: "LoRA rank for the thin products.")
    var loraRank: Int = 8

    @Flag(help: "Search and report, but do not write the tuning cache.")
    var dryRun = false

    func validate() throws {
        guard budget.isFinite, budget >= 0 else { throw ValidationError("--budget must be a number of seconds ≥ 0, got \(budget)") }
        guard batchSize >= 1, maxLength >= 1, loraRank >= 1 else {
            throw ValidationError("--batch-size, --max-length and --lora-rank must be at least 1")
        }
    }

    func run() throws {
        let target: Device
        if let device {
            target = try Device(parsing: device).resolved
        } else if let d = DeviceCheck.defaultDevice() {
            target = d
        } else {
            throw ValidationError("no OpenCL device to tune (see `itune-gpu devices`)")
        }
        guard case .opencl = target, let cl = try target.backend() as? OpenCLBackend else {
            throw ValidationError("\(target) is not an OpenCL device: tune searches OpenCL kernels (see `itune-gpu devices`)")
        }
        var shapes = TuneShapes.demo
        if let model {
            let dir = URL(fileURLWithPath: model)
            let config = try ModelConfig(configJSON: dir.appendingPathComponent("config.json"))
            shapes = TuneShapes(config: config, label: dir.lastPathComponent, batch: batchSize, sequence: maxLength, loraRank: loraRank)
        }
        print("tune: \(target) = \(cl.name), driver \(cl.info.driverVersion)")
        print("shapes: \(shapes.summary) (timed at most 1024 tokens)")
        print(String(format: "budget: %.0f s", budget))
        let tuner = KernelTuner(cl: cl, shapes: shapes, budget: budget) { print("  " + $0) }
        let results = try tuner.run()
        for r in results { for n in r.notes { print("  skipped in \(r.kernel): \(n)") } }
        var values: [String: Int] = [:]
        for r in results { values.merge(r.best) { _, new in new } }
        // The own GEMM where it beat CLBlast (tuned) on the same products.
        let own = results.first { $0.kernel == "gemm_blocked" }?.bestSeconds
        let blas = results.first { $0.kernel == "clblast Xgemm" }?.bestSeconds
        if let own, let blas {
            values[GemmImplementation.preferOwnKey] = own < blas ? 1 : 0
            print(String(format: "matmul: %@ (own %.2f ms, CLBlast %.2f ms on the same products)",
                         own < blas ? "the own gemm_blocked" : "CLBlast", own * 1000, blas * 1000))
        }
        let note = "itune-gpu tune, \(ISO8601DateFormatter().string(from: Date())), \(shapes.summary): "
            + results.map { r in
                let rate: (Double?) -> String = { s in
                    guard let s else { return "-" }
                    return r.flops > 0 ? String(format: "%.1f GFLOP/s", r.flops / s / 1e9) : String(format: "%.2f ms", s * 1000)
                }
                return "\(r.kernel) \(rate(r.beforeSeconds)) → \(rate(r.bestSeconds))"
            }.joined(separator: "; ")
        if dryRun {
            print("dry run: the cache is not written")
        } else {
            try KernelTuner.store(values, for: cl, note: note)
            print("stored in \(KernelTuning.cacheFile.path); later runs on this device use it (see `itune-gpu devices`)")
        }
    }
}
