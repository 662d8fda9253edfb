import Foundation
import XCTest
@testable import ITuneData
import ITuneTokenizers

enum DataFixtures {
    /// Tests/Fixtures.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    /// ../shared/data beside the package root (real public data; absent in some checkouts).
    static let shared = root.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("shared/data")

    static func tokenizer(_ name: String) throws -> Tokenizer {
        try Tokenizer(directory: root.appendingPathComponent("tokenizers/\(name)"))
    }

    /// The path of `relative` under ../shared/data, or a skip saying that it is absent.
    static func sharedPath(_ relative: String) throws -> String {
        let url = shared.appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("real-data test skipped: \(url.path) is absent (../shared/data beside the package root holds the public datasets)")
        }
        return url.path
    }

    /// A fresh temporary directory for one test (removed with the others when the test process
    /// exits).
    static func directory(_ name: String = #function) throws -> URL {
        _ = removedAtExit
        let clean = name.filter { $0.isLetter || $0.isNumber }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-data-\(getpid())-\(clean)")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Registers, once, the removal of this process's itune-data-PID-* directories at exit
    /// (each test run left some 27 of them in the temporary folder).
    private static let removedAtExit: Void = {
        atexit {
            let tmp = FileManager.default.temporaryDirectory, prefix = "itune-data-\(getpid())-"
            for name in (try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? [] where name.hasPrefix(prefix) {
                try? FileManager.default.removeItem(at: tmp.appendingPathComponent(name))
            }
        }
    }()

    /// Where `file` writes when given no directory (made once per test process).
    static let files: URL = {
        _ = removedAtExit
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-data-\(getpid())-files")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }()

    /// Writes `text` to a temporary file named `name` and returns its path.
    static func file(_ name: String, _ text: String, in dir: URL? = nil) throws -> String {
        let dir = dir ?? files
        let url = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    static func source(_ task: String = "t") -> Example.Source { Example.Source(file: "mem", line: 1, task: task) }

    static func chat(_ instruction: String, _ response: String, input: String? = nil) -> Example {
        Example(conversation: Conversation(turns: [Turn(instruction: instruction, input: input, response: response)]), source: source())
    }
}

/// The error a throwing expression throws, as its message.
func errorMessage<T>(_ body: @autoclosure () throws -> T, file: StaticString = #filePath, line: UInt = #line) -> String {
    do {
        _ = try body()
        XCTFail("expected an error", file: file, line: line)
        return ""
    } catch {
        return "\(error)"
    }
}
