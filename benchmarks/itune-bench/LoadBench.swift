import Foundation
import ITune

/// `itune-bench load`: the time to load a smollm2-135m-shaped checkpoint (135M parameters,
/// BF16 safetensors as the published one is stored) onto each device, written once with random
/// weights to a temporary directory. Rate: millions of parameters per second.
struct LoadBench: Benchmark {
    let name = "load"
    let summary = "load a 135M-parameter BF16 checkpoint (smollm2-135m shape) onto the device"

    static func config(smoke: Bool) -> ModelConfig {
        smoke ? ModelConfig(vocabSize: 512, hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, numKVHeads: 2,
                            maxPositions: 256, tieWordEmbeddings: true)
            : ModelConfig(vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numLayers: 30, numHeads: 9, numKVHeads: 3,
                          normEps: 1e-5, ropeTheta: 100000, maxPositions: 8192, tieWordEmbeddings: true)
    }

    func run(_ options: BenchOptions, _ report: (BenchResult) -> Void) throws {
        let config = Self.config(smoke: options.smoke)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-bench-load-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let params: Int
        do {
            let model = try LlamaModel(config, seed: 1, on: .cpu)
            params = model.parameterCount
            try model.savePretrained(to: dir, dtype: "BF16")
        }
        for device in options.devices {
            let label = try DeviceLabel(device)
            let timing = try measure(warmup: 1, seconds: options.secondsPerCase, minReps: options.minReps) {
                let m = try loadPretrained(dir, on: device)
                try m.device.backend().synchronize()
            }
            report(BenchResult(bench: name, name: "loadPretrained", label: options.smoke ? "tiny" : "smollm2-135m bf16",
                               device: label, shape: [params], flops: Double(params), timing: timing,
                               unit: "Mparam/s", unitScale: 1e6))
            try device.backend().releaseCachedBuffers()
        }
    }
}
