import Foundation
import XCTest
@testable import ITuneData
import ITuneTokenizers

/// Data files in UTF-16 and UTF-32 (with and without a byte-order mark) and UTF-8 with a mark
/// read like their UTF-8 twin: same examples, same lines in every source. Characters whose
/// UTF-16 bytes include `"` (Ģ is 0x0122) or a newline (Ċ is 0x010A) once made the line mapper
/// run past the parser's elements.
final class TextEncodingTests: XCTestCase {
    /// A JSON array with one element per line from line 2, and texts full of awkward characters.
    static let array = """
        [
          {"instruction": "Ģ say \\"hi\\" Ģ", "output": "Ċ\\nĢ"},
          {"instruction": "second Ģ", "output": "ok Ċ"},
          {"instruction": "𝄞 third", "output": "ü"}
        ]
        """

    static func encoded(_ text: String, _ encoding: String.Encoding, bom: [UInt8]) -> Data {
        Data(bom) + text.data(using: encoding)!
    }

    static let variants: [(String, String.Encoding, [UInt8])] = [
        ("utf16le-bom", .utf16LittleEndian, [0xFF, 0xFE]), ("utf16le", .utf16LittleEndian, []),
        ("utf16be-bom", .utf16BigEndian, [0xFE, 0xFF]), ("utf16be", .utf16BigEndian, []),
        ("utf32le-bom", .utf32LittleEndian, [0xFF, 0xFE, 0, 0]), ("utf32be", .utf32BigEndian, []),
        ("utf8-bom", .utf8, [0xEF, 0xBB, 0xBF]),
    ]

    func testJSONArrayInEveryUnicodeEncodingReadsLikeUTF8WithTheSameLines() throws {
        let dir = try DataFixtures.directory()
        let plain = try DatasetReader.read([try DataFixtures.file("plain.json", Self.array, in: dir)])
        XCTAssertEqual(plain.examples.map(\.source.line), [2, 3, 4])
        XCTAssertEqual(plain.examples[0].conversation.turns[0].instruction, "Ģ say \"hi\" Ģ")
        for (name, encoding, bom) in Self.variants {
            let url = dir.appendingPathComponent("\(name).json")
            try Self.encoded(Self.array, encoding, bom: bom).write(to: url)
            let read = try DatasetReader.read([url.path])
            XCTAssertEqual(read.examples.map(\.conversation), plain.examples.map(\.conversation), name)
            XCTAssertEqual(read.examples.map(\.source.line), [2, 3, 4], name)
            XCTAssertEqual(read.examples.map(\.source.index), [0, 1, 2], name)
        }
    }

    func testJSONLInUTF16CountsLinesInTheDecodedText() throws {
        let dir = try DataFixtures.directory()
        let jsonl = #"{"instruction":"Ċ one","output":"Ģ"}"# + "\n\n" + #"{"instruction":"two Ċ","output":"x"}"# + "\n"
            + #"{"instruction":"Ġ three"}"# + "\n"
        for (name, encoding, bom) in Self.variants {
            let url = dir.appendingPathComponent("\(name).jsonl")
            try Self.encoded(jsonl, encoding, bom: bom).write(to: url)
            // The third record lacks its output: the error names line 4 of the decoded text.
            XCTAssertEqual(errorMessage(try DatasetReader.read([url.path])), "\(url.path):4: field 'output': missing", name)
            let ok = try DatasetReader.read([url.path], options: ReadOptions(skipBadRecords: true))
            XCTAssertEqual(ok.examples.map(\.source.line), [1, 3], name)
            XCTAssertEqual(ok.examples.first?.conversation.turns.first?.instruction, "Ċ one", name)
        }
    }

    func testBadUTF16IsAnErrorNamingTheFile() throws {
        let dir = try DataFixtures.directory()
        let odd = dir.appendingPathComponent("odd.json")
        try (Data([0xFF, 0xFE]) + "[{}]".data(using: .utf16LittleEndian)! + Data([0x41])).write(to: odd)
        XCTAssertEqual(errorMessage(try DatasetReader.read([odd.path])),
                       "\(odd.path): not valid UTF-16LE text (9 bytes after the byte-order mark, not a multiple of 2)")
        let lone = dir.appendingPathComponent("surrogate.json")
        try (Data([0xFF, 0xFE]) + "[\"".data(using: .utf16LittleEndian)! + Data([0x00, 0xD8]) + "\"]".data(using: .utf16LittleEndian)!)
            .write(to: lone)
        XCTAssertTrue(errorMessage(try DatasetReader.read([lone.path])).hasPrefix("\(lone.path): not valid UTF-16LE text (an unpaired surrogate"))
    }

    /// A single huge record whose prompt fills --max-length: no training rows, and the error says
    /// which file, which record and why (the size is not what matters; the test keeps it small).
    func testAFileWhoseOnlyRecordLosesItsAnswerSaysWhichFileAndWhy() throws {
        let dir = try DataFixtures.directory()
        let prompt = String(repeating: "a long instruction ", count: 4000)
        let path = try DataFixtures.file("huge.jsonl", #"{"instruction":"\#(prompt)","output":"the answer"}"# + "\n", in: dir)
        let data = try DatasetReader.read([path])
        let tok = try DataFixtures.tokenizer("qwen2_style")
        let (rows, stats) = try DatasetTokenizer.tokenize(data.examples, tok, TokenizeOptions(template: PromptTemplate(.alpaca), maxLength: 64))
        XCTAssertEqual(rows.count, 0)
        let error = try XCTUnwrap(stats.noRowsError(maxLength: 64))
        XCTAssertEqual(error.source, path)
        let message = "\(error)"
        XCTAssertTrue(message.hasPrefix("\(path): no training rows: all 1 example(s) lost their whole answer to --max-length 64"), message)
        XCTAssertTrue(message.contains("(the first, \(path):1, is "), message)
        XCTAssertTrue(message.contains("raise --max-length"), message)
        // Some rows kept: no error.
        let fine = [DataFixtures.chat("short", "ok")] + data.examples
        let (kept, keptStats) = try DatasetTokenizer.tokenize(fine, tok, TokenizeOptions(template: PromptTemplate(.alpaca), maxLength: 64))
        XCTAssertEqual(kept.count, 1)
        XCTAssertNil(keptStats.noRowsError(maxLength: 64))
    }
}
