import Foundation
import XCTest
import ITuneModels
import ITuneTensor
@testable import ITuneTrain

final class SentenceEncoderTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// Embeddings of a tiny random BERT in sentence-transformers' layout against
    /// SentenceTransformer.encode (scripts/make_encoder_fixtures.py), on both backends.
    func testEmbeddingsMatchSentenceTransformers() throws {
        let dir = Self.fixtures.appendingPathComponent("encoders/tiny_minilm")
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("expected.json"))) as! [String: Any]
        let sentences = expected["sentences"] as! [String]
        let want = (expected["embeddings"] as! [[Double]]).map { $0.map(Float.init) }
        var devices: [Device] = [.cpu]
        if let p = OpenCLRuntime.listDevices().platforms.first(where: { !$0.devices.isEmpty }) {
            devices.append(.opencl(platform: p.index, device: 0))
        }
        for device in devices {
            let encoder = try SentenceEncoder(directory: dir, on: device)
            XCTAssertTrue(encoder.normalize)
            let got = try encoder.encode(sentences)
            for (g, w) in zip(got, want) {
                XCTAssertEqual(g.count, 32)
                for k in g.indices { XCTAssertEqual(g[k], w[k], accuracy: 1e-4, "\(device)") }
            }
        }
    }

    func testRankingOrdersTasksByInstructionSimilarity() throws {
        let encoder = try SentenceEncoder(directory: Self.fixtures.appendingPathComponent("encoders/tiny_minilm"), on: .cpu)
        let target = ["Classify the sentiment of this movie review."]
        let pool = [("same", ["Classify the sentiment of this movie review."]),
                    ("other", ["What is the capital of Japan?", "Sort the numbers in ascending order: 5 2 9"])]
        let ranked = try TaskSelector.rank(target: target, pool: pool, encoder: encoder)
        XCTAssertEqual(ranked.map(\.task), ["same", "other"])
        XCTAssertEqual(ranked[0].similarity, 1, accuracy: 1e-5)
        let e = try encoder.encode(pool[1].1)
        let mean = TaskSelector.taskVector(e)
        XCTAssertEqual(ranked[1].similarity, TaskSelector.cosine(try encoder.encode(target)[0], mean), accuracy: 1e-6)
    }

    func testT0FileNamesGroupIntoDatasets() {
        let stems = ["ag_news_classify", "ag_news_which_section", "glue_mrpc_equivalent", "glue_mrpc_paraphrase",
                     "glue_qqp_duplicate", "glue_qqp_same_thing", "qasc_is_correct_1", "qasc_qa_with_separated_facts_1",
                     "common_gen_Put", "common_gen_Example", "commonsense_qa_answer_to", "commonsense_qa_question",
                     "wiki_qa_Is_This_True", "wiki_qa_exercise", "gigaword_TLDR"]
        let g = TaskPool.groupByDataset(stems)
        XCTAssertEqual(g["ag_news_which_section"], "ag_news")
        XCTAssertEqual(g["glue_mrpc_paraphrase"], "glue_mrpc")
        XCTAssertEqual(g["glue_qqp_duplicate"], "glue_qqp")
        XCTAssertEqual(g["qasc_qa_with_separated_facts_1"], "qasc")
        XCTAssertEqual(g["common_gen_Put"], "common_gen")
        XCTAssertEqual(g["commonsense_qa_question"], "commonsense_qa")
        XCTAssertEqual(g["wiki_qa_exercise"], "wiki_qa")
        XCTAssertEqual(g["gigaword_TLDR"], "gigaword")
    }

    func testRealT0PoolGroupsIntoItsEighteenDatasets() throws {
        let pool = Self.fixtures.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("shared/data/t0-pool")
        guard FileManager.default.fileExists(atPath: pool.path) else { throw XCTSkip("../shared/data is absent") }
        let stems = try FileManager.default.contentsOfDirectory(atPath: pool.path).filter { $0.hasSuffix(".jsonl") }
            .map { ($0 as NSString).deletingPathExtension }
        let datasets = Set(TaskPool.groupByDataset(stems).values)
        XCTAssertEqual(datasets.count, 18, "\(datasets.sorted())")
    }
}

final class EncoderAlignmentTests: XCTestCase {
    func testAlignmentPullsTemplatesOfATaskTogetherAndSavesAReloadableEncoder() throws {
        let dir = SentenceEncoderTests.fixtures.appendingPathComponent("encoders/tiny_minilm")
        let encoder = try SentenceEncoder(directory: dir, on: .cpu)
        let tasks = [("sentiment", ["Classify the sentiment of this movie review.", "Is this product review positive or negative?"]),
                     ("capital", ["What is the capital of Japan?", "Name the capital city of France."])]
        func within() throws -> Float {
            let a = try encoder.encode(tasks[0].1), b = try encoder.encode(tasks[1].1)
            return (TaskSelector.cosine(a[0], a[1]) + TaskSelector.cosine(b[0], b[1])) / 2
        }
        let before = try within()
        let report = try EncoderAlignment.align(encoder, tasks: tasks, steps: 30, pairsPerStep: 4, learningRate: 1e-3, seed: 1)
        XCTAssertLessThan(report.lastLoss, report.firstLoss)
        XCTAssertGreaterThan(try within(), before)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("itune-aligned-\(getpid())")
        defer { try? FileManager.default.removeItem(at: out) }
        try EncoderAlignment.save(encoder, to: out)
        let reloaded = try SentenceEncoder(directory: out, on: .cpu)
        let x = try encoder.encode(["Translate the sentence into French."])[0], y = try reloaded.encode(["Translate the sentence into French."])[0]
        for k in x.indices { XCTAssertEqual(x[k], y[k], accuracy: 1e-6) }
    }

    func testAlignmentRefusesATaskWithoutInstructionsByName() throws {
        let dir = SentenceEncoderTests.fixtures.appendingPathComponent("encoders/tiny_minilm")
        let encoder = try SentenceEncoder(directory: dir, on: .cpu)
        let tasks = [("sentiment", ["Classify the sentiment of this movie review.", "Is this review positive?"]),
                     ("empty-task", [])]
        XCTAssertThrowsError(try EncoderAlignment.align(encoder, tasks: tasks, steps: 2)) { error in
            XCTAssertTrue("\(error)".contains("empty-task"), "\(error)")
        }
    }
}
