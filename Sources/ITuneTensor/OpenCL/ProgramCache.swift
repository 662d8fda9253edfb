import COpenCL
import Foundation

/// Builds OpenCL programs, keeping the compiled binaries on disk keyed by device, driver,
/// options and source, so that a second start does not recompile.
///
/// The folder is `$ITUNE_CACHE_DIR`, else `$XDG_CACHE_HOME/itune-gpu/kernels`, else
/// `~/.cache/itune-gpu/kernels`. `ITUNE_NO_KERNEL_CACHE=1` turns it off.
public enum ProgramCache {
    public static var directory: URL {
        let env = ProcessInfo.processInfo.environment
        if let d = env["ITUNE_CACHE_DIR"], !d.isEmpty { return URL(fileURLWithPath: d) }
        let base = env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("itune-gpu/kernels")
    }

    /// Counts of programs served from disk and compiled from source in this process.
    nonisolated(unsafe) public private(set) static var hits = 0
    nonisolated(unsafe) public private(set) static var misses = 0

    static func key(source: String, options: String, backend: OpenCLBackend) -> String {
        let text = [backend.info.name, backend.info.vendor, backend.info.driverVersion, backend.info.version,
                    backend.platformName, options, source].joined(separator: "\u{1}")
        return String(fnv1a64(text), radix: 16)
    }

    static func build(source: String, family: String, options: String, backend: OpenCLBackend) throws -> cl_program {
        let enabled = ProcessInfo.processInfo.environment["ITUNE_NO_KERNEL_CACHE"] != "1"
        let file = directory.appendingPathComponent("\(family)-\(key(source: source, options: options, backend: backend)).bin")
        var dev: cl_device_id? = backend.deviceID
        if enabled, let data = try? Data(contentsOf: file), !data.isEmpty {
            var rc: cl_int = 0, status: cl_int = 0
            let program: cl_program? = data.withUnsafeBytes { raw in
                var ptr: UnsafePointer<UInt8>? = raw.bindMemory(to: UInt8.self).baseAddress
                var len = data.count
                return itune_clCreateProgramWithBinary(backend.context, 1, &dev, &len, &ptr, &status, &rc)
            }
            if rc == CL_SUCCESS, status == CL_SUCCESS, let program,
               itune_clBuildProgram(program, 1, &dev, options, nil, nil) == CL_SUCCESS {
                hits += 1
                return program
            }
            if let program { _ = itune_clReleaseProgram(program) }
        }
        var rc: cl_int = 0
        let program: cl_program? = source.withCString { s in
            var p: UnsafePointer<CChar>? = s
            var len = strlen(s)
            return itune_clCreateProgramWithSource(backend.context, 1, &p, &len, &rc)
        }
        try check(rc, "clCreateProgramWithSource(\(family).cl)")
        let brc = itune_clBuildProgram(program, 1, &dev, options, nil, nil)
        if brc != CL_SUCCESS {
            var size = 0
            _ = itune_clGetProgramBuildInfo(program, backend.deviceID, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size)
            var log = [CChar](repeating: 0, count: size + 1)
            _ = itune_clGetProgramBuildInfo(program, backend.deviceID, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &log, nil)
            _ = itune_clReleaseProgram(program)
            throw TensorError.buildFailed(family: family, device: backend.name,
                                          log: "\(openCLErrorName(brc)): " + String(cString: log))
        }
        misses += 1
        if enabled, let binary = programBinary(program!) { save(binary, to: file) }
        return program!
    }

    static func programBinary(_ program: cl_program) -> Data? {
        var size = 0
        guard itune_clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil) == CL_SUCCESS,
              size > 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: size)
        let ok = bytes.withUnsafeMutableBufferPointer { buf -> Bool in
            var ptr: UnsafeMutablePointer<UInt8>? = buf.baseAddress
            return itune_clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARIES),
                                          MemoryLayout<UnsafeMutablePointer<UInt8>>.size, &ptr, nil) == CL_SUCCESS
        }
        return ok ? Data(bytes) : nil
    }

    /// Written to a temporary name and renamed, so a concurrent or interrupted writer never
    /// leaves a half file.
    static func save(_ data: Data, to file: URL) {
        let fm = FileManager.default
        try? fm.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        let tmp = file.appendingPathExtension("tmp-\(getpid())")
        do {
            try data.write(to: tmp)
            _ = try? fm.removeItem(at: file)
            try fm.moveItem(at: tmp, to: file)
        } catch {
            try? fm.removeItem(at: tmp)
        }
    }
}

/// FNV-1a, 64-bit: a stable hash for cache keys (Swift's `Hasher` is seeded per process).
public func fnv1a64(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}
