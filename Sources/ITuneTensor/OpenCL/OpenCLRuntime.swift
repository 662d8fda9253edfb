import COpenCL
import Foundation

/// One OpenCL device as `itune-gpu devices` shows it.
public struct OpenCLDeviceInfo: Sendable {
    public let index: Int
    public let name: String
    public let vendor: String
    public let version: String
    public let driverVersion: String
    public let typeName: String
    public let isGPUOrAccelerator: Bool
    public let computeUnits: Int
    public let globalMemory: Int
    public let maxAllocation: Int
    public let localMemory: Int
    public let maxWorkGroupSize: Int
    /// CL_DEVICE_MAX_WORK_ITEM_SIZES: the most work-items of a group per dimension.
    public let maxWorkItemSizes: [Int]
    public let supportsFP16: Bool
    /// cl_khr_subgroups or a vendor's subgroup extension (Intel's) is advertised.
    public let supportsSubgroups: Bool
}

public struct OpenCLPlatformInfo: Sendable {
    public let index: Int
    public let name: String
    public let vendor: String
    public let version: String
    public let devices: [OpenCLDeviceInfo]
}

/// Discovery of OpenCL platforms and devices through the run-time loaded ICD loader.
public enum OpenCLRuntime {
    /// Loads libOpenCL.so.1; throws with the loader's reason when it is missing.
    public static func load() throws {
        var buf = [CChar](repeating: 0, count: 512)
        if itune_opencl_load(&buf, buf.count) == 0 {
            throw TensorError.unavailable(String(cString: buf))
        }
    }

    public struct Listing: Sendable {
        public var platforms: [OpenCLPlatformInfo] = []
        /// Why OpenCL is not usable at all (no loader, no platform), if so.
        public var error: String?
    }

    /// Every platform and device; never throws: failures land in `error`.
    public static func listDevices() -> Listing {
        var listing = Listing()
        do {
            try load()
            let ids = try platformIDs()
            for (pi, pid) in ids.enumerated() {
                let devices = (try? deviceIDs(pid)) ?? []
                let infos = devices.enumerated().map { di, did in deviceInfo(did, index: di) }
                listing.platforms.append(OpenCLPlatformInfo(
                    index: pi, name: platformString(pid, CL_PLATFORM_NAME),
                    vendor: platformString(pid, CL_PLATFORM_VENDOR),
                    version: platformString(pid, CL_PLATFORM_VERSION), devices: infos))
            }
            if ids.isEmpty { listing.error = "the OpenCL loader found no platform" }
        } catch {
            listing.error = "\(error)"
        }
        return listing
    }

    static func platformIDs() throws -> [cl_platform_id?] {
        var n: cl_uint = 0
        let rc = itune_clGetPlatformIDs(0, nil, &n)
        if rc == -1001 || n == 0 { return [] }  // CL_PLATFORM_NOT_FOUND_KHR
        try check(rc, "clGetPlatformIDs")
        var ids = [cl_platform_id?](repeating: nil, count: Int(n))
        try check(itune_clGetPlatformIDs(n, &ids, nil), "clGetPlatformIDs")
        return ids
    }

    static func deviceIDs(_ platform: cl_platform_id?) throws -> [cl_device_id?] {
        var n: cl_uint = 0
        let rc = itune_clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n)
        if rc == CL_DEVICE_NOT_FOUND || n == 0 { return [] }
        try check(rc, "clGetDeviceIDs")
        var ids = [cl_device_id?](repeating: nil, count: Int(n))
        try check(itune_clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), n, &ids, nil), "clGetDeviceIDs")
        return ids
    }

    static func platformString(_ p: cl_platform_id?, _ param: Int32) -> String {
        var size = 0
        guard itune_clGetPlatformInfo(p, cl_platform_info(param), 0, nil, &size) == CL_SUCCESS, size > 0 else { return "" }
        var buf = [CChar](repeating: 0, count: size + 1)
        _ = itune_clGetPlatformInfo(p, cl_platform_info(param), size, &buf, nil)
        return String(cString: buf).trimmingCharacters(in: .whitespaces)
    }

    static func deviceString(_ d: cl_device_id?, _ param: Int32) -> String {
        var size = 0
        guard itune_clGetDeviceInfo(d, cl_device_info(param), 0, nil, &size) == CL_SUCCESS, size > 0 else { return "" }
        var buf = [CChar](repeating: 0, count: size + 1)
        _ = itune_clGetDeviceInfo(d, cl_device_info(param), size, &buf, nil)
        return String(cString: buf).trimmingCharacters(in: .whitespaces)
    }

    static func deviceValue<T: FixedWidthInteger>(_ d: cl_device_id?, _ param: Int32, _: T.Type) -> T {
        var v: T = 0
        _ = itune_clGetDeviceInfo(d, cl_device_info(param), MemoryLayout<T>.size, &v, nil)
        return v
    }

    static func deviceInfo(_ d: cl_device_id?, index: Int) -> OpenCLDeviceInfo {
        let type = deviceValue(d, CL_DEVICE_TYPE, cl_device_type.self)
        var typeNames: [String] = []
        if type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 { typeNames.append("GPU") }
        if type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 { typeNames.append("CPU") }
        if type & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 { typeNames.append("accelerator") }
        if typeNames.isEmpty { typeNames.append("other") }
        let ext = deviceString(d, CL_DEVICE_EXTENSIONS)
        return OpenCLDeviceInfo(
            index: index, name: deviceString(d, CL_DEVICE_NAME), vendor: deviceString(d, CL_DEVICE_VENDOR),
            version: deviceString(d, CL_DEVICE_VERSION), driverVersion: deviceString(d, CL_DRIVER_VERSION),
            typeName: typeNames.joined(separator: "+"),
            isGPUOrAccelerator: type & cl_device_type(CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR) != 0,
            computeUnits: Int(deviceValue(d, CL_DEVICE_MAX_COMPUTE_UNITS, cl_uint.self)),
            globalMemory: Int(deviceValue(d, CL_DEVICE_GLOBAL_MEM_SIZE, cl_ulong.self)),
            maxAllocation: Int(deviceValue(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, cl_ulong.self)),
            localMemory: Int(deviceValue(d, CL_DEVICE_LOCAL_MEM_SIZE, cl_ulong.self)),
            maxWorkGroupSize: Int(deviceValue(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, Int.self)),
            maxWorkItemSizes: workItemSizes(d),
            supportsFP16: ext.contains("cl_khr_fp16"),
            supportsSubgroups: ext.contains("cl_khr_subgroups") || ext.contains("cl_intel_subgroups"))
    }

    static func workItemSizes(_ d: cl_device_id?) -> [Int] {
        let dims = Int(deviceValue(d, CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS, cl_uint.self))
        guard dims > 0, dims <= 16 else { return [] }
        var sizes = [Int](repeating: 0, count: dims)
        let rc = sizes.withUnsafeMutableBytes { raw in
            itune_clGetDeviceInfo(d, cl_device_info(CL_DEVICE_MAX_WORK_ITEM_SIZES), raw.count, raw.baseAddress, nil)
        }
        return rc == CL_SUCCESS ? sizes : []
    }
}

/// Throws `TensorError.openCL` naming the call unless `code` is CL_SUCCESS.
@inline(__always)
func check(_ code: cl_int, _ call: @autoclosure () -> String) throws {
    if code != CL_SUCCESS { throw TensorError.openCL(call: call(), code: code) }
}
