// A small JSON reader for tokenizer files, and a cursor that remembers where in the document it
// stands so that every complaint names the file and the field ("pre_tokenizer.pretokenizers[1].type").
//
// Why not JSONSerialization: a Llama 3 tokenizer.json is ~9 MB with 400k strings; going through
// NSDictionary/NSNumber bridging is several times slower on Linux, and its errors carry no path.

/// A parsed JSON value. Objects keep their members in document order (vocab order is meaningful
/// to nobody, but template `special_tokens` and error messages read better in order).
enum JSONValue {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// Parses UTF-8 JSON bytes. Throws `TokenizerError.malformedJSON` with the byte offset.
struct JSONParser {
    private let bytes: [UInt8]
    private var i = 0
    private let file: String

    static func parse(_ data: [UInt8], file: String) throws -> JSONValue {
        var parser = JSONParser(bytes: data, file: file)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.i != parser.bytes.count { throw parser.error("unexpected content after the top-level value") }
        return value
    }

    private init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
        // A UTF-8 byte order mark is tolerated, as Python's json.load(open(..., encoding="utf-8-sig")) would.
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { i = 3 }
    }

    private func error(_ reason: String) -> TokenizerError {
        .malformedJSON(file: file, offset: i, reason: reason)
    }

    private mutating func skipWhitespace() {
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { i += 1 } else { break }
        }
    }

    private mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth < 512 else { throw error("nesting deeper than 512 levels") }
        guard i < bytes.count else { throw error("unexpected end of input") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        // Python's json.dump writes these for non-finite floats; accept them rather than refuse the file.
        case UInt8(ascii: "N"): try expectLiteral("NaN"); return .double(.nan)
        case UInt8(ascii: "I"): try expectLiteral("Infinity"); return .double(.infinity)
        default: throw error("unexpected character '\(printable(bytes[i]))'")
        }
    }

    private func printable(_ b: UInt8) -> String {
        b >= 0x20 && b < 0x7F ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
    }

    private mutating func expectLiteral(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw error("unexpected end of input") }
        let p = word.utf8Start
        for k in 0..<n where bytes[i + k] != p[k] { throw error("invalid literal, expected '\(word)'") }
        i += n
    }

    private mutating func parseObject(depth: Int) throws -> JSONValue {
        i += 1
        var members: [(key: String, value: JSONValue)] = []
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw error("expected ':' after a key") }
            i += 1
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            members.append((key, value))
            skipWhitespace()
            guard i < bytes.count else { throw error("unexpected end of input inside an object") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            throw error("expected ',' or '}' in an object")
        }
    }

    private mutating func parseArray(depth: Int) throws -> JSONValue {
        i += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(elements) }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard i < bytes.count else { throw error("unexpected end of input inside an array") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(elements) }
            throw error("expected ',' or ']' in an array")
        }
    }

    private mutating func parseNumber() throws -> JSONValue {
        let start = i
        var isInteger = true
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        while i < bytes.count {
            let b = bytes[i]
            if b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") { i += 1; continue }
            if b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E")
                || b == UInt8(ascii: "+") || b == UInt8(ascii: "-") { isInteger = false; i += 1; continue }
            break
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if isInteger, let v = Int(text) { return .int(v) }
        if let v = Double(text) { return .double(v) }
        i = start
        throw error("invalid number '\(text)'")
    }

    private mutating func parseHex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[i]
            let d: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw error("invalid hex digit in \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    private mutating func parseString() throws -> String {
        i += 1  // opening quote
        let start = i
        // Fast path: no escapes.
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                let s = String(decoding: bytes[start..<i], as: UTF8.self)
                i += 1
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw error("control character inside a string") }
            i += 1
        }
        var out = Array(bytes[start..<i])
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                i += 1
                return String(decoding: out, as: UTF8.self)
            }
            if b < 0x20 { throw error("control character inside a string") }
            if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
            i += 1
            guard i < bytes.count else { break }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try parseHex4()
                if code >= 0xD800 && code < 0xDC00 {
                    // A high surrogate must be followed by an escaped low one; a lone one becomes U+FFFD.
                    if i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                        let save = i
                        i += 2
                        let low = try parseHex4()
                        if low >= 0xDC00 && low < 0xE000 {
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            code = 0xFFFD
                            i = save
                        }
                    } else {
                        code = 0xFFFD
                    }
                } else if code >= 0xDC00 && code < 0xE000 {
                    code = 0xFFFD
                }
                appendUTF8(Unicode.Scalar(code) ?? "\u{FFFD}", to: &out)
            default:
                i -= 1
                throw error("invalid escape '\\\(printable(e))'")
            }
        }
        throw error("unterminated string")
    }
}

/// A JSON value together with the file it came from and the path that leads to it, so that
/// readers can throw errors that say exactly which field is wrong.
struct JSONCursor {
    let value: JSONValue
    let file: String
    let path: String

    init(_ value: JSONValue, file: String, path: String = "") {
        self.value = value
        self.file = file
        self.path = path
    }

    /// The member `key` (a `.null` cursor when the member is absent or this is not an object).
    subscript(key: String) -> JSONCursor {
        let childPath = path.isEmpty ? key : path + "." + key
        if case .object(let members) = value {
            for m in members where m.key == key { return JSONCursor(m.value, file: file, path: childPath) }
        }
        return JSONCursor(.null, file: file, path: childPath)
    }

    var isNull: Bool { if case .null = value { return true } else { return false } }

    /// Whether the object has the member at all (even if it is null).
    func has(_ key: String) -> Bool {
        if case .object(let members) = value { return members.contains { $0.key == key } }
        return false
    }

    func invalid(_ reason: String) -> TokenizerError {
        .invalidField(file: file, path: path, reason: reason)
    }

    func string() throws -> String {
        if case .string(let s) = value { return s }
        throw invalid(isNull ? "missing (expected a string)" : "expected a string, found \(value.typeName)")
    }

    func optionalString() throws -> String? {
        if isNull { return nil }
        return try string()
    }

    func int() throws -> Int {
        switch value {
        case .int(let v): return v
        case .double(let d) where d.rounded() == d && abs(d) < 9e15: return Int(d)
        default: throw invalid(isNull ? "missing (expected an integer)" : "expected an integer, found \(value.typeName)")
        }
    }

    func optionalInt() throws -> Int? {
        if isNull { return nil }
        return try int()
    }

    func bool() throws -> Bool {
        if case .bool(let b) = value { return b }
        throw invalid(isNull ? "missing (expected true or false)" : "expected true or false, found \(value.typeName)")
    }

    func bool(default fallback: Bool) throws -> Bool {
        if isNull { return fallback }
        return try bool()
    }

    func optionalBool() throws -> Bool? {
        if isNull { return nil }
        return try bool()
    }

    func array() throws -> [JSONCursor] {
        guard case .array(let elements) = value else {
            throw invalid(isNull ? "missing (expected an array)" : "expected an array, found \(value.typeName)")
        }
        return elements.enumerated().map { JSONCursor($0.element, file: file, path: "\(path)[\($0.offset)]") }
    }

    func members() throws -> [(key: String, value: JSONCursor)] {
        guard case .object(let m) = value else {
            throw invalid(isNull ? "missing (expected an object)" : "expected an object, found \(value.typeName)")
        }
        return m.map { (key: $0.key, value: JSONCursor($0.value, file: file, path: path.isEmpty ? $0.key : path + "." + $0.key)) }
    }

    /// The `type` member of a component object, checked against the types we implement.
    func componentType(supported: [String]) throws -> String {
        let typeField = self["type"]
        let name = try typeField.string()
        guard supported.contains(name) else {
            throw TokenizerError.unsupported(file: file, path: typeField.path, value: name, supported: supported)
        }
        return name
    }
}

@inline(__always)
func appendUTF8(_ scalar: Unicode.Scalar, to out: inout [UInt8]) {
    let v = scalar.value
    if v < 0x80 {
        out.append(UInt8(v))
    } else if v < 0x800 {
        out.append(UInt8(0xC0 | (v >> 6)))
        out.append(UInt8(0x80 | (v & 0x3F)))
    } else if v < 0x10000 {
        out.append(UInt8(0xE0 | (v >> 12)))
        out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (v & 0x3F)))
    } else {
        out.append(UInt8(0xF0 | (v >> 18)))
        out.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
        out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (v & 0x3F)))
    }
}
