import Foundation
import XCTest
@testable import ITuneData

/// JGLUE (../shared/data/jglue, CC BY-SA 4.0) as instruction tasks.
final class JGLUETests: XCTestCase {
    func testValidationTasksKeepEveryRecordWithItsAnswerAmongTheChoices() throws {
        let source = (try DataFixtures.sharedPath("jglue/jnli-valid-v1.3.json") as NSString).deletingLastPathComponent
        let out = try DataFixtures.directory()
        let written = try JGLUE.writeTasks(from: source, to: out, split: "validation")
        XCTAssertEqual(written.count, 9)  // 5 JCommonsenseQA templates + 4 JNLI templates
        let counts = Dictionary(grouping: written) { $0.0.lastPathComponent.hasPrefix("jnli") ? "jnli" : "jcqa" }.mapValues { $0.reduce(0) { $0 + $1.1 } }
        XCTAssertEqual(counts["jcqa"], 1119)
        XCTAssertEqual(counts["jnli"], 2434)
        let loaded = try DatasetReader.read([out.path])
        XCTAssertEqual(loaded.examples.count, 1119 + 2434)
        for e in loaded.examples {
            let choices = try XCTUnwrap(e.choices, "\(e.source)")
            XCTAssertTrue(choices.contains(e.conversation.turns[0].response), "\(e.source)")
            XCTAssertEqual(choices.count, e.source.task.hasPrefix("jnli") ? 3 : 5, "\(e.source)")
        }
        // The first JCommonsenseQA validation question (label 2, マザーボード) under template t1, and the
        // first JNLI pair (neutral) under t1 (中立) and the second (entailment) under t2 (はい).
        let jcqa = try DatasetReader.read([out.appendingPathComponent("jcommonsenseqa_t1.jsonl").path]).examples
        XCTAssertEqual(jcqa[0].conversation.turns[0].response, "マザーボード")
        XCTAssertTrue(jcqa[0].conversation.turns[0].input?.contains("電子機器で使用される最も主要な電子回路基板") ?? false)
        let jnli1 = try DatasetReader.read([out.appendingPathComponent("jnli_t1.jsonl").path]).examples
        XCTAssertEqual(jnli1[0].conversation.turns[0].response, "中立")
        let jnli2 = try DatasetReader.read([out.appendingPathComponent("jnli_t2.jsonl").path]).examples
        XCTAssertEqual(jnli2[0].conversation.turns[0].response, "はい")
        XCTAssertEqual(try TaskGrouping.names(out.path), ["jcommonsenseqa", "jnli"])
    }

    func testAChoicesFieldWithoutTheAnswerIsRefusedByName() throws {
        let f = try DataFixtures.directory().appendingPathComponent("bad.jsonl")
        try #"{"instruction": "選んでください", "output": "犬", "choices": ["猫", "鳥"]}"#.write(to: f, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try DatasetReader.read([f.path])) { e in
            XCTAssertEqual((e as? DataError)?.field, "choices")
            XCTAssertTrue("\(e)".contains("bad.jsonl:1"), "\(e)")
        }
    }
}

/// Task names as `eval --tasks` groups the files (TaskPool lives in ITuneTrain; its rule is
/// checked there, this only lists the distinct stems' datasets for the JGLUE files).
enum TaskGrouping {
    static func names(_ dir: String) throws -> [String] {
        let stems = try FileManager.default.contentsOfDirectory(atPath: dir).map { ($0 as NSString).deletingPathExtension }
        return Array(Set(stems.map { String($0.split(separator: "_")[0]) })).sorted()
    }
}
