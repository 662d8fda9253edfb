import XCTest
@testable import ITuneTensor

/// The steady state of a step allocates nothing, also when its shapes vary a little from step
/// to step (a padded batch is as long as its longest row).
final class BufferPoolTests: XCTestCase {
    func testSizeClassesCoverTheRequestWithBoundedWaste() {
        var previous = 0
        for n in stride(from: 1, to: 5_000_000, by: 997) {
            let c = BufferPool<Int>.sizeClass(n)
            XCTAssertGreaterThanOrEqual(c, n)
            XCTAssertGreaterThanOrEqual(c, previous, "monotonic")
            if n > 2048 { XCTAssertLessThanOrEqual(Double(c), Double(n) * (n > 1 << 20 ? 1.032 : 1.126), "\(n) → \(c)") }
            previous = c
        }
        XCTAssertEqual(BufferPool<Int>.sizeClass(4096), 4096)
        XCTAssertEqual(BufferPool<Int>.sizeClass(4097), 4608)
        XCTAssertEqual(BufferPool<Int>.sizeClass(3 << 20 + 1), 3 << 20 + 65536)
    }

    func steadyStateAllocations(on device: Device) throws -> [Int] {
        let backend = try device.backend()
        // Rows of 240…256 tokens, as a shuffled padded batch would give: two epochs of them.
        let epoch = [256, 241, 250, 247, 256, 244, 253, 240, 249, 255]
        let lengths = epoch + epoch.reversed()
        var counts: [Int] = []
        for T in lengths {
            let x = try Tensor.randn([2, T, 64], seed: UInt64(T), on: device)
            let w = try Tensor.randn([96, 64], seed: 1, on: device)
            let y = try x.linear(w).softmax()
            _ = try y.sum().item()
            counts.append(backend.allocationCount)
        }
        return counts
    }

    func testVaryingRowLengthsAllocateNothingAfterTheFirstSteps() throws {
        var devices: [Device] = [.cpu]
        if let p = OpenCLRuntime.listDevices().platforms.first(where: { !$0.devices.isEmpty }) {
            devices.append(.opencl(platform: p.index, device: 0))
        }
        for device in devices {
            let counts = try steadyStateAllocations(on: device)
            // The first epoch meets each size class once (a class spans 1/8 of a power of two,
            // so these lengths fall into two); the second allocates nothing.
            XCTAssertEqual(Set(counts.dropFirst(10)).count, 1, "\(device): new buffers in the second epoch: \(counts)")
            XCTAssertLessThanOrEqual(counts[9] - counts[0], 3, "\(device): one new buffer per new size class at most: \(counts)")
        }
    }
}
