import COpenCL
import Foundation

// Kernels that fit the device. A work-group must respect three limits: the device's maximum
// (CL_DEVICE_MAX_WORK_GROUP_SIZE, CL_DEVICE_MAX_WORK_ITEM_SIZES), the kernel's own on that
// device (CL_KERNEL_WORK_GROUP_SIZE: register pressure puts it below the device's on real GPUs)
// and local memory (the kernel's static `__local` arrays plus the `__local` arguments). Sizes
// that are `-D` constants (gemm's TS, attention's BLOCK_Q) are lowered before the program that
// launches is built; every launch is checked, and one that would not fit is an error naming
// the device, the kernel and the limit instead of the driver's CL_INVALID_WORK_GROUP_SIZE.

/// What one compiled kernel may use on its device (clGetKernelWorkGroupInfo).
public struct KernelLimits: Sendable, Equatable {
    /// CL_KERNEL_WORK_GROUP_SIZE: the most work-items a group of this kernel may have here.
    public var workGroupSize: Int
    /// CL_KERNEL_LOCAL_MEM_SIZE: bytes of local memory the kernel's static arrays take.
    public var localMemory: Int
    /// CL_KERNEL_PRIVATE_MEM_SIZE: bytes of private memory per work-item.
    public var privateMemory: Int
    /// CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE.
    public var preferredMultiple: Int
}

extension OpenCLBackend {
    /// The limits of the compiled kernel `k` on this device.
    func limits(of k: cl_kernel, name: String) throws -> KernelLimits {
        let dev: cl_device_id? = deviceID
        func value<T: FixedWidthInteger>(_ param: Int32, _: T.Type) throws -> Int {
            var v: T = 0
            try check(itune_clGetKernelWorkGroupInfo(k, dev, cl_kernel_work_group_info(param), MemoryLayout<T>.size, &v, nil),
                      "clGetKernelWorkGroupInfo(\(name))")
            return Int(v)
        }
        return KernelLimits(workGroupSize: try value(CL_KERNEL_WORK_GROUP_SIZE, Int.self),
                            localMemory: try value(CL_KERNEL_LOCAL_MEM_SIZE, cl_ulong.self),
                            privateMemory: try value(CL_KERNEL_PRIVATE_MEM_SIZE, cl_ulong.self),
                            preferredMultiple: try value(CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE, Int.self))
    }

    /// The limits of `family/name` built with `constants` (and the tuned values), cached.
    public func kernelLimits(_ family: String, _ name: String, constants: [String: Int] = [:]) throws -> KernelLimits {
        try compiledKernel(family, name, constants: constants).limits
    }

    /// The largest of `start`, `start/2`, … (down to 1) whose group of `items(v)` work-items
    /// fits the device and `family/name` built with `constants(v)`, whose local memory
    /// (static arrays plus `dynamicLocal(v)` bytes) fits the device. Candidates over the
    /// device's maximum are skipped without building; the kernel's own limit needs a build.
    /// Throws, naming device, kernel and limits, when not even 1 fits.
    func fittedSize(_ family: String, _ name: String, start: Int, items: (Int) -> Int,
                    constants: (Int) -> [String: Int], dynamicLocal: (Int) -> Int = { _ in 0 }) throws -> Int {
        let key = "\(family)/\(name)|\(start)|\(constants(start).sorted { $0.key < $1.key })"
        if let v = fitState.withLock({ $0.fitted[key] }) { return v }
        var v = max(1, start)
        var last: KernelLimits?
        while true {
            if items(v) <= info.maxWorkGroupSize {
                let l = try kernelLimits(family, name, constants: constants(v))
                last = l
                if items(v) <= l.workGroupSize, l.localMemory + dynamicLocal(v) <= info.localMemory { break }
            }
            guard v > 1 else {
                throw TensorError.invalidArgument(op: "\(family).cl \(name) on \(self.name)",
                    "no work-group size fits: device maximum \(info.maxWorkGroupSize), kernel maximum \(last.map { "\($0.workGroupSize)" } ?? "?"), local memory \(info.localMemory) bytes")
            }
            v /= 2
        }
        fitState.withLock { $0.fitted[key] = v }
        return v
    }

    /// Checks a launch against the device's and the kernel's limits before it is enqueued.
    func checkFits(_ l: KernelLimits, family: String, name: String, grid: KernelGrid, dynamicLocal: Int) throws {
        guard let local = grid.local else { return }
        let items = local.reduce(1, *)
        func refuse(_ what: String) -> TensorError {
            .invalidArgument(op: "launching \(family).cl \(name) on \(self.name)", what)
        }
        if items > info.maxWorkGroupSize {
            throw refuse("a work-group of \(local) = \(items) work-items exceeds the device maximum \(info.maxWorkGroupSize)")
        }
        if items > l.workGroupSize {
            throw refuse("a work-group of \(local) = \(items) work-items exceeds this kernel's CL_KERNEL_WORK_GROUP_SIZE \(l.workGroupSize) on this device")
        }
        for (i, n) in local.enumerated() where i < info.maxWorkItemSizes.count && n > info.maxWorkItemSizes[i] {
            throw refuse("work-group dimension \(i) = \(n) exceeds the device's CL_DEVICE_MAX_WORK_ITEM_SIZES \(info.maxWorkItemSizes)")
        }
        if l.localMemory + dynamicLocal > info.localMemory {
            throw refuse("local memory \(l.localMemory) (static) + \(dynamicLocal) (arguments) bytes exceeds the device's \(info.localMemory)")
        }
    }

    /// The kernels' limits seen so far in this process, `family/name|constants` → limits, for
    /// `devices --check`.
    public var kernelLimitsSeen: [String: KernelLimits] { fitState.withLock { $0.limits } }

    /// Why CLBlast was given up on this device (its first refused call), if it was.
    public var clblastRefusal: String? { fitState.withLock { $0.clblastRefusal } }

    /// Records CLBlast's refusal and switches this device's matmuls to the own kernel; prints
    /// one message per device.
    func giveUpCLBlast(_ error: Error) {
        let first = fitState.withLock { state -> Bool in
            guard state.clblastRefusal == nil else { return false }
            state.clblastRefusal = "\(error)"
            return true
        }
        gemmImplementation = .own
        if first {
            FileHandle.standardError.write(Data("itune-gpu: CLBlast refused a GEMM on \(name) (\(error)); this device's matmuls use the built-in kernel (Kernels/gemm.cl) from now on\n".utf8))
        }
    }
}

/// The mutable state behind `KernelLimits` look-ups and fitted sizes of one backend.
struct KernelFitState {
    var limits: [String: KernelLimits] = [:]
    var fitted: [String: Int] = [:]
    var clblastRefusal: String?
}

/// A value behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
