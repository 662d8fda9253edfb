import Foundation

// Prompt templates: how an instruction and its answer become one training text, with which
// parts carry the loss. Rendering keeps the parts apart (segments) so that the masks are exact
// at token boundaries.

/// One instruction/answer exchange; `input` is the optional context of Alpaca-style data.
public struct Turn: Sendable, Equatable, Codable {
    public var instruction: String
    public var input: String?
    public var response: String

    public init(instruction: String, input: String? = nil, response: String) {
        self.instruction = instruction
        self.input = input.flatMap { $0.isEmpty ? nil : $0 }
        self.response = response
    }
}

/// One message of a chat record kept as written: its role, its content (absent on an assistant
/// message that only calls tools), and its other fields (`tool_calls`, `tool_call_id`, `name`)
/// as a JSON object's text, keys sorted.
public struct ChatMessage: Sendable, Equatable, Codable {
    public var role: String
    public var content: String?
    public var fieldsJSON: String?

    public init(role: String, content: String?, fieldsJSON: String? = nil) {
        self.role = role
        self.content = content
        self.fieldsJSON = fieldsJSON
    }
}

/// An example to train on: a conversation (one or more turns, an optional system prompt), or
/// plain text that is trained on whole.
public struct Conversation: Sendable, Equatable, Codable {
    public var system: String?
    public var turns: [Turn]
    /// Set for `text` records: the whole text, no template.
    public var text: String?
    /// The record's own messages, kept when it holds tool calls or tool results: only the model's
    /// chat template can render those (as it would at inference); `turns` then holds no turns.
    public var messages: [ChatMessage]?
    /// The record's `tools` (function schemas), as JSON text, keys sorted.
    public var toolsJSON: String?

    public init(system: String? = nil, turns: [Turn]) {
        self.system = system
        self.turns = turns
        text = nil
    }

    public init(text: String) {
        system = nil
        turns = []
        self.text = text
    }
}

/// A piece of a rendered example.
public enum TemplateSegment: Sendable, Equatable {
    /// Text, trained on (the answer) or not (the prompt).
    case text(String, trainable: Bool)
    /// The tokenizer's end-of-sequence token, trained on (the model learns to stop).
    case eos
}

/// A prompt format: how a `Conversation` becomes the text a model is trained on and prompted
/// with. `PromptTemplate.named(_:)` takes the names `itune-gpu --template` accepts
/// (`descriptions` lists them); `detect(chatTemplate:)` recognises a model's own template.
public struct PromptTemplate: Sendable, Equatable {
    public enum Style: String, Sendable, CaseIterable {
        case alpaca, alpacaJA = "alpaca-ja", llmJP = "llm-jp", chatml, llama3, plain
        /// The model's own chat_template, rendered (`PromptTemplate(model:)`); not a name
        /// `named(_:)` can build, since it needs the model's tokenizer_config.
        case model

        public static var allCases: [Style] { [.alpaca, .alpacaJA, .llmJP, .chatml, .llama3, .plain] }
    }

    public let style: Style
    /// The model's chat template when `style` is `.model`.
    public var chat: ChatTemplate?
    /// A system prompt used when a conversation has none, as the model's own chat_template
    /// does (Qwen2's "You are a helpful assistant."). Why: a model tuned on its template's
    /// default system prompt sees it at inference too; training without it shifts the prompt.
    public var defaultSystem: String?
    public var name: String { style.rawValue }

    public init(_ style: Style, defaultSystem: String? = nil) {
        self.style = style
        self.defaultSystem = defaultSystem
    }

    /// The model's own chat template: conversations are rendered by it and the trained tokens
    /// found by rendering (see `renderConversation`).
    public init(model chat: ChatTemplate) {
        style = .model
        self.chat = chat
        defaultSystem = nil
    }

    public static let all: [PromptTemplate] = Style.allCases.map { PromptTemplate($0) }

    /// What each name renders, for `--help` and errors.
    public static let descriptions: [(String, String)] = [
        ("alpaca", "Stanford Alpaca, English (### Instruction: / ### Input: / ### Response:)"),
        ("alpaca-ja", "ichikara-instruction style: ### 指示: / ### 入力: / ### 回答:"),
        ("llm-jp", "llm-jp / rinna style: 以下は、タスクを説明する指示です… ### 指示: / ### 入力: / ### 応答:"),
        ("chatml", "ChatML as Qwen2 uses it: <|im_start|>role … <|im_end|>"),
        ("llama3", "Llama 3 chat: <|start_header_id|>role<|end_header_id|> … <|eot_id|>"),
        ("plain", "instruction, a newline, the answer; no markers"),
    ]

    /// Other spellings people reach for, mapped to the names above.
    public static let aliases: [String: Style] = [
        "ichikara": .alpacaJA, "alpaca-ja-kaitou": .alpacaJA,
        "alpaca-ja-outou": .llmJP, "rinna": .llmJP, "llmjp": .llmJP,
        "qwen": .chatml, "qwen2": .chatml, "im_start": .chatml,
        "llama-3": .llama3, "llama3-chat": .llama3,
        "none": .plain,
    ]

    /// The template called `name` (case-insensitive; `aliases` accepted). An unknown name is an
    /// error that lists the known ones.
    public static func named(_ name: String) throws -> PromptTemplate {
        let key = name.lowercased().trimmingCharacters(in: .whitespaces)
        guard let s = Style(rawValue: key) ?? aliases[key] else {
            throw TokenizerError.invalidTemplate("unknown template '\(name)'; known: \(Style.allCases.map(\.rawValue).joined(separator: ", "))"
                + " (also accepted: \(aliases.keys.sorted().joined(separator: ", ")))")
        }
        return PromptTemplate(s)
    }

    /// The template a model's own `chat_template` is, when it is recognisably one of ours: its
    /// marker strings are matched (`<|im_start|>` for ChatML; `<|start_header_id|>` with
    /// `<|eot_id|>` for Llama 3). A default system prompt the template writes when the
    /// conversation has none (Qwen2, Qwen2.5) is kept in `defaultSystem`. nil: not one we know.
    public static func detect(chatTemplate: String?) -> PromptTemplate? {
        guard let t = chatTemplate else { return nil }
        if t.contains("<|im_start|>") { return PromptTemplate(.chatml, defaultSystem: defaultChatMLSystem(t)) }
        if t.contains("<|start_header_id|>") && t.contains("<|eot_id|>") { return PromptTemplate(.llama3) }
        return nil
    }

    /// The literal system text of `'<|im_start|>system\nYou are …<|im_end|>'` in a Jinja template;
    /// nil when the system turn is built from a variable (quotes or braces in between).
    static func defaultChatMLSystem(_ template: String) -> String? {
        for marker in ["<|im_start|>system\\n", "<|im_start|>system\n"] {
            var rest = template[...]
            while let r = rest.range(of: marker) {
                rest = rest[r.upperBound...]
                guard let end = rest.range(of: "<|im_end|>") else { break }
                let body = rest[..<end.lowerBound]
                if !body.isEmpty, !body.contains(where: { "'\"{}+".contains($0) }) {
                    return body.replacingOccurrences(of: "\\n", with: "\n")
                }
            }
        }
        return nil
    }

    /// Marker strings the template expects the tokenizer to hold as single (special) tokens.
    public var markerTokens: [String] {
        switch style {
        case .chatml: return ["<|im_start|>", "<|im_end|>"]
        case .llama3: return ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        default: return []
        }
    }

    /// The markers of this template that `tokenizer` does not know as tokens. Why: ChatML on a
    /// tokenizer without `<|im_start|>` still trains, but on the marker spelled out in pieces,
    /// which is rarely what was meant; callers warn with this list.
    public func markersMissing(in tokenizer: Tokenizer) -> [String] {
        markerTokens.filter { tokenizer.id(of: $0) == nil }
    }

    /// Whether the template writes its own begin-of-text marker (then no bos is prepended).
    public var beginsWithOwnMarker: Bool { style == .llama3 }

    /// The segments of a conversation. Every assistant turn is trainable; with
    /// `forGeneration` the last turn's response is left out and the prompt ends where the
    /// model should start writing.
    public func render(_ c: Conversation, forGeneration: Bool = false) -> [TemplateSegment] {
        if let text = c.text { return forGeneration ? [.text(text, trainable: false)] : [.text(text, trainable: true), .eos] }
        if chat != nil {
            // A model template can refuse a conversation; callers that must know use renderConversation.
            return (try? modelSegments(c, forGeneration: forGeneration)) ?? []
        }
        var out: [TemplateSegment] = []
        func prompt(_ s: String) { out.append(.text(s, trainable: false)) }
        let system = c.system ?? defaultSystem
        for (i, turn) in c.turns.enumerated() {
            let last = i == c.turns.count - 1
            let skipAnswer = forGeneration && last
            switch style {
            case .alpaca, .alpacaJA, .llmJP:
                if i == 0, let system { prompt(system + "\n\n") }
                prompt(instructionBlock(turn, first: i == 0 && system == nil))
                if !skipAnswer {
                    out.append(.text(turn.response, trainable: true))
                    out.append(.eos)
                    if !last { prompt("\n\n") }
                }
            case .chatml:
                if i == 0, let system { prompt("<|im_start|>system\n\(system)<|im_end|>\n") }
                prompt("<|im_start|>user\n\(userText(turn))<|im_end|>\n<|im_start|>assistant\n")
                if !skipAnswer {
                    out.append(.text(turn.response + "<|im_end|>", trainable: true))
                    prompt("\n")
                }
            case .llama3:
                if i == 0 {
                    prompt("<|begin_of_text|>")
                    if let system { prompt("<|start_header_id|>system<|end_header_id|>\n\n\(system)<|eot_id|>") }
                }
                prompt("<|start_header_id|>user<|end_header_id|>\n\n\(userText(turn))<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
                if !skipAnswer { out.append(.text(turn.response + "<|eot_id|>", trainable: true)) }
            case .model:
                break
            case .plain:
                if i == 0, let system { prompt(system + "\n") }
                prompt(userText(turn) + "\n")
                if !skipAnswer {
                    out.append(.text(turn.response, trainable: true))
                    out.append(.eos)
                    if !last { prompt("\n") }
                }
            }
        }
        return merged(out)
    }

    /// The prompt text a model continues at inference for one instruction.
    public func prompt(instruction: String, input: String? = nil, system: String? = nil) -> String {
        if chat != nil { return (try? generationPrompt(instruction: instruction, input: input, system: system)) ?? "" }
        return render(Conversation(system: system, turns: [Turn(instruction: instruction, input: input, response: "")]), forGeneration: true)
            .map { if case let .text(s, _) = $0 { return s } else { return "" } }.joined()
    }

    /// Text the model writes after its answer in this template, which generation stops at.
    public var stopStrings: [String] {
        switch style {
        case .model: return modelStopStrings
        case .chatml: return ["<|im_end|>"]
        case .llama3: return ["<|eot_id|>"]
        case .alpaca: return ["### Instruction:"]
        case .alpacaJA, .llmJP: return ["### 指示:"]
        case .plain: return []
        }
    }

    func userText(_ t: Turn) -> String { t.input.map { "\(t.instruction)\n\n\($0)" } ?? t.instruction }

    private func instructionBlock(_ t: Turn, first: Bool) -> String {
        switch style {
        case .alpaca:
            // Stanford Alpaca's prompts (tatsu-lab/stanford_alpaca, train.py PROMPT_DICT).
            if let input = t.input {
                return (first ? "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n" : "")
                    + "### Instruction:\n\(t.instruction)\n\n### Input:\n\(input)\n\n### Response:\n"
            }
            return (first ? "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" : "")
                + "### Instruction:\n\(t.instruction)\n\n### Response:\n"
        case .alpacaJA:
            // ichikara-instruction records (`text`, `output`) as Japanese instruction-tuning recipes
            // lay them out: no preamble, 回答 ("answer") where llm-jp's form has 応答.
            if let input = t.input { return "### 指示:\n\(t.instruction)\n\n### 入力:\n\(input)\n\n### 回答:\n" }
            return "### 指示:\n\(t.instruction)\n\n### 回答:\n"
        case .llmJP:
            // The Japanese Alpaca preamble with ### 応答:. Without input, as llm-jp's instruction
            // models are prompted (model card of llm-jp/llm-jp-13b-instruct-full-dolly_en-dolly_ja-
            // ichikara_003_001-oasst_en-oasst_ja-v1.1: "以下は、タスクを説明する指示です。要求を適切に
            // 満たす応答を書きなさい。\n\n### 指示:\n{instruction}\n\n### 応答:\n"); with input, as
            // llm-jp-eval formats its tasks (llm-jp/llm-jp-eval PROMPTS.md, PR #91: "以下は、タスクを
            // 説明する指示と、文脈のある入力の組み合わせです。…\n\n### 指示:\n…\n\n### 入力:\n…\n\n
            // ### 応答:"). rinna's nekomata/youri instruction models "adopt the Alpaca input format"
            // in this Japanese wording (rinna/nekomata-7b-instruction model card).
            if let input = t.input {
                return (first ? "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n" : "")
                    + "### 指示:\n\(t.instruction)\n\n### 入力:\n\(input)\n\n### 応答:\n"
            }
            return (first ? "以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。\n\n" : "")
                + "### 指示:\n\(t.instruction)\n\n### 応答:\n"
        default:
            return userText(t)
        }
    }

    /// Adjacent prompt texts joined (fewer tokenizer calls, same tokens at the same boundaries
    /// as the rendered string would give between prompt and answer).
    private func merged(_ segments: [TemplateSegment]) -> [TemplateSegment] {
        var out: [TemplateSegment] = []
        for s in segments {
            if case let .text(t, false) = s, case let .text(prev, false)? = out.last {
                out[out.count - 1] = .text(prev + t, trainable: false)
            } else {
                out.append(s)
            }
        }
        return out
    }
}
