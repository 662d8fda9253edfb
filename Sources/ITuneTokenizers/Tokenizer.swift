// tokenizer.json support: byte-level BPE, SentencePiece-style BPE and Unigram, WordPiece — encoding and
// decoding exactly as the Hugging Face `tokenizers` library does, with no Python at run time.
//
// encode: added tokens are cut out of the raw text → each stretch between them is normalized →
// normalized added tokens are cut out → pre-tokenized into words → each word through the model
// (cached per word) → the post-processor adds special tokens.
import Foundation

/// A Hugging Face tokenizer loaded from `tokenizer.json` (+ `tokenizer_config.json`).
/// Why: the training data must be tokenized exactly as the model was trained, without Python.
///
/// Thread safety: `encode`, `decode` and the lookups may be called from any number of threads.
public final class Tokenizer {
    private let model: TokenizerModel
    private let normalizer: Normalizer?
    private let preTokenizer: PreTokenizer?
    private let postProcessor: PostProcessor?
    private let decoder: Decoder?
    private let rawAddedTokens: AddedTokenTrie
    private let normalizedAddedTokens: AddedTokenTrie
    // Keyed by UTF-8 bytes, not String: String == is canonical equivalence, and "é" (U+00E9) and
    // "e" + U+0301 are two tokens of a vocabulary that keeps both (the library compares bytes).
    private let addedIDByContent: [[UInt8]: Int]
    private let addedContentByID: [Int: String]
    private let specialTokens: Set<[UInt8]>
    private let maxAddedID: Int
    private let scratchPool = ScratchPool()

    /// The tokenizer_config.json fields (empty when there was no such file).
    public let config: TokenizerConfig

    static let supportedModels = ["BPE", "WordPiece", "WordLevel", "Unigram"]

    /// Loads `tokenizer.json` from a model directory, with `tokenizer_config.json` (and a
    /// `chat_template.jinja`, which newer transformers writes instead of a config field) when present.
    /// Why: a Hugging Face model directory is what users point the trainer at.
    public convenience init(directory: URL) throws {
        let tokenizerURL = directory.appendingPathComponent("tokenizer.json")
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        let templateURL = directory.appendingPathComponent("chat_template.jinja")
        let tokenizerData: Data
        do { tokenizerData = try Data(contentsOf: tokenizerURL) } catch {
            throw TokenizerError.unreadableFile(path: tokenizerURL.path, reason: Self.reason(error))
        }
        var configData: Data?
        if FileManager.default.fileExists(atPath: configURL.path) {
            do { configData = try Data(contentsOf: configURL) } catch {
                throw TokenizerError.unreadableFile(path: configURL.path, reason: Self.reason(error))
            }
        }
        var template: String?
        if FileManager.default.fileExists(atPath: templateURL.path) {
            do { template = String(decoding: try Data(contentsOf: templateURL), as: UTF8.self) } catch {
                throw TokenizerError.unreadableFile(path: templateURL.path, reason: Self.reason(error))
            }
        }
        try self.init(tokenizerJSON: tokenizerData, config: configData, tokenizerFile: tokenizerURL.path,
                      configFile: configURL.path, chatTemplateOverride: template)
    }

    /// Loads from the bytes of `tokenizer.json` and, optionally, `tokenizer_config.json`.
    /// Why: tokenizers embedded in other files or downloaded into memory need no directory.
    public convenience init(tokenizerJSON: Data, config: Data? = nil) throws {
        try self.init(tokenizerJSON: tokenizerJSON, config: config, tokenizerFile: "tokenizer.json",
                      configFile: "tokenizer_config.json", chatTemplateOverride: nil)
    }

    private static func reason(_ error: Error) -> String {
        (error as NSError).localizedDescription
    }

    init(tokenizerJSON: Data, config configData: Data?, tokenizerFile: String, configFile: String,
         chatTemplateOverride: String?) throws {
        let root = JSONCursor(try JSONParser.parse([UInt8](tokenizerJSON), file: tokenizerFile), file: tokenizerFile)
        guard case .object = root.value else { throw root.invalid("expected an object") }

        let modelJSON = root["model"]
        guard case .object = modelJSON.value else { throw modelJSON.invalid("missing (expected an object)") }
        let modelType: String
        if modelJSON.has("type") {
            modelType = try modelJSON.componentType(supported: Self.supportedModels)
        } else if modelJSON.has("merges") {
            modelType = "BPE"  // files from before the model carried its type
        } else if modelJSON.has("unk_id") {
            modelType = "Unigram"
        } else if modelJSON.has("max_input_chars_per_word") {
            modelType = "WordPiece"
        } else {
            modelType = "WordLevel"
        }
        // An empty vocabulary encodes every text to nothing: training would score no token and
        // report a loss of NaN over 0 tokens as if it were a result. Checked before the model
        // reads it, so that this is the error given, not a consequence of it.
        if case .object(let entries) = modelJSON["vocab"].value, entries.isEmpty {
            throw modelJSON["vocab"].invalid("is empty: a tokenizer needs at least one token")
        }
        if case .array(let entries) = modelJSON["vocab"].value, entries.isEmpty {
            throw modelJSON["vocab"].invalid("is empty: a tokenizer needs at least one token")
        }
        switch modelType {
        case "BPE": model = try BPEModel(modelJSON)
        case "WordPiece": model = try WordPieceModel(modelJSON)
        case "Unigram": model = try UnigramModel(modelJSON)
        default: model = try WordLevelModel(modelJSON)
        }
        guard model.vocabularyCount > 0 else { throw modelJSON["vocab"].invalid("is empty: a tokenizer needs at least one token") }
        normalizer = try Normalizers.load(root["normalizer"])
        preTokenizer = try PreTokenizers.load(root["pre_tokenizer"])
        postProcessor = try PostProcessors.load(root["post_processor"])
        decoder = try Decoders.load(root["decoder"])

        // Ids of added tokens are assigned as the reference library does when it loads the file:
        // a token the model knows keeps the model's id, a new one gets the next free id after the
        // model's vocabulary (the ids written in the file are not consulted).
        var idByContent: [[UInt8]: Int] = [:]
        var contentByID: [Int: String] = [:]
        var specials: [AddedToken] = []
        var others: [AddedToken] = []
        var specialSet = Set<[UInt8]>()
        var maxAdded = -1
        let addedField = root["added_tokens"]
        for entry in addedField.isNull ? [] : try addedField.array() {
            let token = try AddedToken(entry)
            let contentBytes = Array(token.content.utf8)
            if token.content.isEmpty || idByContent[contentBytes] != nil { continue }
            let id: Int
            if let known = model.id(of: token.content) {
                id = known
            } else if maxAdded < 0 {
                id = model.vocabularyCount
            } else {
                id = maxAdded >= model.vocabularyCount || model.vocabularyCount == 0 ? maxAdded + 1 : model.vocabularyCount
            }
            idByContent[contentBytes] = id
            // The library spells a normalized added token, id → token, as the normalizer spells it.
            if token.normalized, let n = normalizer {
                contentByID[id] = String(decoding: n.normalize(Array(token.content.utf8)), as: UTF8.self)
            } else {
                contentByID[id] = token.content
            }
            maxAdded = max(maxAdded, id)
            let resolved = token.with(id: id)
            if token.special {
                if specialSet.insert(contentBytes).inserted { specials.append(resolved) }
            } else {
                others.append(resolved)
            }
        }
        addedIDByContent = idByContent
        addedContentByID = contentByID
        specialTokens = specialSet
        maxAddedID = maxAdded
        let ordered = specials + others
        let raw = ordered.filter { !$0.normalized }
        let normalized = ordered.filter { $0.normalized }
        rawAddedTokens = AddedTokenTrie(tokens: raw, spellings: raw.map { Array($0.content.utf8) })
        let n = normalizer
        normalizedAddedTokens = AddedTokenTrie(tokens: normalized, spellings: normalized.map {
            let bytes = Array($0.content.utf8)
            return n?.normalize(bytes) ?? bytes
        })

        var parsedConfig = TokenizerConfig()
        if let configData = configData {
            let configRoot = JSONCursor(try JSONParser.parse([UInt8](configData), file: configFile), file: configFile)
            parsedConfig = try TokenizerConfig(configRoot)
        }
        if let template = chatTemplateOverride, parsedConfig.chatTemplate == nil { parsedConfig.chatTemplate = template }
        config = parsedConfig
    }

    // MARK: - Encoding

    /// The ids of `text`; with `addSpecialTokens` the post-processor's tokens (Llama's `<s>`,
    /// BERT's `[CLS]`/`[SEP]`) are added. Why: this is what the model sees during training.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        let scratch = scratchPool.take()
        defer { scratchPool.put(scratch) }
        scratch.ids.removeAll(keepingCapacity: true)
        var text = text
        text.withUTF8 { encodeRaw($0, scratch: scratch) }
        let ids = scratch.ids.map { Int($0) }
        if addSpecialTokens, let post = postProcessor { return post.process(ids) }
        return ids
    }

    /// `encode` for many texts at once, spread over all cores. Why: tokenizing a dataset.
    public func encode(batch texts: [String], addSpecialTokens: Bool = true) -> [[Int]] {
        var results = [[Int]](repeating: [], count: texts.count)
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, texts.count))
        let chunk = (texts.count + workers - 1) / max(workers, 1)
        results.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let lo = w * chunk
                let hi = min(texts.count, lo + chunk)
                if lo >= hi { return }
                for k in lo..<hi { (base! + k).pointee = encode(texts[k], addSpecialTokens: addSpecialTokens) }
            }
        }
        return results
    }

    private func encodeRaw(_ text: UnsafeBufferPointer<UInt8>, scratch: EncoderScratch) {
        guard text.count > 0 else { return }
        if rawAddedTokens.isEmpty {
            encodeStretch(text, atOrigin: true, scratch: scratch)
            return
        }
        for (range, id) in rawAddedTokens.split(text) {
            if let id = id {
                scratch.ids.append(Int32(id))
            } else {
                encodeStretch(UnsafeBufferPointer(rebasing: text[range]), atOrigin: range.lowerBound == 0, scratch: scratch)
            }
        }
    }

    /// A stretch of raw text between added tokens: normalize, cut normalized added tokens, go on.
    private func encodeStretch(_ raw: UnsafeBufferPointer<UInt8>, atOrigin: Bool, scratch: EncoderScratch) {
        let bytes = normalizer?.normalize(Array(raw)) ?? Array(raw)
        if bytes.isEmpty { return }
        // The library's Metaspace ("first") prepends only where the normalized text still starts at
        // original offset 0; a first character the normalizer deletes (a space stripped by
        // SentencePiece's `\A +` rule, a zero-width mark) moves that start.
        var atOrigin = atOrigin
        if atOrigin, let n = normalizer, let lead = raw.first,
           n.normalize(Array(raw.prefix(min(utf8Length(lead: lead), raw.count)))).isEmpty {
            atOrigin = false
        }
        if normalizedAddedTokens.isEmpty {
            encodeNormalized(bytes, 0..<bytes.count, atOrigin: atOrigin, scratch: scratch)
            return
        }
        let splits = bytes.withUnsafeBufferPointer { normalizedAddedTokens.split($0) }
        for (range, id) in splits {
            if let id = id {
                scratch.ids.append(Int32(id))
            } else {
                encodeNormalized(bytes, range, atOrigin: atOrigin && range.lowerBound == 0, scratch: scratch)
            }
        }
    }

    private func encodeNormalized(_ bytes: [UInt8], _ range: Range<Int>, atOrigin: Bool, scratch: EncoderScratch) {
        var segment = PreTokenizedSegment(bytes: bytes, pieces: [range], originStart: atOrigin ? range.lowerBound : -1,
                                          byteLevel: false)
        preTokenizer?.preTokenize(&segment)
        let cache = segment.byteLevel ? scratch.byteLevelCache : scratch.plainCache
        let byteLevel = segment.byteLevel
        segment.bytes.withUnsafeBufferPointer { buf in
            guard let p = buf.baseAddress else { return }
            for r in segment.pieces {
                let word = p + r.lowerBound
                let n = r.count
                if cache.appendCached(word, n, to: &scratch.ids) { continue }
                let first = scratch.ids.count
                if byteLevel {
                    scratch.mapped.removeAll(keepingCapacity: true)
                    ByteLevelAlphabet.appendMapped(word, 0..<n, to: &scratch.mapped)
                    scratch.mapped.withUnsafeBufferPointer {
                        model.tokenize($0, scratch: scratch.model, into: &scratch.ids)
                    }
                } else {
                    model.tokenize(UnsafeBufferPointer(start: word, count: n), scratch: scratch.model, into: &scratch.ids)
                }
                cache.insert(word, n, scratch.ids[first...])
            }
        }
    }

    // MARK: - Decoding

    /// The text of `ids`, through the tokenizer's decoder; unknown ids are skipped and, with
    /// `skipSpecialTokens`, so are special tokens. Why: to read generations and check round trips.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard let t = addedContentByID[id] ?? model.token(of: id) else { continue }
            if skipSpecialTokens && specialTokens.contains(Array(t.utf8)) { continue }
            tokens.append(t)
        }
        guard let decoder = decoder else { return tokens.joined(separator: " ") }
        return decoder.decodeChain(tokens).joined()
    }

    // MARK: - Vocabulary

    /// One more than the largest id (model vocabulary and added tokens): the number of rows an
    /// embedding matrix needs. Why: models size their embeddings from it.
    public var vocabularySize: Int { max(model.maxID, maxAddedID) + 1 }

    /// The id of a token string (added tokens first, then the model's vocabulary).
    /// Why: to find the ids of template markers such as `<|im_end|>`.
    public func id(of token: String) -> Int? {
        addedIDByContent[Array(token.utf8)] ?? model.id(of: token)
    }

    /// The token string of an id. Why: to show what the model sees, token by token.
    public func token(of id: Int) -> String? {
        addedContentByID[id] ?? model.token(of: id)
    }

    /// Whether `token` is a special added token (what `skipSpecialTokens` drops).
    public func isSpecialToken(_ token: String) -> Bool { specialTokens.contains(Array(token.utf8)) }

    /// The id of tokenizer_config.json's bos_token. Why: prompts and packing need it.
    public var bosTokenID: Int? { config.bosToken.flatMap { id(of: $0) } }
    /// The id of tokenizer_config.json's eos_token. Why: completions end with it; generation stops at it.
    public var eosTokenID: Int? { config.eosToken.flatMap { id(of: $0) } }
    /// The id of tokenizer_config.json's pad_token. Why: batches are padded with it.
    public var padTokenID: Int? { config.padToken.flatMap { id(of: $0) } }
    /// The chat template (Jinja) as text. Why: to recognise which conversation format a model expects.
    public var chatTemplate: String? { config.chatTemplate }
}

extension AddedToken {
    func with(id newID: Int) -> AddedToken {
        AddedToken(id: newID, content: content, special: special, lstrip: lstrip, rstrip: rstrip,
                   singleWord: singleWord, normalized: normalized)
    }

    init(id: Int, content: String, special: Bool, lstrip: Bool, rstrip: Bool, singleWord: Bool, normalized: Bool) {
        self.id = id
        self.content = content
        self.special = special
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.singleWord = singleWord
        self.normalized = normalized
    }
}

/// The word → ids cache of one encoding thread. Bounded: when it holds too many ids it starts over.
final class WordCache {
    private var table = ByteStringTable(capacity: 1 << 14)
    private var ids: [Int32] = []
    private static let maxIDs = 1 << 22
    private static let maxWordBytes = 256

    @inline(__always)
    func appendCached(_ p: UnsafePointer<UInt8>, _ n: Int, to out: inout [Int32]) -> Bool {
        let at = table.find(p, n)
        if at < 0 { return false }
        ids.withUnsafeBufferPointer { b in
            let start = Int(at)
            let count = Int(b[start])
            out.append(contentsOf: UnsafeBufferPointer(rebasing: b[(start + 1)..<(start + 1 + count)]))
        }
        return true
    }

    func insert(_ p: UnsafePointer<UInt8>, _ n: Int, _ result: ArraySlice<Int32>) {
        guard n <= Self.maxWordBytes else { return }
        if ids.count + result.count + 1 > Self.maxIDs {
            table.removeAll()
            ids.removeAll(keepingCapacity: true)
        }
        table.insert(p, n, value: Int32(ids.count))
        ids.append(Int32(result.count))
        ids.append(contentsOf: result)
    }
}

final class EncoderScratch {
    let model = ModelScratch()
    let plainCache = WordCache()
    let byteLevelCache = WordCache()
    var ids: [Int32] = []
    var mapped: [UInt8] = []
}

/// Scratch space per concurrent encode call: taken, used without locks, given back.
final class ScratchPool {
    private var free: [EncoderScratch] = []
    private let lock = NSLock()

    func take() -> EncoderScratch {
        lock.lock()
        defer { lock.unlock() }
        return free.popLast() ?? EncoderScratch()
    }

    func put(_ s: EncoderScratch) {
        lock.lock()
        free.append(s)
        lock.unlock()
    }
}
