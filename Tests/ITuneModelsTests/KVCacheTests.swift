import Foundation
import XCTest
@testable import ITuneModels
import ITuneTensor

/// The KV cache holds what concatenation would, but grows geometrically instead of copying
/// everything for every token.
final class KVCacheTests: XCTestCase {
    func testAppendsHoldTheConcatenationAndCapacityGrowsGeometrically() throws {
        for device in testDevices() {
            for B in [1, 3] {
                let layer = KVCache(layers: 1, maxLength: 100).layers[0]
                var reference: [Tensor] = []
                var capacities: Set<Int> = []
                var g = SplitMix64(seed: UInt64(B))
                for step in 0..<60 {
                    let T = step == 0 ? 5 : 1 + step % 2
                    let k = try Tensor((0..<B * T * 2 * 3).map { _ in g.nextFloat() }, shape: [B, T, 2, 3], on: device)
                    let v = try k.scaled(by: -2)
                    reference.append(k)
                    let (keys, values) = try layer.append(keys: k, values: v)
                    let want = try Tensor.concatenated(reference, axis: 1)
                    XCTAssertEqual(keys.shape, want.shape)
                    XCTAssertEqual(try keys.toArray(), try want.toArray(), "B \(B) step \(step) on \(device)")
                    XCTAssertEqual(try values.toArray(), try want.scaled(by: -2).toArray())
                    capacities.insert(layer.capacity)
                }
                XCTAssertEqual(layer.count, 5 + (1..<60).map { 1 + $0 % 2 }.reduce(0, +))
                XCTAssertEqual(capacities.sorted(), [16, 32, 64, 100], "doubling, capped at maxLength")
            }
        }
    }

    /// What attention reads: appendInPlace hands back the buffers themselves, (B, capacity, NKV,
    /// D), whose rows' first `length` positions are the concatenation.
    func testAppendInPlaceHandsBackTheBuffersAndTheLength() throws {
        for device in testDevices() {
            let (B, NKV, D) = (3, 2, 3)
            let layer = KVCache(layers: 1, maxLength: 100).layers[0]
            var reference: [Tensor] = []
            var g = SplitMix64(seed: 9)
            for T in [5, 1, 2, 1, 9] {
                let k = try Tensor((0..<B * T * NKV * D).map { _ in g.nextFloat() }, shape: [B, T, NKV, D], on: device)
                reference.append(k)
                let held = try layer.appendInPlace(keys: k, values: k.scaled(by: 3))
                XCTAssertEqual(held.keys.shape, [B, layer.capacity, NKV, D])
                XCTAssertEqual(held.values.shape, held.keys.shape)
                XCTAssertEqual(held.length, layer.count)
                let want = try Tensor.concatenated(reference, axis: 1).toArray()
                let (keys, values) = (try held.keys.toArray(), try held.values.toArray())
                let row = held.length * NKV * D, stride = layer.capacity * NKV * D
                for b in 0..<B {
                    XCTAssertEqual(Array(keys[(b * stride)..<(b * stride + row)]), Array(want[(b * row)..<((b + 1) * row)]),
                                   "row \(b), \(held.length) positions on \(device)")
                    XCTAssertEqual(Array(values[(b * stride)..<(b * stride + row)]), want[(b * row)..<((b + 1) * row)].map { $0 * 3 })
                }
            }
            XCTAssertEqual(layer.capacity, 32)
        }
    }

    /// Dropping finished rows of a batch: the kept rows hold what they held, in order, and go on
    /// growing (past a regrowth) as a cache of those rows alone would; rows that do not ascend
    /// within the batch are refused.
    func testKeptRowsHoldTheirOwnConcatenationAndGoOn() throws {
        for device in testDevices() {
            let cache = KVCache(layers: 2, maxLength: 100)
            let (B, NKV, D) = (4, 2, 3)
            var g = SplitMix64(seed: 9)
            func values(_ rows: Int, _ T: Int) throws -> Tensor {
                try Tensor((0..<rows * T * NKV * D).map { _ in g.nextFloat() }, shape: [rows, T, NKV, D], on: device)
            }
            func row(_ t: Tensor, _ b: Int) throws -> [Float] { try t.narrow(axis: 0, start: b, length: 1).toArray() }
            var history: [[Tensor]] = [[], []]  // per layer, the appended tensors
            for (i, layer) in cache.layers.enumerated() {
                let k = try values(B, 6)
                history[i].append(k)
                _ = try layer.append(keys: k, values: try k.scaled(by: 3))
            }
            try cache.keepRows([1, 3])
            for (i, layer) in cache.layers.enumerated() {
                let full = try Tensor.concatenated(history[i], axis: 1)
                let keys = try XCTUnwrap(try layer.keys), vals = try XCTUnwrap(try layer.values)
                XCTAssertEqual(keys.shape, [2, 6, NKV, D])
                XCTAssertEqual(try row(keys, 0), try row(full, 1), "row 1 moved to 0 on \(device)")
                XCTAssertEqual(try row(keys, 1), try row(full, 3), "row 3 moved to 1 on \(device)")
                XCTAssertEqual(try row(vals, 1), try row(full, 3).map { $0 * 3 })
                // 20 more positions (past the first regrowth at 16) for the two rows left.
                let more = try values(2, 20)
                let (k2, _) = try layer.append(keys: more, values: more)
                XCTAssertEqual(k2.shape, [2, 26, NKV, D])
                for (kept, b) in [(0, 1), (1, 3)] {
                    // A row (1, T, NKV, D) in row-major order: its first 6 positions, then the 20 new ones.
                    XCTAssertEqual(try row(k2, kept), try row(full, b) + row(more, kept), "kept row \(kept) on \(device)")
                }
            }
        }
        let cache = KVCache(layers: 1, maxLength: 10)
        _ = try cache.layers[0].append(keys: try Tensor.zeros([3, 2, 1, 2]), values: try Tensor.zeros([3, 2, 1, 2]))
        XCTAssertThrowsError(try cache.keepRows([2, 1])) { XCTAssertTrue("\($0)".contains("ascend"), "\($0)") }
        XCTAssertThrowsError(try cache.keepRows([0, 3])) { XCTAssertTrue("\($0)".contains("ascend"), "\($0)") }
    }

    func testAppendBeyondMaxLengthOrWithAnotherShapeIsAnError() throws {
        let layer = KVCache(layers: 1, maxLength: 4).layers[0]
        let k = try Tensor.zeros([1, 3, 1, 2])
        _ = try layer.append(keys: k, values: k)
        XCTAssertThrowsError(try layer.append(keys: k, values: k)) { XCTAssertTrue("\($0)".contains("exceed"), "\($0)") }
        let other = try Tensor.zeros([1, 1, 2, 2])
        XCTAssertThrowsError(try layer.append(keys: other, values: other)) { XCTAssertTrue("\($0)".contains("cached"), "\($0)") }
    }
}
