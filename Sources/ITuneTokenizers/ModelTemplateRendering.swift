import Foundation
import ITuneJinja

/// A conversation as the model's chat template writes it, with the byte ranges (UTF-8 offsets
/// into `text`) that carry the loss: every assistant turn, and nothing else.
public struct RenderedConversation: Equatable {
    public var text: String
    public var trained: [Range<Int>]
}

extension PromptTemplate {
    /// The messages of a conversation: the system prompt (when there is one), then each turn's
    /// user text and, unless left out, its answer.
    func chatMessages(_ c: Conversation, turns: Int, lastAnswer: Bool) -> [JinjaValue] {
        var out: [JinjaValue] = []
        if let system = c.system { out.append(ChatTemplate.message(role: "system", content: system)) }
        for (i, t) in c.turns.prefix(turns).enumerated() {
            out.append(ChatTemplate.message(role: "user", content: userText(t)))
            if i < turns - 1 || lastAnswer { out.append(ChatTemplate.message(role: "assistant", content: t.response)) }
        }
        return out
    }

    /// The conversation rendered by the model's template, and which bytes are the assistant's.
    ///
    /// Found by rendering, not by looking for markers: with transformers' `{% generation %}`
    /// blocks those are the spans; otherwise, as TRL's incremental approach, turn i's answer
    /// starts where the conversation up to its question, rendered with the generation prompt,
    /// ends, and runs to where the conversation through the answer stops agreeing with the whole
    /// (the answer's own end marker is inside; what the template writes before the next message
    /// is not). A template whose shorter renderings are not prefixes of the whole (one that moves
    /// the system prompt to the last user message, say) cannot be split this way: that is an
    /// error that says so, never a guess.
    public func renderConversation(_ c: Conversation) throws -> RenderedConversation {
        guard let chat else { throw TokenizerError.invalidTemplate("\(name) is not a model chat template") }
        let all = try allMessages(c)
        let tools = try toolList(c)
        let (text, generation) = try wrap { try chat.renderWithSpans(messages: all, tools: tools, addGenerationPrompt: false) }
        if !generation.isEmpty { return RenderedConversation(text: text, trained: generation) }
        let whole = Array(text.utf8)
        var trained: [Range<Int>] = []
        let answers = all.indices.filter { if case .dict(let d) = all[$0], case .string("assistant")? = d["role"] { return true } else { return false } }
        for (n, j) in answers.enumerated() {
            let before = try wrap { try chat.render(messages: Array(all[..<j]), tools: tools, addGenerationPrompt: true) }
            let start = before.utf8.count
            guard whole.starts(with: before.utf8) else {
                throw TokenizerError.invalidTemplate("the model's chat_template does not write the prompt of assistant message \(n + 1) as the start of the whole conversation "
                    + "(it rewrites earlier text when the conversation grows), so the answer tokens cannot be found by rendering; "
                    + "pass --template with a named template")
            }
            let through = Array(try wrap { try chat.render(messages: Array(all[...j]), tools: tools, addGenerationPrompt: false) }.utf8)
            var end = 0
            while end < through.count, end < whole.count, through[end] == whole[end] { end += 1 }
            if j == all.count - 1 { end = whole.count }
            if end > start, start >= (trained.last?.upperBound ?? 0) { trained.append(start..<end) }
        }
        return RenderedConversation(text: text, trained: trained)
    }

    /// Every message of a conversation: the record's own (tool calls kept) or system + turns.
    func allMessages(_ c: Conversation) throws -> [JinjaValue] {
        guard let messages = c.messages else { return chatMessages(c, turns: c.turns.count, lastAnswer: true) }
        return try messages.map { m in
            var d = JinjaDict()
            d["role"] = .string(m.role)
            if let content = m.content { d["content"] = .string(content) }
            if let fields = m.fieldsJSON, case .dict(let extra) = try JinjaValue.parseJSON(fields) {
                for (k, v) in extra.entries { d[k] = v }
            }
            return .dict(d)
        }
    }

    func toolList(_ c: Conversation) throws -> [JinjaValue]? {
        guard let json = c.toolsJSON, case .list(let l) = try JinjaValue.parseJSON(json) else { return nil }
        return l
    }

    /// The text a model continues for one instruction: the template with its generation prompt.
    public func generationPrompt(instruction: String, input: String? = nil, system: String? = nil) throws -> String {
        guard let chat else { return prompt(instruction: instruction, input: input, system: system) }
        let c = Conversation(system: system, turns: [Turn(instruction: instruction, input: input, response: "")])
        return try wrap { try chat.render(messages: chatMessages(c, turns: 1, lastAnswer: false), addGenerationPrompt: true) }
    }

    /// The prompt for a conversation's last turn (its answer left out), by whichever template.
    public func generationPrompt(for c: Conversation) throws -> String {
        guard let chat else {
            return render(c, forGeneration: true).map { if case let .text(s, _) = $0 { return s } else { return "" } }.joined()
        }
        var all = try allMessages(c)
        if case .dict(let d)? = all.last, case .string("assistant")? = d["role"] { all.removeLast() }
        let tools = try toolList(c)
        return try wrap { try chat.render(messages: all, tools: tools, addGenerationPrompt: true) }
    }

    /// The text a model continues when its answer is already begun: the conversation with its
    /// final message (the last turn's response, the start of the answer) left open, as
    /// transformers' `apply_chat_template(…, continue_final_message=True)` renders it with the
    /// model's template. A named template writes the generation prompt and the response after it.
    public func continuationPrompt(for c: Conversation) throws -> String {
        guard let chat else { return try generationPrompt(for: c) + (c.text == nil ? (c.turns.last?.response ?? "") : "") }
        let all = try allMessages(c)
        let tools = try toolList(c)
        return try wrap { try chat.render(messages: all, tools: tools, continueFinalMessage: true) }
    }

    func modelSegments(_ c: Conversation, forGeneration: Bool) throws -> [TemplateSegment] {
        if forGeneration { return [.text(try generationPrompt(for: c), trainable: false)] }
        let r = try renderConversation(c)
        let bytes = Array(r.text.utf8)
        var out: [TemplateSegment] = [], at = 0
        for span in r.trained {
            if span.lowerBound > at { out.append(.text(String(decoding: bytes[at..<span.lowerBound], as: UTF8.self), trainable: false)) }
            out.append(.text(String(decoding: bytes[span], as: UTF8.self), trainable: true))
            at = span.upperBound
        }
        if at < bytes.count { out.append(.text(String(decoding: bytes[at...], as: UTF8.self), trainable: false)) }
        return out
    }

    /// What the template writes right after an answer (its end-of-turn marker, "<|im_end|>",
    /// "<end_of_turn>", "</s>"…), found by rendering a one-turn conversation, and the eos token.
    var modelStopStrings: [String] {
        guard let chat else { return [] }
        var out: [String] = []
        let sentinel = "\u{E000}answer\u{E001}"
        let c = Conversation(turns: [Turn(instruction: "question", response: sentinel), Turn(instruction: "next", response: "x")])
        if let text = try? chat.render(messages: chatMessages(c, turns: 2, lastAnswer: true)), let r = text.range(of: sentinel) {
            // The first marker-like piece after the answer: "<…>" up to its ">", else a word.
            let after = text[r.upperBound...].drop { $0.isWhitespace }
            var marker = String(after.prefix { !$0.isWhitespace })
            if marker.hasPrefix("<"), let close = marker.firstIndex(of: ">") { marker = String(marker[...close]) }
            if !marker.isEmpty, !marker.hasPrefix("next") { out.append(marker) }
        }
        if let eos = chat.specialTokens["eos_token"], !out.contains(eos) { out.append(eos) }
        return out
    }

    private func wrap<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as JinjaError {
            throw TokenizerError.invalidTemplate("the model's chat_template " + (e.raised ? "refused the conversation: \(e.message)" : "failed: \(e)"))
        }
    }
}

extension ChatTemplate {
    /// `render(messages:…)` with the byte ranges of `{% generation %}` blocks.
    public func renderWithSpans(messages: [JinjaValue], tools: [JinjaValue]? = nil, addGenerationPrompt: Bool) throws -> (String, [Range<Int>]) {
        var context: [String: JinjaValue] = [:]
        for (k, v) in specialTokens { context[k] = .string(v) }
        for (k, v) in variables { context[k] = v }
        context["messages"] = .list(messages.map(Self.droppingNoneKeys))
        context["tools"] = tools.map { .list($0) } ?? JinjaValue.none
        context["documents"] = JinjaValue.none
        context["add_generation_prompt"] = .bool(addGenerationPrompt)
        let r = try template.renderWithGenerationSpans(context)
        return (r.text, r.generation)
    }
}

extension RenderedConversation {
    /// The text's token ids (no special tokens added: the template writes its own, as
    /// transformers' apply_chat_template tokenizes) and the token ranges of the trained bytes.
    /// A byte offset maps to the number of leading tokens that encoding the text before it
    /// shares with the whole; a token that straddles a span's start is trained.
    public func tokenized(with tokenizer: Tokenizer) -> (ids: [Int], trained: [Range<Int>]) {
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        let bytes = Array(text.utf8)
        func tokenIndex(_ offset: Int) -> Int {
            if offset <= 0 { return 0 }
            if offset >= bytes.count { return ids.count }
            let prefix = tokenizer.encode(String(decoding: bytes[..<offset], as: UTF8.self), addSpecialTokens: false)
            var n = 0
            while n < prefix.count, n < ids.count, prefix[n] == ids[n] { n += 1 }
            return n
        }
        var out: [Range<Int>] = []
        for span in trained {
            let a = tokenIndex(span.lowerBound), b = max(a, tokenIndex(span.upperBound))
            if b > a { out.append(a..<b) }
        }
        return (ids, out)
    }
}

extension PromptTemplate {
    /// The template `--template` names for a model: a named template; `model` for the model's own
    /// chat_template (an error when it has none); nil: the model's own when it has one that
    /// parses, else alpaca. Returns the template and a line saying why it was chosen.
    public static func resolve(_ name: String?, tokenizer: Tokenizer) throws -> (template: PromptTemplate, reason: String) {
        if let name, name.lowercased() != "model" {
            return (try named(name), "--template \(name)")
        }
        guard tokenizer.chatTemplate != nil else {
            if name != nil { throw TokenizerError.invalidTemplate("--template model: the model's tokenizer_config.json has no chat_template") }
            return (PromptTemplate(.alpaca), "the model has no chat_template; --template overrides")
        }
        do {
            guard let chat = try ChatTemplate(config: tokenizer.config) else { throw TokenizerError.invalidTemplate("no chat_template") }
            return (PromptTemplate(model: chat), "the model's own chat_template, rendered; --template overrides")
        } catch {
            if name != nil { throw error }
            return (detect(chatTemplate: tokenizer.chatTemplate) ?? PromptTemplate(.alpaca),
                    "the model's chat_template cannot be used (\(error)); --template overrides")
        }
    }

    /// Whether prompts of this template are tokenized without the tokenizer's own begin tokens
    /// (a model template writes what it wants, as apply_chat_template leaves them out).
    public var writesOwnSpecialTokens: Bool { chat != nil || beginsWithOwnMarker }
}
