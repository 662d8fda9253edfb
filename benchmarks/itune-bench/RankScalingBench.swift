import Foundation
import ITune

// `itune-bench step --ranks N`: data-parallel scaling of a training step on the CPU path.
// The driver runs child processes on the same global batch (4 × 256, the step bench's): one
// rank of one thread; N ranks of one thread each under mpirun, with each gradient bucket's
// allreduce started during the backward as soon as the bucket is complete (as the trainer
// does), and again with every bucket started after the backward; and one process of N threads.
// It reports tokens/s, the scaling efficiency of the N ranks against N × the one rank, the
// allreduce time per step that the backward did not hide, and the share of the gradient whose
// allreduce started during the backward. Each child is this executable again, with
// ITUNE_BENCH_RANK_CHILD set (and ITUNE_BENCH_NO_OVERLAP for the second mpirun).

struct RankScaling {
    let options: BenchOptions
    let ranks: Int

    static var isChild: Bool { ProcessInfo.processInfo.environment["ITUNE_BENCH_RANK_CHILD"] != nil }
    static var overlaps: Bool { ProcessInfo.processInfo.environment["ITUNE_BENCH_NO_OVERLAP"] == nil }

    func run() throws {
        if Self.isChild { return try child() }
        guard ranks >= 2 else { throw BenchError.usage("--ranks takes at least 2 (it compares 1 rank with N)") }
        let configs = options.configs ?? [options.smoke ? "smoke" : "tiny"]
        let modes = options.modes ?? ["lora", "full"]
        guard let mpirun = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
            .map({ "\($0)/mpirun" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw BenchError.usage("step --ranks needs mpirun (Debian: apt-get install openmpi-bin libopenmpi-dev)")
        }
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).path
        for config in configs {
            for mode in modes {
                let args = ["step", "--device", "cpu", "--configs", config, "--modes", mode, "--ranks", "\(ranks)",
                            "--bucket-mb", "\(options.bucketMB)"]
                    + (options.smoke ? ["--smoke"] : ["--seconds", "\(options.secondsPerCase)"])
                let flags = ["--allow-run-as-root", "--oversubscribe", "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo",
                             "--mca", "oob_tcp_if_include", "lo", "-np", "\(ranks)"]
                let one = try Self.launch(me, args, threads: 1)
                let many = try Self.launch(mpirun, flags + [me] + args, threads: 1)
                let after = try Self.launch(mpirun, flags + [me] + args, threads: 1, extra: ["ITUNE_BENCH_NO_OVERLAP": "1"])
                let threaded = try Self.launch(me, args, threads: ranks)
                func number(_ o: [String: Any], _ key: String) -> Double { o[key] as? Double ?? .nan }
                let t1 = number(one, "tokens_per_s"), tn = number(many, "tokens_per_s"), ta = number(after, "tokens_per_s")
                let tt = number(threaded, "tokens_per_s")
                let row: [String: Any] = [
                    "bench": "step-ranks", "config": config, "mode": mode, "ranks": ranks, "bucket_mb": options.bucketMB,
                    "tokens_per_s_1_rank_1_thread": t1, "tokens_per_s_n_ranks_1_thread": tn, "tokens_per_s_1_rank_n_threads": tt,
                    "tokens_per_s_n_ranks_no_overlap": ta,
                    "scaling_efficiency_ranks": tn / (Double(ranks) * t1), "scaling_efficiency_threads": tt / (Double(ranks) * t1),
                    "scaling_efficiency_ranks_no_overlap": ta / (Double(ranks) * t1),
                    "allreduce_s_per_step": number(many, "allreduce_s_per_step"),
                    "allreduce_wait_s_per_step": number(many, "allreduce_wait_s_per_step"),
                    "allreduce_s_per_step_no_overlap": number(after, "allreduce_s_per_step"),
                    "overlapped_fraction": number(many, "overlapped_fraction"),
                    "step_s_n_ranks": number(many, "step_s"), "step_s_n_ranks_no_overlap": number(after, "step_s"),
                    "gradient_bytes": many["gradient_bytes"] as? Int ?? 0, "buckets": many["buckets"] as? Int ?? 0,
                ]
                if options.json {
                    let data = try JSONSerialization.data(withJSONObject: row.mapValues { ($0 as? Double).map { $0.isFinite ? $0 : -1 } ?? $0 },
                                                          options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    print(String(format: "step %@ %@: 1 rank × 1 thread %.0f tokens/s; %d ranks × 1 thread %.0f tokens/s (efficiency %.0f%%; allreduce after the backward %.1f ms/step of %.0f ms, %.0f%% of the gradient started during the backward; %.2f MB in %d bucket(s) of %g MB); the same with every bucket started after the backward %.0f tokens/s (%.0f%%; allreduce %.1f ms/step of %.0f ms); 1 process × %d threads %.0f tokens/s (efficiency %.0f%%)",
                                 config, mode, t1, ranks, tn, 100 * tn / (Double(ranks) * t1),
                                 1000 * number(many, "allreduce_s_per_step"), 1000 * number(many, "step_s"),
                                 100 * number(many, "overlapped_fraction"),
                                 Double(many["gradient_bytes"] as? Int ?? 0) / 1e6, many["buckets"] as? Int ?? 0, options.bucketMB,
                                 ta, 100 * ta / (Double(ranks) * t1), 1000 * number(after, "allreduce_s_per_step"), 1000 * number(after, "step_s"),
                                 ranks, tt, 100 * tt / (Double(ranks) * t1)))
                }
            }
        }
    }

    /// Runs a child and returns the JSON object of its last line.
    static func launch(_ path: String, _ arguments: [String], threads: Int, extra: [String: String] = [:]) throws -> [String: Any] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        p.environment = ProcessInfo.processInfo.environment.merging(["ITUNE_BENCH_RANK_CHILD": "1", "ITUNE_NUM_THREADS": "\(threads)"].merging(extra) { _, b in b }) { _, b in b }
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0,
              let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw BenchError.usage("\(path) \(arguments.joined(separator: " ")) failed (status \(p.terminationStatus)): \(text.suffix(500))")
        }
        return object
    }

    /// One process of the measurement: its share of the global batch, gradients summed over
    /// the ranks in buckets (as the trainer does), clipping and AdamW; rank 0 prints one line.
    func child() throws {
        let comm = try makeCommunicator()
        defer { try? comm.finalize() }
        let cname = options.configs?.first ?? "tiny", mode = options.modes?.first ?? "lora"
        guard let config = StepBench.config(cname) else { throw BenchError.usage("unknown config '\(cname)'") }
        let (B, T) = options.smoke ? (2, 32) : (4, 256)
        guard B % comm.size == 0 else { throw BenchError.usage("the global batch of \(B) rows does not divide over \(comm.size) ranks") }
        let b = B / comm.size
        let model = try LlamaModel(config, seed: 1, on: .cpu)
        let trainable: [Tensor]
        if mode == "lora" {
            trainable = try model.addLoRA(LoRAConfig(rank: 8, alpha: 16, dropout: 0), seed: 1)
        } else {
            model.setTrainable(true)
            trainable = model.parameters
        }
        let optimizer = try AdamW(parameters: trainable, config: AdamWConfig(learningRate: 1e-4))
        var g = SplitMix64(seed: 3)
        let tokens = (0..<(B * T)).map { _ in Int32(g.next() % UInt64(config.vocabSize)) }
        let mine = Array(tokens[(comm.rank * b * T)..<((comm.rank + 1) * b * T)])
        let ids = try Tensor(indices: mine, shape: [b, T], on: .cpu)
        let buckets = BucketedAllreduce(plan: try GradientBuckets(counts: trainable.map(\.count),
                                                                  bucketBytes: Int(options.bucketMB * 1_048_576)))
        let overlaps = Self.overlaps
        var allreduce = 0.0, wait = 0.0, overlapped = 0.0
        func step() throws {
            let loss = try model.loss(ids, labels: mine)
            let scaled = try loss.scaled(by: Float(b) / Float(B))
            if comm.size > 1 {
                // As the trainer: pack a gradient when it is final, start a bucket when it is full.
                buckets.begin(comm) { i, d in
                    guard let grad = trainable[i].grad, let base = d.baseAddress else { d.update(repeating: 0); return }
                    try grad.backend.read(grad.storage, into: base, byteCount: d.count * 4)
                }
                if overlaps {
                    try scaled.backward(watching: trainable) { try buckets.parameterReady($0) }
                } else {
                    try scaled.backward()
                }
                try buckets.startRemaining()
                try buckets.finish { i, s in try trainable[i].setGradient(s) }
                allreduce += buckets.lastExposedSeconds
                wait += buckets.lastWaitSeconds
                overlapped += buckets.lastOverlap
            } else {
                try scaled.backward()
            }
            _ = try clipGradients(trainable, maxNorm: 1, reading: [loss])
            try optimizer.update()
            optimizer.zeroGrad()
        }
        try step()  // warm-up
        allreduce = 0
        wait = 0
        overlapped = 0
        // Rank 0 decides when to stop, so that every rank takes the same number of steps.
        let began = Date()
        var steps = 0
        var more: [Float] = [1]
        while more[0] > 0 {
            try step()
            steps += 1
            let elapsed = Date().timeIntervalSince(began)
            more = try comm.broadcast([elapsed < options.secondsPerCase || steps < options.minReps ? 1 : 0], root: 0)
        }
        let seconds = Date().timeIntervalSince(began)
        guard comm.isRoot else { return }
        let row: [String: Any] = ["tokens_per_s": Double(B * T * steps) / seconds, "step_s": seconds / Double(steps),
                                  "allreduce_s_per_step": allreduce / Double(steps), "allreduce_wait_s_per_step": wait / Double(steps),
                                  "overlapped_fraction": overlapped / Double(steps), "overlaps": overlaps,
                                  "ranks": comm.size, "threads": CPUParallel.threadCount, "steps": steps,
                                  "gradient_bytes": buckets.bytesPerRun, "buckets": buckets.plan.buckets.count]
        print(String(decoding: try JSONSerialization.data(withJSONObject: row, options: [.sortedKeys]), as: UTF8.self))
    }
}
