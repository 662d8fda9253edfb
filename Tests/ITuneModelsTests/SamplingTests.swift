import XCTest
@testable import ITuneModels

final class SamplingTests: XCTestCase {
    let logits: [Float] = [1.0, 3.0, 2.0, -1.0, 2.9]

    func testGreedyPicksTheLargestLogit() {
        var s = TokenSampler(SamplingOptions())
        XCTAssertEqual(s.next(logits[...]), 1)
        var k1 = TokenSampler(SamplingOptions(temperature: 5, topK: 1))
        XCTAssertEqual(k1.next(logits[...]), 1)
    }

    func testTopKNeverLeavesTheKMostLikely() {
        var s = TokenSampler(SamplingOptions(temperature: 10, topK: 2, seed: 3))
        let seen = Set((0..<500).map { _ in s.next(logits[...]) })
        XCTAssertEqual(seen, [1, 4])
    }

    func testTopPKeepsTheSmallestSetReachingP() {
        // Probabilities at T=1: 3.0 → .43, 2.9 → .39, 2.0 → .16, …: p = 0.5 keeps two tokens.
        var s = TokenSampler(SamplingOptions(temperature: 1, topP: 0.5, seed: 5))
        let seen = Set((0..<500).map { _ in s.next(logits[...]) })
        XCTAssertEqual(seen, [1, 4])
    }

    func testSamplingFrequenciesFollowTheSoftmax() {
        var s = TokenSampler(SamplingOptions(temperature: 1, seed: 11))
        var counts = [Int](repeating: 0, count: logits.count)
        let n = 20000
        for _ in 0..<n { counts[s.next(logits[...])] += 1 }
        let z = logits.map { exp(Double($0)) }.reduce(0, +)
        for i in logits.indices {
            XCTAssertEqual(Double(counts[i]) / Double(n), exp(Double(logits[i])) / z, accuracy: 0.015, "token \(i)")
        }
    }

    func testTheSameSeedGivesTheSameTokens() {
        var a = TokenSampler(SamplingOptions(temperature: 0.8, topK: 4, topP: 0.9, seed: 42))
        var b = TokenSampler(SamplingOptions(temperature: 0.8, topK: 4, topP: 0.9, seed: 42))
        XCTAssertEqual((0..<50).map { _ in a.next(logits[...]) }, (0..<50).map { _ in b.next(logits[...]) })
    }
}
