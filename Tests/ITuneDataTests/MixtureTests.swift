import Foundation
import XCTest
@testable import ITuneData
import ITuneTokenizers

final class MixtureTests: XCTestCase {
    func examples(_ task: String, files: Int, each: Int) -> [Example] {
        (0..<files).flatMap { f in
            (0..<each).map { i in
                Example(conversation: Conversation(turns: [Turn(instruction: "\(task) template \(f) #\(i)", response: "\(i)")]),
                        rawPrompt: false, source: .init(file: "\(task)_t\(f).jsonl", line: i + 1, index: nil, task: task))
            }
        }
    }

    func testExamplesProportionalCountsAreCappedAndAddUp() {
        var m = Mixture(tasks: [], cap: 100)
        // FLAN-T5: a task counts as min(size, cap).
        XCTAssertEqual(MixtureSampler.counts(sizes: [1000, 50, 100], weights: [1, 1, 1], mixture: m), [100, 50, 100])
        m.total = 500
        let c = MixtureSampler.counts(sizes: [1000, 50, 100], weights: [1, 1, 1], mixture: m)
        XCTAssertEqual(c, [200, 100, 200])
        XCTAssertEqual(MixtureSampler.counts(sizes: [1000, 50, 100], weights: [2, 1, 1], mixture: m), [286, 71, 143])
        m.total = 7
        XCTAssertEqual(MixtureSampler.counts(sizes: [10, 10, 10], weights: [1, 1, 1], mixture: m).reduce(0, +), 7)
    }

    func testTemperatureFlattensTheRates() {
        var m = Mixture(tasks: [], scheme: .temperature, cap: nil)
        m.temperature = 2
        m.total = 300
        // rates ∝ √n: √400 = 20, √100 = 10 → 200 and 100.
        XCTAssertEqual(MixtureSampler.counts(sizes: [400, 100], weights: [1, 1], mixture: m), [200, 100])
        m.temperature = 1
        XCTAssertEqual(MixtureSampler.counts(sizes: [400, 100], weights: [1, 1], mixture: m), [240, 60])
    }

    func testSamplingIsDeterministicRotatesTemplatesAndRepeatsSmallTasks() {
        let tasks = [examples("a", files: 3, each: 20), examples("b", files: 1, each: 5)]
        var m = Mixture(tasks: [], cap: 9)
        m.total = 30
        let (x, counts) = MixtureSampler.sample(tasks, weights: [1, 1], mixture: m, seed: 4)
        let (y, _) = MixtureSampler.sample(tasks, weights: [1, 1], mixture: m, seed: 4)
        XCTAssertEqual(x, y)
        XCTAssertEqual(counts, [19, 11])  // ∝ min(60, 9) : min(5, 9) = 9 : 5 of 30
        let fromA = x.filter { $0.source.task == "a" }
        XCTAssertEqual(fromA.count, 19)
        // Templates of a take turns: the three files are used 7/6/6 times.
        let perFile = Dictionary(grouping: fromA, by: \.source.file).mapValues(\.count)
        XCTAssertEqual(perFile.values.sorted(), [6, 6, 7])
        // b has 5 examples and is drawn 11 times: every example at least twice.
        let fromB = Dictionary(grouping: x.filter { $0.source.task == "b" }, by: \.conversation.turns[0].instruction).mapValues(\.count)
        XCTAssertEqual(fromB.count, 5)
        XCTAssertTrue(fromB.values.allSatisfy { $0 >= 2 })
        XCTAssertNotEqual(MixtureSampler.sample(tasks, weights: [1, 1], mixture: m, seed: 5).examples, x)
    }

    func testMixtureFileRoundTripsAndNamesMissingFields() throws {
        let m = Mixture(tasks: [.init(name: "t", files: ["a.jsonl"], weight: 2, similarity: 0.9)], cap: 10)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mix-\(getpid()).json").path
        try m.write(path)
        XCTAssertEqual(try Mixture.read(path), m)
        try Data(#"{"tasks":[{"name":"t"}]}"#.utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Mixture.read(path)) { XCTAssertTrue("\($0)".contains("files"), "\($0)") }
    }

    func testWritingAMixtureWhereNoFileCanBeIsOneLineNamingThePath() throws {
        let dir = try DataFixtures.directory()
        let blocker = try DataFixtures.file("blocker", "a file, not a directory", in: dir)
        let path = blocker + "/mix.json"
        XCTAssertEqual(errorMessage(try Mixture(tasks: [], cap: 1).write(path)), "cannot write \(path): \(String(cString: strerror(ENOTDIR)))")
    }
}
