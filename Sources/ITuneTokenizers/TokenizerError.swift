/// Why a tokenizer could not be loaded. Every case names the file, and where it can the JSON
/// path of the offending field, so that a user can open the file and fix it.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// A file could not be read (missing, unreadable).
    case unreadableFile(path: String, reason: String)
    /// The bytes are not JSON; `offset` is the byte where parsing stopped.
    case malformedJSON(file: String, offset: Int, reason: String)
    /// A field has the wrong shape or an impossible value.
    case invalidField(file: String, path: String, reason: String)
    /// A component type (model, normalizer, pre-tokenizer, …) this library does not implement.
    case unsupported(file: String, path: String, value: String, supported: [String])
    /// An unknown or unusable prompt template.
    case invalidTemplate(String)

    public var description: String {
        switch self {
        case .unreadableFile(let path, let reason):
            return "\(path): cannot read (\(reason))"
        case .malformedJSON(let file, let offset, let reason):
            return "\(file): malformed JSON at byte \(offset): \(reason)"
        case .invalidField(let file, let path, let reason):
            return "\(file): \(path.isEmpty ? "top level" : path): \(reason)"
        case .unsupported(let file, let path, let value, let supported):
            return "\(file): \(path): unsupported '\(value)' (supported: \(supported.joined(separator: ", ")))"
        case .invalidTemplate(let why):
            return why
        }
    }
}
