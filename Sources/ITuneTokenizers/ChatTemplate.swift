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
    ///
    /// `continueFinalMessage` is transformers' `continue_final_message`: the last message is left
    /// open (no end-of-turn marker or anything else the template writes after it) so that the
    /// model continues it, the way to "prefill" the start of an answer. As transformers does it, a
    /// tag is appended to the message's content (the last text block of a list), the template
    /// rendered, and the text cut where the tag begins (and right-stripped where the template
    /// trimmed the tag's trailing space); refused with `addGenerationPrompt`, and when the
    /// conversation is empty, the last message has no content, the template never reads
    /// `content`, or the rendering drops the message.
    public func render(messages: [JinjaValue], tools: [JinjaValue]? = nil, documents: [JinjaValue]? = nil,
                       addGenerationPrompt: Bool = false, continueFinalMessage: Bool = false,
                       extra: [String: JinjaValue] = [:], now: Date = Date()) throws -> String {
        var messages = messages.map(Self.droppingNoneKeys)
        var finalText = ""
        if continueFinalMessage {
            if addGenerationPrompt {
                throw TokenizerError.invalidTemplate("continue_final_message and add_generation_prompt are not compatible: the first continues "
                    + "the final message, the second starts a new assistant message after it")
            }
            (messages, finalText) = try Self.taggingFinalMessage(messages, templateSource: template.source)
        }
        var context: [String: JinjaValue] = [:]
        for (k, v) in specialTokens { context[k] = .string(v) }
        for (k, v) in variables { context[k] = v }
        for (k, v) in extra { context[k] = v }
        context["messages"] = .list(messages)
        context["tools"] = tools.map { .list($0) } ?? JinjaValue.none
        context["documents"] = documents.map { .list($0) } ?? JinjaValue.none
        context["add_generation_prompt"] = .bool(addGenerationPrompt)
        let text = try template.render(context, now: now)
        return continueFinalMessage ? try Self.cutAtContinueTag(text, finalText: finalText) : text
    }

    /// What transformers appends to the final message's text to find where the message ends.
    static let continueTag = "CONTINUE_FINAL_MESSAGE_TAG "

    /// The messages with the tag appended to the last message's content (or to the last block of
    /// its content list that has a "text"), and that text as it was.
    static func taggingFinalMessage(_ messages: [JinjaValue], templateSource: String) throws -> ([JinjaValue], String) {
        func refuse(_ why: String) -> TokenizerError { .invalidTemplate("continue_final_message: " + why) }
        guard case .dict(var last)? = messages.last else { throw refuse("the conversation is empty") }
        guard let content = last["content"] else { throw refuse("the final message has no \"content\" to continue") }
        guard templateSource.contains("content") else { throw refuse("the chat_template never reads \"content\", so there is nothing to continue") }
        let finalText: String
        switch content {
        case .string(let s):
            finalText = s
            last["content"] = .string(s + continueTag)
        case .list(var blocks):
            guard let k = blocks.lastIndex(where: { if case .dict(let b) = $0, b["text"] != nil { return true } else { return false } }),
                  case .dict(var block) = blocks[k], case .string(let s)? = block["text"] else {
                throw refuse("the final message has no text block to continue")
            }
            finalText = s
            block["text"] = .string(s + continueTag)
            blocks[k] = .dict(block)
            last["content"] = .list(blocks)
        default:
            throw refuse("the final message's content is a \(content.typeName), not text")
        }
        var out = messages
        out[out.count - 1] = .dict(last)
        return (out, finalText)
    }

    /// The rendering up to the tag (the last one: a message may quote it); right-stripped when
    /// the template trimmed the space the tag ends with.
    static func cutAtContinueTag(_ text: String, finalText: String) throws -> String {
        // Byte-wise, as Python's `in` and rindex compare code points, not canonical equivalents.
        let bytes = Array(text.utf8), mark = Array(continueTag.utf8.dropLast()), needle = Array(pythonStripped(finalText).utf8)
        func lastIndex(of n: [UInt8]) -> Int? {
            guard n.count <= bytes.count else { return nil }
            if n.isEmpty { return bytes.count }
            return stride(from: bytes.count - n.count, through: 0, by: -1).first { bytes[$0..<($0 + n.count)].elementsEqual(n) }
        }
        guard lastIndex(of: needle) != nil, let at = lastIndex(of: mark) else {
            throw TokenizerError.invalidTemplate("continue_final_message: the final message does not appear in the chat_template's rendering "
                + "(the template drops or rewrites part of it), so it cannot be left open")
        }
        let cut = String(decoding: bytes[..<at], as: UTF8.self)
        return bytes[at...].starts(with: Array(continueTag.utf8)) ? cut : pythonStripped(cut, left: false)
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
