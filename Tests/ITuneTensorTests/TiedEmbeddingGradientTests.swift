import Foundation
import XCTest
@testable import ITuneTensor

/// A table read both by an embedding lookup and as the fused head's weight (tied embeddings, as
/// SmolLM2 and Qwen2.5 have), and a table read by lookups in several micro-batches: its gradient
/// is the sum of every use's, the lookup's rows added into the gradient the table already owns
/// (Ops/Embedding.swift) — the same bits as adding a dense (V, C) table of them, without making
/// one.
final class TiedEmbeddingGradientTests: XCTestCase {
    let (V, C, N) = (300, 24, 40)

    /// The CPU and the OpenCL device under test (required with ITUNE_REQUIRE_OPENCL=1).
    func testDevices() -> [Device] {
        _ = TestDevices.announce
        if TestDevices.opencl == nil, ProcessInfo.processInfo.environment["ITUNE_REQUIRE_OPENCL"] == "1" {
            XCTFail("ITUNE_REQUIRE_OPENCL=1 but no OpenCL device was found")
        }
        return [.cpu] + (TestDevices.opencl.map { [$0] } ?? [])
    }

    func values(_ count: Int, seed: UInt64) -> [Float] {
        var g = SplitMix64(seed: seed)
        return (0..<count).map { _ in 2 * g.nextFloat() - 1 }
    }

    /// Ids with repeats (several rows summed into one) and most of the table unread.
    func ids(seed: UInt64) -> [Int32] {
        var g = SplitMix64(seed: seed)
        return (0..<N).map { _ in Int32(g.next() % 37) * 7 }
    }

    /// The loss of a lookup through a product with `mix` into the head over `head`.
    func loss(table: Tensor, head: Tensor, ids: [Int32], mix: Tensor, targets: [Int32], on device: Device) throws -> Tensor {
        let h = try table.embedding(Tensor(indices: ids, shape: [N], on: device)).matmul(mix)
        return try h.linearCrossEntropy(weight: head, targets: Tensor(indices: targets, shape: [N], on: device))
    }

    func testTiedTableGetsTheHeadsGradientPlusTheLookupsRowsBitForBit() throws {
        for device in testDevices() {
            let w = values(V * C, seed: 1)
            let mix = try Tensor(values(C * C, seed: 2), shape: [C, C], on: device)
            let ids = ids(seed: 3), targets = ids.reversed().map { ($0 + 5) % Int32(V) }
            // Tied: one table in both places.
            let tied = try Tensor(w, shape: [V, C], on: device, requiresGrad: true)
            try loss(table: tied, head: tied, ids: ids, mix: mix, targets: Array(targets), on: device).backward()
            let got = try XCTUnwrap(tied.grad).toArray()
            // Untied copies of the same values: each use's gradient alone, summed here.
            let table = try Tensor(w, shape: [V, C], on: device, requiresGrad: true)
            let head = try Tensor(w, shape: [V, C], on: device, requiresGrad: true)
            try loss(table: table, head: head, ids: ids, mix: mix, targets: Array(targets), on: device).backward()
            let (gTable, gHead) = (try XCTUnwrap(table.grad).toArray(), try XCTUnwrap(head.grad).toArray())
            let want = zip(gHead, gTable).map { $0 + $1 }
            XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "\(device)")
            // Rows of ids never looked up hold the head's gradient alone; looked-up rows differ from it.
            let used = Set(ids.map(Int.init))
            XCTAssertTrue(used.count < V / 2 && ids.count > used.count, "repeats and unread rows")
            for r in 0..<V where !used.contains(r) {
                XCTAssertEqual(Array(got[(r * C)..<((r + 1) * C)]), Array(gHead[(r * C)..<((r + 1) * C)]), "\(device) row \(r)")
            }
            let u = Int(ids[0])
            XCTAssertNotEqual(Array(got[(u * C)..<((u + 1) * C)]), Array(gHead[(u * C)..<((u + 1) * C)]), "\(device)")
        }
    }

    /// Micro-batches: the first lookup's gradient is the table's own, the next ones add their
    /// rows into it; the result is each micro-batch's gradient summed, bit for bit.
    func testLookupsOfSeveralMicroBatchesAddUp() throws {
        for device in testDevices() {
            let w = values(V * C, seed: 4)
            let mix = try Tensor(values(C * C, seed: 5), shape: [C, C], on: device)
            let head = try Tensor(values(V * C, seed: 6), shape: [V, C], on: device)  // frozen head
            let batches = (0..<3).map { b in (ids(seed: 10 + UInt64(b)), ids(seed: 20 + UInt64(b))) }
            let table = try Tensor(w, shape: [V, C], on: device, requiresGrad: true)
            for (ids, targets) in batches {
                try loss(table: table, head: head, ids: ids, mix: mix, targets: targets, on: device).backward()
            }
            let got = try XCTUnwrap(table.grad).toArray()
            var want = [Float](repeating: 0, count: V * C)
            for (b, (ids, targets)) in batches.enumerated() {
                let alone = try Tensor(w, shape: [V, C], on: device, requiresGrad: true)
                try loss(table: alone, head: head, ids: ids, mix: mix, targets: targets, on: device).backward()
                let g = try XCTUnwrap(alone.grad).toArray()
                want = b == 0 ? g : zip(want, g).map { $0 + $1 }
            }
            XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "\(device)")
        }
    }

    /// The tied table's backward makes no (V, C) buffer beyond the head's gradient: the rows go
    /// into it (before, a table of zeros and the sum of the two, 2 · V · C floats more).
    func testTiedBackwardMakesNoSecondTable() throws {
        let (V, C, N) = (8192, 64, 40)
        let device = Device.cpu
        let backend = try device.backend()
        let w = values(V * C, seed: 7)
        let tied = try Tensor(w, shape: [V, C], on: device, requiresGrad: true)
        let ids = (0..<N).map { Int32($0 * 97 % V) }
        let h = try tied.embedding(Tensor(indices: ids, shape: [N], on: device))
        let loss = try h.linearCrossEntropy(weight: tied, targets: Tensor(indices: ids.reversed(), shape: [N], on: device))
        backend.releaseCachedBuffers()
        let before = backend.bytesInUse
        backend.resetPeak()
        try loss.backward()
        let extra = backend.peakBytesInUse - before
        let table = V * C * 4
        print("[tied] backward's peak above the forward: \(extra) bytes (a table is \(table))")
        XCTAssertLessThan(extra, table / 2, "the backward made a (V, C) buffer: \(extra) bytes above the forward")
        XCTAssertNotNil(tied.grad)
    }
}

/// The tape's promise for fresh gradients (GradientTape.record's `freshGradients`): each is its
/// own buffer, so an op that hands one buffer to two inputs is refused, not summed into twice.
final class FreshGradientTests: XCTestCase {
    func testAFreshGradientHandedToTwoInputsIsRefused() throws {
        let a = try Tensor([1, 2], shape: [2], requiresGrad: true)
        let b = try Tensor([3, 4], shape: [2], requiresGrad: true)
        for fresh in [false, true] {
            a.zeroGrad(); b.zeroGrad()
            let out = try Tensor([4, 6], shape: [2])
            // An addition's backward: the output's gradient to both operands.
            GradientTape.record("shared", inputs: [a, b], output: out, freshGradients: fresh) { dy in [dy, dy] }
            let loss = try out.sum()
            if fresh {
                XCTAssertThrowsError(try loss.backward()) { XCTAssertTrue("\($0)".contains("hands one buffer to two inputs"), "\($0)") }
            } else {
                try loss.backward()
                XCTAssertEqual(try XCTUnwrap(a.grad).toArray(), [1, 1])
                XCTAssertEqual(try XCTUnwrap(b.grad).toArray(), [1, 1])
            }
        }
    }
}
