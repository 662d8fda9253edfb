import Foundation
import XCTest
@testable import ITuneTensor

final class KernelTuningTests: XCTestCase {
    let pocl = KernelTuning.DeviceKey(platform: "Portable Computing Language", device: "pthread-haswell-AMD EPYC",
                                      driver: "3.1+debian")

    func testTunableDefaultsComeFromTheKernelSources() throws {
        let shared = ["REDUCE_GROUP_MAX": 256, "REDUCE_GROUP_SHORT": 64, "ELEMENTWISE_GROUP": 64]
        XCTAssertEqual(try KernelTuning.defaults(family: "gemm"), shared.merging(["TS": 16]) { a, _ in a })
        XCTAssertEqual(try KernelTuning.defaults(family: "attention"),
                       shared.merging(["BLOCK_Q": 32, "BLOCK_K": 32]) { a, _ in a })
        XCTAssertNil(try KernelTuning.defaults(family: "attention")["HEAD_DIM"], "a shape, not a tunable")
        XCTAssertEqual(try KernelTuning.defaults(family: "softmax"), shared)
    }

    func testLookupIsCacheThenTableThenDefaultsAndTheMostSpecificEntryWins() {
        let table = [
            KernelTuning.Entry(platform: "portable computing", values: ["TS": 16, "BLOCK_K": 16]),
            KernelTuning.Entry(platform: "Portable Computing Language", device: "haswell", values: ["TS": 8]),
            KernelTuning.Entry(device: "Radeon", values: ["TS": 32]),
        ]
        let cache = [KernelTuning.Entry(device: "pthread-haswell-AMD EPYC", driver: "3.1", values: ["BLOCK_K": 64])]

        let both = KernelTuning.resolve(for: pocl, cache: cache, table: table)
        XCTAssertEqual(both.values, ["TS": 8, "BLOCK_K": 64])
        XCTAssertEqual(both.origins["BLOCK_K"]?.hasPrefix("cache"), true)
        XCTAssertEqual(both.origins["TS"]?.hasPrefix("table"), true)

        let tableOnly = KernelTuning.resolve(for: pocl, cache: [], table: table)
        XCTAssertEqual(tableOnly.values, ["TS": 8], "only the best entry of a file counts")

        let radeon = KernelTuning.DeviceKey(platform: "AMD Accelerated Parallel Processing", device: "gfx1100 Radeon RX",
                                            driver: "3590.0")
        XCTAssertEqual(KernelTuning.resolve(for: radeon, cache: cache, table: table).values, ["TS": 32])
        let unknown = KernelTuning.DeviceKey(platform: "NVIDIA CUDA", device: "H200", driver: "560")
        XCTAssertEqual(KernelTuning.resolve(for: unknown, cache: cache, table: table), KernelTuning(), "defaults")
    }

    func testRepositoryTableDecodesAndSetsOnlyDeclaredTunables() throws {
        let table = try XCTUnwrap(try KernelTuning.repositoryTable(), "Kernels/tuning.json is not found")
        XCTAssertFalse(table.entries.isEmpty)
        var declared = Set<String>()
        for family in try RepositoryPaths.clSources().keys { declared.formUnion(try KernelTuning.defaults(family: family).keys) }
        for entry in table.entries {
            XCTAssertEqual(Set(entry.values.keys).subtracting(declared).sorted(), [], "tunables no .cl declares: \(entry)")
            XCTAssertNotNil(entry.note, "say why the values: \(entry)")
        }
        XCTAssertNotNil(KernelTuning.bestEntry(in: table.entries, for: pocl), "the table has a PoCL row")
    }

    func testTheCacheFileIsReadFirstAndABrokenOneIsSkipped() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-tuning-test-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        setenv("ITUNE_CACHE_DIR", dir.path, 1)
        defer { unsetenv("ITUNE_CACHE_DIR"); try? FileManager.default.removeItem(at: dir) }
        let table = KernelTuning.Table(entries: [KernelTuning.Entry(device: "pthread-haswell", values: ["TS": 4],
                                                                    note: "tuned here")])
        try JSONEncoder().encode(table).write(to: KernelTuning.cacheFile)
        let tuned = KernelTuning.resolve(for: pocl)
        XCTAssertEqual(tuned.values["TS"], 4)
        XCTAssertEqual(tuned.origins["TS"]?.hasPrefix("cache"), true)
        XCTAssertEqual(tuned.problems, [])

        try Data("{\"entries\": [{\"values\": 3}]}".utf8).write(to: KernelTuning.cacheFile)
        let broken = KernelTuning.resolve(for: pocl)
        XCTAssertNil(broken.origins["TS"].flatMap { $0.hasPrefix("cache") ? $0 : nil })
        XCTAssertEqual(broken.problems.count, 1)
        XCTAssertTrue(broken.problems[0].contains(KernelTuning.cacheFile.path), "\(broken.problems)")
    }

    func testATuningEntryChangesTheDefinesTheKernelsAreBuiltWith() throws {
        let device = try TestDevices.requireOpenCL()
        let cl = try device.backend() as! OpenCLBackend
        let (savedTuning, savedGemm) = (cl.tuning, cl.gemmImplementation)
        defer { cl.tuning = savedTuning; cl.gemmImplementation = savedGemm }
        cl.gemmImplementation = .own
        // GEMM_WPTM 3 does not divide GEMM_TSM 64: gemm_blocked does not fit, matmul takes gemm.cl.
        cl.tuning = KernelTuning(values: ["TS": 8, "BLOCK_K": 8, "REDUCE_GROUP_SHORT": 16, "GEMM_DIRECT": 0, "GEMM_WPTM": 3])
        XCTAssertEqual(try cl.tunedDefines("gemm")["TS"], 8)
        XCTAssertNil(try cl.gemmBlockedTile())
        XCTAssertEqual(try cl.rowGroupSize(long: false, kernel: "softmax_forward", family: "softmax"), 16)

        try compareBackends([[69, 37], [37, 71]], rtol: 1e-4, atol: 1e-5) { try $0[0].matmul($0[1]) }
        func built(_ family: String, with define: String) -> Bool {
            cl.compiledOptions(family: family).contains { $0.split(separator: " ").contains(Substring(define)) }
        }
        XCTAssertTrue(built("gemm", with: "-DTS=8"), "\(cl.compiledOptions(family: "gemm"))")
        try compareBackends([[1, 21, 2, 8], [1, 21, 1, 8], [1, 21, 1, 8]], rtol: 1e-4, atol: 1e-5) {
            try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2])
        }
        XCTAssertTrue(built("attention", with: "-DBLOCK_K=8"), "\(cl.compiledOptions(family: "attention"))")
        try compareBackends([[5, 40]], rtol: 1e-5, atol: 1e-6) { try $0[0].softmax() }
        XCTAssertTrue(built("softmax", with: "-DREDUCE_GROUP_SHORT=16"), "\(cl.compiledOptions(family: "softmax"))")
    }

    func testOwnGemmIsChosenPerDeviceFromTheEnvironmentAtFirst() {
        setenv("ITUNE_OWN_GEMM", "1", 1)
        XCTAssertEqual(GemmImplementation.fromEnvironment, .own)
        unsetenv("ITUNE_OWN_GEMM")
        XCTAssertEqual(GemmImplementation.fromEnvironment, .clblast)
    }
}
