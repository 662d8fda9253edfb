import Foundation
import ITuneTokenizers

// Instruction datasets from files: the record formats people train on, detected per file, each
// record turned into a `Conversation` that remembers where it came from.

/// The record formats read. `detect` picks one per file from its first record's keys.
public enum RecordFormat: String, Sendable, CaseIterable, Codable {
    /// `instruction`, `input` (optional), `output` (Stanford Alpaca, ichikara-instruction).
    case alpaca
    /// `prompt`, `completion`: the prompt is used as written, without a template.
    case promptCompletion = "prompt-completion"
    /// `messages`: [{role: system|user|assistant, content}].
    case messages
    /// `text`: trained on whole.
    case text
    /// Super-NaturalInstructions task files: {Definition: [..], Instances: [{input, output: [..]}]}.
    case superNatural = "super-natural"
    /// Self-Instruct task lines: `instruction`, `instances`: [{input, output}].
    case selfInstruct = "self-instruct"

    static func detect(_ keys: Set<String>) -> RecordFormat? {
        if keys.contains("messages") { return .messages }
        if keys.contains("Definition") && keys.contains("Instances") { return .superNatural }
        if keys.contains("instruction") && keys.contains("instances") { return .selfInstruct }
        if keys.contains("instruction") && keys.contains("output") { return .alpaca }
        if keys.contains("prompt") && keys.contains("completion") { return .promptCompletion }
        if keys.contains("text") { return .text }
        return nil
    }
}

/// A training example and where it came from.
public struct Example: Sendable, Equatable {
    public var conversation: Conversation
    /// For prompt/completion records: the prompt is used as written (no template).
    public var rawPrompt: Bool
    public var source: Source

    public struct Source: Sendable, Equatable, CustomStringConvertible {
        public var file: String
        /// 1-based line for JSONL, the element's index (0-based) for a JSON array.
        public var line: Int?
        public var index: Int?
        /// The task: the file name without extension (one file is one task in FLAN-style pools).
        public var task: String
        public var description: String {
            file + (line.map { ":\($0)" } ?? "") + (index.map { " [element \($0)]" } ?? "")
        }
    }
}

/// A record that cannot be used, named by file, line and field.
public struct DataError: Error, CustomStringConvertible, Equatable {
    public var source: String
    public var field: String?
    public var reason: String
    public var description: String { "\(source): " + (field.map { "field '\($0)': " } ?? "") + reason }
}

/// What reading found: the examples, and the records skipped with `skipBadRecords`.
public struct LoadedData: Sendable {
    public var examples: [Example]
    public var skipped: Int
    /// The first few skip reasons, for the warning.
    public var skipMessages: [String]
    /// Records per file, and the format each file was read as.
    public var files: [(path: String, format: RecordFormat, records: Int)]
}

public enum DatasetReader {
    /// Normalisation applied to completions: the T0/P3 pools end each one with the literal
    /// end-of-text marker of GPT-style tokenizers, which the template's own eos replaces.
    public static let strippedSuffixes = ["<|endoftext|>"]

    /// Reads every `.json`/`.jsonl` file of `paths` (files, or directories searched recursively,
    /// in sorted order). `format` forces one format; otherwise each file's is detected.
    public static func read(_ paths: [String], format: RecordFormat? = nil, skipBadRecords: Bool = false) throws -> LoadedData {
        var files: [String] = []
        for p in paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else {
                throw DataError(source: p, field: nil, reason: "no such file or directory")
            }
            if isDir.boolValue {
                let found = (FileManager.default.enumerator(atPath: p)?.allObjects as? [String] ?? [])
                    .filter { $0.hasSuffix(".jsonl") || $0.hasSuffix(".json") }.sorted()
                guard !found.isEmpty else { throw DataError(source: p, field: nil, reason: "directory holds no .json or .jsonl files") }
                files += found.map { (p as NSString).appendingPathComponent($0) }
            } else {
                files.append(p)
            }
        }
        var out = LoadedData(examples: [], skipped: 0, skipMessages: [], files: [])
        for f in files {
            let before = out.examples.count
            let used = try readFile(f, format: format, skipBadRecords: skipBadRecords, into: &out)
            out.files.append((f, used, out.examples.count - before))
        }
        return out
    }

    static func readFile(_ path: String, format forced: RecordFormat?, skipBadRecords: Bool, into out: inout LoadedData) throws -> RecordFormat {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw DataError(source: path, field: nil, reason: "cannot read: \(error.localizedDescription)")
        }
        let task = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        // Records with their sources, in file order; a line that is not JSON is kept as its error
        // so that errors are reported in the order of the file.
        var records: [(Result<Any, DataError>, Example.Source)] = []
        let firstByte = data.first { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09) }
        if path.hasSuffix(".json") || firstByte == UInt8(ascii: "[") {
            let obj: Any
            do { obj = try JSONSerialization.jsonObject(with: data) } catch {
                throw DataError(source: path, field: nil, reason: "not valid JSON: \(jsonReason(error))")
            }
            if let array = obj as? [Any] {
                records = array.enumerated().map { (.success($1), Example.Source(file: path, line: nil, index: $0, task: task)) }
            } else {
                records = [(.success(obj), Example.Source(file: path, line: nil, index: nil, task: task))]
            }
        } else {
            var lineNo = 0
            for line in data.split(separator: 0x0A, omittingEmptySubsequences: false) {
                lineNo += 1
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
                let src = Example.Source(file: path, line: lineNo, index: nil, task: task)
                do {
                    records.append((.success(try JSONSerialization.jsonObject(with: Data(line))), src))
                } catch {
                    records.append((.failure(DataError(source: src.description, field: nil, reason: "not valid JSON: \(jsonReason(error))")), src))
                }
            }
        }
        guard !records.isEmpty else { throw DataError(source: path, field: nil, reason: "no records") }
        // The format of each record: forced, else detected from its keys (a file may mix them).
        var formats: [RecordFormat] = []
        for (record, src) in records {
            do {
                let value = try record.get()
                let format: RecordFormat
                if let forced {
                    format = forced
                } else {
                    // A record whose keys fit no format is read as the file's first format, so
                    // that the error names the field it lacks.
                    let dict = value as? [String: Any]
                    guard let f = dict.flatMap({ RecordFormat.detect(Set($0.keys)) }) ?? (dict != nil ? formats.first : nil) else {
                        let keys = (value as? [String: Any]).map { $0.keys.sorted().joined(separator: ", ") } ?? "not an object"
                        throw DataError(source: src.description, field: nil,
                                        reason: "cannot tell the format from the keys (\(keys)); expected one of: instruction/input/output, prompt/completion, messages, text, Definition/Instances, instruction/instances (or pass --format)")
                    }
                    format = f
                }
                if !formats.contains(format) { formats.append(format) }
                out.examples += try examples(from: value, format: format, source: src)
            } catch let e as DataError {
                if !skipBadRecords { throw e }
                out.skipped += 1
                if out.skipMessages.count < 5 { out.skipMessages.append(e.description) }
            }
        }
        return formats.first ?? forced ?? .text
    }

    static func jsonReason(_ error: Error) -> String {
        let ns = error as NSError
        return (ns.userInfo["NSDebugDescription"] as? String) ?? ns.localizedDescription
    }

    /// The examples of one record (Self-Instruct and Super-NaturalInstructions records hold many).
    static func examples(from record: Any, format: RecordFormat, source: Example.Source) throws -> [Example] {
        func fail(_ field: String?, _ reason: String) -> DataError { DataError(source: source.description, field: field, reason: reason) }
        guard let r = record as? [String: Any] else { throw fail(nil, "a record must be a JSON object") }
        func string(_ key: String, in d: [String: Any], required: Bool = true, at path: String? = nil) throws -> String? {
            let name = path ?? key
            guard let v = d[key], !(v is NSNull) else {
                if required { throw fail(name, "missing") }
                return nil
            }
            guard let s = v as? String else { throw fail(name, "must be a string, got \(type(of: v))") }
            return s
        }
        func nonEmpty(_ s: String?, _ field: String) throws -> String {
            guard let s, !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw fail(field, "is empty") }
            return s
        }
        func one(_ c: Conversation, raw: Bool = false) -> Example { Example(conversation: c, rawPrompt: raw, source: source) }
        switch format {
        case .alpaca:
            let instruction = try nonEmpty(try string("instruction", in: r), "instruction")
            let output = try nonEmpty(try string("output", in: r), "output")
            let input = try string("input", in: r, required: false)
            return [one(Conversation(turns: [Turn(instruction: instruction, input: input, response: stripped(output))]))]
        case .promptCompletion:
            let prompt = try nonEmpty(try string("prompt", in: r), "prompt")
            let completion = try nonEmpty(try string("completion", in: r).map(stripped), "completion")
            return [one(Conversation(turns: [Turn(instruction: prompt, response: completion)]), raw: true)]
        case .text:
            return [one(Conversation(text: try nonEmpty(try string("text", in: r), "text")))]
        case .messages:
            guard let list = r["messages"] as? [Any] else { throw fail("messages", r["messages"] == nil ? "missing" : "must be an array") }
            var system: String?
            var turns: [Turn] = []
            var pendingUser: String?
            for (i, m) in list.enumerated() {
                let path = "messages[\(i)]"
                guard let d = m as? [String: Any] else { throw fail(path, "must be an object with role and content") }
                let role = try string("role", in: d, at: path + ".role")!
                let content = try string("content", in: d, at: path + ".content")!
                switch role {
                case "system":
                    guard i == 0 else { throw fail(path + ".role", "a system message may only come first") }
                    system = content
                case "user", "human":
                    guard pendingUser == nil else { throw fail(path + ".role", "two user messages in a row") }
                    pendingUser = content
                case "assistant", "gpt", "model":
                    guard let u = pendingUser else { throw fail(path + ".role", "an assistant message must follow a user message") }
                    turns.append(Turn(instruction: u, response: content))
                    pendingUser = nil
                default:
                    throw fail(path + ".role", "unknown role '\(role)' (system, user, assistant)")
                }
            }
            guard !turns.isEmpty else { throw fail("messages", "holds no user/assistant exchange") }
            if pendingUser != nil { throw fail("messages", "ends with a user message that has no answer") }
            return [one(Conversation(system: system, turns: turns))]
        case .selfInstruct:
            let instruction = try nonEmpty(try string("instruction", in: r), "instruction")
            guard let instances = r["instances"] as? [Any], !instances.isEmpty else { throw fail("instances", "must be a non-empty array") }
            return try instances.enumerated().map { i, inst in
                guard let d = inst as? [String: Any] else { throw fail("instances[\(i)]", "must be an object") }
                let output = try nonEmpty(try string("output", in: d, at: "instances[\(i)].output"), "instances[\(i)].output")
                let input = try string("input", in: d, required: false, at: "instances[\(i)].input")
                return one(Conversation(turns: [Turn(instruction: instruction, input: input, response: output)]))
            }
        case .superNatural:
            guard let def = r["Definition"] as? [String], !def.isEmpty else { throw fail("Definition", "must be a non-empty array of strings") }
            guard let instances = r["Instances"] as? [Any] else { throw fail("Instances", "must be an array") }
            let instruction = def.joined(separator: "\n")
            return try instances.enumerated().map { i, inst in
                guard let d = inst as? [String: Any] else { throw fail("Instances[\(i)]", "must be an object") }
                let input = try string("input", in: d, at: "Instances[\(i)].input")
                guard let outputs = d["output"] as? [String], let first = outputs.first else {
                    throw fail("Instances[\(i)].output", "must be a non-empty array of strings")
                }
                return one(Conversation(turns: [Turn(instruction: instruction, input: input, response: first)]))
            }
        }
    }

    static func stripped(_ s: String) -> String {
        var t = s
        for suffix in strippedSuffixes where t.hasSuffix(suffix) { t = String(t.dropLast(suffix.count)) }
        return t
    }
}
