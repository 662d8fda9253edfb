import COpenCL
import Foundation
import ITuneKernels

/// One OpenCL device: its context, an in-order queue, a buffer pool, and the compiled kernel
/// families (cached on disk by `ProgramCache`).
public final class OpenCLBackend: Backend {
    public let device: Device
    public let info: OpenCLDeviceInfo
    public let platformName: String
    let deviceID: cl_device_id
    let context: cl_context
    var queue: cl_command_queue?

    private let lock = NSLock()
    private var pool = BufferPool<cl_mem>()
    private var liveBytes = 0
    private var peak = 0
    private var programs: [String: cl_program] = [:]
    /// Kernel objects with their limits on this device, by `kernelKey`.
    private var kernels: [String: (kernel: cl_kernel, limits: KernelLimits)] = [:]
    private var tuningValue: KernelTuning
    /// Family → its `-D` values under the current tuning; emptied when `tuning` is set.
    private var tunedDefinesCache: [String: [String: Int]] = [:]
    private var gemmChoice: GemmImplementation
    /// Kernel limits looked up, sizes fitted to them, CLBlast's refusal (KernelLimits.swift).
    let fitState = Locked(KernelFitState())
    /// Blocking syncs, bytes moved, launches and new buffers (see `counters`).
    let tally = CounterTally()
    /// Host copies of non-blocking uploads still in the queue, and their bytes; dropped at the
    /// next blocking synchronisation (the queue is in order, so by then it has read them).
    private var staged: [StagedUpload] = []
    private var stagedBytes = 0
    /// The profile being gathered (Profiler.swift); nil while profiling is off.
    private var recorder: ProfileRecorder?
    /// Whether `queue` was made with CL_QUEUE_PROFILING_ENABLE (only once profiling is asked for).
    private var queueProfiles = false

    public var name: String { "\(info.name) (\(platformName))" }

    nonisolated(unsafe) private static var backends: [Device: OpenCLBackend] = [:]
    private static let backendsLock = NSLock()

    /// The backend of `opencl:platform:device`, created on first use.
    public static func shared(platform: Int, device: Int) throws -> OpenCLBackend {
        backendsLock.lock()
        defer { backendsLock.unlock() }
        let key = Device.opencl(platform: platform, device: device)
        if let b = backends[key] { return b }
        let b = try OpenCLBackend(platform: platform, device: device)
        backends[key] = b
        return b
    }

    private init(platform: Int, device: Int) throws {
        try OpenCLRuntime.load()
        let platforms = try OpenCLRuntime.platformIDs()
        guard platform < platforms.count else {
            throw TensorError.unavailable("OpenCL platform \(platform) does not exist (\(platforms.count) found); see `itune-gpu devices`")
        }
        let devices = try OpenCLRuntime.deviceIDs(platforms[platform])
        guard device < devices.count, let did = devices[device] else {
            throw TensorError.unavailable("OpenCL device \(device) of platform \(platform) does not exist (\(devices.count) found); see `itune-gpu devices`")
        }
        self.device = .opencl(platform: platform, device: device)
        self.deviceID = did
        self.info = OpenCLRuntime.deviceInfo(did, index: device)
        self.platformName = OpenCLRuntime.platformString(platforms[platform], CL_PLATFORM_NAME)
        var rc: cl_int = 0
        var dev: cl_device_id? = did
        guard let ctx = itune_clCreateContext(nil, 1, &dev, nil, nil, &rc), rc == CL_SUCCESS else {
            throw TensorError.openCL(call: "clCreateContext", code: rc)
        }
        context = ctx
        queue = itune_clCreateCommandQueue(ctx, did, 0, &rc)
        try check(rc, "clCreateCommandQueue")
        tuningValue = KernelTuning.resolve(for: KernelTuning.DeviceKey(platform: platformName, device: info.name,
                                                                        driver: info.driverVersion))
        gemmChoice = GemmImplementation.fromEnvironment
        // `itune-gpu tune` found the own GEMM faster than CLBlast on this device.
        if tuningValue.values[GemmImplementation.preferOwnKey] == 1, ProcessInfo.processInfo.environment["ITUNE_OWN_GEMM"] == nil {
            gemmChoice = .own
        }
        // CLBlast's Xgemm parameters tuned for this device (CLBlastTuning.swift), if any.
        if CLBlastTuning.parameters(in: tuningValue.values) != nil {
            do { try CLBlastTuning.apply(tuningValue.values, on: self) } catch {
                FileHandle.standardError.write(Data("itune-gpu: the tuned CLBlast parameters for \(info.name) were refused (\(error)); CLBlast's own are used\n".utf8))
            }
        }
    }

    // MARK: per-device choices

    /// The tunable kernel constants of this device (tile and block sizes, work-group sizes),
    /// resolved when the backend is made: the on-disk cache, then the repository's table,
    /// then the defaults in the .cl files. Setting it rebuilds the kernels on next use; set it
    /// between steps, not while another thread launches kernels on this device.
    public var tuning: KernelTuning {
        get { lock.lock(); defer { lock.unlock() }; return tuningValue }
        set {
            lock.lock()
            let old = kernels.values
            tuningValue = newValue
            kernels = [:]
            tunedDefinesCache = [:]
            lock.unlock()
            fitState.withLock { $0.limits = [:]; $0.fitted = [:] }
            for k in old { _ = itune_clReleaseKernel(k.kernel) }
        }
    }

    /// Which GEMM this device's matmuls use: CLBlast (when it loads) or our Kernels/gemm.cl.
    /// Starts as `.own` under `ITUNE_OWN_GEMM=1`, else `.clblast`; per device, so two devices
    /// in one process may differ.
    public var gemmImplementation: GemmImplementation {
        get { lock.lock(); defer { lock.unlock() }; return gemmChoice }
        set { lock.lock(); gemmChoice = newValue; lock.unlock() }
    }

    /// The `-D` values a family is built with: each tunable the family's source declares
    /// (`#ifndef NAME` / `#define NAME value`), from `tuning` where it has the name, else the
    /// source's default.
    func tunedDefines(_ family: String) throws -> [String: Int] {
        lock.lock()
        if let d = tunedDefinesCache[family] { lock.unlock(); return d }
        lock.unlock()
        let defaults = try KernelTuning.defaults(family: family)
        lock.lock()
        defer { lock.unlock() }
        let d = defaults.merging(tuningValue.values.filter { defaults[$0.key] != nil }) { _, tuned in tuned }
        tunedDefinesCache[family] = d
        return d
    }

    /// The value of one tunable constant of `family` on this device (what its kernels are
    /// built with), for the host side that sizes work-groups from it.
    func tuned(_ name: String, family: String) throws -> Int {
        guard let v = try tunedDefines(family)[name] else {
            throw TensorError.invalidArgument(op: "kernel tuning", "\(family).cl declares no tunable \(name)")
        }
        return v
    }

    // MARK: memory

    public func allocate(byteCount: Int) throws -> Storage {
        let size = BufferPool<cl_mem>.sizeClass(byteCount)
        lock.lock()
        if let m = pool.take(byteCount) {
            liveBytes += size
            lock.unlock()
            return Storage(buffer: .opencl(m), byteCount: byteCount, backend: self)
        }
        let inUse = liveBytes + pool.pooledBytes
        lock.unlock()
        if size > info.maxAllocation || inUse + size > info.globalMemory {
            // Give the pool back before giving up.
            releaseCachedBuffers()
            lock.lock(); let now = liveBytes; lock.unlock()
            if size > info.maxAllocation || now + size > info.globalMemory {
                // The caller's byte count, not the pool's size class: what the op asked for.
                throw TensorError.outOfMemory(device: name, requested: byteCount,
                                              available: min(info.maxAllocation, max(0, info.globalMemory - now)))
            }
        }
        var rc: cl_int = 0
        let mem = itune_clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), size, nil, &rc)
        if rc == CL_MEM_OBJECT_ALLOCATION_FAILURE || rc == CL_OUT_OF_RESOURCES || rc == CL_OUT_OF_HOST_MEMORY {
            throw TensorError.outOfMemory(device: name, requested: byteCount, available: max(0, info.globalMemory - inUse))
        }
        try check(rc, "clCreateBuffer(\(size) bytes)")
        lock.lock()
        liveBytes += size
        pool.counted()
        tally.newBuffer()
        peak = max(peak, liveBytes + pool.pooledBytes)
        lock.unlock()
        return Storage(buffer: .opencl(mem!), byteCount: byteCount, backend: self)
    }

    public func recycle(_ buffer: RawBuffer, byteCount: Int) {
        guard case let .opencl(m) = buffer else { return }
        lock.lock()
        liveBytes -= BufferPool<cl_mem>.sizeClass(byteCount)
        pool.put(m, byteCount)
        lock.unlock()
    }

    public func releaseCachedBuffers() {
        lock.lock()
        let all = pool.drain()
        lock.unlock()
        for m in all { _ = itune_clReleaseMemObject(m) }
    }

    public var bytesInUse: Int { lock.lock(); defer { lock.unlock() }; return liveBytes + pool.pooledBytes }
    public var peakBytesInUse: Int { lock.lock(); defer { lock.unlock() }; return peak }
    public func resetPeak() { lock.lock(); peak = liveBytes + pool.pooledBytes; lock.unlock() }
    public var allocationCount: Int { lock.lock(); defer { lock.unlock() }; return pool.allocations }
    public var counters: DeviceCounters { tally.snapshot }
    public func resetCounters() { tally.reset() }

    /// Writes up to this size (a micro-batch's ids, targets, positions, index arrays) are
    /// copied to a host staging buffer and enqueued without blocking; larger ones (weights
    /// being loaded) block instead of doubling their host memory.
    static let stagedWriteLimit = 4 << 20
    /// Staged bytes past this drain the queue, so that a loop that never reads cannot grow them.
    static let stagedBytesLimit = 64 << 20

    public func write(_ storage: Storage, from source: UnsafeRawPointer, byteCount: Int) throws {
        guard byteCount > 0 else { return }
        tally.uploaded(byteCount)
        if byteCount <= Self.stagedWriteLimit {
            let upload = StagedUpload(copying: source, byteCount: byteCount)
            try check(itune_clEnqueueWriteBuffer(queue, storage.mem, cl_bool(CL_FALSE), 0, byteCount, upload.bytes, 0, nil, nil),
                      "clEnqueueWriteBuffer")
            lock.lock()
            staged.append(upload)
            stagedBytes += byteCount
            let full = stagedBytes > Self.stagedBytesLimit
            lock.unlock()
            if full { try synchronize() }
            return
        }
        try check(itune_clEnqueueWriteBuffer(queue, storage.mem, cl_bool(CL_TRUE), 0, byteCount, source, 0, nil, nil),
                  "clEnqueueWriteBuffer")
        drained()
    }

    public func read(_ storage: Storage, into destination: UnsafeMutableRawPointer, byteCount: Int) throws {
        guard byteCount > 0 else { return }
        try check(itune_clEnqueueReadBuffer(queue, storage.mem, cl_bool(CL_TRUE), 0, byteCount, destination, 0, nil, nil),
                  "clEnqueueReadBuffer")
        tally.downloaded(byteCount)
        drained()
    }

    /// Counts a blocking synchronisation: everything enqueued before it has run, staged
    /// uploads included, so their host copies can go.
    private func drained() {
        tally.sync()
        lock.lock()
        let done = staged
        staged = []
        stagedBytes = 0
        let profiling = recorder
        lock.unlock()
        _ = done  // freed here, outside the lock
        profiling?.collect()
    }

    // MARK: profiling

    /// The recorder of the profile being gathered, or nil (one lock, no allocation).
    var activeRecorder: ProfileRecorder? { lock.lock(); defer { lock.unlock() }; return recorder }

    /// Starts timing every launch with OpenCL profiling events, from a drained queue. The first
    /// call replaces the queue by one made with CL_QUEUE_PROFILING_ENABLE (so a run that never
    /// profiles never pays for it); call it between steps, not while another thread launches.
    public func startProfiling() throws {
        try synchronize()
        lock.lock(); let made = queueProfiles; lock.unlock()
        if !made {
            var rc: cl_int = 0
            let q = itune_clCreateCommandQueue(context, deviceID, cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE), &rc)
            try check(rc, "clCreateCommandQueue(CL_QUEUE_PROFILING_ENABLE)")
            guard let q else { throw TensorError.openCL(call: "clCreateCommandQueue(CL_QUEUE_PROFILING_ENABLE)", code: rc) }
            let old = queue
            queue = q
            if let old { _ = itune_clReleaseCommandQueue(old) }
            lock.lock(); queueProfiles = true; lock.unlock()
        }
        lock.lock(); recorder = ProfileRecorder(); lock.unlock()
    }

    /// Waits for the device, stops timing and returns the profile (nil when none was started).
    public func stopProfiling() throws -> OpProfile? {
        try synchronize()
        lock.lock(); let r = recorder; recorder = nil; lock.unlock()
        return r?.profile(device: name, clock: .deviceEvents)
    }

    public func fillZero(_ storage: Storage, byteCount: Int) throws {
        try fill(storage, value: 0, byteCount: byteCount)
    }

    public func fill(_ storage: Storage, value: Float, byteCount: Int) throws {
        guard byteCount > 0 else { return }
        var v = value
        let profiling = activeRecorder
        var event: cl_event?
        let rc = withUnsafeMutablePointer(to: &event) { ev in
            itune_clEnqueueFillBuffer(queue, storage.mem, &v, 4, 0, (byteCount + 3) / 4 * 4, 0, nil, profiling == nil ? nil : ev)
        }
        try check(rc, "clEnqueueFillBuffer")
        tally.launched("fill_buffer")
        profiling?.enqueued("fill_buffer", event: event)
    }

    public func copy(from source: Storage, at sourceOffset: Int, to destination: Storage, at destinationOffset: Int,
                     byteCount: Int) throws {
        guard byteCount > 0 else { return }
        let profiling = activeRecorder
        var event: cl_event?
        let rc = withUnsafeMutablePointer(to: &event) { ev in
            itune_clEnqueueCopyBuffer(queue, source.mem, destination.mem, sourceOffset, destinationOffset, byteCount, 0, nil,
                                      profiling == nil ? nil : ev)
        }
        try check(rc, "clEnqueueCopyBuffer")
        tally.launched("copy_buffer")
        profiling?.enqueued("copy_buffer", event: event)
    }

    public func synchronize() throws {
        try check(itune_clFinish(queue), "clFinish")
        drained()
    }

    // MARK: kernels

    /// Compile options shared by every family. `-cl-fast-relaxed-math` is left out on
    /// purpose: results must match the CPU path to 1e-5.
    static let baseOptions = "-cl-std=CL1.2"

    /// The compiled program of a kernel family (`softmax` → Kernels/softmax.cl) with the
    /// family's tuned constants (see `KernelTuning`) and the given shape constants as `-D`
    /// options.
    func program(_ family: String, constants: [String: Int] = [:]) throws -> cl_program {
        let defines = try tunedDefines(family).merging(constants) { _, shape in shape }
        let options = ([Self.baseOptions] + defines.sorted { $0.key < $1.key }.map { "-D\($0.key)=\($0.value)" })
            .joined(separator: " ")
        let key = family + "|" + options
        lock.lock()
        if let p = programs[key] { lock.unlock(); return p }
        lock.unlock()
        let source = try KernelSources.source(of: family)
        let p = try ProgramCache.build(source: source, family: family, options: options, backend: self)
        lock.lock(); programs[key] = p; lock.unlock()
        return p
    }

    /// The build options of every program of `family` compiled so far (what `-D` values were
    /// actually used), for tests and `itune-bench`.
    public func compiledOptions(family: String) -> [String] {
        lock.lock(); defer { lock.unlock() }
        return programs.keys.filter { $0.hasPrefix(family + "|") }.map { String($0.dropFirst(family.count + 1)) }.sorted()
    }

    /// A kernel object of a family (cached; kernels are not used from several threads).
    /// Setting `tuning` empties this cache, so the key need not hold the tuned values.
    func kernel(_ family: String, _ name: String, constants: [String: Int]) throws -> cl_kernel {
        try compiledKernel(family, name, constants: constants).kernel
    }

    /// The kernel object and its limits on this device (queried once, when it is created), so
    /// that a launch builds its key and takes the lock once.
    func compiledKernel(_ family: String, _ name: String, constants: [String: Int]) throws
        -> (kernel: cl_kernel, limits: KernelLimits) {
        let key = kernelKey(family, name, constants)
        lock.lock()
        if let k = kernels[key] { lock.unlock(); return k }
        lock.unlock()
        let p = try program(family, constants: constants)
        var rc: cl_int = 0
        let made = itune_clCreateKernel(p, name, &rc)
        try check(rc, "clCreateKernel(\(name))")
        guard let made else { throw TensorError.openCL(call: "clCreateKernel(\(name))", code: rc) }
        let compiled = (kernel: made, limits: try limits(of: made, name: name))
        lock.lock(); kernels[key] = compiled; lock.unlock()
        fitState.withLock { $0.limits[key] = compiled.limits }
        return compiled
    }

    /// `family/name|K=v,…`: one kernel object per family, name and launch constants.
    func kernelKey(_ family: String, _ name: String, _ constants: [String: Int]) -> String {
        var key = family + "/" + name
        if !constants.isEmpty {
            key += "|" + constants.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        }
        return key
    }

    /// Enqueues `family/name` over `grid` with `args` in the order of the kernel's parameters.
    ///
    /// The one untyped primitive under the typed kernel functions (`OpenCL/Kernels/*.swift`,
    /// one per Kernels/*.cl family); ops call those, never this.
    func launch(_ family: String, _ name: String, _ grid: KernelGrid, _ args: [KernelArgument]) throws {
        if grid.global.contains(0) { return }
        let (k, limits) = try compiledKernel(family, name, constants: grid.constants)
        for (i, arg) in args.enumerated() {
            try arg.set(on: k, index: i, kernel: name)
        }
        let dynamicLocal = args.reduce(0) { sum, arg in
            if case let .local(m) = arg { return sum + max(m.bytes, 4) }
            return sum
        }
        try checkFits(limits, family: family, name: name, grid: grid, dynamicLocal: dynamicLocal)
        var g = grid.global
        if let local = grid.local {
            for i in g.indices { g[i] = (g[i] + local[i] - 1) / local[i] * local[i] }
        }
        let profiling = activeRecorder
        var event: cl_event?
        let rc: cl_int = withUnsafeMutablePointer(to: &event) { ev in
            let wanted = profiling == nil ? nil : ev
            if var l = grid.local {
                return itune_clEnqueueNDRangeKernel(queue, k, cl_uint(g.count), nil, &g, &l, 0, nil, wanted)
            }
            return itune_clEnqueueNDRangeKernel(queue, k, cl_uint(g.count), nil, &g, nil, 0, nil, wanted)
        }
        try check(rc, "clEnqueueNDRangeKernel(\(name), global \(g), local \(grid.local.map { "\($0)" } ?? "auto"))")
        tally.launched(name)
        profiling?.enqueued(name, event: event)
        if Self.synchronous {
            try check(itune_clFinish(queue), "clFinish after \(name)")
            drained()
        }
    }

    /// `ITUNE_OPENCL_SYNC=1` waits after each kernel, so that a failing kernel is named.
    static let synchronous = ProcessInfo.processInfo.environment["ITUNE_OPENCL_SYNC"] == "1"

    /// A power of two ≤ `cap` and the device's maximum work-group size.
    public func reductionGroupSize(cap: Int = 256) -> Int {
        var s = 1
        while s * 2 <= min(cap, info.maxWorkGroupSize) { s *= 2 }
        return s
    }
}
