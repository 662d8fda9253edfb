import Foundation

// Values of the template language, with Python's meaning: chat templates are written against
// jinja2 running on CPython, so `str()`, truthiness, `==`, slicing and `json.dumps` behave as
// Python's do here (a list prints as ['a', 'b'], None as None, 1.0 as 1.0).

/// A value a template sees or computes. Strings are indexed by Unicode scalar, as Python's str.
public enum JinjaValue {
    /// A name or key that does not exist; renders as "", is false, and fails when looked into.
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([JinjaValue])
    case dict(JinjaDict)
    case namespace(JinjaNamespace)
    case callable(JinjaCallable)

    public var isUndefined: Bool { if case .undefined = self { return true } else { return false } }

    /// Python's truthiness.
    public var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let l): return !l.isEmpty
        case .dict(let d): return !d.isEmpty
        case .namespace, .callable: return true
        }
    }

    /// Python's type name, for error messages ("'int' object has no attribute 'x'").
    public var typeName: String {
        switch self {
        case .undefined: return "undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .callable: return "function"
        }
    }

    /// `str(value)` as Python writes it; what `{{ value }}` prints.
    public var pythonString: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return pythonRepr
        }
    }

    /// `repr(value)`: how a value prints inside a list or dict.
    public var pythonRepr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return pythonFloat(d)
        case .string(let s): return pythonStringRepr(s)
        case .list(let l): return "[" + l.map(\.pythonRepr).joined(separator: ", ") + "]"
        case .dict(let d): return "{" + d.entries.map { pythonStringRepr($0.key) + ": " + $0.value.pythonRepr }.joined(separator: ", ") + "}"
        case .namespace(let n): return "<Namespace " + n.attributes.entries.map { "\($0.key)=\($0.value.pythonRepr)" }.joined(separator: ", ") + ">"
        case .callable(let c): return "<function \(c.name)>"
        }
    }
}

/// A dict that keeps insertion order, as Python's does (JSON objects keep document order, which
/// `tojson` and `items()` show). Keys are strings: JSON's and template literals' keys are.
public struct JinjaDict {
    public private(set) var keys: [String] = []
    private var storage: [String: JinjaValue] = [:]

    public init() {}
    public init(_ pairs: [(String, JinjaValue)]) { for (k, v) in pairs { self[k] = v } }

    public var isEmpty: Bool { keys.isEmpty }
    public var count: Int { keys.count }
    public var entries: [(key: String, value: JinjaValue)] { keys.map { ($0, storage[$0]!) } }

    public subscript(key: String) -> JinjaValue? {
        get { storage[key] }
        set {
            if let v = newValue {
                if storage.updateValue(v, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }
}

/// `namespace()`: the one mutable object of a template (`{% set ns.found = true %}`), shared by
/// reference so that assignments inside a loop are seen after it.
public final class JinjaNamespace {
    public var attributes: JinjaDict
    public init(_ attributes: JinjaDict = JinjaDict()) { self.attributes = attributes }
}

/// A function a template can call: a global (`range`, `raise_exception`), a macro, a bound
/// string or dict method.
public struct JinjaCallable {
    public let name: String
    public let call: ([JinjaValue], [(String, JinjaValue)]) throws -> JinjaValue
    public init(name: String, call: @escaping ([JinjaValue], [(String, JinjaValue)]) throws -> JinjaValue) {
        self.name = name
        self.call = call
    }
}

// MARK: - Python's printing

/// `repr(float)`: the shortest text that reads back, with Python's spelling of the exponent.
func pythonFloat(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d > 0 ? "inf" : "-inf" }
    if d == d.rounded(), abs(d) < 1e16 {
        // Swift writes 1e+16 style only past 2^53; Python switches at 1e16. Below, "x.0".
        let i = Int(d)
        return (d == 0 && d.sign == .minus ? "-" : "") + String(i) + ".0"
    }
    var s = "\(d)"
    // Swift: "1e-05", "1.5e-07", "1e+16"; Python the same for these forms.
    if let e = s.firstIndex(of: "e") {
        let mant = s[..<e], exp = s[s.index(after: e)...]
        var expDigits = exp.hasPrefix("-") || exp.hasPrefix("+") ? String(exp.dropFirst()) : String(exp)
        let sign = exp.hasPrefix("-") ? "-" : "+"
        if expDigits.count < 2 { expDigits = "0" + expDigits }
        var m = String(mant)
        if m.hasSuffix(".0") { m.removeLast(2) }
        s = m + "e" + sign + expDigits
    }
    return s
}

/// `repr(str)`: single quotes unless the text holds one and no double quote; control
/// characters escaped.
func pythonStringRepr(_ s: String) -> String {
    let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
    var out = String(quote)
    for u in s.unicodeScalars {
        switch u {
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if Character(u) == quote { out += "\\" + String(quote) }
            else if u.value < 0x20 || u.value == 0x7F { out += String(format: "\\x%02x", u.value) }
            else if (0x80..<0xA0).contains(u.value) { out += String(format: "\\x%02x", u.value) }
            else { out.unicodeScalars.append(u) }
        }
    }
    out.append(quote)
    return out
}

// MARK: - JSON

extension JinjaValue {
    /// `json.dumps(value, ensure_ascii=False, indent=indent, separators=…, sort_keys=…)`, which is
    /// transformers' `tojson` (jinja2's own escapes <, >, & and ' for HTML; transformers' does not).
    public func json(indent: String? = nil, separators: (String, String)? = nil, sortKeys: Bool = false) throws -> String {
        let (itemSep, keySep) = separators ?? (indent == nil ? (", ", ": ") : (",", ": "))
        var out = ""
        try writeJSON(into: &out, indent: indent, level: 0, itemSep: itemSep, keySep: keySep, sortKeys: sortKeys)
        return out
    }

    private func writeJSON(into out: inout String, indent: String?, level: Int, itemSep: String, keySep: String, sortKeys: Bool) throws {
        func newline(_ l: Int) { if let indent { out += "\n" + String(repeating: indent, count: l) } }
        switch self {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isNaN { out += "NaN" } else if d.isInfinite { out += d > 0 ? "Infinity" : "-Infinity" } else { out += pythonFloat(d) }
        case .string(let s): out += jsonQuoted(s)
        case .list(let l):
            if l.isEmpty { out += "[]"; return }
            out += "["
            for (i, v) in l.enumerated() {
                if i > 0 { out += itemSep }
                newline(level + 1)
                try v.writeJSON(into: &out, indent: indent, level: level + 1, itemSep: itemSep, keySep: keySep, sortKeys: sortKeys)
            }
            newline(level)
            out += "]"
        case .dict(let d):
            if d.isEmpty { out += "{}"; return }
            out += "{"
            let entries = sortKeys ? d.entries.sorted { $0.key.unicodeScalars.lexicographicallyPrecedes($1.key.unicodeScalars) } : d.entries
            for (i, e) in entries.enumerated() {
                if i > 0 { out += itemSep }
                newline(level + 1)
                out += jsonQuoted(e.key) + keySep
                try e.value.writeJSON(into: &out, indent: indent, level: level + 1, itemSep: itemSep, keySep: keySep, sortKeys: sortKeys)
            }
            newline(level)
            out += "}"
        case .undefined, .namespace, .callable:
            throw JinjaError(message: "Object of type \(typeName) is not JSON serializable")
        }
    }

    /// Parses JSON text (objects keep their key order). Used for contexts and fixtures.
    public static func parseJSON(_ text: String) throws -> JinjaValue {
        var p = JSONReader(scalars: Array(text.unicodeScalars))
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == p.scalars.count else { throw p.error("unexpected text after the JSON value") }
        return v
    }
}

func jsonQuoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\u{08}": out += "\\b"
        case "\u{0C}": out += "\\f"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

private struct JSONReader {
    let scalars: [Unicode.Scalar]
    var i = 0

    func error(_ reason: String) -> JinjaError { JinjaError(message: "invalid JSON at character \(i): \(reason)") }

    mutating func skipSpace() {
        while i < scalars.count, [" ", "\n", "\r", "\t"].contains(scalars[i]) { i += 1 }
    }

    mutating func value(depth: Int) throws -> JinjaValue {
        guard depth < 512 else { throw error("nesting deeper than 512 levels") }
        guard i < scalars.count else { throw error("unexpected end") }
        switch scalars[i] {
        case "{":
            i += 1
            var d = JinjaDict()
            skipSpace()
            if i < scalars.count, scalars[i] == "}" { i += 1; return .dict(d) }
            while true {
                skipSpace()
                guard i < scalars.count, scalars[i] == "\"" else { throw error("expected a key") }
                let k = try string()
                skipSpace()
                guard i < scalars.count, scalars[i] == ":" else { throw error("expected ':'") }
                i += 1
                skipSpace()
                d[k] = try value(depth: depth + 1)
                skipSpace()
                guard i < scalars.count else { throw error("unexpected end") }
                if scalars[i] == "," { i += 1; continue }
                if scalars[i] == "}" { i += 1; return .dict(d) }
                throw error("expected ',' or '}'")
            }
        case "[":
            i += 1
            var l: [JinjaValue] = []
            skipSpace()
            if i < scalars.count, scalars[i] == "]" { i += 1; return .list(l) }
            while true {
                skipSpace()
                l.append(try value(depth: depth + 1))
                skipSpace()
                guard i < scalars.count else { throw error("unexpected end") }
                if scalars[i] == "," { i += 1; continue }
                if scalars[i] == "]" { i += 1; return .list(l) }
                throw error("expected ',' or ']'")
            }
        case "\"": return .string(try string())
        case "t": try literal("true"); return .bool(true)
        case "f": try literal("false"); return .bool(false)
        case "n": try literal("null"); return .none
        default:
            let start = i
            while i < scalars.count, "+-0123456789.eE".unicodeScalars.contains(scalars[i]) { i += 1 }
            var text = ""
            text.unicodeScalars.append(contentsOf: scalars[start..<i])
            if let v = Int(text) { return .int(v) }
            if let d = Double(text), !text.isEmpty { return .double(d) }
            i = start
            throw error("unexpected character '\(scalars[i])'")
        }
    }

    mutating func literal(_ word: String) throws {
        for u in word.unicodeScalars {
            guard i < scalars.count, scalars[i] == u else { throw error("expected '\(word)'") }
            i += 1
        }
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= scalars.count else { throw error("short \\u escape") }
        var text = ""
        text.unicodeScalars.append(contentsOf: scalars[i..<i + 4])
        guard let v = UInt32(text, radix: 16) else { throw error("bad \\u escape") }
        i += 4
        return v
    }

    mutating func string() throws -> String {
        i += 1
        var out = String.UnicodeScalarView()
        while i < scalars.count {
            let c = scalars[i]
            i += 1
            if c == "\"" { return String(out) }
            if c != "\\" { out.append(c); continue }
            guard i < scalars.count else { break }
            let e = scalars[i]
            i += 1
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "/": out.append("/")
            case "\\": out.append("\\")
            case "\"": out.append("\"")
            case "u":
                var v = try hex4()
                if (0xD800..<0xDC00).contains(v), i + 1 < scalars.count, scalars[i] == "\\", scalars[i + 1] == "u" {
                    i += 2
                    let lo = try hex4()
                    v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                }
                guard let s = Unicode.Scalar(v) else { throw error("lone surrogate") }
                out.append(s)
            default: throw error("bad escape '\\\(e)'")
            }
        }
        throw error("unterminated string")
    }
}
