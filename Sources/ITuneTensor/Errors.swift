/// Errors of the tensor runtime. Every case names what was asked and what is there.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    case shapeMismatch(op: String, String)
    case deviceMismatch(op: String, Device, Device)
    case dtypeMismatch(op: String, expected: DType, got: DType)
    case invalidArgument(op: String, String)
    case outOfMemory(device: String, requested: Int, available: Int)
    case openCL(call: String, code: Int32)
    case clblast(call: String, code: Int32)
    case buildFailed(family: String, device: String, log: String)
    case unavailable(String)
    case noGradient(String)

    public var description: String {
        switch self {
        case let .shapeMismatch(op, msg): return "\(op): shape mismatch: \(msg)"
        case let .deviceMismatch(op, a, b): return "\(op): tensors on different devices (\(a) and \(b))"
        case let .dtypeMismatch(op, e, g): return "\(op): expected dtype \(e.rawValue), got \(g.rawValue)"
        case let .invalidArgument(op, msg): return "\(op): \(msg)"
        case let .outOfMemory(device, requested, available):
            return "out of memory on \(device): asked for \(formatBytes(requested)), the device has \(formatBytes(available)) left"
        case let .openCL(call, code): return "\(call) failed: \(openCLErrorName(code)) (\(code))"
        case let .clblast(call, code): return "\(call) failed: \(clblastStatusName(code)) (\(code))"
        case let .buildFailed(family, device, log):
            return "building OpenCL kernels \(family).cl for \(device) failed:\n\(log)"
        case let .unavailable(msg): return msg
        case let .noGradient(msg): return msg
        }
    }
}

public func formatBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n), i = 0
    while v >= 1024, i < units.count - 1 { v /= 1024; i += 1 }
    return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
}

/// The name of an OpenCL error code, as the headers spell it.
public func openCLErrorName(_ code: Int32) -> String {
    let names: [Int32: String] = [
        0: "CL_SUCCESS", -1: "CL_DEVICE_NOT_FOUND", -2: "CL_DEVICE_NOT_AVAILABLE",
        -3: "CL_COMPILER_NOT_AVAILABLE", -4: "CL_MEM_OBJECT_ALLOCATION_FAILURE",
        -5: "CL_OUT_OF_RESOURCES", -6: "CL_OUT_OF_HOST_MEMORY", -7: "CL_PROFILING_INFO_NOT_AVAILABLE",
        -8: "CL_MEM_COPY_OVERLAP", -9: "CL_IMAGE_FORMAT_MISMATCH", -10: "CL_IMAGE_FORMAT_NOT_SUPPORTED",
        -11: "CL_BUILD_PROGRAM_FAILURE", -12: "CL_MAP_FAILURE", -13: "CL_MISALIGNED_SUB_BUFFER_OFFSET",
        -14: "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST", -15: "CL_COMPILE_PROGRAM_FAILURE",
        -16: "CL_LINKER_NOT_AVAILABLE", -17: "CL_LINK_PROGRAM_FAILURE", -18: "CL_DEVICE_PARTITION_FAILED",
        -19: "CL_KERNEL_ARG_INFO_NOT_AVAILABLE", -30: "CL_INVALID_VALUE", -31: "CL_INVALID_DEVICE_TYPE",
        -32: "CL_INVALID_PLATFORM", -33: "CL_INVALID_DEVICE", -34: "CL_INVALID_CONTEXT",
        -35: "CL_INVALID_QUEUE_PROPERTIES", -36: "CL_INVALID_COMMAND_QUEUE", -37: "CL_INVALID_HOST_PTR",
        -38: "CL_INVALID_MEM_OBJECT", -39: "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR", -40: "CL_INVALID_IMAGE_SIZE",
        -41: "CL_INVALID_SAMPLER", -42: "CL_INVALID_BINARY", -43: "CL_INVALID_BUILD_OPTIONS",
        -44: "CL_INVALID_PROGRAM", -45: "CL_INVALID_PROGRAM_EXECUTABLE", -46: "CL_INVALID_KERNEL_NAME",
        -47: "CL_INVALID_KERNEL_DEFINITION", -48: "CL_INVALID_KERNEL", -49: "CL_INVALID_ARG_INDEX",
        -50: "CL_INVALID_ARG_VALUE", -51: "CL_INVALID_ARG_SIZE", -52: "CL_INVALID_KERNEL_ARGS",
        -53: "CL_INVALID_WORK_DIMENSION", -54: "CL_INVALID_WORK_GROUP_SIZE", -55: "CL_INVALID_WORK_ITEM_SIZE",
        -56: "CL_INVALID_GLOBAL_OFFSET", -57: "CL_INVALID_EVENT_WAIT_LIST", -58: "CL_INVALID_EVENT",
        -59: "CL_INVALID_OPERATION", -60: "CL_INVALID_GL_OBJECT", -61: "CL_INVALID_BUFFER_SIZE",
        -62: "CL_INVALID_MIP_LEVEL", -63: "CL_INVALID_GLOBAL_WORK_SIZE", -64: "CL_INVALID_PROPERTY",
        -65: "CL_INVALID_IMAGE_DESCRIPTOR", -66: "CL_INVALID_COMPILER_OPTIONS", -67: "CL_INVALID_LINKER_OPTIONS",
        -68: "CL_INVALID_DEVICE_PARTITION_COUNT", -1001: "CL_PLATFORM_NOT_FOUND_KHR",
    ]
    return names[code] ?? "unknown OpenCL error"
}

/// The name of a CLBlast status code (CLBlast reuses OpenCL's codes and adds its own).
public func clblastStatusName(_ code: Int32) -> String {
    let names: [Int32: String] = [
        -1024: "CLBlastNotImplemented", -1022: "CLBlastInvalidMatrixA", -1021: "CLBlastInvalidMatrixB",
        -1020: "CLBlastInvalidMatrixC", -1019: "CLBlastInvalidVectorX", -1018: "CLBlastInvalidVectorY",
        -1017: "CLBlastInvalidDimension", -1016: "CLBlastInvalidLeadDimA", -1015: "CLBlastInvalidLeadDimB",
        -1014: "CLBlastInvalidLeadDimC", -1013: "CLBlastInvalidIncrementX", -1012: "CLBlastInvalidIncrementY",
        -1011: "CLBlastInsufficientMemoryA", -1010: "CLBlastInsufficientMemoryB",
        -1009: "CLBlastInsufficientMemoryC", -1008: "CLBlastInsufficientMemoryX",
        -1007: "CLBlastInsufficientMemoryY", -1006: "CLBlastInsufficientMemoryTemp",
        -1005: "CLBlastInvalidBatchCount", -1004: "CLBlastInvalidOverrideKernel",
        -1003: "CLBlastMissingOverrideParameter", -1002: "CLBlastInvalidLocalMemUsage",
        -1001: "CLBlastNoHalfPrecision", -1000: "CLBlastNoDoublePrecision",
        -999: "CLBlastInvalidVectorScalar", -998: "CLBlastInsufficientMemoryScalar",
        -997: "CLBlastDatabaseError", -996: "CLBlastUnknownError", -995: "CLBlastUnexpectedError",
        -2048: "CLBlastKernelLaunchError", -2049: "CLBlastKernelRunError",
    ]
    return names[code] ?? openCLErrorName(code)
}
