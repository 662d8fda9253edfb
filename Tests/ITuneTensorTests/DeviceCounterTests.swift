import Foundation
import XCTest
@testable import ITuneTensor

/// The runtime's counters say what a device did: blocking syncs, bytes each way, launches by
/// kernel, new buffers. The budget tests of a training step (ITuneTrainTests/StepBudgetTests)
/// rest on these being exact.
final class DeviceCounterTests: XCTestCase {
    func testOpenCLCountsSyncsBytesLaunchesAndNewBuffers() throws {
        let device = try TestDevices.requireOpenCL()
        let backend = try device.backend()
        let values = randomValues(1000, seed: 5)
        // x·2 + 1 with a small upload (staged, not blocking), a fill (no upload) and one read.
        func round() throws -> [Float] {
            let before = backend.counters
            let x = try Tensor(values, shape: [1000], on: device)
            XCTAssertEqual(backend.counters.since(before).blockingSyncs, 0, "a small write must not wait for the queue")
            return try (x.scaled(by: 2) + Tensor.full([1000], 1, on: device)).toArray()
        }
        // Warm the pool's size class and the kernels, then count one round from zero.
        _ = try round()
        backend.resetCounters()
        XCTAssertEqual(backend.counters, DeviceCounters())
        assertClose(try round(), values.map { $0 * 2 + 1 }, rtol: 1e-6)

        let c = backend.counters
        XCTAssertEqual(c.blockingSyncs, 1, "the read")
        XCTAssertEqual(c.bytesUploaded, 4000)
        XCTAssertEqual(c.bytesDownloaded, 4000)
        XCTAssertEqual(c.launches, ["scale": 1, "fill_buffer": 1, "add_bcast": 1])
        XCTAssertEqual(c.totalLaunches, 3)
        XCTAssertEqual(c.newBuffers, 0, "the pool serves the warmed size class")

        // A size class never asked for before is a new buffer.
        backend.releaseCachedBuffers()
        let before = backend.counters
        _ = try Tensor.empty([3_333_333], on: device)
        XCTAssertEqual(backend.counters.since(before).newBuffers, 1)
        try backend.synchronize()
        XCTAssertEqual(backend.counters.since(before).blockingSyncs, 1)
    }

    func testStagedUploadsSurviveTheirTensorAndArriveInOrder() throws {
        let device = try TestDevices.requireOpenCL()
        // The host array and the tensor die before the queue runs: the staged copy carries it.
        let out = try Tensor.zeros([64], on: device)
        for k in 0..<8 {
            let part = try Tensor((0..<64).map { Float($0 + 64 * k) }, shape: [64], on: device)
            try out.backend.copy(from: part.storage, to: out.storage, byteCount: 256)
        }
        XCTAssertEqual(try out.toArray(), (0..<64).map { Float($0 + 448) })
        let ids = try Tensor(indices: (0..<100).map { Int32($0 * 3) }, shape: [100], on: device)
        var back = [Int32](repeating: 0, count: 100)
        try back.withUnsafeMutableBytes { try ids.backend.read(ids.storage, into: $0.baseAddress!, byteCount: 400) }
        XCTAssertEqual(back, (0..<100).map { Int32($0 * 3) })
    }

    func testCPUCountsBytesNewBuffersAndOpsButNeverWaits() throws {
        let cpu = CPUBackend.shared
        let before = cpu.counters
        let x = try Tensor([1, 2, 3], shape: [3])
        XCTAssertEqual(try Tensor.full([3], 2).toArray(), [2, 2, 2])
        _ = try x.scaled(by: 2).toArray()
        let d = cpu.counters.since(before)
        XCTAssertEqual(d.blockingSyncs, 0)
        XCTAssertEqual(d.bytesUploaded, 12)
        XCTAssertEqual(d.bytesDownloaded, 24)
        // On the CPU path a launch is an op run on the host, named as the op is.
        XCTAssertEqual(d.launches, ["fill_buffer": 1, "scale": 1])
    }

    func testClipGradientsReadsTheStepsLossesInTheSameRead() throws {
        for device in [Device.cpu] + [try? TestDevices.requireOpenCL()].compactMap({ $0 }) {
            let a = try Tensor.zeros([3], on: device, requiresGrad: true)
            let l1 = try (a * Tensor([3, 0, -4], shape: [3], on: device)).sum()
            try l1.backward()
            let l2 = try Tensor([0.25], shape: [1], on: device)
            let l3 = try Tensor([-7.5], shape: [1], on: device)
            let before = try device.backend().counters
            let (norm, read) = try clipGradients([a], maxNorm: 1, reading: [l2, l1, l3])
            let d = try device.backend().counters.since(before)
            XCTAssertEqual(norm, 5, accuracy: 1e-6, "\(device)")
            XCTAssertEqual(read, [0.25, 0, -7.5], "\(device)")
            assertClose(try a.grad!.toArray(), [3 / (5 + 1e-6), 0, -4 / (5 + 1e-6)], rtol: 1e-6, "\(device)")
            if device != .cpu { XCTAssertEqual(d.blockingSyncs, 1, "norm and losses come back in one read") }
            // Losses on a device with no gradients are read all the same.
            XCTAssertEqual(try clipGradients([], maxNorm: 1, reading: [l3]).scalars, [-7.5])
            XCTAssertThrowsError(try clipGradients([a], maxNorm: 1, reading: [a]))
        }
    }
}
