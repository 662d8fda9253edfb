// The lexer: template text → data and tag tokens, with jinja2's whitespace rules as transformers
// configures them (trim_blocks, lstrip_blocks, keep_trailing_newline off, `-`/`+` markers).

/// A template failure: a syntax error, an undefined value looked into, a `raise_exception`.
/// `line`/`column` (1-based) point into the template when known.
public struct JinjaError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public var line: Int?
    public var column: Int?
    /// Set for `raise_exception(…)`: the template refused the input on purpose.
    public var raised: Bool = false

    public init(message: String, line: Int? = nil, column: Int? = nil, raised: Bool = false) {
        self.message = message
        self.line = line
        self.column = column
        self.raised = raised
    }

    public var description: String {
        guard let line else { return message }
        return "template line \(line), column \(column ?? 0): \(message)"
    }
}

struct SourcePos: Equatable {
    var line: Int
    var column: Int
}

enum TokenKind: Equatable {
    case data(String)
    case blockBegin, blockEnd, variableBegin, variableEnd
    case name(String)
    case string(String)
    case int(Int)
    case float(Double)
    case op(String)
    case eof
}

struct Token {
    var kind: TokenKind
    var pos: SourcePos
}

struct Lexer {
    private let s: [Unicode.Scalar]
    private var i = 0
    private var line = 1
    private var col = 1
    private var tokens: [Token] = []

    /// jinja2 first rewrites every newline as "\n" and, keep_trailing_newline being off, drops
    /// one final newline.
    init(_ source: String) {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(source.unicodeScalars.count)
        var it = source.unicodeScalars.makeIterator()
        var pending = it.next()
        while let c = pending {
            pending = it.next()
            if c == "\r" {
                out.append("\n")
                if pending == "\n" { pending = it.next() }
            } else {
                out.append(c)
            }
        }
        if out.last == "\n" { out.removeLast() }
        s = out
    }

    static func tokenize(_ source: String) throws -> [Token] {
        var lx = Lexer(source)
        try lx.run()
        return lx.tokens
    }

    private var pos: SourcePos { SourcePos(line: line, column: col) }

    private func error(_ message: String, at p: SourcePos? = nil) -> JinjaError {
        let p = p ?? pos
        return JinjaError(message: message, line: p.line, column: p.column)
    }

    private mutating func advance(_ n: Int = 1) {
        for _ in 0..<n where i < s.count {
            if s[i] == "\n" { line += 1; col = 1 } else { col += 1 }
            i += 1
        }
    }

    private func at(_ text: String, _ k: Int? = nil) -> Bool {
        var j = k ?? i
        for u in text.unicodeScalars {
            guard j < s.count, s[j] == u else { return false }
            j += 1
        }
        return true
    }

    private static func isSpace(_ u: Unicode.Scalar) -> Bool { u.properties.isWhitespace }

    private mutating func run() throws {
        var lineStarting = true
        while i < s.count {
            // The next tag start.
            var j = i
            var kind: Character? = nil
            while j + 1 < s.count {
                if s[j] == "{", s[j + 1] == "{" || s[j + 1] == "%" || s[j + 1] == "#" { kind = Character(s[j + 1]); break }
                j += 1
            }
            guard let tagKind = kind else {
                emitData(s[i..<s.count], at: pos)
                advance(s.count - i)
                break
            }
            let marker: Unicode.Scalar? = j + 2 < s.count && (s[j + 2] == "-" || s[j + 2] == "+") ? s[j + 2] : nil
            var text = Array(s[i..<j])
            if marker == "-" {
                while let last = text.last, Self.isSpace(last) { text.removeLast() }
            } else if marker != "+", tagKind != "{" {
                // lstrip_blocks: spaces and tabs from the line's start up to a block or comment tag go.
                let lastNewline = text.lastIndex(of: "\n")
                let lPos = lastNewline.map { $0 + 1 } ?? 0
                if lPos > 0 || lineStarting, lPos < text.count, text[lPos...].allSatisfy({ Self.isSpace($0) }) {
                    text.removeSubrange(lPos...)
                }
            }
            let dataPos = pos
            advance(j - i)
            emitData(text[...], at: dataPos)
            let tagPos = pos
            advance(marker == nil ? 2 : 3)
            switch tagKind {
            case "#":
                // A comment ends at the first "#}"; "-#}" strips what follows, trim_blocks a newline.
                var k = i
                while k + 1 < s.count, !(s[k] == "#" && s[k + 1] == "}") { k += 1 }
                guard k + 1 < s.count else { throw error("a comment is not closed", at: tagPos) }
                let stripAfter = k > i && s[k - 1] == "-"
                advance(k + 2 - i)
                lineStarting = afterTagEnd(stripAll: stripAfter, trimNewline: true)
            case "%":
                if try rawBlock(tagPos) { lineStarting = false; continue }
                tokens.append(Token(kind: .blockBegin, pos: tagPos))
                let stripAfter = try tagTokens(until: "%}", tagPos: tagPos)
                lineStarting = afterTagEnd(stripAll: stripAfter, trimNewline: true)
            default:
                tokens.append(Token(kind: .variableBegin, pos: tagPos))
                let stripAfter = try tagTokens(until: "}}", tagPos: tagPos)
                lineStarting = afterTagEnd(stripAll: stripAfter, trimNewline: false)
            }
        }
        tokens.append(Token(kind: .eof, pos: pos))
    }

    /// After a tag: `-` eats all whitespace, trim_blocks one newline. Returns whether what was
    /// consumed ended a line (jinja2's `line_starting`).
    private mutating func afterTagEnd(stripAll: Bool, trimNewline: Bool) -> Bool {
        if stripAll {
            var last: Unicode.Scalar? = nil
            while i < s.count, Self.isSpace(s[i]) { last = s[i]; advance() }
            return last == "\n"
        }
        if trimNewline, i < s.count, s[i] == "\n" { advance(); return true }
        return false
    }

    private mutating func emitData(_ text: ArraySlice<Unicode.Scalar>, at p: SourcePos) {
        guard !text.isEmpty else { return }
        var str = String.UnicodeScalarView()
        str.append(contentsOf: text)
        tokens.append(Token(kind: .data(String(str)), pos: p))
    }

    /// `{% raw %}…{% endraw %}`: the body is data, untouched.
    private mutating func rawBlock(_ tagPos: SourcePos) throws -> Bool {
        var k = i
        while k < s.count, Self.isSpace(s[k]) { k += 1 }
        guard at("raw", k) else { return false }
        var e = k + 3
        while e < s.count, Self.isSpace(s[e]) { e += 1 }
        let dash = at("-%}", e)
        guard dash || at("%}", e) else { return false }
        advance(e + (dash ? 3 : 2) - i)
        _ = afterTagEnd(stripAll: dash, trimNewline: true)
        let bodyStart = i, bodyPos = pos
        var m = i
        while m + 1 < s.count {
            if s[m] == "{", s[m + 1] == "%" {
                var n = m + 2
                let endDash = n < s.count && s[n] == "-"
                if n < s.count, s[n] == "-" || s[n] == "+" { n += 1 }
                while n < s.count, Self.isSpace(s[n]) { n += 1 }
                if at("endraw", n) {
                    var body = Array(s[bodyStart..<m])
                    if endDash { while let l = body.last, Self.isSpace(l) { body.removeLast() } }
                    emitData(body[...], at: bodyPos)
                    n += 6
                    while n < s.count, Self.isSpace(s[n]) { n += 1 }
                    let closeDash = at("-%}", n)
                    guard closeDash || at("%}", n) else { throw error("endraw is not closed") }
                    advance(n + (closeDash ? 3 : 2) - i)
                    _ = afterTagEnd(stripAll: closeDash, trimNewline: true)
                    return true
                }
            }
            m += 1
        }
        throw error("raw block is not closed", at: tagPos)
    }

    /// The tokens inside `{% … %}` or `{{ … }}`, up to and including the closing delimiter.
    /// Returns whether the close carried `-`.
    private mutating func tagTokens(until close: String, tagPos: SourcePos) throws -> Bool {
        let endKind: TokenKind = close == "%}" ? .blockEnd : .variableEnd
        var depth = 0
        while true {
            while i < s.count, Self.isSpace(s[i]) { advance() }
            guard i < s.count else { throw error("'\(close == "%}" ? "{%" : "{{")' is not closed", at: tagPos) }
            let p = pos
            if depth == 0 {
                if at("-" + close) { advance(3); tokens.append(Token(kind: endKind, pos: p)); return true }
                if at("+" + close) && close == "%}" { advance(3); tokens.append(Token(kind: endKind, pos: p)); return false }
                if at(close) { advance(2); tokens.append(Token(kind: endKind, pos: p)); return false }
            }
            let c = s[i]
            if c == "'" || c == "\"" {
                tokens.append(Token(kind: .string(try stringLiteral(c)), pos: p))
            } else if c.properties.isXIDStart || c == "_" {
                var name = String.UnicodeScalarView()
                while i < s.count, s[i].properties.isXIDContinue || s[i] == "_" { name.append(s[i]); advance() }
                tokens.append(Token(kind: .name(String(name)), pos: p))
            } else if ("0"..."9").contains(c) {
                tokens.append(Token(kind: try number(), pos: p))
            } else {
                let ops = ["**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=",
                           "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"]
                guard let op = ops.first(where: { at($0) }) else { throw error("unexpected character '\(c)'") }
                if op == "(" || op == "[" || op == "{" { depth += 1 }
                if op == ")" || op == "]" || op == "}" { depth = max(0, depth - 1) }
                advance(op.unicodeScalars.count)
                tokens.append(Token(kind: .op(op), pos: p))
            }
        }
    }

    private mutating func number() throws -> TokenKind {
        var text = ""
        var isFloat = false
        func digits() { while i < s.count, ("0"..."9").contains(s[i]) || s[i] == "_" { if s[i] != "_" { text.unicodeScalars.append(s[i]) }; advance() } }
        digits()
        if i + 1 < s.count, s[i] == ".", ("0"..."9").contains(s[i + 1]) {
            isFloat = true
            text += "."
            advance()
            digits()
        }
        if i < s.count, s[i] == "e" || s[i] == "E" {
            var k = i + 1
            if k < s.count, s[k] == "+" || s[k] == "-" { k += 1 }
            if k < s.count, ("0"..."9").contains(s[k]) {
                isFloat = true
                text += "e"
                advance()
                if s[i] == "+" || s[i] == "-" { text.unicodeScalars.append(s[i]); advance() }
                digits()
            }
        }
        if isFloat {
            guard let d = Double(text) else { throw error("bad number '\(text)'") }
            return .float(d)
        }
        guard let v = Int(text) else { throw error("integer '\(text)' is too large") }
        return .int(v)
    }

    /// A quoted string with Python's escapes (jinja2 decodes literals with "unicode-escape").
    private mutating func stringLiteral(_ quote: Unicode.Scalar) throws -> String {
        let start = pos
        advance()
        var out = String.UnicodeScalarView()
        while i < s.count {
            let c = s[i]
            if c == quote { advance(); return String(out) }
            if c != "\\" { out.append(c); advance(); continue }
            advance()
            guard i < s.count else { break }
            let e = s[i]
            advance()
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "v": out.append("\u{0B}")
            case "0": out.append("\u{00}")
            case "\n": break
            case "x", "u", "U":
                let n = e == "x" ? 2 : e == "u" ? 4 : 8
                var hex = ""
                for _ in 0..<n where i < s.count { hex.unicodeScalars.append(s[i]); advance() }
                guard hex.count == n, let v = UInt32(hex, radix: 16), let u = Unicode.Scalar(v) else {
                    throw error("bad \\\(e) escape in a string", at: start)
                }
                out.append(u)
            default:
                out.append("\\")
                out.append(e)
            }
        }
        throw error("a string is not closed", at: start)
    }
}
