import COpenCL
import Foundation

// Where a step's time goes, per kernel: `Backend.startProfiling()` … `stopProfiling()`.
// On OpenCL the queue is made with CL_QUEUE_PROFILING_ENABLE (only once profiling is asked
// for) and every launch — kernel, CLBlast GEMM, fill, copy: what `DeviceCounters.launches`
// counts — gets an event whose START and END come back at the next blocking synchronisation.
// On the CPU path the ops run inline, so each op is timed on the host, from its start to the
// start of the next op or to the next host copy. Off, a launch pays one check of a nil.

/// What one device ran between `startProfiling()` and `stopProfiling()`, per kernel (OpenCL)
/// or per op (CPU path).
public struct OpProfile: Sendable {
    /// Where the times come from.
    public enum Clock: String, Sendable {
        /// OpenCL profiling events: the device's own START and END of each command.
        case deviceEvents = "OpenCL profiling events"
        /// The host's clock around each op (the CPU path).
        case host = "host clock"
    }

    public struct Row: Sendable, Equatable {
        /// The kernel (`adamw_update`, `clblast_sgemm`, `fill_buffer`) or CPU op (`matmul`).
        public var name: String
        public var launches: Int
        /// Time spent running it: device time on OpenCL, the op's wall time on the CPU path.
        public var seconds: Double
        /// Time just before its launches in which the device ran none of the profiled
        /// commands: the launch overhead and host work a GPU would sit through (on OpenCL it also
        /// holds uploads, reads and, before a CLBlast GEMM, CLBlast's own padding kernels); on
        /// the CPU path, host work between an upload or read and this op.
        public var gapSeconds: Double
    }

    /// The backend's name.
    public var device: String
    public var clock: Clock
    /// Most time first.
    public var rows: [Row]
    /// Host wall time from `startProfiling()` to `stopProfiling()` (which waits for the device).
    public var wallSeconds: Double

    /// Launches by name, as `DeviceCounters.launches` counts them over the same window.
    public var launches: [String: Int] { Dictionary(rows.map { ($0.name, $0.launches) }, uniquingKeysWith: +) }
    public var totalLaunches: Int { rows.reduce(0) { $0 + $1.launches } }
    public var busySeconds: Double { rows.reduce(0) { $0 + $1.seconds } }
    public var gapSeconds: Double { rows.reduce(0) { $0 + $1.gapSeconds } }
}

/// Gathers a profile while profiling is on (one per backend; the backend holds it).
final class ProfileRecorder: @unchecked Sendable {
    private let lock = NSLock()
    let began = ProfileRecorder.now()
    private var totals: [String: (launches: Int, seconds: Double, gap: Double)] = [:]
    private var order: [String] = []
    // OpenCL: events in enqueue order, read at the next blocking synchronisation.
    private var pending: [(name: String, event: cl_event)] = []
    private var lastEnd: UInt64?
    // CPU: the op running now, and when the last one ended without another starting.
    private var running: (name: String, start: Double)?
    private var idleSince: Double

    init() { idleSince = began }

    /// Monotonic seconds.
    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

    private func add(_ name: String, launches: Int = 0, seconds: Double = 0, gap: Double = 0) {
        if totals[name] == nil { order.append(name) }
        var t = totals[name] ?? (0, 0, 0)
        t.launches += launches
        t.seconds += seconds
        t.gap += gap
        totals[name] = t
    }

    // MARK: OpenCL

    /// A command enqueued with `event` (released once read).
    func enqueued(_ name: String, event: cl_event?) {
        lock.lock(); defer { lock.unlock() }
        guard let event else { add(name, launches: 1); return }
        pending.append((name, event))
    }

    /// Reads the START and END of every pending command: call after a blocking
    /// synchronisation, when the in-order queue has run them all.
    func collect() {
        lock.lock()
        let done = pending
        pending = []
        lock.unlock()
        guard !done.isEmpty else { return }
        var results: [(String, UInt64, UInt64)?] = []
        results.reserveCapacity(done.count)
        for (name, event) in done {
            var start: cl_ulong = 0, end: cl_ulong = 0
            let a = itune_clGetEventProfilingInfo(event, cl_profiling_info(CL_PROFILING_COMMAND_START), 8, &start, nil)
            let b = itune_clGetEventProfilingInfo(event, cl_profiling_info(CL_PROFILING_COMMAND_END), 8, &end, nil)
            _ = itune_clReleaseEvent(event)
            results.append(a == CL_SUCCESS && b == CL_SUCCESS && end >= start ? (name, UInt64(start), UInt64(end)) : nil)
        }
        lock.lock(); defer { lock.unlock() }
        for (k, r) in results.enumerated() {
            guard let (name, start, end) = r else { add(done[k].name, launches: 1); continue }
            let gap = lastEnd.map { start > $0 ? Double(start - $0) * 1e-9 : 0 } ?? 0
            add(name, launches: 1, seconds: Double(end - start) * 1e-9, gap: gap)
            lastEnd = max(lastEnd ?? end, end)
        }
    }

    // MARK: CPU

    /// An op starts on the host: the one before it (if any) ends here.
    func opBegan(_ name: String) {
        let t = Self.now()
        lock.lock(); defer { lock.unlock() }
        if let r = running {
            add(r.name, seconds: t - r.start)
            add(name, launches: 1)
        } else {
            add(name, launches: 1, gap: t - idleSince)
        }
        running = (name, t)
    }

    /// Host work that is no op's (an upload, a read): the running op ends here.
    func hostWork() {
        let t = Self.now()
        lock.lock(); defer { lock.unlock() }
        if let r = running {
            add(r.name, seconds: t - r.start)
            running = nil
            idleSince = t
        }
    }

    /// The profile so far (after `collect()` / `hostWork()` have closed what ran).
    func profile(device: String, clock: OpProfile.Clock) -> OpProfile {
        let wall = Self.now() - began
        lock.lock(); defer { lock.unlock() }
        let rows = order.map { n in OpProfile.Row(name: n, launches: totals[n]!.launches, seconds: totals[n]!.seconds, gapSeconds: totals[n]!.gap) }
        return OpProfile(device: device, clock: clock, rows: rows.sorted { ($0.seconds, $1.name) > ($1.seconds, $0.name) },
                         wallSeconds: wall)
    }

    deinit { for p in pending { _ = itune_clReleaseEvent(p.event) } }
}
