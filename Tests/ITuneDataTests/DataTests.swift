import Foundation
import XCTest
@testable import ITuneData
import ITuneTokenizers

enum DataFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let shared = root.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("shared/data")

    static func tokenizer(_ name: String) throws -> Tokenizer {
        try Tokenizer(directory: root.appendingPathComponent("tokenizers/\(name)"))
    }

    /// Writes `text` to a temporary file named `name` and returns its path.
    static func file(_ name: String, _ text: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-data-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }
}

final class TemplateGoldenTests: XCTestCase {
    /// Ids and loss masks of 4 records × 5 templates × 3 tokenizers against
    /// scripts/make_data_fixtures.py (the `tokenizers` library, templates spelled independently).
    func testIdsAndMasksMatchTheTokenizersLibrary() throws {
        let data = try DatasetReader.read([DataFixtures.root.appendingPathComponent("data/records.jsonl").path])
        XCTAssertEqual(data.examples.count, 4)
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: DataFixtures.root.appendingPathComponent("data/expected.json"))) as! [String: Any]
        let cases = expected["cases"] as! [[String: Any]]
        XCTAssertEqual(cases.count, 60)
        var tokenizers: [String: Tokenizer] = [:]
        for c in cases {
            let name = c["tokenizer"] as! String, template = c["template"] as! String, record = c["record"] as! Int
            let tok = try tokenizers[name] ?? DataFixtures.tokenizer(name)
            tokenizers[name] = tok
            let t = try DatasetTokenizer.tokenize(data.examples[record], tok,
                                                  TokenizeOptions(template: try PromptTemplate.named(template), maxLength: 4096))
            XCTAssertEqual(t.ids.map(Int.init), c["ids"] as! [Int], "\(name) \(template) record \(record)")
            XCTAssertEqual(t.labels.map(Int.init), c["labels"] as! [Int], "\(name) \(template) record \(record)")
        }
    }

    func testTemplatesRenderTheDocumentedStrings() throws {
        let t = Turn(instruction: "指示文", input: "入力文", response: "答え")
        XCTAssertEqual(PromptTemplate(.alpacaJA).prompt(instruction: "指示文"), "### 指示:\n指示文\n\n### 回答:\n")
        XCTAssertEqual(PromptTemplate(.alpacaJA).prompt(instruction: t.instruction, input: t.input),
                       "### 指示:\n指示文\n\n### 入力:\n入力文\n\n### 回答:\n")
        XCTAssertTrue(PromptTemplate(.llmJP).prompt(instruction: "x").hasSuffix("### 指示:\nx\n\n### 応答:\n"))
        XCTAssertEqual(PromptTemplate(.chatml).prompt(instruction: "hi"), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(PromptTemplate.detect(chatTemplate: "{{'<|im_start|>' + message['role']}}"), PromptTemplate(.chatml))
        XCTAssertEqual(PromptTemplate.detect(chatTemplate: "<|start_header_id|>x<|end_header_id|>y<|eot_id|>"), PromptTemplate(.llama3))
        XCTAssertNil(PromptTemplate.detect(chatTemplate: "{{ messages }}"))
        XCTAssertThrowsError(try PromptTemplate.named("vicuna")) { XCTAssertTrue("\($0)".contains("alpaca-ja"), "\($0)") }
    }

    func testTrainOnInputsKeepsEveryLabel() throws {
        let tok = try DataFixtures.tokenizer("qwen2_style")
        let e = Example(conversation: Conversation(turns: [Turn(instruction: "Say hi", response: "hi")]), rawPrompt: false,
                        source: .init(file: "x", line: 1, index: nil, task: "x"))
        let t = try DatasetTokenizer.tokenize(e, tok, TokenizeOptions(template: PromptTemplate(.chatml), maxLength: 100, trainOnInputs: true))
        XCTAssertEqual(t.labels, t.ids)
    }
}

final class RecordFormatTests: XCTestCase {
    func testEveryFormatIsDetectedAndRead() throws {
        let alpaca = try DataFixtures.file("a.json", #"[{"instruction":"i","input":"","output":"o"},{"instruction":"i2","input":"x","output":"o2"}]"#)
        let pc = try DataFixtures.file("pc.jsonl", #"{"prompt":"Q: 1+1","completion":" 2<|endoftext|>"}"# + "\n")
        let chat = try DataFixtures.file("c.jsonl", #"{"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"a"}]}"# + "\n")
        let text = try DataFixtures.file("t.jsonl", #"{"text":"plain"}"# + "\n\n")
        let sni = try DataFixtures.file("task001.json", #"{"Definition":["Add the numbers."],"Instances":[{"input":"1 2","output":["3","three"]},{"input":"2 2","output":["4"]}]}"#)
        let si = try DataFixtures.file("si.jsonl", #"{"instruction":"Classify","instances":[{"input":"a","output":"x"},{"input":"","output":"y"}]}"# + "\n")
        let d = try DatasetReader.read([alpaca, pc, chat, text, sni, si])
        XCTAssertEqual(d.files.map(\.format), [.alpaca, .promptCompletion, .messages, .text, .superNatural, .selfInstruct])
        XCTAssertEqual(d.files.map(\.records), [2, 1, 1, 1, 2, 2])
        XCTAssertEqual(d.examples[0].conversation.turns[0], Turn(instruction: "i", response: "o"))
        XCTAssertEqual(d.examples[1].conversation.turns[0].input, "x")
        XCTAssertEqual(d.examples[2].conversation.turns[0].response, " 2", "the <|endoftext|> marker is stripped")
        XCTAssertTrue(d.examples[2].rawPrompt)
        XCTAssertEqual(d.examples[4].conversation.text, "plain")
        XCTAssertEqual(d.examples[5].conversation.turns[0], Turn(instruction: "Add the numbers.", input: "1 2", response: "3"))
        XCTAssertEqual(d.examples[5].source.task, "task001")
        XCTAssertEqual(d.examples[8].conversation.turns[0], Turn(instruction: "Classify", response: "y"))
    }

    func testBadRecordsNameFileLineAndField() throws {
        let f = try DataFixtures.file("bad.jsonl", """
            {"instruction":"ok","output":"fine"}
            {"instruction":"no output"}
            {"instruction":"x","output":3}
            not json
            """)
        XCTAssertThrowsError(try DatasetReader.read([f])) { e in
            XCTAssertEqual("\(e)", "\(f):2: field 'output': missing")
        }
        let d = try DatasetReader.read([f], skipBadRecords: true)
        XCTAssertEqual(d.examples.count, 1)
        XCTAssertEqual(d.skipped, 3)
        XCTAssertTrue(d.skipMessages[1].contains(":3: field 'output': must be a string"), d.skipMessages[1])
        XCTAssertTrue(d.skipMessages[2].contains(":4: not valid JSON"), d.skipMessages[2])
        let chat = try DataFixtures.file("badchat.jsonl", #"{"messages":[{"role":"user","content":"u"},{"role":"robot","content":"a"}]}"#)
        XCTAssertThrowsError(try DatasetReader.read([chat])) { XCTAssertTrue("\($0)".contains("messages[1].role': unknown role 'robot'"), "\($0)") }
        let arr = try DataFixtures.file("arr.json", #"[{"instruction":"a","output":"b"},{"instruction":"","output":"b"}]"#)
        XCTAssertThrowsError(try DatasetReader.read([arr])) { XCTAssertEqual("\($0)", "\(arr) [element 1]: field 'instruction': is empty") }
        XCTAssertThrowsError(try DatasetReader.read(["/nonexistent/x.jsonl"])) { XCTAssertTrue("\($0)".contains("no such file")) }
    }

    func testRealSelfInstructAndT0Files() throws {
        guard FileManager.default.fileExists(atPath: DataFixtures.shared.path) else {
            throw XCTSkip("../shared/data is absent: real-data format tests skipped")
        }
        let seed = try DatasetReader.read([DataFixtures.shared.appendingPathComponent("self-instruct/seed_tasks.jsonl").path])
        XCTAssertEqual(seed.files[0].format, .selfInstruct)
        XCTAssertGreaterThanOrEqual(seed.examples.count, 175)
        let t0 = try DatasetReader.read([DataFixtures.shared.appendingPathComponent("t0-pool/ag_news_classify.jsonl").path])
        XCTAssertEqual(t0.files[0].format, .promptCompletion)
        XCTAssertFalse(t0.examples.contains { $0.conversation.turns[0].response.contains("<|endoftext|>") })
    }
}

final class RowTests: XCTestCase {
    func example(_ n: Int, answer: Int) -> TokenizedExample {
        TokenizedExample(ids: (0..<Int32(n)).map { $0 + 10 }, labels: (0..<n).map { $0 >= n - answer ? Int32($0 + 10) : -100 }, task: "t")
    }

    func testTruncationIsCountedAndAnswerlessExamplesDropped() throws {
        let tok = try DataFixtures.tokenizer("qwen2_style")
        func ex(_ i: String, _ o: String) -> Example {
            Example(conversation: Conversation(turns: [Turn(instruction: i, response: o)]), rawPrompt: false,
                    source: .init(file: "f", line: 1, index: nil, task: "t"))
        }
        let long = String(repeating: "word ", count: 200)
        let (rows, stats) = try DatasetTokenizer.tokenize([ex("short", "ok"), ex(long, "answer"), ex("q", long)], tok,
                                                           TokenizeOptions(template: PromptTemplate(.chatml), maxLength: 64))
        XCTAssertEqual(stats.examples, 3)
        XCTAssertEqual(stats.truncated, 2)
        XCTAssertEqual(stats.droppedNoAnswer, 1, "the long prompt leaves no answer inside 64 tokens")
        XCTAssertEqual(rows.count, 2)
        XCTAssertTrue(rows.allSatisfy { $0.ids.count <= 64 && $0.ids.count == $0.labels.count })
        XCTAssertGreaterThan(stats.truncatedTokens, 100)
    }

    func testPackingKeepsExamplesWholeAndMasksIntact() {
        let examples = [example(5, answer: 2), example(9, answer: 3), example(3, answer: 1), example(12, answer: 4), example(7, answer: 7)]
        let rows = DatasetTokenizer.pack(examples, rowLength: 12)
        XCTAssertEqual(rows.flatMap(\.lengths).sorted(), [3, 5, 7, 9, 12])
        for r in rows {
            XCTAssertLessThanOrEqual(r.ids.count, 12)
            XCTAssertEqual(r.lengths.reduce(0, +), r.ids.count)
        }
        XCTAssertEqual(rows.flatMap(\.labels).filter { $0 != -100 }.count, 2 + 3 + 1 + 4 + 7)
        XCTAssertEqual(rows[0].lengths, [5, 3])
    }

    func testValidationSplitIsDeterministicAndDisjoint() {
        let items = Array(0..<100)
        let a = DatasetTokenizer.split(items, fraction: 0.1, seed: 7), b = DatasetTokenizer.split(items, fraction: 0.1, seed: 7)
        XCTAssertEqual(a.validation, b.validation)
        XCTAssertEqual(a.validation.count, 10)
        XCTAssertEqual(Set(a.train).union(a.validation), Set(items))
        XCTAssertTrue(Set(a.train).isDisjoint(with: a.validation))
        XCTAssertNotEqual(DatasetTokenizer.split(items, fraction: 0.1, seed: 8).validation, a.validation)
    }
}
