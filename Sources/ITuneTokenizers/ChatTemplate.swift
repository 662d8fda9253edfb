import Foundation
import ITuneJinja

/// A model's own chat template (the Jinja `chat_template` of tokenizer_config.json), rendered as
/// transformers' `apply_chat_template` renders it: the messages, `tools` and `documents` (None when
/// absent), `add_generation_prompt`, and the special tokens by name (`bos_token`, `eos_token`, …).
///
/// Why: the format a model was tuned on is this program, not a pattern we can recognise; rendering
/// it is the only way to train and prompt every instruct model in its own format.
public struct ChatTemplate: Equatable, @unchecked Sendable {
    public let template: JinjaTemplate
    /// `bos_token`, `eos_token`, `unk_token`, `pad_token` as the template sees them.
    public let specialTokens: [String: String]
    /// More variables every rendering sees (transformers' template kwargs, e.g. `date_string`).
    public var variables: [String: JinjaValue] = [:]

    /// The template of a tokenizer_config; nil when it has none. A template that does not parse
    /// is an error naming its line and column.
    public init?(config: TokenizerConfig) throws {
        guard let source = config.chatTemplate else { return nil }
        try self.init(source: source, config: config)
    }

    public init(source: String, config: TokenizerConfig) throws {
        do {
            template = try JinjaTemplate(source)
        } catch let e as JinjaError {
            throw TokenizerError.invalidTemplate("chat_template of tokenizer_config.json: \(e)")
        }
        var tokens: [String: String] = [:]
        tokens["bos_token"] = config.bosToken
        tokens["eos_token"] = config.eosToken
        tokens["unk_token"] = config.unkToken
        tokens["pad_token"] = config.padToken
        specialTokens = tokens
    }

    /// The text of `messages` (a list of {role, content, …} dicts). Keys whose value is None are
    /// dropped first, as transformers does. `extra` adds template variables (`date_string`, …).
    public func render(messages: [JinjaValue], tools: [JinjaValue]? = nil, documents: [JinjaValue]? = nil,
                       addGenerationPrompt: Bool = false, extra: [String: JinjaValue] = [:], now: Date = Date()) throws -> String {
        var context: [String: JinjaValue] = [:]
        for (k, v) in specialTokens { context[k] = .string(v) }
        for (k, v) in variables { context[k] = v }
        for (k, v) in extra { context[k] = v }
        context["messages"] = .list(messages.map(Self.droppingNoneKeys))
        context["tools"] = tools.map { .list($0) } ?? JinjaValue.none
        context["documents"] = documents.map { .list($0) } ?? JinjaValue.none
        context["add_generation_prompt"] = .bool(addGenerationPrompt)
        return try template.render(context, now: now)
    }

    /// Plain role/content messages.
    public func render(_ messages: [(role: String, content: String)], addGenerationPrompt: Bool = false,
                       extra: [String: JinjaValue] = [:]) throws -> String {
        try render(messages: messages.map { Self.message(role: $0.role, content: $0.content) },
                   addGenerationPrompt: addGenerationPrompt, extra: extra)
    }

    public static func message(role: String, content: String) -> JinjaValue {
        .dict(JinjaDict([("role", .string(role)), ("content", .string(content))]))
    }

    // Immutable after parsing; two are the same template when their sources and tokens are.
    public static func == (a: ChatTemplate, b: ChatTemplate) -> Bool {
        a.template.source == b.template.source && a.specialTokens == b.specialTokens
            && a.variables.keys.sorted() == b.variables.keys.sorted()
            && a.variables.allSatisfy { k, v in b.variables[k].map { $0.pythonRepr == v.pythonRepr } ?? false }
    }

    static func droppingNoneKeys(_ m: JinjaValue) -> JinjaValue {
        guard case .dict(let d) = m else { return m }
        var out = JinjaDict()
        for (k, v) in d.entries {
            if case .none = v { continue }
            out[k] = v
        }
        return .dict(out)
    }
}
