import Foundation
import ITuneTokenizers

// One parsed JSON record → the examples it holds, every field it uses checked and named in the
// error when it is wrong.

/// Turns one parsed record into examples, checking every field it uses.
struct RecordParser {
    let options: ReadOptions
    /// Answers and texts whose end-of-text marker was stripped.
    var stripped = 0

    init(options: ReadOptions) { self.options = options }

    /// The examples of one record (Self-Instruct and Super-NaturalInstructions records hold many).
    mutating func examples(from record: Any, format: RecordFormat, source: Example.Source) throws -> [Example] {
        func fail(_ field: String?, _ reason: String) -> DataError { DataError(source: source.description, field: field, reason: reason) }
        guard let r = record as? [String: Any] else { throw fail(nil, "a record must be a JSON object, got \(jsonType(record))") }
        func string(_ key: String, in d: [String: Any], required: Bool = true, at path: String? = nil) throws -> String? {
            let name = path ?? key
            guard let v = d[key], !(v is NSNull) else {
                if required { throw fail(name, "missing") }
                return nil
            }
            guard let s = v as? String else { throw fail(name, "must be a string, got \(jsonType(v))") }
            return s
        }
        func nonEmpty(_ s: String?, _ field: String) throws -> String {
            guard let s, !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw fail(field, "is empty") }
            return s
        }
        func answer(_ key: String, in d: [String: Any], at path: String? = nil) throws -> String {
            try nonEmpty(answerText(try string(key, in: d, at: path)!), path ?? key)
        }
        func one(_ c: Conversation, raw: Bool = false) -> Example { Example(conversation: c, rawPrompt: raw, source: source) }
        switch format {
        case .alpaca, .ichikara, .dolly:
            let (insKey, inKey, outKey) = format == .alpaca ? ("instruction", "input", "output")
                : format == .ichikara ? ("text", "input", "output") : ("instruction", "context", "response")
            let instruction = try nonEmpty(try string(insKey, in: r), insKey)
            let output = try answer(outKey, in: r)
            let input = try string(inKey, in: r, required: false)
            var e = one(Conversation(turns: [Turn(instruction: instruction, input: input, response: output)]))
            if let c = r["choices"], !(c is NSNull) {
                guard let choices = c as? [String], choices.count >= 2 else { throw fail("choices", "must be an array of at least two strings") }
                guard choices.contains(output) else { throw fail("choices", "does not hold the answer '\(output)'") }
                e.choices = choices
            }
            return [e]
        case .promptCompletion:
            let prompt = try nonEmpty(try string("prompt", in: r), "prompt")
            let completion = try answer("completion", in: r)
            return [one(Conversation(turns: [Turn(instruction: prompt, response: completion)]), raw: true)]
        case .text:
            return [one(Conversation(text: try nonEmpty(answerText(try string("text", in: r)!), "text")))]
        case .messages:
            return [one(try conversation(r, list: "messages", role: "role", content: "content", fail: fail))]
        case .sharegpt:
            return [one(try conversation(r, list: "conversations", role: "from", content: "value", fail: fail))]
        case .selfInstruct:
            let instruction = try nonEmpty(try string("instruction", in: r), "instruction")
            guard let instances = r["instances"] as? [Any], !instances.isEmpty else {
                throw fail("instances", r["instances"] == nil ? "missing" : "must be a non-empty array of {input, output}")
            }
            var src = source
            if let name = r["name"] as? String, !name.isEmpty { src.task = name }
            return try instances.enumerated().map { i, inst in
                guard let d = inst as? [String: Any] else { throw fail("instances[\(i)]", "must be an object, got \(jsonType(inst))") }
                let output = try answer("output", in: d, at: "instances[\(i)].output")
                let input = try string("input", in: d, required: false, at: "instances[\(i)].input")
                return Example(conversation: Conversation(turns: [Turn(instruction: instruction, input: input, response: output)]), source: src)
            }
        case .superNatural:
            let definition: String
            switch r["Definition"] {
            case let list as [Any] where !list.isEmpty:
                guard let strings = list as? [String] else { throw fail("Definition", "must be an array of strings") }
                definition = strings.joined(separator: "\n")
            case let s as String: definition = s
            case nil: throw fail("Definition", "missing")
            default: throw fail("Definition", "must be a non-empty array of strings")
            }
            _ = try nonEmpty(definition, "Definition")
            guard let instances = r["Instances"] as? [Any] else { throw fail("Instances", r["Instances"] == nil ? "missing" : "must be an array") }
            guard !instances.isEmpty else { throw fail("Instances", "is empty") }
            var instruction = definition
            if options.positiveExamples > 0 {
                let positives = (r["Positive Examples"] as? [Any]) ?? []
                for (i, p) in positives.prefix(options.positiveExamples).enumerated() {
                    let path = "Positive Examples[\(i)]"
                    guard let d = p as? [String: Any] else { throw fail(path, "must be an object with input and output") }
                    let input = try string("input", in: d, at: path + ".input")!
                    let output = answerText(try string("output", in: d, at: path + ".output")!)
                    instruction += "\n\nPositive Example \(i + 1) -\nInput: \(input)\nOutput: \(output)"
                }
            }
            return try instances.enumerated().map { i, inst in
                let path = "Instances[\(i)]"
                guard let d = inst as? [String: Any] else { throw fail(path, "must be an object, got \(jsonType(inst))") }
                let input = try string("input", in: d, at: path + ".input")
                // Several references may be listed; the first is the one trained on.
                guard let outputs = d["output"] as? [Any], let first = outputs.first else {
                    throw fail(path + ".output", d["output"] == nil ? "missing" : "must be a non-empty array of strings")
                }
                guard let text = first as? String else { throw fail(path + ".output[0]", "must be a string, got \(jsonType(first))") }
                let output = try nonEmpty(answerText(text), path + ".output[0]")
                return one(Conversation(turns: [Turn(instruction: instruction, input: input, response: output)]))
            }
        }
    }

    /// A chat record: an optional leading system message, then user/assistant turns that
    /// alternate and end with an answer. Roles are named as OpenAI (`user`/`assistant`) or
    /// ShareGPT (`human`/`gpt`) name them.
    mutating func conversation(_ r: [String: Any], list key: String, role roleKey: String, content contentKey: String,
                               fail: (String?, String) -> DataError) throws -> Conversation {
        guard let v = r[key] else { throw fail(key, "missing") }
        guard let list = v as? [Any] else { throw fail(key, "must be an array of {\(roleKey), \(contentKey)}, got \(jsonType(v))") }
        guard !list.isEmpty else { throw fail(key, "is an empty conversation") }
        if key == "messages", list.contains(where: { m in
            guard let d = m as? [String: Any] else { return false }
            return d["tool_calls"] != nil || ["tool", "ipython"].contains((d["role"] as? String)?.lowercased() ?? "")
        }) {
            return try toolConversation(r, list, fail: fail)
        }
        var system: String?
        var turns: [Turn] = []
        var pendingUser: String?
        for (i, m) in list.enumerated() {
            let path = "\(key)[\(i)]"
            guard let d = m as? [String: Any] else { throw fail(path, "must be an object with \(roleKey) and \(contentKey)") }
            guard let roleValue = d[roleKey] else { throw fail(path + ".\(roleKey)", "missing") }
            guard let role = roleValue as? String else { throw fail(path + ".\(roleKey)", "must be a string, got \(jsonType(roleValue))") }
            guard let contentValue = d[contentKey], !(contentValue is NSNull) else { throw fail(path + ".\(contentKey)", "missing") }
            guard let content = contentValue as? String else {
                throw fail(path + ".\(contentKey)", "must be a string, got \(jsonType(contentValue))")
            }
            switch role.lowercased() {
            case "system":
                guard i == 0 else { throw fail(path + ".\(roleKey)", "a system message may only come first") }
                system = content
            case "user", "human":
                guard pendingUser == nil else { throw fail(path + ".\(roleKey)", "two user messages in a row") }
                pendingUser = content
            case "assistant", "gpt", "model":
                guard let u = pendingUser else { throw fail(path + ".\(roleKey)", "an assistant message must follow a user message") }
                turns.append(Turn(instruction: u, response: answerText(content)))
                pendingUser = nil
            default:
                throw fail(path + ".\(roleKey)", "unknown role '\(role)' (known: system, user, assistant; human, gpt)")
            }
        }
        guard !turns.isEmpty else { throw fail(key, "holds no user/assistant exchange") }
        if pendingUser != nil { throw fail(key, "ends with a user message that has no answer") }
        return Conversation(system: system, turns: turns)
    }

    /// A `messages` record with tool calls or tool results, kept message by message (with its
    /// `tools`) for the model's chat template to render. It must end with an assistant message.
    func toolConversation(_ r: [String: Any], _ list: [Any], fail: (String?, String) -> DataError) throws -> Conversation {
        var messages: [ChatMessage] = []
        for (i, m) in list.enumerated() {
            let path = "messages[\(i)]"
            guard let d = m as? [String: Any] else { throw fail(path, "must be an object with role and content") }
            guard let role = d["role"] as? String else { throw fail(path + ".role", "missing or not a string") }
            guard ["system", "user", "assistant", "tool", "ipython"].contains(role) else {
                throw fail(path + ".role", "unknown role '\(role)' (known with tool calls: system, user, assistant, tool, ipython)")
            }
            var content: String? = nil
            if let c = d["content"], !(c is NSNull) {
                guard let s = c as? String else { throw fail(path + ".content", "must be a string, got \(jsonType(c))") }
                content = s
            } else if !(role == "assistant" && d["tool_calls"] != nil) {
                throw fail(path + ".content", "missing")
            }
            var rest = d
            rest["role"] = nil
            rest["content"] = nil
            let fields = rest.isEmpty ? nil
                : String(decoding: try JSONSerialization.data(withJSONObject: rest, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
            messages.append(ChatMessage(role: role, content: content, fieldsJSON: fields))
        }
        guard messages.last?.role == "assistant" else { throw fail("messages", "must end with an assistant message") }
        var c = Conversation(turns: [])
        c.messages = messages
        if let tools = r["tools"], !(tools is NSNull) {
            guard tools is [Any] else { throw fail("tools", "must be an array of function schemas") }
            c.toolsJSON = String(decoding: try JSONSerialization.data(withJSONObject: tools, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
        }
        return c
    }

    /// `s` with the end-of-text normalisation applied (`ReadOptions.stripEndOfTextMarker`).
    mutating func answerText(_ s: String) -> String {
        guard options.stripEndOfTextMarker else { return s }
        var t = Substring(s)
        while let last = t.last, last.isWhitespace { t = t.dropLast() }
        var changed = false
        for suffix in DatasetReader.strippedSuffixes where t.hasSuffix(suffix) {
            t = t.dropLast(suffix.count)
            changed = true
        }
        guard changed else { return s }
        stripped += 1
        return String(t)
    }
}

/// A JSON value's type in JSON's words, for error messages.
func jsonType(_ v: Any) -> String {
    switch v {
    case is NSNull: return "null"
    case is String: return "a string"
    // JSONSerialization gives booleans as NSNumbers whose type code is 'c'.
    case let n as NSNumber: return String(cString: n.objCType) == "c" ? "a boolean" : "a number"
    case is [Any]: return "an array"
    case is [String: Any]: return "an object"
    default: return "\(type(of: v))"
    }
}
