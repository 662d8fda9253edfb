// Post-processors: what encode adds around the model's ids when special tokens are asked for —
// `<s>` in front for Llama, `[CLS] … [SEP]` for BERT, `<s> … </s>` for RoBERTa. (ByteLevel's
// post-processor only adjusts offsets, which we do not report, so it adds nothing here.)

protocol PostProcessor {
    /// `ids` wrapped with special tokens (called only when special tokens are wanted).
    func process(_ ids: [Int]) -> [Int]
}

enum PostProcessors {
    static let supported = ["TemplateProcessing", "BertProcessing", "RobertaProcessing", "ByteLevel", "Sequence"]

    static func load(_ json: JSONCursor) throws -> PostProcessor? {
        if json.isNull { return nil }
        switch try json.componentType(supported: supported) {
        case "TemplateProcessing": return try TemplatePostProcessor(json)
        case "BertProcessing", "RobertaProcessing":
            return SurroundPostProcessor(prefix: [try tokenPairID(json["cls"])], suffix: [try tokenPairID(json["sep"])])
        case "ByteLevel": return SurroundPostProcessor(prefix: [], suffix: [])
        case "Sequence":
            return SequencePostProcessor(steps: try json["processors"].array().compactMap { try load($0) })
        default: fatalError("unreachable: componentType checked the list")
        }
    }

    /// `["[CLS]", 101]` → 101.
    private static func tokenPairID(_ json: JSONCursor) throws -> Int {
        let parts = try json.array()
        guard parts.count == 2 else { throw json.invalid("expected [token, id]") }
        return try parts[1].int()
    }
}

struct SurroundPostProcessor: PostProcessor {
    let prefix: [Int]
    let suffix: [Int]
    func process(_ ids: [Int]) -> [Int] { prefix + ids + suffix }
}

struct SequencePostProcessor: PostProcessor {
    let steps: [PostProcessor]
    func process(_ ids: [Int]) -> [Int] { steps.reduce(ids) { $1.process($0) } }
}

/// The `single` template: special-token pieces and the sequence `$A`, in order.
struct TemplatePostProcessor: PostProcessor {
    enum Piece { case special([Int]), sequence }
    let pieces: [Piece]

    init(_ json: JSONCursor) throws {
        var specials: [String: [Int]] = [:]
        if !json["special_tokens"].isNull {
            for (name, entry) in try json["special_tokens"].members() {
                specials[name] = try entry["ids"].array().map { try $0.int() }
            }
        }
        var pieces: [Piece] = []
        for item in try json["single"].array() {
            if item.has("SpecialToken") {
                let idField = item["SpecialToken"]["id"]
                let name = try idField.string()
                guard let ids = specials[name] else {
                    throw idField.invalid("'\(name)' is not in special_tokens")
                }
                pieces.append(.special(ids))
            } else if item.has("Sequence") {
                let idField = item["Sequence"]["id"]
                guard try idField.string() == "A" else { throw idField.invalid("a single-sequence template can only use A") }
                pieces.append(.sequence)
            } else {
                throw item.invalid("expected {\"SpecialToken\": …} or {\"Sequence\": …}")
            }
        }
        self.pieces = pieces
    }

    func process(_ ids: [Int]) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(ids.count + 4)
        for p in pieces {
            switch p {
            case .special(let s): out.append(contentsOf: s)
            case .sequence: out.append(contentsOf: ids)
            }
        }
        return out
    }
}
