import COpenCL
import Foundation

// What a typed kernel function (OpenCL/Kernels/*.swift) hands to `OpenCLBackend.launch`: the
// grid it runs over and its arguments, one per parameter of the `.cl` signature.

/// The NDRange of one launch and the compile-time constants that come from the shapes
/// (`HEAD_DIM`); tunable constants come from the backend's `KernelTuning` instead.
struct KernelGrid {
    /// Work-items per dimension; rounded up to a multiple of `local` where that is given.
    var global: [Int]
    /// The work-group size, or nil to let the driver choose.
    var local: [Int]?
    /// `-D` constants of this launch's program beyond the tuned ones.
    var constants: [String: Int] = [:]

    init(global: [Int], local: [Int]? = nil, constants: [String: Int] = [:]) {
        self.global = global
        self.local = local
        self.constants = constants
    }

    /// `n` work-items, one dimension.
    static func items(_ n: Int, groupSize: Int? = nil) -> KernelGrid {
        KernelGrid(global: [n], local: groupSize.map { [$0] })
    }

    /// One work-group of `groupSize` work-items per row, `rows` rows.
    static func rows(_ rows: Int, groupSize: Int) -> KernelGrid {
        KernelGrid(global: [rows * groupSize], local: [groupSize])
    }
}

/// `__local` memory of a kernel parameter, sized per launch.
struct LocalMemory {
    let bytes: Int
    /// Room for `n` floats (`__local float*`).
    static func floats(_ n: Int) -> LocalMemory { LocalMemory(bytes: n * 4) }
    /// Room for `n` float2 values (`__local float2*`).
    static func float2s(_ n: Int) -> LocalMemory { LocalMemory(bytes: n * 8) }
}

/// One argument of a launch, in the kinds an OpenCL C parameter can have here.
enum KernelArgument {
    /// A `__global T*` parameter: the tensor's device buffer.
    case buffer(Tensor)
    /// An `int` parameter.
    case int(Int)
    /// An `int` parameter used as a flag (1 or 0).
    case bool(Bool)
    /// A `uint` parameter.
    case uint(UInt32)
    /// A `float` parameter.
    case float(Float)
    /// A `__local T*` parameter.
    case local(LocalMemory)

    /// Sets this argument as parameter `index` of `k`. An `int` that does not fit 32 bits is an
    /// error that names the kernel, not a trap.
    func set(on k: cl_kernel, index: Int, kernel name: String) throws {
        let rc: cl_int
        switch self {
        case let .buffer(t):
            var m: cl_mem? = t.storage.mem
            rc = itune_clSetKernelArg(k, cl_uint(index), MemoryLayout<cl_mem>.size, &m)
        case let .int(v):
            guard var x = Int32(exactly: v) else {
                throw TensorError.invalidArgument(op: name, "argument \(index) = \(v) does not fit a 32-bit OpenCL int")
            }
            rc = itune_clSetKernelArg(k, cl_uint(index), 4, &x)
        case let .bool(v):
            var x: Int32 = v ? 1 : 0
            rc = itune_clSetKernelArg(k, cl_uint(index), 4, &x)
        case let .uint(v):
            var x = v
            rc = itune_clSetKernelArg(k, cl_uint(index), 4, &x)
        case let .float(v):
            var x = v
            rc = itune_clSetKernelArg(k, cl_uint(index), 4, &x)
        case let .local(memory):
            rc = itune_clSetKernelArg(k, cl_uint(index), max(memory.bytes, 4), nil)
        }
        try check(rc, "clSetKernelArg(\(name), \(index))")
    }
}
