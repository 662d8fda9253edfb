import Foundation

/// The shapes a model's training step runs the kernels at, for `itune-gpu tune`. Callers that
/// know models (ITuneTrain) fill it from a config; `demo` is the embedded demo model's.
public struct TuneShapes: Sendable, Equatable {
    /// What the shapes are of (`demo`, a model folder).
    public var label: String
    /// Rows of a micro-batch and their length in tokens.
    public var batch: Int, sequence: Int
    public var hidden: Int, intermediate: Int
    public var heads: Int, kvHeads: Int, headDim: Int
    public var vocab: Int
    /// The LoRA rank (the thin side of the adapter's products).
    public var loraRank: Int

    public init(label: String, batch: Int, sequence: Int, hidden: Int, intermediate: Int, heads: Int, kvHeads: Int,
                headDim: Int, vocab: Int, loraRank: Int) {
        self.label = label
        self.batch = batch
        self.sequence = sequence
        self.hidden = hidden
        self.intermediate = intermediate
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.vocab = vocab
        self.loraRank = loraRank
    }

    /// The embedded demo model (`itune-gpu train` without a model): hidden 128, 4 layers,
    /// 4 heads / 2 kv-heads, vocabulary 1024, 16 rows of 128 tokens, LoRA rank 8.
    public static let demo = TuneShapes(label: "demo", batch: 16, sequence: 128, hidden: 128, intermediate: 352,
                                        heads: 4, kvHeads: 2, headDim: 32, vocab: 1024, loraRank: 8)

    public var tokens: Int { batch * sequence }

    /// The same shapes with the tokens of a step cut to at most `maxTokens` (whole rows), so a
    /// large model's shapes can be timed within a small budget.
    public func limited(tokens maxTokens: Int) -> TuneShapes {
        var s = self
        if s.tokens > maxTokens {
            s.sequence = min(s.sequence, maxTokens)
            s.batch = max(1, maxTokens / s.sequence)
        }
        return s
    }

    /// "demo: 16×128 tokens, hidden 128, …" for reports and the cache's note.
    public var summary: String {
        "\(label): \(batch)×\(sequence) tokens, hidden \(hidden), intermediate \(intermediate), \(heads)/\(kvHeads) heads of \(headDim), vocab \(vocab), LoRA rank \(loraRank)"
    }
}

/// One kernel family's search in `itune-gpu tune`: its default and best values and times.
public struct TunedKernel: Sendable {
    /// What was tuned: `gemm_blocked`, `attention`, `reduce`, `clblast Xgemm`, ….
    public var kernel: String
    /// The values in force before the search, and the best found (equal when nothing won).
    public var before: [String: Int], best: [String: Int]
    /// Seconds of the timed workload at the model's shapes with each; nil when the values in
    /// force did not run (then any passing candidate wins).
    public var beforeSeconds: Double?, bestSeconds: Double?
    /// Floating-point operations of the workload, for GFLOP/s (0 where not counted).
    public var flops: Double
    /// Candidates timed, and skipped (failed to build, over a limit, wrong against the CPU).
    public var tried: Int, skipped: Int
    /// Why a few candidates were skipped (the first of each kind).
    public var notes: [String]

    /// `gemm_blocked  GEMM_TSM=64 … : 12.1 → 30.2 GFLOP/s (2.5×), 14 tried, 3 skipped`
    public var line: String {
        func rate(_ s: Double?) -> String {
            guard let s else { return "did not run" }
            return flops > 0 ? String(format: "%.1f GFLOP/s", flops / s / 1e9) : String(format: "%.2f ms", s * 1000)
        }
        let values = best.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        var s = "\(kernel.padding(toLength: max(kernel.count, 14), withPad: " ", startingAt: 0)) \(values): \(rate(beforeSeconds)) → \(rate(bestSeconds))"
        if let b = beforeSeconds, let t = bestSeconds, t > 0 { s += String(format: " (%.2f×)", b / t) }
        s += ", \(tried) tried, \(skipped) skipped"
        return s
    }
}

/// `itune-gpu tune`: searches the compile-time constants of the own kernels (and CLBlast's
/// Xgemm parameters) on one OpenCL device at a model's shapes, within a time budget, and
/// stores the best in the tuning cache (`KernelTuning.cacheFile`), which later runs read.
///
/// Every candidate is built with its `-D` values; one that fails to build, does not fit the
/// device's limits, or computes something else than the CPU path (`devices --check`'s ops of
/// that kernel) is skipped. The rest are timed at the model's shapes (best of a few runs,
/// host timer around a synchronisation); the fastest wins only if it beats the values in force.
public struct KernelTuner {
    public let cl: OpenCLBackend
    public let shapes: TuneShapes
    /// Seconds for the whole search; each family gets a share, the GEMM the largest.
    public let budget: Double
    public let log: (String) -> Void

    public init(cl: OpenCLBackend, shapes: TuneShapes, budget: Double, log: @escaping (String) -> Void = { _ in }) {
        self.cl = cl
        self.shapes = shapes
        self.budget = budget
        self.log = log
    }

    /// One family's search: its candidates (value sets, the first being the values in force),
    /// the check ops each must pass, and the workload timed.
    struct Search {
        var kernel: String
        var share: Double
        var candidates: [[String: Int]]
        var checks: [CheckedOp]
        var flops: Double
        var workload: () throws -> Void
        /// Extra set-up for a candidate (CLBlast's override) and its undoing.
        var apply: (([String: Int]) throws -> Void)? = nil
    }

    /// Runs every search in turn and returns their results; `cl.tuning` ends with the best
    /// values of all of them (not yet stored: see `store`).
    public func run() throws -> [TunedKernel] {
        let start = DispatchTime.now().uptimeNanoseconds
        let searches = try plan()
        var results: [TunedKernel] = []
        var totalShare = searches.reduce(0) { $0 + $1.share }
        for search in searches {
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let slot = max(0, budget - elapsed) * search.share / max(totalShare, 1e-9)
            totalShare -= search.share
            results.append(try tune(search, seconds: slot))
            log(results.last!.line)
        }
        return results
    }

    /// The searches at these shapes, in order: GEMM first.
    func plan() throws -> [Search] {
        let s = shapes.limited(tokens: 1024)
        let device = cl.device
        let T = s.tokens
        let base = cl.tuning.values
        func inForce(_ family: String, _ names: [String]) throws -> [String: Int] {
            let d = try cl.tunedDefines(family)
            return Dictionary(uniqueKeysWithValues: names.compactMap { n in d[n].map { (n, $0) } })
        }
        func candidates(_ first: [String: Int], _ grid: [[String: Int]]) -> [[String: Int]] {
            [first] + grid.filter { $0 != first }
        }
        var searches: [Search] = []

        // GEMM (own, register blocked): the projections of a step, forward (x·Wᵀ) and the
        // weight gradient (dYᵀ·x).
        let x = try Tensor.uniform([T, s.hidden], -1, 1, seed: 1, on: device)
        let w = try Tensor.uniform([s.intermediate, s.hidden], -1, 1, seed: 2, on: device)
        let dy = try Tensor.uniform([T, s.intermediate], -1, 1, seed: 3, on: device)
        let gemmFlops = 2.0 * Double(T) * Double(s.intermediate) * Double(s.hidden) * 3
        let gemmWork: () throws -> Void = {
            _ = try noGrad { try x.matmul(w, transposeB: true) }
            _ = try noGrad { try dy.matmul(w) }
            _ = try noGrad { try dy.matmul(x, transposeA: true) }
        }
        let ownMatmulChecks = CheckedOp.matmuls.filter { $0.gemm == .own }
        let blockedNames = ["GEMM_DIRECT", "GEMM_DWM", "GEMM_DWN", "GEMM_TSM", "GEMM_TSN", "GEMM_TSK", "GEMM_WPTM", "GEMM_WPTN"]
        var blockedGrid: [[String: Int]] = []
        // The direct kernel first (few candidates; on CPU devices it is the one that wins).
        let inForceBlocked = try inForce("gemm_blocked", blockedNames)
        for (dwm, dwn) in [(3, 32), (4, 16), (6, 16), (2, 32), (4, 8), (8, 8), (1, 64)] {
            blockedGrid.append(inForceBlocked.merging(["GEMM_DIRECT": 1, "GEMM_DWM": dwm, "GEMM_DWN": dwn]) { _, new in new })
        }
        for (tsm, tsn) in [(64, 64), (32, 32), (64, 32), (32, 64), (128, 64), (64, 128), (128, 128), (16, 16)] {
            for (wptm, wptn) in [(4, 4), (8, 4), (4, 8), (8, 8), (2, 2), (2, 4), (4, 2)] where tsm % wptm == 0 && tsn % wptn == 0 {
                let items = (tsm / wptm) * (tsn / wptn)
                guard items >= 4, items <= cl.info.maxWorkGroupSize else { continue }
                for tsk in [16, 8, 32] {
                    blockedGrid.append(inForceBlocked.merging(["GEMM_DIRECT": 0, "GEMM_TSM": tsm, "GEMM_TSN": tsn, "GEMM_TSK": tsk,
                                                               "GEMM_WPTM": wptm, "GEMM_WPTN": wptn]) { _, new in new })
                }
            }
        }
        searches.append(Search(kernel: "gemm_blocked", share: 4, candidates: candidates(inForceBlocked, blockedGrid),
                               checks: ownMatmulChecks, flops: gemmFlops, workload: { [cl] in
            let saved = cl.gemmImplementation
            cl.gemmImplementation = .own
            defer { cl.gemmImplementation = saved }
            try gemmWork()
        }))

        // LoRA's thin products: x·Aᵀ (tokens × r), (tokens × r)·Bᵀ, and the gradient of A.
        let r = max(1, min(s.loraRank, 64))
        let loraA = try Tensor.uniform([r, s.hidden], -1, 1, seed: 4, on: device)
        let xr = try Tensor.uniform([T, r], -1, 1, seed: 5, on: device)
        let dyh = try Tensor.uniform([T, s.hidden], -1, 1, seed: 6, on: device)
        searches.append(Search(kernel: "gemm_skinny", share: 1,
                               candidates: candidates(try inForce("gemm_skinny", ["SKINNY_GROUP"]),
                                                      [16, 32, 64, 128, 256].map { ["SKINNY_GROUP": $0] }),
                               checks: ownMatmulChecks.filter { !$0.name.contains("387") },
                               flops: 2.0 * Double(T) * Double(r) * Double(s.hidden) * 3, workload: {
            _ = try noGrad { try x.matmul(loraA, transposeB: true) }
            _ = try noGrad { try xr.matmul(loraA) }
            _ = try noGrad { try xr.matmul(dyh, transposeA: true) }
        }))

        // Attention forward and backward at the model's heads.
        let q = try Tensor.uniform([s.batch, s.sequence, s.heads, s.headDim], -1, 1, seed: 7, on: device, requiresGrad: true)
        let k = try Tensor.uniform([s.batch, s.sequence, s.kvHeads, s.headDim], -1, 1, seed: 8, on: device, requiresGrad: true)
        let v = try Tensor.uniform([s.batch, s.sequence, s.kvHeads, s.headDim], -1, 1, seed: 9, on: device, requiresGrad: true)
        var attentionGrid: [[String: Int]] = []
        for bq in [16, 32, 64, 8, 128] { for bk in [16, 32, 64] where bq <= cl.info.maxWorkGroupSize {
            attentionGrid.append(["BLOCK_Q": bq, "BLOCK_K": bk])
        } }
        // Causal: about half the T² scores, forward and backward (≈ 2 + 5 products of T²·D).
        let attentionFlops = 7.0 * Double(s.batch * s.heads) * Double(s.sequence * s.sequence) * Double(s.headDim)
        searches.append(Search(kernel: "attention", share: 2,
                               candidates: candidates(try inForce("attention", ["BLOCK_Q", "BLOCK_K"]), attentionGrid),
                               checks: CheckedOp.attention, flops: attentionFlops, workload: {
            let o = try Tensor.scaledDotProductAttention(q: q, k: k, v: v)
            try o.sum().backward()
            q.grad = nil; k.grad = nil; v.grad = nil
        }))

        // Row reductions (softmax, norms, cross-entropy) and elementwise groups (AdamW).
        let logits = try Tensor.uniform([T, s.vocab], -1, 1, seed: 10, on: device)
        let targets = try Tensor(indices: (0..<T).map { Int32($0 % s.vocab) }, shape: [T], on: device)
        let hiddenStates = try Tensor.uniform([T, s.hidden], -1, 1, seed: 11, on: device)
        let normWeight = try Tensor.uniform([s.hidden], 0.5, 1.5, seed: 12, on: device)
        let scores = try Tensor.uniform([s.batch * s.heads, s.sequence], -1, 1, seed: 13, on: device)
        var reduceGrid: [[String: Int]] = []
        for long in [256, 128, 512, 64, 1024] { for short in [64, 32, 128, 16] where long <= cl.info.maxWorkGroupSize && short <= long {
            reduceGrid.append(["REDUCE_GROUP_MAX": long, "REDUCE_GROUP_SHORT": short])
        } }
        searches.append(Search(kernel: "reduce", share: 1.5,
                               candidates: candidates(try inForce("reduce", ["REDUCE_GROUP_MAX", "REDUCE_GROUP_SHORT"]), reduceGrid),
                               checks: CheckedOp.reductions.filter { $0.name.hasPrefix("softmax") || $0.name.hasSuffix("norm") } + CheckedOp.losses,
                               flops: 0, workload: {
            _ = try noGrad { try logits.crossEntropy(targets: targets) }
            _ = try noGrad { try logits.softmax() }
            _ = try noGrad { try scores.softmax() }
            _ = try noGrad { try hiddenStates.rmsNorm(weight: normWeight, eps: 1e-5) }
        }))

        let params = s.hidden * s.intermediate
        let p = try Tensor.uniform([params], -1, 1, seed: 14, on: device)
        let g = try Tensor.uniform([params], -1, 1, seed: 15, on: device)
        let m = try Tensor.zeros([params], on: device), vv = try Tensor.zeros([params], on: device)
        searches.append(Search(kernel: "elementwise", share: 0.5,
                               candidates: candidates(try inForce("reduce", ["ELEMENTWISE_GROUP"]),
                                                      [64, 128, 256, 32, 512].filter { $0 <= cl.info.maxWorkGroupSize }.map { ["ELEMENTWISE_GROUP": $0] }),
                               checks: CheckedOp.others.filter { $0.name.hasPrefix("adamw") }, flops: 0, workload: {
            try p.adamWUpdate(grad: g, m: m, v: vv, step: 1, config: AdamWConfig(learningRate: 1e-6))
        }))

        // CLBlast's own GEMM: a small grid of its Xgemm parameters, applied through
        // CLBlastOverrideParameters (CLBlast.swift), timed on the same products as gemm_blocked.
        if CLBlast.isAvailable, cl.clblastRefusal == nil {
            let first = CLBlastTuning.parameters(in: base) ?? [:]
            let grid = CLBlastTuning.xgemmCandidates(maxWorkGroupSize: cl.info.maxWorkGroupSize)
            searches.append(Search(kernel: "clblast Xgemm", share: 2, candidates: [first] + grid.filter { $0 != first },
                                   checks: CheckedOp.matmuls.filter { $0.gemm == .clblast }, flops: gemmFlops,
                                   workload: { [cl] in
                let saved = cl.gemmImplementation
                cl.gemmImplementation = .clblast
                defer { cl.gemmImplementation = saved }
                try gemmWork()
            }, apply: { [cl] values in try CLBlastTuning.apply(values, on: cl) }))
        }
        return searches
    }

    /// Times the candidates of one search in turn until `seconds` have passed (the values in
    /// force always run), and leaves the best in `cl.tuning`.
    func tune(_ search: Search, seconds: Double) throws -> TunedKernel {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, seconds) * 1e9)
        var result = TunedKernel(kernel: search.kernel, before: search.candidates.first ?? [:], best: search.candidates.first ?? [:],
                                 beforeSeconds: nil, bestSeconds: nil, flops: search.flops, tried: 0, skipped: 0, notes: [])
        let base = cl.tuning
        for (i, candidate) in search.candidates.enumerated() {
            if i > 0, DispatchTime.now().uptimeNanoseconds > deadline { break }
            var tuning = base
            for (name, value) in candidate {
                tuning.values[name] = value
                tuning.origins[name] = "tune"
            }
            cl.tuning = tuning
            do {
                try search.apply?(candidate)
                if let failure = check(search.checks) {
                    result.skipped += 1
                    if result.notes.count < 3 { result.notes.append("\(describe(candidate)): \(failure)") }
                    continue
                }
                let t = try time(search.workload, until: deadline)
                result.tried += 1
                if i == 0 { result.beforeSeconds = t }
                if result.bestSeconds.map({ t < $0 }) ?? true {
                    result.bestSeconds = t
                    result.best = candidate
                }
            } catch {
                result.skipped += 1
                if result.notes.count < 3 { result.notes.append("\(describe(candidate)): \(error)") }
            }
        }
        // Back to the values in force, then the winner over them.
        var tuning = base
        for (name, value) in result.best {
            tuning.values[name] = value
            tuning.origins[name] = "tune"
        }
        cl.tuning = tuning
        try? search.apply?(result.best)
        return result
    }

    /// The first check op that fails on the device with the current tuning, as text; nil
    /// when all pass.
    func check(_ ops: [CheckedOp]) -> String? {
        for (i, op) in ops.enumerated() {
            let saved = cl.gemmImplementation
            defer { cl.gemmImplementation = saved }
            let r = DeviceCheck.check(op, on: cl, seed: 0x7E57_0000 + UInt64(i) * 16)
            if r.outcome == .fail { return "\(op.name): \(r.detail ?? "differs from the CPU path")" }
        }
        return nil
    }

    /// The best of a few runs of `work` (after one that builds the kernels), each ended by a
    /// synchronisation: at least 2 timed runs, more while under 0.3 s in all and before
    /// the deadline.
    func time(_ work: () throws -> Void, until deadline: UInt64) throws -> Double {
        try work()
        try cl.synchronize()
        var best = Double.infinity, total = 0.0, runs = 0
        while runs < 2 || (total < 0.3 && runs < 10 && DispatchTime.now().uptimeNanoseconds < deadline) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try work()
            try cl.synchronize()
            let t = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = min(best, t)
            total += t
            runs += 1
        }
        return best
    }

    func describe(_ values: [String: Int]) -> String {
        values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    /// Writes `values` for this device into the tuning cache (replacing the entry of the same
    /// platform, device and driver, keeping the others), with a note of what was measured.
    public static func store(_ values: [String: Int], for cl: OpenCLBackend, note: String, file: URL = KernelTuning.cacheFile) throws {
        var table = KernelTuning.Table(entries: [])
        if let data = try? Data(contentsOf: file) {
            do { table = try JSONDecoder().decode(KernelTuning.Table.self, from: data) } catch {
                FileHandle.standardError.write(Data("itune-gpu tune: \(file.path) is not a tuning table (\(error)); it is replaced\n".utf8))
            }
        }
        let entry = KernelTuning.Entry(platform: cl.platformName, device: cl.info.name, driver: cl.info.driverVersion,
                                       values: values, note: note)
        table.entries.removeAll { $0.platform == entry.platform && $0.device == entry.device && $0.driver == entry.driver }
        table.entries.append(entry)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try encoder.encode(table).write(to: file, options: .atomic)
    }
}
