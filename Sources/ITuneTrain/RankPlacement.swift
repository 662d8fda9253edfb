import Foundation
import ITuneTensor

/// Where each rank of a data-parallel run computes: the node's GPUs are shared out by local
/// rank, and on the CPU path the node's cores are split among its ranks.
public enum RankPlacement {
    /// Threads for one of `localSize` ranks sharing `cores` cores (at least one).
    public static func cpuThreads(localSize: Int, cores: Int = ProcessInfo.processInfo.activeProcessorCount) -> Int {
        max(1, cores / max(1, localSize))
    }

    /// Gives the CPU path of this process its share of the node's cores, unless the user set
    /// ITUNE_NUM_THREADS. Must run before the first CPU op: the count is read once.
    @discardableResult
    public static func shareCores(localSize: Int) -> Int {
        if let s = ProcessInfo.processInfo.environment["ITUNE_NUM_THREADS"], let n = Int(s), n > 0 { return n }
        let n = cpuThreads(localSize: localSize)
        setenv("ITUNE_NUM_THREADS", String(n), 1)
        return n
    }

    /// The device of local rank `localRank` for the `--device` text given: `opencl` (no
    /// index) or `auto` take the node's OpenCL GPUs and accelerators in order, one per local
    /// rank (wrapping round when there are fewer; `opencl` falls back to every OpenCL device
    /// when there is no GPU, `auto` to the CPU path); `opencl:P:D` and `cpu` are taken as given.
    public static func device(_ text: String, localRank: Int) throws -> (device: Device, reason: String) {
        let asked = text.lowercased()
        guard asked == "opencl" || asked == "cl" || asked == "auto" else {
            let d = try Device(parsing: text)
            return (d, "as given")
        }
        let listing = OpenCLRuntime.listDevices()
        if let error = listing.error {
            if asked == "auto" { return (.cpu, "no OpenCL (\(error)); using the CPU path") }
            throw TensorError.invalidArgument(op: "device", "--device opencl: \(error)")
        }
        let all = listing.platforms.flatMap { p in p.devices.map { (p, $0) } }
        let gpus = all.filter { $0.1.isGPUOrAccelerator }
        let pool = gpus.isEmpty && asked != "auto" ? all : gpus
        guard !pool.isEmpty else {
            if asked == "auto" { return (.cpu, "no OpenCL GPU or accelerator; using the CPU path") }
            throw TensorError.invalidArgument(op: "device", "--device opencl: no OpenCL device found")
        }
        let (p, d) = pool[localRank % pool.count]
        let shared = localRank >= pool.count ? ", shared with other ranks of this node" : ""
        return (.opencl(platform: p.index, device: d.index),
                "local rank \(localRank) takes \(d.name) (\(d.typeName), \(p.name)), \(localRank % pool.count + 1) of \(pool.count)\(shared)")
    }
}
