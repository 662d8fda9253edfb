import Foundation
import XCTest
import ITuneTokenizers

/// A tokenizer with no vocabulary would encode every text to nothing, and training on it would
/// report a loss of NaN over 0 tokens as a result: it is refused, naming the file and field.
final class EmptyVocabularyTests: XCTestCase {
    func testEmptyVocabularyIsRefusedNamingTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-empty-vocab-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("tokenizer.json")
        let models = [#"{"type": "BPE", "vocab": {}, "merges": []}"#,
                      #"{"type": "WordPiece", "vocab": {}}"#,
                      #"{"type": "WordLevel", "vocab": {}}"#]
        for model in models {
            try Data(#"{"model": \#(model), "added_tokens": [{"id": 0, "content": "<s>", "special": true}]}"#.utf8).write(to: file)
            do {
                _ = try Tokenizer(directory: dir)
                XCTFail("accepted an empty vocabulary: \(model)")
            } catch {
                XCTAssertEqual("\(error)", "\(file.path): model.vocab: is empty: a tokenizer needs at least one token", model)
            }
        }
        // One token is enough to load.
        try Data(#"{"model": {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "a"}}"#.utf8).write(to: file)
        XCTAssertNoThrow(try Tokenizer(directory: dir))
    }
}
