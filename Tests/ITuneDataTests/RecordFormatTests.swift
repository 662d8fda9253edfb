import Foundation
import XCTest
@testable import ITuneData
import ITuneTokenizers

/// Each record format is detected from its keys and read into the examples it holds.
final class RecordFormatTests: XCTestCase {
    func testAlpacaRecordsFromAJSONArrayWithAndWithoutInput() throws {
        let f = try DataFixtures.file("a.json", #"[{"instruction":"i","input":"","output":"o"},{"instruction":"i2","input":"x","output":"o2"},{"instruction":"i3","output":"o3"}]"#)
        let d = try DatasetReader.read([f])
        XCTAssertEqual(d.files.map(\.format), [.alpaca])
        XCTAssertEqual(d.examples.map(\.conversation.turns), [[Turn(instruction: "i", response: "o")],
                                                             [Turn(instruction: "i2", input: "x", response: "o2")],
                                                             [Turn(instruction: "i3", response: "o3")]])
        XCTAssertNil(d.examples[0].conversation.turns[0].input, "an empty input is no input")
        XCTAssertEqual(d.examples[2].source.index, 2)
        XCTAssertEqual(d.examples[2].source.task, "a")
    }

    func testPromptCompletionIsUsedAsWrittenAndLosesItsEndOfTextMarker() throws {
        let f = try DataFixtures.file("pc.jsonl", #"{"prompt":"Q: 1+1","completion":" 2<|endoftext|>"}"# + "\n" + #"{"prompt":"Q","completion":"A"}"# + "\n")
        let d = try DatasetReader.read([f])
        XCTAssertEqual(d.files[0].format, .promptCompletion)
        XCTAssertTrue(d.examples.allSatisfy(\.rawPrompt))
        XCTAssertEqual(d.examples.map { $0.conversation.turns[0].response }, [" 2", "A"])
        XCTAssertEqual(d.strippedMarkers, 1)
        let kept = try DatasetReader.read([f], options: ReadOptions(stripEndOfTextMarker: false))
        XCTAssertEqual(kept.examples[0].conversation.turns[0].response, " 2<|endoftext|>")
        XCTAssertEqual(kept.strippedMarkers, 0)
    }

    func testMessagesWithSystemAndSeveralTurns() throws {
        let f = try DataFixtures.file("c.jsonl", #"{"messages":[{"role":"system","content":"S"},{"role":"user","content":"u1"},{"role":"assistant","content":"a1"},{"role":"user","content":"u2"},{"role":"assistant","content":"a2<|endoftext|>"}]}"# + "\n")
        let d = try DatasetReader.read([f])
        XCTAssertEqual(d.files[0].format, .messages)
        XCTAssertEqual(d.examples[0].conversation, Conversation(system: "S", turns: [Turn(instruction: "u1", response: "a1"),
                                                                                    Turn(instruction: "u2", response: "a2")]))
    }

    func testShareGPTConversationsMapToMessages() throws {
        let f = try DataFixtures.file("sg.json", #"[{"conversations":[{"from":"system","value":"S"},{"from":"human","value":"h"},{"from":"gpt","value":"g"}]}]"#)
        let d = try DatasetReader.read([f])
        XCTAssertEqual(d.files[0].format, .sharegpt)
        XCTAssertEqual(d.examples[0].conversation, Conversation(system: "S", turns: [Turn(instruction: "h", response: "g")]))
    }

    func testPlainTextIsTrainedWhole() throws {
        let f = try DataFixtures.file("t.jsonl", #"{"text":"plain"}"# + "\n\n" + #"{"text":"二つ目"}"#)
        let d = try DatasetReader.read([f])
        XCTAssertEqual(d.files[0].format, .text)
        XCTAssertEqual(d.examples.map(\.conversation.text), ["plain", "二つ目"])
        XCTAssertEqual(d.examples.map(\.source.line), [1, 3], "blank lines are skipped but counted")
    }

    func testIchikaraAndDollyRecords() throws {
        let ichikara = try DataFixtures.file("ichikara.json", #"[{"ID":"ichikara-1","text":"日本の首都は？","output":"東京です。"}]"#)
        let dolly = try DataFixtures.file("dolly.jsonl", #"{"instruction":"要約して","context":"長い文","response":"短い文","category":"summarization"}"# + "\n")
        let d = try DatasetReader.read([ichikara, dolly])
        XCTAssertEqual(d.files.map(\.format), [.ichikara, .dolly])
        XCTAssertEqual(d.examples[0].conversation.turns[0], Turn(instruction: "日本の首都は？", response: "東京です。"))
        XCTAssertEqual(d.examples[1].conversation.turns[0], Turn(instruction: "要約して", input: "長い文", response: "短い文"))
    }

    func testSuperNaturalInstructionsGiveOneExamplePerInstance() throws {
        let f = try DataFixtures.file("task001_add.json", """
            {"Definition":["Add the numbers.","Digits only."],
             "Positive Examples":[{"input":"1 1","output":"2","explanation":"1+1"}],
             "Instances":[{"input":"1 2","output":["3","three"]},{"input":"2 2","output":["4"]}]}
            """)
        let d = try DatasetReader.read([f])
        XCTAssertEqual(d.files[0].format, .superNatural)
        XCTAssertEqual(d.files[0].records, 2)
        XCTAssertEqual(d.examples.map(\.conversation.turns[0]),
                       [Turn(instruction: "Add the numbers.\nDigits only.", input: "1 2", response: "3"),
                        Turn(instruction: "Add the numbers.\nDigits only.", input: "2 2", response: "4")])
        XCTAssertEqual(d.examples[1].source.task, "task001_add")
        let withExample = try DatasetReader.read([f], options: ReadOptions(positiveExamples: 2))
        XCTAssertEqual(withExample.examples[0].conversation.turns[0].instruction,
                       "Add the numbers.\nDigits only.\n\nPositive Example 1 -\nInput: 1 1\nOutput: 2")
    }

    func testSelfInstructLinesGiveOneExamplePerInstanceNamedByTask() throws {
        let f = try DataFixtures.file("si.jsonl", #"{"id":"seed_task_1","name":"classify_mood","instruction":"Classify","instances":[{"input":"a","output":"x"},{"input":"","output":"y"}],"is_classification":true}"# + "\n")
        let d = try DatasetReader.read([f])
        XCTAssertEqual(d.files[0].format, .selfInstruct)
        XCTAssertEqual(d.examples.map(\.conversation.turns[0]), [Turn(instruction: "Classify", input: "a", response: "x"),
                                                                Turn(instruction: "Classify", response: "y")])
        XCTAssertEqual(d.examples.map(\.source.task), ["classify_mood", "classify_mood"])
        XCTAssertEqual(d.examples.map(\.source.line), [1, 1])
    }

    func testFilesAndDirectoriesAreReadInSortedOrderSkippingHiddenFiles() throws {
        let dir = try DataFixtures.directory()
        _ = try DataFixtures.file("b.jsonl", #"{"text":"b"}"#, in: dir)
        _ = try DataFixtures.file("a.json", #"[{"text":"a"}]"#, in: dir)
        _ = try DataFixtures.file("sub/c.jsonl", #"{"text":"c"}"#, in: dir)
        _ = try DataFixtures.file("._a.json", "\u{0}\u{5}binary", in: dir)
        _ = try DataFixtures.file("notes.txt", "not data", in: dir)
        let extra = try DataFixtures.file("z.jsonl", #"{"text":"z"}"#)
        let d = try DatasetReader.read([extra, dir.path])
        XCTAssertEqual(d.examples.map(\.conversation.text), ["z", "a", "b", "c"])
        XCTAssertEqual(try DatasetReader.read([dir.path]).examples.map(\.conversation.text),
                       try DatasetReader.read([dir.path]).examples.map(\.conversation.text), "deterministic")
    }

    func testForcedFormatOverridesDetection() throws {
        let f = try DataFixtures.file("both.jsonl", #"{"text":"whole","output":"ignored"}"# + "\n")
        XCTAssertEqual(try DatasetReader.read([f]).files[0].format, .ichikara)
        let d = try DatasetReader.read([f], format: .text)
        XCTAssertEqual(d.examples[0].conversation.text, "whole")
    }

    func testJSONLUnderAJSONNameAndAByteOrderMarkAreRead() throws {
        let f = try DataFixtures.file("lines.json", #"{"text":"one"}"# + "\n" + #"{"text":"two"}"# + "\n")
        XCTAssertEqual(try DatasetReader.read([f]).examples.map(\.conversation.text), ["one", "two"])
        let bom = try DataFixtures.file("bom.jsonl", "\u{FEFF}" + #"{"text":"bom"}"#)
        XCTAssertEqual(try DatasetReader.read([bom]).examples.map(\.conversation.text), ["bom"])
    }

    func testCommittedFixtureRecordsOfEveryFormat() throws {
        let d = try DatasetReader.read([DataFixtures.root.appendingPathComponent("data/records").path])
        XCTAssertEqual(d.files.map(\.format), [.alpaca, .messages, .promptCompletion, .selfInstruct, .superNatural, .text])
        XCTAssertEqual(d.files.map(\.records), [4, 2, 2, 2, 2, 2])
        XCTAssertEqual(d.strippedMarkers, 3)
        XCTAssertEqual(d.skipped, 0)
    }
}
