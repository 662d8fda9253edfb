import Foundation

/// The result of one op of `DeviceCheck`: the device's output (and gradients) against the CPU
/// path's on the same inputs.
public struct OpCheckResult: Sendable {
    public enum Outcome: String, Sendable {
        case pass = "PASS"
        case fail = "FAIL"
        case skipped = "SKIP"
    }

    public var op: String
    public var outcome: Outcome
    /// Forward only, or forward and backward.
    public var backward: Bool
    public var tolerance: CheckTolerance
    /// The largest |device − cpu| over every compared element.
    public var maxAbsoluteError: Float
    /// The largest |device − cpu| / |cpu| over the elements where the relative tolerance is the
    /// larger term (rtol·|cpu| ≥ atol); nearer zero the absolute tolerance decides.
    public var maxRelativeError: Float
    /// Seconds the device took: inputs up, forward, backward, results down (the first op of a
    /// kernel family includes building it).
    public var seconds: Double
    /// Why it failed or was skipped; a note (a fallback taken) when it passed.
    public var detail: String?

    /// `PASS  softmax (long rows)        fwd+bwd  abs 2.4e-08  rel 1.1e-06  tol 1e-04   12.3 ms`
    public var line: String {
        let name = op.padding(toLength: max(op.count, 28), withPad: " ", startingAt: 0)
        let dir = backward ? "fwd+bwd" : "fwd    "
        var s = "\(outcome.rawValue)  \(name) \(dir)"
        if outcome != .skipped {
            s += String(format: "  abs %.1e  rel %.1e  tol %.0e  %7.1f ms", maxAbsoluteError, maxRelativeError,
                        tolerance.relative, seconds * 1000)
        }
        if let detail { s += "  — \(detail)" }
        return s
    }
}

/// `itune-gpu devices --check`: every op, forward and backward, on one OpenCL device against
/// the CPU path, plus what the device lacks and which fallbacks that selects.
///
/// Why: a driver may miscompile a kernel, and a small GPU's limits (work-group size, local
/// memory) are not this machine's; one command tells a user, before training, whether the
/// device computes what the CPU computes.
public struct DeviceCheck: Sendable {
    public let device: Device
    public let deviceName: String
    public let results: [OpCheckResult]
    /// What the device lacks or limits, and what the runtime does about it, one line each.
    public let capabilities: [String]

    /// Whether every op that ran passed (skipped ops do not fail the check).
    public var passed: Bool { !results.contains { $0.outcome == .fail } }

    /// The names of the ops the check runs, in order.
    public static var opNames: [String] { CheckedOp.all.map(\.name) }

    /// The device `devices --check` checks when none is named: what `auto` picks where that is
    /// an OpenCL device, else the first OpenCL device of any type (PoCL's CPU device); nil
    /// where there is no OpenCL device at all.
    public static func defaultDevice() -> Device? {
        let auto = Device.auto.resolved
        if case .opencl = auto { return auto }
        for p in OpenCLRuntime.listDevices().platforms {
            if let d = p.devices.first { return .opencl(platform: p.index, device: d.index) }
        }
        return nil
    }

    /// Runs the ops (all, or those whose name contains one of `only`) on `device`, an OpenCL
    /// device (`auto` must resolve to one). Throws only when the device cannot be opened; an
    /// op that throws is a failed line naming the error.
    public static func run(on device: Device, only: [String]? = nil) throws -> DeviceCheck {
        let resolved = device.resolved
        guard case .opencl = resolved, let cl = try resolved.backend() as? OpenCLBackend else {
            throw TensorError.invalidArgument(op: "devices --check",
                "\(device) is \(resolved): the check compares an OpenCL device against the CPU path; pick one with --device opencl:P:D (see `itune-gpu devices`)")
        }
        let ops = CheckedOp.all.filter { op in only.map { names in names.contains { op.name.contains($0) } } ?? true }
        var results: [OpCheckResult] = []
        for (i, op) in ops.enumerated() {
            results.append(check(op, on: cl, seed: 0xC4EC_0000 + UInt64(i) * 16))
        }
        return DeviceCheck(device: resolved, deviceName: cl.name, results: results,
                           capabilities: capabilityLines(cl))
    }

    /// The report: a header, one line per op, the device's limits and fallbacks, a verdict.
    public var text: String {
        var lines = ["devices --check: \(device) = \(deviceName), against the CPU path"]
        lines += results.map { "  " + $0.line }
        lines.append("device limits and fallbacks:")
        lines += capabilities.map { "  " + $0 }
        let failed = results.filter { $0.outcome == .fail }.count
        let skipped = results.filter { $0.outcome == .skipped }.count
        let ran = results.count - skipped
        lines.append(failed == 0
            ? "all \(ran) ops match the CPU path\(skipped > 0 ? " (\(skipped) skipped)" : "")"
            : "\(failed) of \(ran) ops differ from the CPU path or failed: do not train on this device until they pass")
        return lines.joined(separator: "\n")
    }

    // MARK: one op

    static func check(_ op: CheckedOp, on cl: OpenCLBackend, seed: UInt64) -> OpCheckResult {
        var result = OpCheckResult(op: op.name, outcome: .pass, backward: op.backward, tolerance: op.tolerance,
                                   maxAbsoluteError: 0, maxRelativeError: 0, seconds: 0, detail: nil)
        let saved = cl.gemmImplementation
        if let gemm = op.gemm {
            if gemm == .clblast, !CLBlast.isAvailable {
                result.outcome = .skipped
                result.detail = "CLBlast unavailable (\(CLBlast.loadError ?? "")); matmuls use gemm.cl"
                return result
            }
            if gemm == .clblast, let refusal = cl.clblastRefusal {
                result.outcome = .skipped
                result.detail = "CLBlast refused earlier on this device; matmuls use gemm.cl (\(refusal))"
                return result
            }
            cl.gemmImplementation = gemm
        }
        defer {
            // A refusal during this op switched the device to gemm.cl for good: keep that.
            if op.gemm != nil { cl.gemmImplementation = cl.clblastRefusal == nil ? saved : .own }
        }
        var g = SplitMix64(seed: seed)
        let values = op.shapes.map { shape in
            (0..<shape.reduce(1, *)).map { _ in op.nonNegative ? g.nextFloat() : 2 * g.nextFloat() - 1 }
        }
        let weightSeed = g.next()
        let refusedBefore = cl.clblastRefusal != nil
        do {
            let reference = try evaluate(op, values, on: .cpu, weightSeed: weightSeed)
            let start = DispatchTime.now().uptimeNanoseconds
            let got = try evaluate(op, values, on: cl.device, weightSeed: weightSeed)
            result.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            var problems: [String] = []
            let names = ["forward"] + reference.grads.indices.map { "gradient of input \($0)" }
            let gots = [got.out] + got.grads
            for (i, ref) in ([reference.out] + reference.grads).enumerated() {
                let c = compare(i < gots.count ? gots[i] : [], ref, op.tolerance)
                result.maxAbsoluteError = max(result.maxAbsoluteError, c.maxAbs)
                result.maxRelativeError = max(result.maxRelativeError, c.maxRel)
                if let p = c.problem { problems.append("\(names[i]): \(p)") }
            }
            if !problems.isEmpty {
                result.outcome = .fail
                result.detail = problems.joined(separator: "; ")
            } else if op.gemm == .clblast, !refusedBefore, cl.clblastRefusal != nil {
                result.detail = "CLBlast refused; fell back to gemm.cl"
            }
        } catch {
            result.outcome = .fail
            result.detail = "\(error)"
        }
        return result
    }

    /// The op's output and, when it has a backward, the gradients of Σ out·w for each input.
    static func evaluate(_ op: CheckedOp, _ values: [[Float]], on device: Device,
                         weightSeed: UInt64) throws -> (out: [Float], grads: [[Float]]) {
        let inputs = try zip(values, op.shapes).map { try Tensor($0.0, shape: $0.1, on: device, requiresGrad: op.backward) }
        let out = try op.body(inputs)
        var grads: [[Float]] = []
        if op.backward {
            var g = SplitMix64(seed: weightSeed)
            let w = try Tensor((0..<out.count).map { _ in 2 * g.nextFloat() - 1 }, shape: out.shape, on: device)
            try (out * w).sum().backward()
            grads = try inputs.map { try $0.grad?.toArray() ?? [] }
        }
        return (try out.toArray(), grads)
    }

    /// Largest absolute and relative differences of `a` (device) from `b` (CPU), and the worst
    /// element outside |a − b| ≤ atol + rtol·|b|, if any.
    static func compare(_ a: [Float], _ b: [Float], _ tolerance: CheckTolerance)
        -> (maxAbs: Float, maxRel: Float, problem: String?) {
        guard a.count == b.count else { return (.infinity, .infinity, "\(a.count) values where the CPU gives \(b.count)") }
        var maxAbs: Float = 0, maxRel: Float = 0
        var worst: (index: Int, excess: Float)?
        for i in a.indices where a[i] != b[i] {
            let allowed = tolerance.absolute + tolerance.relative * abs(b[i])
            let d = abs(a[i] - b[i])  // nan when one side is nan, or both infinite
            if d.isNaN || d.isInfinite {
                maxAbs = .infinity
            } else {
                maxAbs = max(maxAbs, d)
                let relativeDecides = tolerance.relative == 0 ? b[i] != 0 : tolerance.relative * abs(b[i]) >= tolerance.absolute
                if relativeDecides { maxRel = max(maxRel, d / abs(b[i])) }
            }
            if b[i].isNaN, a[i].isNaN { continue }
            if !(d <= allowed) {
                let excess = d.isNaN ? Float.infinity : d - allowed
                if worst.map({ excess > $0.excess }) ?? true { worst = (i, excess) }
            }
        }
        guard let worst else { return (maxAbs, maxRel, nil) }
        return (maxAbs, maxRel, "element \(worst.index) is \(a[worst.index]), the CPU gives \(b[worst.index])")
    }

    // MARK: limits and fallbacks

    /// What the device lacks or limits and what the runtime chose for it, after the ops ran
    /// (so that the kernels' own limits and a CLBlast refusal are known).
    static func capabilityLines(_ cl: OpenCLBackend) -> [String] {
        let info = cl.info
        var lines: [String] = []
        let seen = cl.kernelLimitsSeen
        var kernelLine = ""
        if let tightest = seen.min(by: { $0.value.workGroupSize < $1.value.workGroupSize }) {
            let below = seen.filter { $0.value.workGroupSize < info.maxWorkGroupSize }.count
            kernelLine = below == 0
                ? "; kernels' own CL_KERNEL_WORK_GROUP_SIZE: all \(seen.count) at the device maximum"
                : "; kernels' own CL_KERNEL_WORK_GROUP_SIZE: \(below) of \(seen.count) below it, lowest \(tightest.value.workGroupSize) (\(tightest.key))"
        }
        lines.append("work-groups   device maximum \(info.maxWorkGroupSize), per dimension \(info.maxWorkItemSizes)\(kernelLine)")
        var chosen: [String] = []
        switch Result(catching: { try cl.gemmBlockedTile() }) {
        case let .success(tile?):
            chosen.append("gemm_blocked.cl \(tile.tsm)×\(tile.tsn) tiles, \(tile.groupN)×\(tile.groupM) work-items")
        case .success(nil):
            chosen.append("gemm_blocked.cl does not fit (tuned tile), own GEMM is gemm.cl")
        case let .failure(error):
            chosen.append("gemm_blocked.cl unavailable (\(error)), own GEMM is gemm.cl")
        }
        if let ts = try? cl.gemmTile(), let tuned = try? cl.tuned("TS", family: "gemm") {
            chosen.append("gemm.cl TS \(ts)\(ts < tuned ? " (lowered from \(tuned))" : "")")
        }
        for (label, long) in [("softmax long rows", true), ("softmax short rows", false)] {
            if let s = try? cl.rowGroupSize(long: long, kernel: "softmax_forward", family: "softmax"),
               let tuned = try? cl.tuned(long ? "REDUCE_GROUP_MAX" : "REDUCE_GROUP_SHORT", family: "reduce") {
                chosen.append("\(label) \(s)\(s < tuned ? " (lowered from \(tuned))" : "")")
            }
        }
        if let tunedQ = try? cl.tuned("BLOCK_Q", family: "attention") {
            let q = seen.filter { $0.key.hasPrefix("attention/attention_forward|") }
                .compactMap { entry in entry.key.split(separator: ",").first { $0.hasPrefix("BLOCK_Q=") || $0.contains("|BLOCK_Q=") } }
                .compactMap { Int($0.split(separator: "=").last ?? "") }.min()
            if let q { chosen.append("attention BLOCK_Q \(q)\(q < tunedQ ? " (lowered from \(tunedQ))" : "")") }
        }
        lines.append("  groups used: " + chosen.joined(separator: ", "))
        lines.append("local memory  \(formatBytes(info.localMemory))\(info.localMemory < 32 * 1024 ? ": less than 32 KiB, attention stages smaller key blocks (BLOCK_K lowered)" : "")")
        lines.append("fp16          \(info.supportsFP16 ? "yes (cl_khr_fp16)" : "no (cl_khr_fp16 absent)"): the kernels compute in f32 either way; f16/bf16 weights are widened to f32")
        lines.append("subgroups     \(info.supportsSubgroups ? "yes" : "no"): reductions use local memory and barriers, which every device has")
        if let error = CLBlast.loadError {
            lines.append("CLBlast       unavailable (\(error)): matmuls use gemm.cl")
        } else if let refusal = cl.clblastRefusal {
            lines.append("CLBlast       refused a GEMM on this device (\(refusal)): matmuls use gemm.cl")
        } else {
            lines.append("CLBlast       loaded and accepted every GEMM: matmuls use CLBlast\(cl.gemmImplementation == .own ? " (ITUNE_OWN_GEMM=1: gemm.cl)" : "")")
        }
        return lines
    }
}
