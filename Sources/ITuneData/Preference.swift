import Foundation
import ITuneTokenizers

// Preference data as TRL reads it: JSONL (or a JSON array) of {prompt, chosen, rejected}, each
// either a string or a conversation (a `messages`-style list of {role, content}): the prompt's
// list ends with a user message, chosen and rejected hold one assistant message. Each side is
// rendered with the same template as instruction data (a named template or the model's chat
// template) as the prompt's conversation followed by that answer; the loss is on that answer's
// tokens only (earlier assistant turns of the prompt are context).

/// A prompt and two answers to it, the first preferred.
public struct PreferenceExample: Sendable, Equatable {
    /// The prompt: a system message, earlier exchanges and the last instruction (the last turn,
    /// whose response is empty here).
    public var prompt: Conversation
    public var chosen: String
    public var rejected: String
    public var source: Example.Source

    public init(prompt: Conversation, chosen: String, rejected: String, source: Example.Source) {
        self.prompt = prompt
        self.chosen = chosen
        self.rejected = rejected
        self.source = source
    }

    /// The prompt answered by `answer`: what a template renders.
    public func example(answer: String) -> Example {
        var c = prompt
        c.turns[c.turns.count - 1].response = answer
        return Example(conversation: c, source: source)
    }
}

/// What reading preference files found.
public struct LoadedPreferences: Sendable {
    public var pairs: [PreferenceExample]
    public var skipped: Int
    public var skipMessages: [String]
    /// Pairs per file.
    public var files: [(path: String, pairs: Int)]
}

public enum PreferenceReader {
    /// Reads every `.json`/`.jsonl` file of `paths` (directories expanded as for instruction
    /// data). A bad record is an error naming file, line and field, or with `skipBadRecords` a
    /// counted warning.
    public static func read(_ paths: [String], skipBadRecords: Bool = false) throws -> LoadedPreferences {
        var out = LoadedPreferences(pairs: [], skipped: 0, skipMessages: [], files: [])
        for path in try DatasetReader.dataFiles(paths) {
            var data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
                throw DataError(source: path, field: nil, reason: "cannot read: \(error.localizedDescription)")
            }
            data = try TextEncoding.utf8(data, path: path)
            let task = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            let records = try DatasetReader.parseRecords(data, path: path, task: task)
            guard !records.isEmpty else { throw DataError(source: path, field: nil, reason: "no records") }
            var parser = RecordParser(options: ReadOptions())
            let before = out.pairs.count
            for (record, src) in records {
                do {
                    out.pairs.append(try pair(try record.get(), source: src, parser: &parser))
                } catch let e as DataError {
                    if !skipBadRecords { throw e }
                    out.skipped += 1
                    if out.skipMessages.count < 5 { out.skipMessages.append(e.description) }
                }
            }
            out.files.append((path, out.pairs.count - before))
        }
        return out
    }

    /// One record as a pair, every field checked.
    static func pair(_ record: Any, source: Example.Source, parser: inout RecordParser) throws -> PreferenceExample {
        func fail(_ field: String?, _ reason: String) -> DataError { DataError(source: source.description, field: field, reason: reason) }
        guard let r = record as? [String: Any] else { throw fail(nil, "a record must be a JSON object, got \(jsonType(record))") }
        for key in ["prompt", "chosen", "rejected"] where r[key] == nil || r[key] is NSNull {
            let implicit = key == "prompt" && r["chosen"] is [Any]
            throw fail(key, implicit
                ? "missing: give the prompt as its own field (conversations whose prompt is only implied by a shared prefix are not read)"
                : "missing (a preference record holds prompt, chosen and rejected)")
        }
        // The answers: a string, or a list holding one assistant message.
        func answer(_ key: String) throws -> String {
            let v = r[key]!
            let text: String
            if let s = v as? String {
                text = s
            } else if let list = v as? [Any] {
                guard list.count == 1 else { throw fail(key, "must hold exactly one assistant message, got \(list.count) messages") }
                guard let m = list[0] as? [String: Any] else { throw fail("\(key)[0]", "must be an object with role and content") }
                guard let role = m["role"] as? String else { throw fail("\(key)[0].role", m["role"] == nil ? "missing" : "must be a string") }
                guard role == "assistant" else { throw fail("\(key)[0].role", "must be 'assistant', not '\(role)'") }
                guard let c = m["content"], !(c is NSNull) else { throw fail("\(key)[0].content", "missing") }
                guard let s = c as? String else { throw fail("\(key)[0].content", "must be a string, got \(jsonType(c))") }
                text = s
            } else {
                throw fail(key, "must be a string or a list of messages, got \(jsonType(v))")
            }
            let cleaned = parser.answerText(text)
            guard !cleaned.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw fail(key, "is empty") }
            return cleaned
        }
        let chosen = try answer("chosen"), rejected = try answer("rejected")
        let prompt: Conversation
        switch r["prompt"]! {
        case let s as String:
            guard !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw fail("prompt", "is empty") }
            prompt = Conversation(turns: [Turn(instruction: s, response: "")])
        case let list as [Any]:
            guard (r["chosen"] is [Any]) == (r["rejected"] is [Any]) else {
                throw fail("rejected", "must have the same form as chosen (both strings or both message lists)")
            }
            if let last = list.last as? [String: Any], let role = last["role"] as? String, role != "user", role != "human" {
                throw fail("prompt", "must end with a user message (its last is '\(role)'); the answers go in chosen and rejected")
            }
            // The prompt's messages with a placeholder answer: the same checks as a `messages`
            // record (roles, order, a system message only first), errors naming prompt[i].
            var c = try parser.conversation(["prompt": list + [["role": "assistant", "content": "\u{0}"]]], list: "prompt", role: "role",
                                            content: "content", fail: fail)
            guard c.messages == nil else { throw fail("prompt", "holds tool calls or tool results, which preference training does not read") }
            guard c.turns.last?.response == "\u{0}" else { throw fail("prompt", "must end with a user message") }
            c.turns[c.turns.count - 1].response = ""
            prompt = c
        default:
            throw fail("prompt", "must be a string or a list of messages, got \(jsonType(r["prompt"]!))")
        }
        return PreferenceExample(prompt: prompt, chosen: chosen, rejected: rejected, source: source)
    }
}

/// A pair tokenized: prompt + chosen and prompt + rejected, labels on each answer only.
public struct TokenizedPair: Sendable, Equatable {
    public var chosen: TokenizedExample
    public var rejected: TokenizedExample
}

extension DatasetTokenizer {
    /// Every pair rendered by `o.template` (named, or the model's chat template), tokenized as
    /// instruction data is, with the loss kept on the last answer alone (a conversational
    /// prompt's earlier assistant turns are context), both sides cut to `maxLength`. A pair
    /// whose chosen or rejected answer is cut away entirely is dropped and counted.
    public static func tokenizePairs(_ pairs: [PreferenceExample], _ tokenizer: Tokenizer,
                                     _ o: TokenizeOptions) throws -> ([TokenizedPair], TokenizeStats) {
        var options = o
        options.trainOnInputs = false
        let sides = pairs.flatMap { [$0.example(answer: $0.chosen), $0.example(answer: $0.rejected)] }
        let begin = beginTokens(tokenizer)
        var stats = TokenizeStats()
        var out: [TokenizedPair] = []
        for (i, p) in pairs.enumerated() {
            var both: [TokenizedExample] = []
            for e in [sides[2 * i], sides[2 * i + 1]] {
                var t = try tokenizeWhole(e, tokenizer, options, begin: begin)
                // Only the last run of scored labels (the answer being compared) stays scored.
                if let last = t.labels.lastIndex(where: { $0 != -100 }) {
                    var start = last
                    while start > 0, t.labels[start - 1] != -100 { start -= 1 }
                    for k in 0..<start { t.labels[k] = -100 }
                }
                if t.ids.count > o.maxLength {
                    stats.truncated += 1
                    stats.truncatedTokens += t.ids.count - o.maxLength
                    t.ids.removeLast(t.ids.count - o.maxLength)
                    t.labels.removeLast(t.labels.count - o.maxLength)
                }
                both.append(t)
            }
            stats.examples += 1
            let scored = both.map { $0.labels.dropFirst().reduce(0) { $0 + ($1 == -100 ? 0 : 1) } }
            guard scored.allSatisfy({ $0 > 0 }) else {
                stats.droppedNoAnswer += 1
                if stats.firstDropped == nil {
                    stats.firstDropped = .init(source: p.source, tokens: max(both[0].ids.count, both[1].ids.count), answerStart: nil)
                }
                continue
            }
            stats.tokens += both[0].ids.count + both[1].ids.count
            stats.scoredTokens += scored[0] + scored[1]
            out.append(TokenizedPair(chosen: both[0], rejected: both[1]))
        }
        return (out, stats)
    }
}
