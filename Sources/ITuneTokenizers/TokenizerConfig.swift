/// What transformers keeps in `tokenizer_config.json` beside the tokenizer proper: the names of
/// the special tokens, the chat template and length limit. Read so that the trainer knows which
/// token ends a completion and how the model expects a conversation to be laid out.
public struct TokenizerConfig: Equatable {
    /// Special tokens by role, as strings (the file may spell them as `{"content": …}` objects).
    public var bosToken: String?
    public var eosToken: String?
    public var padToken: String?
    public var unkToken: String?
    /// The Jinja chat template, kept as text (a named list of templates yields the "default" one).
    public var chatTemplate: String?
    /// Whether transformers' slow tokenizer would add bos/eos itself (Llama's `add_bos_token`).
    public var addBosToken: Bool?
    public var addEosToken: Bool?
    /// The longest input the model accepts; nil when absent or "unlimited" (transformers writes 1e30).
    public var modelMaxLength: Int?

    public init() {}

    init(_ json: JSONCursor) throws {
        guard case .object = json.value else { throw json.invalid("expected an object") }
        bosToken = try Self.tokenName(json["bos_token"])
        eosToken = try Self.tokenName(json["eos_token"])
        padToken = try Self.tokenName(json["pad_token"])
        unkToken = try Self.tokenName(json["unk_token"])
        chatTemplate = try Self.template(json["chat_template"])
        addBosToken = try json["add_bos_token"].optionalBool()
        addEosToken = try json["add_eos_token"].optionalBool()
        switch json["model_max_length"].value {
        case .int(let v): modelMaxLength = v
        case .double(let d) where d < 1e18: modelMaxLength = Int(d)
        case .double, .null: modelMaxLength = nil
        default: throw json["model_max_length"].invalid("expected a number")
        }
    }

    private static func tokenName(_ json: JSONCursor) throws -> String? {
        switch json.value {
        case .null: return nil
        case .string(let s): return s
        case .object: return try json["content"].string()
        default: throw json.invalid("expected a string or an object with \"content\"")
        }
    }

    private static func template(_ json: JSONCursor) throws -> String? {
        switch json.value {
        case .null: return nil
        case .string(let s): return s
        case .array:
            let named = try json.array()
            for entry in named where try entry["name"].optionalString() == "default" {
                return try entry["template"].string()
            }
            return try named.first.map { try $0["template"].string() }
        default: throw json.invalid("expected a string or a list of {name, template}")
        }
    }
}
