import XCTest
@testable import ITuneTensor

/// `startProfiling()` … `stopProfiling()`: one row per kernel (per op on the CPU path) whose
/// launches are exactly what the device counters count over the same window, with times that
/// are not negative and add up to no more than the window's wall time.
final class ProfilerTests: XCTestCase {
    /// A little of everything a step launches: GEMMs, elementwise kernels, a reduction, a fill,
    /// a copy, an upload between kernels and a read at the end.
    func work(on device: Device) throws {
        let a = try Tensor(randomValues(64 * 48, seed: 1), shape: [64, 48], on: device, requiresGrad: true)
        let b = try Tensor(randomValues(48 * 32, seed: 2), shape: [48, 32], on: device)
        for k in 0..<3 {
            let y = try a.matmul(b).scaled(by: Float(k + 1))
            let loss = try (y * y).sum()
            try loss.backward()
            let extra = try Tensor(randomValues(32, seed: UInt64(k)), shape: [32], on: device)
            try a.backend.copy(from: extra.storage, to: y.storage, byteCount: 128)
            _ = try Tensor.full([100], 1, on: device)
        }
        _ = try a.grad!.sumOfSquares()
    }

    func assertProfileMatchesCounters(on device: Device, file: StaticString = #filePath, line: UInt = #line) throws {
        let backend = try device.backend()
        try work(on: device)  // kernels built, pools filled
        try backend.synchronize()
        let t0 = Date()
        try backend.startProfiling()
        let before = backend.counters
        try work(on: device)
        let counted = backend.counters.since(before)
        let profile = try XCTUnwrap(try backend.stopProfiling(), file: file, line: line)
        let wall = Date().timeIntervalSince(t0)
        // The CPU profile has a row per product shape ("matmul nn 64×32×48"): the counters' op
        // is the name's first word.
        let folded = Dictionary(profile.launches.map { (String($0.key.split(separator: " ").first ?? ""), $0.value) },
                                uniquingKeysWith: +)
        XCTAssertEqual(folded, counted.launches, "\(device): the profile's launches are the counters'", file: file, line: line)
        if device == .cpu {
            // a (64,48) · b (48,32) forward, and dA = dY · bᵀ backward, three times each.
            XCTAssertEqual(profile.launches.filter { $0.key.hasPrefix("matmul") },
                           ["matmul nn 64×32×48": 3, "matmul nt 64×48×32": 3], file: file, line: line)
        }
        XCTAssertEqual(profile.totalLaunches, counted.totalLaunches, file: file, line: line)
        XCTAssertGreaterThan(profile.totalLaunches, 10, file: file, line: line)
        for r in profile.rows {
            XCTAssertGreaterThanOrEqual(r.seconds, 0, "\(device) \(r.name)", file: file, line: line)
            XCTAssertGreaterThanOrEqual(r.gapSeconds, 0, "\(device) \(r.name)", file: file, line: line)
        }
        XCTAssertGreaterThan(profile.busySeconds, 0, "\(device): something took time", file: file, line: line)
        XCTAssertLessThanOrEqual(profile.busySeconds + profile.gapSeconds, profile.wallSeconds, "\(device)", file: file, line: line)
        XCTAssertLessThanOrEqual(profile.wallSeconds, wall, file: file, line: line)
        XCTAssertEqual(profile.rows.map(\.seconds), profile.rows.map(\.seconds).sorted(by: >), "most time first", file: file, line: line)
        XCTAssertEqual(profile.clock, device == .cpu ? .host : .deviceEvents, file: file, line: line)
        // Stopped: nothing more is recorded, and a second stop has nothing to give.
        XCTAssertNil(try backend.stopProfiling(), file: file, line: line)
    }

    func testCPUProfileCountsEveryOpAsTheCountersDo() throws {
        try assertProfileMatchesCounters(on: .cpu)
    }

    func testOpenCLProfileCountsEveryLaunchAsTheCountersDo() throws {
        try assertProfileMatchesCounters(on: try TestDevices.requireOpenCL())
    }

    /// Profiling leaves the results as they were (the profiling queue is the same in-order queue).
    func testOpenCLResultsAreTheSameWithProfilingOn() throws {
        let device = try TestDevices.requireOpenCL()
        let backend = try device.backend()
        func run() throws -> [Float] {
            let a = try Tensor(randomValues(33 * 17, seed: 4), shape: [33, 17], on: device)
            return try a.matmul(a, transposeB: true).softmax().toArray()
        }
        let off = try run()
        try backend.startProfiling()
        let on = try run()
        _ = try backend.stopProfiling()
        XCTAssertEqual(on, off)
    }
}
