import Foundation
import ITuneTokenizers

// Instruction datasets from files: the record formats people train on, detected per record from
// its keys, each record turned into one or more `Example`s that remember where they came from.
// Reading never drops a record silently: a bad one is an error naming file, line and field, or,
// with `skipBadRecords`, a counted warning.

/// The record formats read. Detected from each record's keys unless one is forced.
public enum RecordFormat: String, Sendable, CaseIterable, Codable {
    /// `instruction`, `input` (optional), `output` (Stanford Alpaca and its translations).
    case alpaca
    /// `prompt`, `completion`: the prompt is used as written, without a template (T0/P3 pools).
    case promptCompletion = "prompt-completion"
    /// `messages`: [{role: system|user|assistant, content}] (OpenAI / TRL conversational).
    case messages
    /// `conversations`: [{from: system|human|gpt, value}] (ShareGPT).
    case sharegpt
    /// `text`: trained on whole.
    case text
    /// ichikara-instruction: `text` (the instruction), `output`, `input` (optional).
    case ichikara
    /// databricks-dolly-15k (and -ja): `instruction`, `context` (optional), `response`.
    case dolly
    /// Super-NaturalInstructions task files: {Definition: [..], Instances: [{input, output: [..]}],
    /// Positive Examples (optional)}: one example per instance.
    case superNatural = "super-natural"
    /// Self-Instruct task lines: `instruction`, `instances`: [{input, output}]: one example per instance.
    case selfInstruct = "self-instruct"

    /// The format whose keys a record has; nil when no format fits.
    public static func detect(_ keys: Set<String>) -> RecordFormat? {
        if keys.contains("messages") { return .messages }
        if keys.contains("conversations") { return .sharegpt }
        if keys.contains("Definition") && keys.contains("Instances") { return .superNatural }
        if keys.contains("instruction") && keys.contains("instances") { return .selfInstruct }
        if keys.contains("instruction") && keys.contains("output") { return .alpaca }
        if keys.contains("instruction") && keys.contains("response") { return .dolly }
        if keys.contains("prompt") && keys.contains("completion") { return .promptCompletion }
        if keys.contains("text") && keys.contains("output") { return .ichikara }
        if keys.contains("text") { return .text }
        return nil
    }
}

/// A training example and where it came from. Three shapes: a conversation (an optional system
/// prompt and instruction/answer turns) rendered by a template; a prompt/response pair used as
/// written (`rawPrompt`, for prompt/completion data); plain text trained on whole
/// (`conversation.text`).
public struct Example: Sendable, Equatable {
    public var conversation: Conversation
    /// For prompt/completion records: the prompt is used as written (no template).
    public var rawPrompt: Bool
    public var source: Source
    /// The answers a multiple-choice record offers (its `choices` field, the reference among
    /// them): evaluation ranks these by likelihood (rank classification). nil: free-form.
    public var choices: [String]? = nil

    public init(conversation: Conversation, rawPrompt: Bool = false, source: Source) {
        self.conversation = conversation
        self.rawPrompt = rawPrompt
        self.source = source
    }

    /// A prompt used as written and the response trained on.
    public init(prompt: String, response: String, source: Source) {
        self.init(conversation: Conversation(turns: [Turn(instruction: prompt, response: response)]), rawPrompt: true, source: source)
    }

    /// Text trained on whole.
    public init(text: String, source: Source) {
        self.init(conversation: Conversation(text: text), source: source)
    }

    /// Where an example came from: for error messages, and for mixing tasks later.
    public struct Source: Sendable, Equatable, CustomStringConvertible {
        public var file: String
        /// 1-based line: of the record in a JSONL file, of the element's first character in a
        /// JSON array.
        public var line: Int?
        /// The element's index (0-based) in a JSON array file.
        public var index: Int?
        /// The task: Self-Instruct's `name` where the record has one, else the file name without
        /// extension (one file is one task in FLAN-style pools and Super-NaturalInstructions).
        public var task: String

        public init(file: String, line: Int? = nil, index: Int? = nil, task: String) {
            self.file = file
            self.line = line
            self.index = index
            self.task = task
        }

        public var description: String {
            file + (line.map { ":\($0)" } ?? "") + (index.map { " [element \($0)]" } ?? "")
        }
    }
}

/// A record that cannot be used, named by file, line and field.
public struct DataError: Error, CustomStringConvertible, Equatable {
    /// `file:line` (with `[element i]` in a JSON array).
    public var source: String
    /// The field at fault, as a path (`messages[2].role`); nil when the record as a whole is.
    public var field: String?
    public var reason: String

    public init(source: String, field: String?, reason: String) {
        self.source = source
        self.field = field
        self.reason = reason
    }

    public var description: String { "\(source): " + (field.map { "field '\($0)': " } ?? "") + reason }
}

/// How files are read.
public struct ReadOptions: Sendable, Equatable {
    /// Read every record as this format instead of detecting it from the keys.
    public var format: RecordFormat?
    /// Skip records that cannot be used, counting them (`LoadedData.skipped`), instead of
    /// stopping at the first. A file that cannot be read at all is still an error.
    public var skipBadRecords = false
    /// Normalisation: drop a trailing literal `<|endoftext|>` (then trailing whitespace) from
    /// answers and texts. Why: the T0/P3 pools and other GPT-made data end each completion with
    /// GPT-2's end-of-text marker spelled out; the template appends the model's own end token,
    /// and a model taught to write the spelled-out marker never stops. Counted in
    /// `LoadedData.strippedMarkers`.
    public var stripEndOfTextMarker = true
    /// Super-NaturalInstructions: how many of a task's `Positive Examples` to put after the
    /// definition in the instruction (Tk-Instruct's "definition + 2 positive examples" is 2).
    public var positiveExamples = 0
    /// How many skip messages to keep for the warning.
    public var maxSkipMessages = 5

    public init(format: RecordFormat? = nil, skipBadRecords: Bool = false, stripEndOfTextMarker: Bool = true,
                positiveExamples: Int = 0) {
        self.format = format
        self.skipBadRecords = skipBadRecords
        self.stripEndOfTextMarker = stripEndOfTextMarker
        self.positiveExamples = positiveExamples
    }
}

/// What reading found: the examples, and what was skipped or normalised on the way.
public struct LoadedData: Sendable {
    public var examples: [Example]
    /// Records skipped with `skipBadRecords` (a Self-Instruct line counts once, whatever its
    /// instances).
    public var skipped: Int
    /// The first few skip reasons, for the warning.
    public var skipMessages: [String]
    /// Records per file, and the format each file was read as (its first record's).
    public var files: [(path: String, format: RecordFormat, records: Int)]
    /// Answers and texts whose trailing `<|endoftext|>` was stripped (`ReadOptions.stripEndOfTextMarker`).
    public var strippedMarkers = 0
}

public enum DatasetReader {
    /// GPT-2's end-of-text marker, which some datasets spell out at the end of every answer.
    public static let endOfTextMarker = "<|endoftext|>"
    /// The suffixes `ReadOptions.stripEndOfTextMarker` removes.
    public static let strippedSuffixes = [endOfTextMarker]

    /// Reads every `.json`/`.jsonl` file of `paths` (files, or directories searched recursively;
    /// each directory's files in sorted order, hidden files left out). `format` forces one
    /// format; otherwise each record's is detected from its keys.
    public static func read(_ paths: [String], format: RecordFormat? = nil, skipBadRecords: Bool = false) throws -> LoadedData {
        try read(paths, options: ReadOptions(format: format, skipBadRecords: skipBadRecords))
    }

    /// `read` with every option.
    public static func read(_ paths: [String], options: ReadOptions) throws -> LoadedData {
        var out = LoadedData(examples: [], skipped: 0, skipMessages: [], files: [])
        for f in try dataFiles(paths) {
            let before = out.examples.count
            let used = try readFile(f, options, into: &out)
            out.files.append((f, used, out.examples.count - before))
        }
        return out
    }

    /// The data files named by `paths`, directories expanded (sorted, recursive, no hidden files).
    static func dataFiles(_ paths: [String]) throws -> [String] {
        guard !paths.isEmpty else { throw DataError(source: "data", field: nil, reason: "no data files given") }
        var files: [String] = []
        for p in paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else {
                throw DataError(source: p, field: nil, reason: "no such file or directory")
            }
            guard isDir.boolValue else { files.append(p); continue }
            // Hidden files are editor and OS droppings (macOS writes `._name.json` beside real files).
            let found = (FileManager.default.enumerator(atPath: p)?.allObjects as? [String] ?? [])
                .filter { rel in
                    (rel.hasSuffix(".jsonl") || rel.hasSuffix(".json"))
                        && !rel.split(separator: "/").contains { $0.hasPrefix(".") }
                }
                .sorted()
            guard !found.isEmpty else { throw DataError(source: p, field: nil, reason: "directory holds no .json or .jsonl files") }
            files += found.map { (p as NSString).appendingPathComponent($0) }
        }
        return files
    }

    static func readFile(_ path: String, _ options: ReadOptions, into out: inout LoadedData) throws -> RecordFormat {
        var data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw DataError(source: path, field: nil, reason: "cannot read: \(error.localizedDescription)")
        }
        // UTF-16/32 (with or without a byte-order mark) and UTF-8's mark: decoded to plain UTF-8
        // first, so that lines are counted in the text the parser reads.
        data = try TextEncoding.utf8(data, path: path)
        let fileTask = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        let records = try parseRecords(data, path: path, task: fileTask)
        guard !records.isEmpty else { throw DataError(source: path, field: nil, reason: "no records") }

        var parser = RecordParser(options: options)
        var formats: [RecordFormat] = []
        for (record, src) in records {
            do {
                let value = try record.get()
                let format: RecordFormat
                guard let dict = value as? [String: Any] else {
                    throw DataError(source: src.description, field: nil, reason: "a record must be a JSON object, got \(jsonType(value))")
                }
                if let forced = options.format {
                    format = forced
                } else {
                    // A record whose keys fit no format is read as the file's first format, so
                    // that the error names the field it lacks.
                    guard let f = RecordFormat.detect(Set(dict.keys)) ?? formats.first else {
                        throw DataError(source: src.description, field: nil,
                                        reason: "cannot tell the format from the keys (\(dict.keys.sorted().joined(separator: ", "))); expected one of: instruction/input/output, prompt/completion, messages, conversations, text, text/output, instruction/context/response, Definition/Instances, instruction/instances (or pass --format)")
                    }
                    format = f
                }
                if !formats.contains(format) { formats.append(format) }
                out.examples += try parser.examples(from: value, format: format, source: src)
            } catch let e as DataError {
                if !options.skipBadRecords { throw e }
                out.skipped += 1
                if out.skipMessages.count < options.maxSkipMessages { out.skipMessages.append(e.description) }
            }
        }
        out.strippedMarkers += parser.stripped
        return formats.first ?? options.format ?? .text
    }

    /// The records of a file with their sources, in file order. A JSONL line that is not JSON
    /// is kept as its error, so that errors come in the order of the file. A `.json` file that
    /// is really JSONL (one object per line, a common mislabelling) is read as JSONL.
    static func parseRecords(_ data: Data, path: String, task: String) throws -> [(Result<Any, DataError>, Example.Source)] {
        let firstByte = data.first { !isSpace($0) }
        if firstByte == UInt8(ascii: "[") || (path.hasSuffix(".json") && firstByte == UInt8(ascii: "{")) {
            do {
                let obj = try JSONSerialization.jsonObject(with: data)
                if let array = obj as? [Any] {
                    let lines = arrayElementLines(data)
                    return array.enumerated().map { i, v in
                        (.success(v), Example.Source(file: path, line: lines.flatMap { i < $0.count ? $0[i] : nil }, index: i, task: task))
                    }
                }
                return [(.success(obj), Example.Source(file: path, line: 1, task: task))]
            } catch {
                // One object per line under a .json name: the first line parses on its own.
                let firstLine = data.prefix { $0 != 0x0A }
                let looksLikeJSONL = firstByte == UInt8(ascii: "{") && firstLine.count < data.count
                    && (try? JSONSerialization.jsonObject(with: Data(firstLine))) != nil
                if !looksLikeJSONL {
                    throw DataError(source: path + jsonErrorLine(error, data).map { ":\($0)" }.orEmpty, field: nil,
                                    reason: "not valid JSON: \(jsonReason(error))")
                }
            }
        }
        var records: [(Result<Any, DataError>, Example.Source)] = []
        var lineNo = 0
        for line in data.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNo += 1
            if line.allSatisfy(isSpace) { continue }
            let src = Example.Source(file: path, line: lineNo, task: task)
            do {
                // Fragments allowed: a line holding a bare string or number is a record of the
                // wrong kind (said so when it is read), not a line of bad JSON.
                records.append((.success(try JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed])), src))
            } catch {
                records.append((.failure(DataError(source: src.description, field: nil, reason: "not valid JSON: \(jsonReason(error))")), src))
            }
        }
        return records
    }

    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }

    /// The 1-based line of each element's first byte in a top-level JSON array; nil if the scan
    /// disagrees with the parser (it should not). One pass, strings and nesting tracked.
    static func arrayElementLines(_ data: Data) -> [Int]? {
        var lines: [Int] = []
        var line = 1, depth = 0
        var inString = false, escaped = false, expectElement = false
        for b in data {
            if b == 0x0A { line += 1 }
            if inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
                continue
            }
            if expectElement && !isSpace(b) && b != UInt8(ascii: "]") {
                lines.append(line)
                expectElement = false
            }
            switch b {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth == 1 { expectElement = true }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            case UInt8(ascii: ","): if depth == 1 { expectElement = true }
            default: break
            }
        }
        return lines
    }

    static func jsonReason(_ error: Error) -> String {
        let ns = error as NSError
        return (ns.userInfo["NSDebugDescription"] as? String) ?? ns.localizedDescription
    }

    /// The line of a JSONSerialization error, from its "around character N" (a byte offset).
    static func jsonErrorLine(_ error: Error, _ data: Data) -> Int? {
        let reason = jsonReason(error)
        guard let r = reason.range(of: "character ") else { return nil }
        guard let offset = Int(reason[r.upperBound...].prefix { $0.isNumber }), offset <= data.count else { return nil }
        return data.prefix(offset).reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
    }
}

extension Optional where Wrapped == String {
    fileprivate var orEmpty: String { self ?? "" }
}
