import Foundation
import XCTest
@testable import ITuneData
import ITuneTokenizers

/// The public datasets in ../shared/data (Self-Instruct seed tasks, the T0/P3 pool), read whole.
/// Skipped, with a message, where that folder is absent.
final class RealDataTests: XCTestCase {
    func testSelfInstructSeedAndUserOrientedTasks() throws {
        let seed = try DatasetReader.read([try DataFixtures.sharedPath("self-instruct/seed_tasks.jsonl")])
        XCTAssertEqual(seed.files[0].format, .selfInstruct)
        XCTAssertEqual(seed.examples.count, 175)
        XCTAssertEqual(seed.skipped, 0)
        XCTAssertEqual(seed.examples[0].source.task, "breakfast_suggestion", "Self-Instruct's task name")
        XCTAssertEqual(Set(seed.examples.map(\.source.task)).count, 174, "two seed tasks share the name fact_verification")
        let user = try DatasetReader.read([try DataFixtures.sharedPath("self-instruct/user_oriented_instructions.jsonl")])
        XCTAssertEqual(user.files[0].format, .selfInstruct)
        XCTAssertEqual(user.examples.count, 252)
    }

    func testWholeT0PoolIsReadWithEveryMarkerStripped() throws {
        let dir = try DataFixtures.sharedPath("t0-pool")
        let d = try DatasetReader.read([dir])
        XCTAssertEqual(d.files.count, 138)
        XCTAssertTrue(d.files.allSatisfy { $0.format == .promptCompletion })
        XCTAssertEqual(d.examples.count, 26223)
        XCTAssertEqual(d.strippedMarkers, 26223, "every T0 completion ends with the spelled-out marker")
        XCTAssertFalse(d.examples.contains { $0.conversation.turns[0].response.contains("<|endoftext|>") })
        XCTAssertEqual(d.files.map(\.path), d.files.map(\.path).sorted())
        XCTAssertEqual(d.examples.first?.source.task, "ag_news_classify")
    }

    func testT0AnswersAreTheOnlyScoredTokens() throws {
        let file = try DataFixtures.sharedPath("t0-pool/ag_news_classify.jsonl")
        let d = try DatasetReader.read([file])
        let tok = try DataFixtures.tokenizer("llama3_style")
        let (rows, stats) = try DatasetTokenizer.tokenize(d.examples, tok, TokenizeOptions(template: PromptTemplate(.alpaca), maxLength: 4096))
        XCTAssertEqual(rows.count, 200)
        XCTAssertEqual(stats.truncated, 0)
        for (e, r) in zip(d.examples, rows) {
            let answer = tok.encode(e.conversation.turns[0].response, addSpecialTokens: false).map(Int32.init) + [Int32(tok.eosTokenID!)]
            XCTAssertEqual(r.labels.filter { $0 != -100 }, answer)
            XCTAssertEqual(r.ids.first, Int32(tok.bosTokenID!))
        }
    }
}
