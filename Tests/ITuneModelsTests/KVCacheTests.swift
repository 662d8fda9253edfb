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

    func testAppendBeyondMaxLengthOrWithAnotherShapeIsAnError() throws {
        let layer = KVCache(layers: 1, maxLength: 4).layers[0]
        let k = try Tensor.zeros([1, 3, 1, 2])
        _ = try layer.append(keys: k, values: k)
        XCTAssertThrowsError(try layer.append(keys: k, values: k)) { XCTAssertTrue("\($0)".contains("exceed"), "\($0)") }
        let other = try Tensor.zeros([1, 1, 2, 2])
        XCTAssertThrowsError(try layer.append(keys: other, values: other)) { XCTAssertTrue("\($0)".contains("cached"), "\($0)") }
    }
}
