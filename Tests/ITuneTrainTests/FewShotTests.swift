import XCTest
import ITuneData
import ITuneTokenizers
@testable import ITuneTrain

/// FLAN's few-shot protocol for `eval --tasks DIR --shots K`.
final class FewShotTests: XCTestCase {
    let source = Example.Source(file: "task.jsonl", task: "antonyms")

    func example(_ word: String, _ answer: String, input: String? = nil) -> Example {
        Example(conversation: Conversation(turns: [Turn(instruction: "Give the antonym of \(word).", input: input,
                                                        response: answer)]), source: source)
    }

    func testExemplarsStandBeforeTheQuestionInsideItsInstruction() {
        let q = example("hot", "cold")
        let shots = [example("up", "down"), example("big", "small", input: "(one word)")]
        let prompted = FewShot.prompting(q, with: shots)
        XCTAssertEqual(prompted.conversation.turns.count, 1)
        XCTAssertEqual(prompted.conversation.turns[0].instruction,
                       "Give the antonym of up.\ndown\n\nGive the antonym of big.\n(one word)\nsmall\n\nGive the antonym of hot.")
        XCTAssertEqual(prompted.conversation.turns[0].response, "cold")
        XCTAssertEqual(FewShot.prompting(q, with: []), q, "zero shots is the plain question")
    }

    func testExemplarChoiceIsDeterministicBySeedAndNeverTheQuestion() {
        let pool = (0..<12).map { example("w\($0)", "a\($0)") }
        let q = pool[3]
        let a = FewShot.exemplars(for: q, index: 0, pool: pool, shots: 4, seed: 7)
        XCTAssertEqual(a.count, 4)
        XCTAssertFalse(a.contains(q))
        XCTAssertEqual(a, FewShot.exemplars(for: q, index: 0, pool: pool, shots: 4, seed: 7))
        XCTAssertNotEqual(a, FewShot.exemplars(for: q, index: 0, pool: pool, shots: 4, seed: 8))
        XCTAssertNotEqual(a, FewShot.exemplars(for: q, index: 1, pool: pool, shots: 4, seed: 7))
        XCTAssertEqual(FewShot.exemplars(for: q, index: 0, pool: pool, shots: 0, seed: 7), [])
        XCTAssertEqual(FewShot.exemplars(for: q, index: 0, pool: Array(pool.prefix(3)), shots: 5, seed: 7).count, 3)
    }
}
