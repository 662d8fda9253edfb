import Foundation
import XCTest
@testable import ITuneData

/// Packing keeps examples whole and their masks intact; splits and shuffles are fixed by the seed.
final class RowTests: XCTestCase {
    func example(_ n: Int, answer: Int, base: Int32 = 10) -> TokenizedExample {
        TokenizedExample(ids: (0..<Int32(n)).map { $0 + base }, labels: (0..<n).map { $0 >= n - answer ? Int32($0) + base : -100 }, task: "t")
    }

    func testPackingKeepsExamplesWholeAndInOrder() {
        let examples = [example(5, answer: 2), example(9, answer: 3), example(3, answer: 1), example(12, answer: 4), example(7, answer: 7)]
        let rows = DatasetTokenizer.pack(examples, rowLength: 12)
        XCTAssertEqual(rows.map(\.lengths), [[5, 3], [9], [12], [7]])
        for r in rows {
            XCTAssertLessThanOrEqual(r.ids.count, 12)
            XCTAssertEqual(r.lengths.reduce(0, +), r.ids.count)
            XCTAssertEqual(r.labels.count, r.ids.count)
        }
        // Each example's ids appear unbroken in its row.
        XCTAssertEqual(rows[0].ids, examples[0].ids + examples[2].ids)
    }

    func testPackingScoresTheSameLabelsAsTheExamplesAlone() {
        let examples = (1...40).map { example($0 % 13 + 1, answer: $0 % 5 + 1, base: Int32($0 * 100)) }
        let rows = DatasetTokenizer.pack(examples, rowLength: 16)
        XCTAssertEqual(rows.flatMap(\.lengths).sorted(), examples.map(\.ids.count).sorted())
        // Alone, an example's first label is never scored; packed, it is masked so that the
        // previous example's last token predicts nothing across the boundary.
        var scoredAlone = examples.map { Array($0.labels.dropFirst().filter { $0 != -100 }) }
        for r in rows {
            var start = 0
            for n in r.lengths {
                XCTAssertEqual(r.labels[start], -100, "first label of each packed example is masked")
                let labels = Array(r.labels[(start + 1)..<(start + n)]).filter { $0 != -100 }
                let k = scoredAlone.firstIndex(of: labels)
                XCTAssertNotNil(k, "an example's mask survives packing")
                if let k { scoredAlone.remove(at: k) }
                start += n
            }
        }
        XCTAssertTrue(scoredAlone.isEmpty)
    }

    func testPackingAFullDatasetFillsRows() {
        let examples = (0..<1000).map { example($0 % 97 + 3, answer: 2) }
        let rows = DatasetTokenizer.pack(examples, rowLength: 256)
        let tokens = examples.reduce(0) { $0 + $1.ids.count }
        XCTAssertEqual(rows.reduce(0) { $0 + $1.ids.count }, tokens)
        XCTAssertGreaterThan(Double(tokens) / Double(rows.count * 256), 0.9, "first-fit leaves little padding")
    }

    func testValidationSplitIsDeterministicDisjointAndOrdered() {
        let items = Array(0..<100)
        let a = DatasetTokenizer.split(items, fraction: 0.1, seed: 7), b = DatasetTokenizer.split(items, fraction: 0.1, seed: 7)
        XCTAssertEqual(a.validation, b.validation)
        XCTAssertEqual(a.validation.count, 10)
        XCTAssertEqual(a.train.count, 90)
        XCTAssertEqual(Set(a.train).union(a.validation), Set(items))
        XCTAssertTrue(Set(a.train).isDisjoint(with: a.validation))
        XCTAssertEqual(a.validation, a.validation.sorted(), "input order kept")
        XCTAssertNotEqual(DatasetTokenizer.split(items, fraction: 0.1, seed: 8).validation, a.validation)
        XCTAssertEqual(DatasetTokenizer.split(items, count: 3, seed: 7).validation.count, 3)
        XCTAssertEqual(DatasetTokenizer.split(items, count: 500, seed: 7).train, [])
        XCTAssertEqual(DatasetTokenizer.split(items, fraction: 0, seed: 7).train, items)
        // Pinned (Fisher–Yates over SplitMix64, computed independently in Python): the same seed
        // gives the same split on every machine and release.
        XCTAssertEqual(DatasetTokenizer.split(Array(0..<20), count: 4, seed: 42).validation, [3, 8, 11, 16])
    }

    func testShuffleIsAPermutationFixedByTheSeed() {
        let items = Array(0..<50)
        let s = DatasetTokenizer.shuffled(items, seed: 1)
        XCTAssertEqual(s.sorted(), items)
        XCTAssertNotEqual(s, items)
        XCTAssertEqual(s, DatasetTokenizer.shuffled(items, seed: 1))
        XCTAssertNotEqual(s, DatasetTokenizer.shuffled(items, seed: 2))
        XCTAssertEqual(DatasetTokenizer.shuffled(Array(0..<10), seed: 1), [4, 2, 8, 1, 9, 3, 0, 6, 7, 5])
        XCTAssertEqual(DatasetTokenizer.shuffled([Int](), seed: 1), [])
    }

    func testSplitMix64MatchesItsPublishedSequence() {
        // The reference outputs of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        var g = SplitMix64(seed: 0)
        XCTAssertEqual([g.next(), g.next(), g.next()], [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
    }
}
