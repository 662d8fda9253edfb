import Foundation
import ITune

// `itune-bench step --ranks N`: data-parallel scaling of a training step on the CPU path.
// The driver runs three child processes on the same global batch (4 × 256, the step bench's):
// one rank of one thread, N ranks of one thread each under mpirun, and one process of N
// threads, and reports tokens/s, the scaling efficiency of the N ranks against N × the one
// rank, and the allreduce time per step. Each child is this executable again, with
// ITUNE_BENCH_RANK_CHILD set.

struct RankScaling {
    let options: BenchOptions
    let ranks: Int

    static var isChild: Bool { ProcessInfo.processInfo.environment["ITUNE_BENCH_RANK_CHILD"] != nil }

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
                let args = ["step", "--device", "cpu", "--configs", config, "--modes", mode, "--ranks", "\(ranks)"]
                    + (options.smoke ? ["--smoke"] : ["--seconds", "\(options.secondsPerCase)"])
                let flags = ["--allow-run-as-root", "--oversubscribe", "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo",
                             "--mca", "oob_tcp_if_include", "lo", "-np", "\(ranks)"]
                let one = try Self.launch(me, args, threads: 1)
                let many = try Self.launch(mpirun, flags + [me] + args, threads: 1)
                let threaded = try Self.launch(me, args, threads: ranks)
                let t1 = one["tokens_per_s"] as? Double ?? .nan, tn = many["tokens_per_s"] as? Double ?? .nan
                let tt = threaded["tokens_per_s"] as? Double ?? .nan
                let row: [String: Any] = [
                    "bench": "step-ranks", "config": config, "mode": mode, "ranks": ranks,
                    "tokens_per_s_1_rank_1_thread": t1, "tokens_per_s_n_ranks_1_thread": tn, "tokens_per_s_1_rank_n_threads": tt,
                    "scaling_efficiency_ranks": tn / (Double(ranks) * t1), "scaling_efficiency_threads": tt / (Double(ranks) * t1),
                    "allreduce_s_per_step": many["allreduce_s_per_step"] as? Double ?? .nan,
                    "allreduce_wait_s_per_step": many["allreduce_wait_s_per_step"] as? Double ?? .nan,
                    "step_s_n_ranks": many["step_s"] as? Double ?? .nan,
                    "gradient_bytes": many["gradient_bytes"] as? Int ?? 0, "buckets": many["buckets"] as? Int ?? 0,
                ]
                if options.json {
                    let data = try JSONSerialization.data(withJSONObject: row.mapValues { ($0 as? Double).map { $0.isFinite ? $0 : -1 } ?? $0 },
                                                          options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    print(String(format: "step %@ %@: 1 rank × 1 thread %.0f tokens/s; %d ranks × 1 thread %.0f tokens/s (efficiency %.0f%%, allreduce %.1f ms/step of %.0f ms, %.2f MB in %d bucket(s)); 1 process × %d threads %.0f tokens/s (efficiency %.0f%%)",
                                 config, mode, t1, ranks, tn, 100 * tn / (Double(ranks) * t1),
                                 1000 * ((many["allreduce_s_per_step"] as? Double) ?? .nan), 1000 * ((many["step_s"] as? Double) ?? .nan),
                                 Double(many["gradient_bytes"] as? Int ?? 0) / 1e6, many["buckets"] as? Int ?? 0,
                                 ranks, tt, 100 * tt / (Double(ranks) * t1)))
                }
            }
        }
    }

    /// Runs a child and returns the JSON object of its last line.
    static func launch(_ path: String, _ arguments: [String], threads: Int) throws -> [String: Any] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        p.environment = ProcessInfo.processInfo.environment.merging(["ITUNE_BENCH_RANK_CHILD": "1", "ITUNE_NUM_THREADS": "\(threads)"]) { _, b in b }
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
        let buckets = BucketedAllreduce(plan: try GradientBuckets(counts: trainable.map(\.count)))
        var allreduce = 0.0, wait = 0.0
        func step() throws {
            let loss = try model.loss(ids, labels: mine)
            try loss.scaled(by: Float(b) / Float(B)).backward()
            if comm.size > 1 {
                try buckets.run(comm, pack: { i, d in
                    guard let grad = trainable[i].grad, let base = d.baseAddress else { d.update(repeating: 0); return }
                    try grad.backend.read(grad.storage, into: base, byteCount: d.count * 4)
                }, unpack: { i, s in try trainable[i].setGradient(s) })
                allreduce += buckets.lastSeconds
                wait += buckets.lastWaitSeconds
            }
            _ = try clipGradients(trainable, maxNorm: 1, reading: [loss])
            try optimizer.update()
            optimizer.zeroGrad()
        }
        try step()  // warm-up
        allreduce = 0
        wait = 0
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
                                  "ranks": comm.size, "threads": CPUParallel.threadCount, "steps": steps,
                                  "gradient_bytes": buckets.bytesPerRun, "buckets": buckets.plan.buckets.count]
        print(String(decoding: try JSONSerialization.data(withJSONObject: row, options: [.sortedKeys]), as: UTF8.self))
    }
}
