import Foundation
import XCTest
@testable import ITuneTensor

final class RuntimeTests: XCTestCase {
    func testDeviceParsingAcceptsTheDocumentedForms() throws {
        XCTAssertEqual(try Device(parsing: "cpu"), .cpu)
        XCTAssertEqual(try Device(parsing: "auto"), .auto)
        XCTAssertEqual(try Device(parsing: "opencl"), .opencl(platform: 0, device: 0))
        XCTAssertEqual(try Device(parsing: "opencl:1"), .opencl(platform: 1, device: 0))
        XCTAssertEqual(try Device(parsing: "opencl:1:2"), .opencl(platform: 1, device: 2))
        XCTAssertThrowsError(try Device(parsing: "cuda")) { e in
            XCTAssertTrue("\(e)".contains("cuda"), "\(e)")
        }
        XCTAssertThrowsError(try Device(parsing: "opencl:x"))
    }

    func testHalfAndBFloat16ConvertExactlyAndRoundToNearestEven() {
        for h: UInt16 in [0x0000, 0x8000, 0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0x7C00, 0xFC00] {
            XCTAssertEqual(floatToHalf(halfToFloat(h)), h, String(h, radix: 16))
        }
        XCTAssertEqual(halfToFloat(0x3C00), 1)
        XCTAssertEqual(halfToFloat(0x0001), Float(pow(2.0, -24.0)))
        XCTAssertEqual(floatToHalf(1 + Float(pow(2.0, -11.0))), 0x3C00, "a tie rounds to even")
        XCTAssertEqual(bfloat16ToFloat(0x3F80), 1)
        XCTAssertEqual(floatToBFloat16(1.00390625), 0x3F80, "a tie rounds to even")
        XCTAssertEqual(floatToBFloat16(-2.5), 0xC020)
        let t = try? Tensor(bits: [0x3C00, 0xC000], dtype: .f16, shape: [2])
        XCTAssertEqual(try t?.toArray(), [1, -2])
    }

    func testTensorsMoveBetweenDevicesUnchanged() throws {
        let cl = try TestDevices.requireOpenCL()
        let values = randomValues(1000, seed: 3)
        let a = try Tensor(values, shape: [10, 100])
        let b = try a.to(cl)
        XCTAssertEqual(b.device, cl)
        XCTAssertEqual(try b.toArray(), values)
        XCTAssertEqual(try b.to(.cpu).toArray(), values)
        let ids = try Tensor(indices: [3, -100, 7], shape: [3], on: cl)
        XCTAssertEqual(try ids.toIndices(), [3, -100, 7])
        XCTAssertThrowsError(try a + b) { e in XCTAssertTrue("\(e)".contains("different devices"), "\(e)") }
    }

    func testOpenCLErrorsNameTheCallAndTheCode() throws {
        let cl = try TestDevices.requireOpenCL()
        let backend = try cl.backend() as! OpenCLBackend
        XCTAssertThrowsError(try backend.launch("softmax", "no_such_kernel", .items(1), [])) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("clCreateKernel(no_such_kernel)"), text)
            XCTAssertTrue(text.contains("CL_INVALID_KERNEL_NAME"), text)
        }
    }

    func testOutOfMemorySaysHowMuchWasAskedAndWhatTheDeviceHas() throws {
        let cl = try TestDevices.requireOpenCL()
        let backend = try cl.backend() as! OpenCLBackend
        let tooMany = backend.info.maxAllocation / 4 + 1
        XCTAssertThrowsError(try Tensor.empty([tooMany], on: cl)) { e in
            guard case let TensorError.outOfMemory(_, requested, available) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(requested, tooMany * 4)
            XCTAssertLessThanOrEqual(available, backend.info.maxAllocation)
            XCTAssertTrue("\(e)".contains("asked for"), "\(e)")
        }
    }

    func testCompiledProgramsAreCachedOnDisk() throws {
        let cl = try TestDevices.requireOpenCL()
        let backend = try cl.backend() as! OpenCLBackend
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-cache-test-\(getpid())")
        setenv("ITUNE_CACHE_DIR", dir.path, 1)
        defer { unsetenv("ITUNE_CACHE_DIR"); try? FileManager.default.removeItem(at: dir) }
        let source = "__kernel void twice(__global float* x) { x[get_global_id(0)] *= 2.0f; } // \(getpid())"
        let (hits0, misses0) = (ProgramCache.hits, ProgramCache.misses)
        _ = try ProgramCache.build(source: source, family: "cachetest", options: OpenCLBackend.baseOptions, backend: backend)
        XCTAssertEqual(ProgramCache.misses, misses0 + 1, "the first build compiles")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("cachetest-") && $0.hasSuffix(".bin") }
        XCTAssertEqual(files.count, 1)
        _ = try ProgramCache.build(source: source, family: "cachetest", options: OpenCLBackend.baseOptions, backend: backend)
        XCTAssertEqual(ProgramCache.hits, hits0 + 1, "the second build loads the binary")
        XCTAssertEqual(ProgramCache.misses, misses0 + 1)
        // A different source is a different key.
        _ = try ProgramCache.build(source: source + " ", family: "cachetest", options: OpenCLBackend.baseOptions, backend: backend)
        XCTAssertEqual(ProgramCache.misses, misses0 + 2)
    }

    func testBuildFailuresCarryTheCompilerLog() throws {
        let cl = try TestDevices.requireOpenCL()
        let backend = try cl.backend() as! OpenCLBackend
        XCTAssertThrowsError(try ProgramCache.build(source: "__kernel void broken( { }", family: "broken",
                                                    options: OpenCLBackend.baseOptions, backend: backend)) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("broken.cl"), text)
            XCTAssertTrue(text.contains("CL_BUILD_PROGRAM_FAILURE"), text)
        }
    }

    func testBufferPoolReusesMemoryInTheSteadyState() throws {
        let cpu = CPUBackend.shared
        func step() throws { let a = try Tensor.zeros([123, 45]); _ = try (a + a).sum() }
        try step()
        let before = cpu.bytesInUse
        for _ in 0..<5 { try step() }
        XCTAssertEqual(cpu.bytesInUse, before, "repeating a step must not grow memory")
    }

    /// Runs the built `itune-gpu` with the ICD loader made unloadable: `auto` must fall back
    /// to the CPU path and say so.
    func testMissingOpenCLLoaderFallsBackToCPU() throws {
        let folders = [Bundle.main.bundleURL, Bundle.main.executableURL?.deletingLastPathComponent(),
                       Bundle(for: RuntimeTests.self).bundleURL.deletingLastPathComponent()].compactMap { $0 }
        guard let bin = folders.map({ $0.appendingPathComponent("itune-gpu") })
            .first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw XCTSkip("itune-gpu not built beside the tests")
        }
        let p = Process()
        p.executableURL = bin
        p.arguments = ["devices"]
        var env = ProcessInfo.processInfo.environment
        env["ITUNE_OPENCL_LIBRARY"] = "/nonexistent/libOpenCL.so.1"
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, out)
        XCTAssertTrue(out.contains("auto           cpu"), out)
        XCTAssertTrue(out.contains("/nonexistent/libOpenCL.so.1"), out)
    }
}
