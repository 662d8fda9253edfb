import Foundation
import XCTest
@testable import ITuneData

/// A bad record is an error naming its file, line and field; `skipBadRecords` turns errors
/// into counted warnings, and nothing is dropped without a count.
final class RecordErrorTests: XCTestCase {
    func testMissingFieldNamesFileLineAndField() throws {
        let f = try DataFixtures.file("bad.jsonl", #"{"instruction":"ok","output":"fine"}"# + "\n" + #"{"instruction":"no output"}"# + "\n")
        XCTAssertEqual(errorMessage(try DatasetReader.read([f])), "\(f):2: field 'output': missing")
    }

    func testWrongTypeSaysWhatWasFound() throws {
        let f = try DataFixtures.file("type.jsonl", #"{"instruction":"x","output":3}"#)
        XCTAssertEqual(errorMessage(try DatasetReader.read([f])), "\(f):1: field 'output': must be a string, got a number")
        let g = try DataFixtures.file("type2.jsonl", #"{"prompt":"x","completion":["a"]}"#)
        XCTAssertEqual(errorMessage(try DatasetReader.read([g])), "\(g):1: field 'completion': must be a string, got an array")
    }

    func testEmptyAnswerOrInstructionIsAnError() throws {
        let f = try DataFixtures.file("empty.jsonl", #"{"instruction":"  ","output":"x"}"#)
        XCTAssertEqual(errorMessage(try DatasetReader.read([f])), "\(f):1: field 'instruction': is empty")
        let g = try DataFixtures.file("empty2.jsonl", #"{"prompt":"p","completion":"<|endoftext|>"}"#)
        XCTAssertEqual(errorMessage(try DatasetReader.read([g])), "\(g):1: field 'completion': is empty",
                       "a completion that is only the marker is empty once normalised")
    }

    func testLineThatIsNotJSON() throws {
        let f = try DataFixtures.file("nj.jsonl", #"{"text":"a"}"# + "\n" + "{not json" + "\n")
        XCTAssertTrue(errorMessage(try DatasetReader.read([f])).hasPrefix("\(f):2: not valid JSON"))
    }

    func testRecordThatIsNotAnObjectOrOfNoKnownFormat() throws {
        let f = try DataFixtures.file("arr.jsonl", #""just a string""#)
        XCTAssertEqual(errorMessage(try DatasetReader.read([f])), "\(f):1: a record must be a JSON object, got a string")
        let g = try DataFixtures.file("keys.jsonl", #"{"question":"q","answer":"a"}"#)
        XCTAssertTrue(errorMessage(try DatasetReader.read([g])).hasPrefix("\(g):1: cannot tell the format from the keys (answer, question)"))
    }

    func testJSONArrayElementsAreNamedByLineAndIndex() throws {
        let f = try DataFixtures.file("arr.json", """
            [
              {"instruction": "a", "output": "b"},
              {"instruction": "[not, a, \\"bracket\\"]",
               "output": "{b}"},
              {"instruction": "",
               "output": "b"}
            ]
            """)
        XCTAssertEqual(errorMessage(try DatasetReader.read([f])), "\(f):5 [element 2]: field 'instruction': is empty")
        let d = try DatasetReader.read([f], skipBadRecords: true)
        XCTAssertEqual(d.examples.map(\.source.line), [2, 3])
    }

    func testInvalidJSONFileNamesTheLine() throws {
        let f = try DataFixtures.file("broken.json", "[\n{\"text\": \"a\"},\n{\"text\": tru}\n]")
        let message = errorMessage(try DatasetReader.read([f]))
        XCTAssertTrue(message.hasPrefix("\(f):3: not valid JSON"), message)
    }

    func testConversationErrorsNameTheMessage() throws {
        func message(_ json: String) throws -> String {
            let f = try DataFixtures.file("chat.jsonl", json)
            return errorMessage(try DatasetReader.read([f])).replacingOccurrences(of: f, with: "F")
        }
        XCTAssertEqual(try message(#"{"messages":[]}"#), "F:1: field 'messages': is an empty conversation")
        XCTAssertEqual(try message(#"{"messages":"hi"}"#), "F:1: field 'messages': must be an array of {role, content}, got a string")
        XCTAssertEqual(try message(#"{"messages":[{"role":"user","content":"u"},{"role":"robot","content":"a"}]}"#),
                       "F:1: field 'messages[1].role': unknown role 'robot' (known: system, user, assistant; human, gpt)")
        XCTAssertEqual(try message(#"{"messages":[{"role":"assistant","content":"a"}]}"#),
                       "F:1: field 'messages[0].role': an assistant message must follow a user message")
        XCTAssertEqual(try message(#"{"messages":[{"role":"user","content":"u"},{"role":"system","content":"s"}]}"#),
                       "F:1: field 'messages[1].role': a system message may only come first")
        XCTAssertEqual(try message(#"{"messages":[{"role":"user","content":"u"}]}"#), "F:1: field 'messages': holds no user/assistant exchange")
        XCTAssertEqual(try message(#"{"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"a"},{"role":"user","content":"u2"}]}"#),
                       "F:1: field 'messages': ends with a user message that has no answer")
        XCTAssertEqual(try message(#"{"messages":[{"role":"user","content":"u"},{"role":"user","content":"u2"}]}"#),
                       "F:1: field 'messages[1].role': two user messages in a row")
        XCTAssertEqual(try message(#"{"messages":[{"role":"user","content":["u"]}]}"#),
                       "F:1: field 'messages[0].content': must be a string, got an array")
        XCTAssertEqual(try message(#"{"messages":[{"content":"u"}]}"#), "F:1: field 'messages[0].role': missing")
        XCTAssertEqual(try message(#"{"conversations":[{"from":"human","value":"h"},{"from":"bot","value":"b"}]}"#),
                       "F:1: field 'conversations[1].from': unknown role 'bot' (known: system, user, assistant; human, gpt)")
    }

    func testTaskFileErrorsNameTheInstance() throws {
        let sni = try DataFixtures.file("task9.json", #"{"Definition":["d"],"Instances":[{"input":"a","output":["x"]},{"input":"b","output":[]}]}"#)
        XCTAssertEqual(errorMessage(try DatasetReader.read([sni])), "\(sni):1: field 'Instances[1].output': must be a non-empty array of strings")
        let noDef = try DataFixtures.file("task10.json", #"{"Definition":[],"Instances":[{"input":"a","output":["x"]}]}"#)
        XCTAssertEqual(errorMessage(try DatasetReader.read([noDef])), "\(noDef):1: field 'Definition': must be a non-empty array of strings")
        let si = try DataFixtures.file("si.jsonl", #"{"instruction":"i","instances":[{"input":"a","output":"x"},{"input":"b"}]}"#)
        XCTAssertEqual(errorMessage(try DatasetReader.read([si])), "\(si):1: field 'instances[1].output': missing")
        let siEmpty = try DataFixtures.file("si2.jsonl", #"{"instruction":"i","instances":[]}"#)
        XCTAssertEqual(errorMessage(try DatasetReader.read([siEmpty])), "\(siEmpty):1: field 'instances': must be a non-empty array of {input, output}")
    }

    func testMissingFilesEmptyDirectoriesAndEmptyFiles() throws {
        XCTAssertEqual(errorMessage(try DatasetReader.read(["/nonexistent/x.jsonl"])), "/nonexistent/x.jsonl: no such file or directory")
        let dir = try DataFixtures.directory()
        XCTAssertEqual(errorMessage(try DatasetReader.read([dir.path])), "\(dir.path): directory holds no .json or .jsonl files")
        let empty = try DataFixtures.file("empty.jsonl", "\n  \n")
        XCTAssertEqual(errorMessage(try DatasetReader.read([empty])), "\(empty): no records")
        XCTAssertEqual(errorMessage(try DatasetReader.read([])), "data: no data files given")
    }

    func testSkipBadRecordsCountsThemAndKeepsTheFirstMessages() throws {
        var lines = [#"{"instruction":"ok","output":"fine"}"#]
        lines += (0..<7).map { #"{"instruction":"bad \#($0)"}"# }
        lines += ["{oops", #"{"instruction":"ok2","output":"fine2"}"#, #"{"messages":[]}"#]
        let f = try DataFixtures.file("mixed.jsonl", lines.joined(separator: "\n"))
        let d = try DatasetReader.read([f], skipBadRecords: true)
        XCTAssertEqual(d.examples.map { $0.conversation.turns[0].instruction }, ["ok", "ok2"])
        XCTAssertEqual(d.skipped, 9)
        XCTAssertEqual(d.skipMessages.count, 5)
        XCTAssertEqual(d.skipMessages[0], "\(f):2: field 'output': missing")
        XCTAssertEqual(d.files[0].records, 2)
        XCTAssertEqual(d.examples.count + d.skipped, lines.count, "every line is either an example or counted")
    }

    func testSkippingDoesNotHideUnreadableFiles() throws {
        XCTAssertThrowsError(try DatasetReader.read(["/nonexistent/y.json"], skipBadRecords: true))
    }
}
