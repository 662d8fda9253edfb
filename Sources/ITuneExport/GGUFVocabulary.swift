import Foundation

// The tokenizer as llama.cpp reads it (`tokenizer.ggml.*`), built from a Hugging Face model
// directory the way llama.cpp's convert_hf_to_gguf.py does:
// - byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM): model "gpt2", a pre-tokenizer name, every id
//   up to vocab_size as a token ("[PAD<i>]" where none), token types, and the merges;
// - SentencePiece-style BPE with byte fallback (Llama 2, TinyLlama, Mistral): model "llama",
//   pre "default", tokens, scores and token types, no merges.
// Special ids, add_bos/add_eos and the chat template follow gguf-py's SpecialVocab.
//
// One deliberate difference: for SentencePiece-style tokenizers the converter reads scores from
// `tokenizer.model` when the directory has one and writes a placeholder of -1000 for every token
// otherwise, which makes llama.cpp merge left to right instead of by rank. tokenizer.json has no
// scores, but its merges rank the tokens: here the token made by merge number k (0-based) scores
// -k, every other token 0, so llama.cpp's highest-score-first merging is BPE's lowest-rank-first.

/// llama.cpp's token types.
public enum GGUFTokenType: Int32, Sendable {
    case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

/// What tokenizer.json and tokenizer_config.json say, read for export.
struct HFTokenizerFiles {
    let tokenizer: [String: Any]
    let config: [String: Any]?
    let modelConfig: [String: Any]
    let chatTemplateFile: String?
    let path: String

    init(directory: URL, modelConfig: [String: Any]) throws {
        let tokURL = directory.appendingPathComponent("tokenizer.json")
        path = tokURL.path
        tokenizer = try readJSONObject(tokURL)
        let cfgURL = directory.appendingPathComponent("tokenizer_config.json")
        config = FileManager.default.fileExists(atPath: cfgURL.path) ? try readJSONObject(cfgURL) : nil
        self.modelConfig = modelConfig
        let jinja = directory.appendingPathComponent("chat_template.jinja")
        chatTemplateFile = FileManager.default.fileExists(atPath: jinja.path)
            ? String(decoding: try Data(contentsOf: jinja), as: UTF8.self) : nil
    }

    var model: [String: Any] { tokenizer["model"] as? [String: Any] ?? [:] }
    var addedTokens: [[String: Any]] { tokenizer["added_tokens"] as? [[String: Any]] ?? [] }

    /// Token → id of the model's vocabulary.
    func modelVocab() throws -> [String: Int] {
        guard let v = model["vocab"] as? [String: Any] else { throw ExportError.tokenizer(path, "model.vocab is missing or not an object") }
        var out: [String: Int] = [:]
        for (k, id) in v {
            guard let i = (id as? NSNumber)?.intValue, i >= 0 else { throw ExportError.tokenizer(path, "model.vocab[\(k)] is not a non-negative integer") }
            out[k] = i
        }
        return out
    }

    /// Merges as pairs, in rank order. (Split on the first U+0020 scalar, not by Character: a
    /// space followed by a joiner is one Character in Swift.)
    func mergePairs() throws -> [(String, String)] {
        guard let list = model["merges"] as? [Any] else { return [] }
        return try list.enumerated().map { i, m in
            if let s = m as? String, let sp = s.unicodeScalars.firstIndex(of: " ") {
                return (String(s.unicodeScalars[..<sp]), String(s.unicodeScalars[s.unicodeScalars.index(after: sp)...]))
            }
            if let pair = m as? [String], pair.count == 2 { return (pair[0], pair[1]) }
            throw ExportError.tokenizer(path, "model.merges[\(i)] is neither \"a b\" nor [a, b]")
        }
    }

    /// Merges as GGUF stores them: "a b", a space inside a part written as U+0120 (as gguf-py
    /// does for the pair form that transformers ≥ 4.45 writes).
    func merges() throws -> [String] {
        guard let list = model["merges"] as? [Any] else { return [] }
        if let strings = list as? [String] { return strings }
        return try mergePairs().map { $0.0.replacingOccurrences(of: " ", with: "\u{120}") + " " + $0.1.replacingOccurrences(of: " ", with: "\u{120}") }
    }

    /// Added tokens by id: content, special, normalized.
    func added() throws -> [Int: (content: String, special: Bool, normalized: Bool)] {
        var out: [Int: (String, Bool, Bool)] = [:]
        for (i, t) in addedTokens.enumerated() {
            guard let id = (t["id"] as? NSNumber)?.intValue, id >= 0, let content = t["content"] as? String else {
                throw ExportError.tokenizer(path, "added_tokens[\(i)] needs an id and a content")
            }
            out[id] = (content, (t["special"] as? Bool) ?? false, (t["normalized"] as? Bool) ?? false)
        }
        return out
    }

    /// tokenizer_config's `<role>_token`, as a string or `{"content": …}`.
    func configToken(_ role: String) -> String? {
        guard let v = config?["\(role)_token"] else { return nil }
        if let s = v as? String { return s }
        return (v as? [String: Any])?["content"] as? String
    }

    /// The Split regex of the pre-tokenizer, or "ByteLevel" for GPT-2's built-in one.
    var preTokenizerPattern: String? {
        func find(_ p: [String: Any]) -> String? {
            switch p["type"] as? String {
            case "Split": return (p["pattern"] as? [String: Any])?["Regex"] as? String
            case "ByteLevel": return (p["use_regex"] as? Bool) ?? true ? "ByteLevel" : nil
            case "Sequence": return (p["pretokenizers"] as? [[String: Any]] ?? []).lazy.compactMap(find).first
            default: return nil
            }
        }
        return (tokenizer["pre_tokenizer"] as? [String: Any]).flatMap(find)
    }

    /// Whether llama.cpp's converter would take the SentencePiece path (gguf-py's LlamaHfVocab):
    /// BPE with byte_fallback and a Sequence decoder.
    var isSentencePieceStyle: Bool {
        (model["type"] as? String ?? "BPE") == "BPE" && (model["byte_fallback"] as? Bool) == true
            && ((tokenizer["decoder"] as? [String: Any])?["type"] as? String) == "Sequence"
    }
}

/// llama.cpp's pre-tokenizer names, by the regex they stand for.
let knownPreTokenizers: [String: String] = [
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": "llama-bpe",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": "qwen2",
    "ByteLevel": "gpt-2",
]

/// The `tokenizer.*` metadata of a model directory, in the order the converter writes it.
/// `spmAllowed` is false for families whose converter always takes the byte-level path (Qwen2).
func ggufTokenizerMetadata(directory: URL, modelConfig: [String: Any], vocabSize: Int,
                           spmAllowed: Bool) throws -> [(String, GGUFValue)] {
    let files = try HFTokenizerFiles(directory: directory, modelConfig: modelConfig)
    var out: [(String, GGUFValue)] = []
    if spmAllowed, let prefix = files.config?["add_prefix_space"] as? Bool {
        out.append(("tokenizer.ggml.add_space_prefix", .bool(prefix)))
    }
    let vocab = try files.modelVocab()
    let added = try files.added()
    let sentencePiece = spmAllowed && files.isSentencePieceStyle
    var nVocab: Int? = nil
    if sentencePiece {
        let tokens = try sentencePieceTokens(files, vocab: vocab, added: added, vocabSize: vocabSize)
        nVocab = tokens.count
        out += [("tokenizer.ggml.model", .string("llama")), ("tokenizer.ggml.pre", .string("default")),
                ("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0.text) })),
                ("tokenizer.ggml.scores", .array(.float32, tokens.map { .float32($0.score) })),
                ("tokenizer.ggml.token_type", .array(.int32, tokens.map { .int32($0.type.rawValue) }))]
    } else {
        let pre = files.preTokenizerPattern.flatMap { knownPreTokenizers[$0] } ?? "default"
        var byID: [Int: String] = [:]
        for (t, i) in vocab { byID[i] = t }
        for (i, a) in added { byID[i] = a.content }
        guard let maxID = byID.keys.max(), maxID < vocabSize else {
            throw ExportError.tokenizer(files.path, "token ids reach \(byID.keys.max() ?? -1), beyond config.json's vocab_size \(vocabSize)")
        }
        var tokens: [GGUFValue] = [], types: [GGUFValue] = []
        for i in 0..<vocabSize {
            guard var t = byID[i] else {
                tokens.append(.string("[PAD\(i)]"))
                types.append(.int32(GGUFTokenType.unused.rawValue))
                continue
            }
            let type: GGUFTokenType
            if let a = added[i] {
                if a.special || looksSpecial(t) { type = .control } else {
                    t = t.replacingOccurrences(of: "\u{2581}", with: " ")
                    type = .userDefined
                }
            } else { type = .normal }
            tokens.append(.string(t))
            types.append(.int32(type.rawValue))
        }
        out += [("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string(pre)),
                ("tokenizer.ggml.tokens", .array(.string, tokens)), ("tokenizer.ggml.token_type", .array(.int32, types))]
        let merges = try files.merges()
        if !merges.isEmpty { out.append(("tokenizer.ggml.merges", .array(.string, merges.map { .string($0) }))) }
    }
    out += specialVocabulary(files, nVocab: nVocab)
    return out
}

/// The converter's test for added tokens that ought to be control tokens.
func looksSpecial(_ t: String) -> Bool {
    ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].contains(t) || (t.hasPrefix("<|") && t.hasSuffix("|>"))
        || (t.hasPrefix("<｜") && t.hasSuffix("｜>")) || (t.hasPrefix("<unused") && t.hasSuffix(">"))
}

/// gguf-py's LlamaHfVocab: the model's tokens (BYTE for <0xXX>, CONTROL for special ones), then
/// added tokens beyond them, padded with "[PAD<i>]" up to vocab_size. Scores: see the top of the file.
func sentencePieceTokens(_ files: HFTokenizerFiles, vocab: [String: Int],
                         added: [Int: (content: String, special: Bool, normalized: Bool)],
                         vocabSize: Int) throws -> [(text: String, score: Float, type: GGUFTokenType)] {
    let base = (vocab.values.max() ?? -1) + 1
    var byID = [String?](repeating: nil, count: base)
    for (t, i) in vocab { byID[i] = t }
    var rank: [String: Int] = [:]
    for (k, m) in try files.mergePairs().enumerated() where rank[m.0 + m.1] == nil { rank[m.0 + m.1] = k }
    var out: [(String, Float, GGUFTokenType)] = []
    for i in 0..<base {
        guard let t = byID[i] else {
            out.append(("[PAD\(i)]", -1000, .unused))
            continue
        }
        let type: GGUFTokenType
        if isByteToken(t) { type = .byte } else if added[i]?.special == true { type = .control } else { type = .normal }
        out.append((t, rank[t].map { -Float($0) } ?? 0, type))
    }
    for i in added.keys.sorted() where i >= base {
        guard i == out.count else {
            throw ExportError.tokenizer(files.path, "added token ids are not consecutive after the vocabulary (id \(i), expected \(out.count))")
        }
        let a = added[i]!
        out.append((a.content, -1000, a.special ? .control : .userDefined))
    }
    guard out.count <= vocabSize else {
        throw ExportError.tokenizer(files.path, "\(out.count) tokens exceed config.json's vocab_size \(vocabSize)")
    }
    while out.count < vocabSize { out.append(("[PAD\(out.count)]", -1000, .unused)) }
    return out
}

func isByteToken(_ t: String) -> Bool {
    let u = Array(t.utf8)
    guard u.count == 6, t.hasPrefix("<0x"), t.hasSuffix(">") else { return false }
    return u[3...4].allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 70) || ($0 >= 97 && $0 <= 102) }
}

/// gguf-py's SpecialVocab (the PyPI `gguf` 0.19 package): special token ids (tokenizer_config's
/// tokens looked up among the added tokens, then config.json's `<role>_token_id`), add_bos /
/// add_eos / add_sep from the post-processor, overridden by tokenizer_config's `add_<role>_token`,
/// and the chat template. Its quirks are kept: a post-processor token is compared with
/// tokenizer_config's entry as written, so an `{"content": …}` entry never matches it.
func specialVocabulary(_ files: HFTokenizerFiles, nVocab: Int?) -> [(String, GGUFValue)] {
    var roles = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]
    let idKeys = ["bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "sep": "seperator_token_id",
                  "pad": "padding_token_id", "cls": "cls_token_id", "mask": "mask_token_id", "eot": "eot_token_id",
                  "eom": "eom_token_id"]
    var ids: [(String, Int)] = []
    var adds: [(String, Bool)] = []
    func setID(_ role: String, _ id: Int?) {
        guard let id, id >= 0, !ids.contains(where: { $0.0 == role }) else { return }
        if let n = nVocab, id >= n { return }
        ids.append((role, id))
    }
    func setAdd(_ role: String, _ v: Bool) {
        if let i = adds.firstIndex(where: { $0.0 == role }) { adds[i].1 = v } else { adds.append((role, v)) }
    }
    /// tokenizer_config's entries as Python sees them: a string, or an object (truthy, equal to no string).
    enum Entry: Equatable { case text(String), object(String) }
    var config: [String: Entry] = [:]
    for r in ["bos", "eos", "unk", "sep", "pad", "cls", "mask"] {
        guard let v = files.config?["\(r)_token"] else { continue }
        if let s = v as? String, !s.isEmpty { config[r] = .text(s) } else if let c = (v as? [String: Any])?["content"] as? String {
            config[r] = .object(c)
        }
    }
    let hasConfig = files.config?.isEmpty == false
    func text(_ r: String) -> String? { if case let .text(s)? = config[r] { return s } else { return nil } }
    if config["bos"] == nil, let c = config["cls"], hasConfig { config["bos"] = c }
    if config["eos"] == nil, let s = config["sep"], hasConfig { config["eos"] = s }
    var bosText = text("bos"), clsText = text("cls"), eosText = text("eos"), sepText = text("sep")
    if let post = files.tokenizer["post_processor"] as? [String: Any] {
        let processors = post["processors"] as? [[String: Any]] ?? [post]
        for p in processors {
            switch p["type"] as? String {
            case "RobertaProcessing":
                for r in ["bos", "eos", "sep"] { setAdd(r, true) }
                if config["cls"] == nil, hasConfig {
                    let cls = (p["cls"] as? [Any])?.first as? String ?? bosText
                    if let cls { config["cls"] = .text(cls) }
                    clsText = cls
                }
                if config["sep"] == nil, hasConfig {
                    let sep = (p["sep"] as? [Any])?.first as? String ?? eosText
                    if let sep { config["sep"] = .text(sep) }
                    sepText = sep
                }
            case "TemplateProcessing":
                func special(_ e: [String: Any]?) -> String? { (e?["SpecialToken"] as? [String: Any])?["id"] as? String }
                func seq(_ e: [String: Any]?) -> String? { (e?["Sequence"] as? [String: Any])?["id"] as? String }
                let single = p["single"] as? [[String: Any]] ?? []
                var first: String? = nil, last: String? = nil
                if single.count > 1 {
                    first = special(single.first)
                    if let f = first {
                        if !hasConfig { bosText = f }
                        setAdd("bos", f == bosText || f == clsText)
                    }
                    last = special(single.last)
                    if let l = last {
                        if !hasConfig { eosText = l } else if l != eosText || config["eos"].map({ if case .object = $0 { return true } else { return false } }) == true {
                            for extra in ["eot", "eom"] where !roles.contains(extra) {
                                roles.append(extra)
                                config[extra] = config["eos"]
                                break
                            }
                            config["eos"] = .text(l)
                            eosText = l
                        }
                        setAdd("eos", l == eosText)
                    }
                }
                var pair = p["pair"] as? [[String: Any]] ?? []
                if !pair.isEmpty {
                    if let f = first, special(pair.first) == f { pair.removeFirst() }
                    if let l = last, !pair.isEmpty, special(pair.last) == l { pair.removeLast() }
                    if pair.count >= 2, seq(pair.first) == "A", seq(pair.last) == "B", pair.count > 2 {
                        let middle = Array(pair[1..<(pair.count - 1)])
                        var addSep = false
                        let seps: [String?] = [sepText, eosText]
                        if let e = special(middle.first), seps.contains(e), last == nil { addSep = true }
                        if middle.count == 2, let e = special(middle[1]), seps.contains(e) { addSep = true }
                        setAdd("sep", addSep)
                        if addSep, config["sep"] == nil, hasConfig, let e = config["eos"] { config["sep"] = e }
                    }
                }
            default: break
            }
        }
    }
    var template: String? = nil
    if let cfg = files.config, hasConfig {
        if let t = cfg["chat_template"] as? String { template = t } else if let list = cfg["chat_template"] as? [[String: Any]] {
            template = (list.first { $0["name"] as? String == "default" } ?? list.first)?["template"] as? String
        } else if cfg["chat_template"] == nil { template = files.chatTemplateFile }
        for r in roles {
            if let b = cfg["add_\(r)_token"] as? Bool { setAdd(r, b) }
            let content: String?
            switch config[r] {
            case let .text(s)?: content = s
            case let .object(s)?: content = s
            case nil: content = nil
            }
            guard let content else { continue }
            let id = files.addedTokens.first { $0["content"] as? String == content }.flatMap { ($0["id"] as? NSNumber)?.intValue }
            setID(r, id)
        }
    }
    for r in roles {
        let key = "\(r)_token_id"
        if let n = files.modelConfig[key] as? NSNumber, !(files.modelConfig[key] is Bool) { setID(r, n.intValue) }
    }
    var out: [(String, GGUFValue)] = ids.compactMap { id in idKeys[id.0].map { ("tokenizer.ggml.\($0)", .uint32(UInt32(id.1))) } }
    out += adds.map { ("tokenizer.ggml.add_\($0.0)_token", .bool($0.1)) }
    if let template { out.append(("tokenizer.chat_template", .string(template))) }
    return out
}

func readJSONObject(_ url: URL) throws -> [String: Any] {
    let data: Data
    do { data = try Data(contentsOf: url) } catch { throw ExportError.unreadable(url.path, error.localizedDescription) }
    guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
        throw ExportError.unreadable(url.path, "not a JSON object")
    }
    return obj
}
