// The parser: tokens → statements and expressions, with jinja2's precedence (loosest first):
// `x if c else y`, or, and, not, comparisons and `in`, + -, ~, * / // %, **, unary -, then
// postfix (`.a`, `[i]`, `[a:b:c]`, calls) with filters `|f` and tests `is t` binding tightest.

struct Expr {
    indirect enum Kind {
        case literal(JinjaValue)
        case name(String)
        case list([Expr])
        case dict([(Expr, Expr)])
        case attribute(Expr, String)
        case item(Expr, Expr)
        case slice(Expr, Expr?, Expr?, Expr?)
        case call(Expr, [Expr], [(String, Expr)])
        case filter(Expr, String, [Expr], [(String, Expr)])
        case test(Expr, String, [Expr], negated: Bool)
        case not(Expr)
        case negate(Expr)
        case plus(Expr)
        case binary(String, Expr, Expr)
        case compare(Expr, [(String, Expr)])
        case and(Expr, Expr)
        case or(Expr, Expr)
        case conditional(Expr, Expr, Expr?)
    }
    var kind: Kind
    var pos: SourcePos
}

enum SetTarget {
    case names([String])
    case attribute(String, String)
}

indirect enum Stmt {
    case text(String)
    case output(Expr)
    case ifChain([(Expr, [Stmt])], [Stmt])
    case forLoop(targets: [String], iterable: Expr, condition: Expr?, body: [Stmt], otherwise: [Stmt], recursive: Bool, pos: SourcePos)
    case set(SetTarget, Expr, SourcePos)
    case setBlock(String, [Stmt])
    case macro(name: String, params: [(String, Expr?)], body: [Stmt])
    case callBlock(call: Expr, params: [(String, Expr?)], body: [Stmt])
    case filterBlock(name: String, args: [Expr], kwargs: [(String, Expr)], body: [Stmt], pos: SourcePos)
    case breakLoop(SourcePos), continueLoop(SourcePos)
    /// transformers' `{% generation %}`: marks the assistant's text for its token mask.
    case generation([Stmt])
    case exprStatement(Expr)
}

struct Parser {
    private var tokens: [Token]
    private var k = 0
    /// Expression nesting; a template nested deeper than any real one is refused rather than
    /// allowed to exhaust the stack.
    private var nesting = 0
    private var blockNesting = 0

    static func parse(_ source: String) throws -> [Stmt] {
        var p = Parser(tokens: try Lexer.tokenize(source))
        let (body, end) = try p.statements(until: [])
        if let end { throw p.error("unexpected '\(end)'") }
        return body
    }

    private init(tokens: [Token]) { self.tokens = tokens }

    private var cur: Token { tokens[k] }
    private var next: Token { tokens[min(k + 1, tokens.count - 1)] }

    private func error(_ message: String, at p: SourcePos? = nil) -> JinjaError {
        let p = p ?? cur.pos
        return JinjaError(message: message, line: p.line, column: p.column)
    }

    private func describe(_ t: TokenKind) -> String {
        switch t {
        case .data: return "template data"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "'%}'"
        case .variableBegin: return "'{{'"
        case .variableEnd: return "'}}'"
        case .name(let n): return "'\(n)'"
        case .string: return "a string"
        case .int, .float: return "a number"
        case .op(let o): return "'\(o)'"
        case .eof: return "the end of the template"
        }
    }

    private func isOp(_ o: String) -> Bool { if case .op(o) = cur.kind { return true } else { return false } }
    private func isName(_ n: String) -> Bool { if case .name(n) = cur.kind { return true } else { return false } }

    private mutating func expectOp(_ o: String) throws {
        guard isOp(o) else { throw error("expected '\(o)', found \(describe(cur.kind))") }
        k += 1
    }

    private mutating func expectName() throws -> String {
        guard case .name(let n) = cur.kind else { throw error("expected a name, found \(describe(cur.kind))") }
        k += 1
        return n
    }

    private mutating func expectBlockEnd() throws {
        guard cur.kind == .blockEnd else { throw error("expected '%}', found \(describe(cur.kind))") }
        k += 1
    }

    /// Statements up to a block tag whose name is in `ends`; returns that name (its `%}` not yet read
    /// for names that take arguments, e.g. elif) or nil at the end of the template.
    private mutating func statements(until ends: Set<String>) throws -> ([Stmt], String?) {
        var body: [Stmt] = []
        while true {
            switch cur.kind {
            case .eof:
                return (body, nil)
            case .data(let text):
                body.append(.text(text))
                k += 1
            case .variableBegin:
                k += 1
                let e = try expression()
                guard cur.kind == .variableEnd else { throw error("expected '}}', found \(describe(cur.kind))") }
                k += 1
                body.append(.output(e))
            case .blockBegin:
                let tagPos = cur.pos
                k += 1
                guard case .name(let keyword) = cur.kind else { throw error("expected a statement name after '{%'") }
                if ends.contains(keyword) {
                    k += 1
                    return (body, keyword)
                }
                body.append(try statement(keyword, at: tagPos))
            default:
                throw error("unexpected \(describe(cur.kind))")
            }
        }
    }

    private mutating func block(until ends: Set<String>, opened: String, at p: SourcePos) throws -> ([Stmt], String) {
        let (body, end) = try statements(until: ends)
        guard let end else {
            throw error("'\(opened)' opened at line \(p.line), column \(p.column) is never closed (expected \(ends.sorted().map { "'\($0)'" }.joined(separator: " or ")))")
        }
        return (body, end)
    }

    private mutating func statement(_ keyword: String, at p: SourcePos) throws -> Stmt {
        k += 1
        blockNesting += 1
        defer { blockNesting -= 1 }
        guard blockNesting <= 200 else { throw error("blocks nested deeper than 200 levels", at: p) }
        switch keyword {
        case "if":
            var branches: [(Expr, [Stmt])] = []
            var cond = try expression()
            try expectBlockEnd()
            while true {
                let (body, end) = try block(until: ["elif", "else", "endif"], opened: "if", at: p)
                branches.append((cond, body))
                if end == "elif" {
                    cond = try expression()
                    try expectBlockEnd()
                    continue
                }
                try expectBlockEnd()
                if end == "else" {
                    let (otherwise, _) = try block(until: ["endif"], opened: "if", at: p)
                    try expectBlockEnd()
                    return .ifChain(branches, otherwise)
                }
                return .ifChain(branches, [])
            }
        case "for":
            var targets = [try expectName()]
            while isOp(",") { k += 1; targets.append(try expectName()) }
            guard isName("in") else { throw error("expected 'in' in a for loop, found \(describe(cur.kind))") }
            k += 1
            let iterable = try expression(allowConditional: false)
            var condition: Expr? = nil
            if isName("if") { k += 1; condition = try expression(allowConditional: false) }
            var recursive = false
            if isName("recursive") { k += 1; recursive = true }
            try expectBlockEnd()
            let (body, end) = try block(until: ["else", "endfor"], opened: "for", at: p)
            try expectBlockEnd()
            var otherwise: [Stmt] = []
            if end == "else" {
                (otherwise, _) = try block(until: ["endfor"], opened: "for", at: p)
                try expectBlockEnd()
            }
            return .forLoop(targets: targets, iterable: iterable, condition: condition, body: body, otherwise: otherwise, recursive: recursive, pos: p)
        case "set":
            let first = try expectName()
            if isOp(".") {
                k += 1
                let attr = try expectName()
                try expectOp("=")
                let value = try expression()
                try expectBlockEnd()
                return .set(.attribute(first, attr), value, p)
            }
            var names = [first]
            while isOp(",") { k += 1; names.append(try expectName()) }
            if cur.kind == .blockEnd, names.count == 1 {
                k += 1
                let (body, _) = try block(until: ["endset"], opened: "set", at: p)
                try expectBlockEnd()
                return .setBlock(first, body)
            }
            try expectOp("=")
            let value = try tupleOrExpression()
            try expectBlockEnd()
            return .set(.names(names), value, p)
        case "macro":
            let name = try expectName()
            let params = try parameters()
            try expectBlockEnd()
            let (body, _) = try block(until: ["endmacro"], opened: "macro", at: p)
            if case .name = cur.kind { k += 1 }
            try expectBlockEnd()
            return .macro(name: name, params: params, body: body)
        case "call":
            var params: [(String, Expr?)] = []
            if isOp("(") { params = try parameters() }
            let call = try expression()
            try expectBlockEnd()
            let (body, _) = try block(until: ["endcall"], opened: "call", at: p)
            try expectBlockEnd()
            return .callBlock(call: call, params: params, body: body)
        case "filter":
            let name = try expectName()
            var args: [Expr] = [], kwargs: [(String, Expr)] = []
            if isOp("(") { (args, kwargs) = try arguments() }
            try expectBlockEnd()
            let (body, _) = try block(until: ["endfilter"], opened: "filter", at: p)
            try expectBlockEnd()
            return .filterBlock(name: name, args: args, kwargs: kwargs, body: body, pos: p)
        case "break", "continue":
            try expectBlockEnd()
            return keyword == "break" ? .breakLoop(p) : .continueLoop(p)
        case "generation":
            try expectBlockEnd()
            let (body, _) = try block(until: ["endgeneration"], opened: "generation", at: p)
            try expectBlockEnd()
            return .generation(body)
        case "do":
            let e = try expression()
            try expectBlockEnd()
            return .exprStatement(e)
        default:
            throw error("unknown statement '\(keyword)'", at: p)
        }
    }

    /// `(a, b=1)` of a macro or call block.
    private mutating func parameters() throws -> [(String, Expr?)] {
        try expectOp("(")
        var params: [(String, Expr?)] = []
        while !isOp(")") {
            if !params.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            let name = try expectName()
            var def: Expr? = nil
            if isOp("=") { k += 1; def = try expression() }
            params.append((name, def))
        }
        k += 1
        return params
    }

    /// `a, b` without brackets is a tuple (in `set` and in parentheses).
    private mutating func tupleOrExpression() throws -> Expr {
        let p = cur.pos
        let first = try expression()
        guard isOp(",") else { return first }
        var items = [first]
        while isOp(",") {
            k += 1
            if cur.kind == .blockEnd || isOp(")") { break }
            items.append(try expression())
        }
        return Expr(kind: .list(items), pos: p)
    }

    // MARK: expressions

    mutating func expression(allowConditional: Bool = true) throws -> Expr {
        let p = cur.pos
        nesting += 1
        defer { nesting -= 1 }
        guard nesting <= 200 else { throw error("expressions nested deeper than 200 levels") }
        let e = try orExpr()
        guard allowConditional, isName("if") else { return e }
        k += 1
        let cond = try orExpr()
        var otherwise: Expr? = nil
        if isName("else") { k += 1; otherwise = try expression() }
        return Expr(kind: .conditional(cond, e, otherwise), pos: p)
    }

    private mutating func orExpr() throws -> Expr {
        var e = try andExpr()
        while isName("or") { let p = cur.pos; k += 1; e = Expr(kind: .or(e, try andExpr()), pos: p) }
        return e
    }

    private mutating func andExpr() throws -> Expr {
        var e = try notExpr()
        while isName("and") { let p = cur.pos; k += 1; e = Expr(kind: .and(e, try notExpr()), pos: p) }
        return e
    }

    private mutating func notExpr() throws -> Expr {
        if isName("not") { let p = cur.pos; k += 1; return Expr(kind: .not(try notExpr()), pos: p) }
        return try compare()
    }

    private mutating func compare() throws -> Expr {
        let p = cur.pos
        let first = try math1()
        var ops: [(String, Expr)] = []
        while true {
            if case .op(let o) = cur.kind, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                k += 1
                ops.append((o, try math1()))
            } else if isName("in") {
                k += 1
                ops.append(("in", try math1()))
            } else if isName("not"), case .name("in") = next.kind {
                k += 2
                ops.append(("not in", try math1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? first : Expr(kind: .compare(first, ops), pos: p)
    }

    private mutating func binaryLevel(_ ops: Set<String>, _ operand: (inout Parser) throws -> Expr) throws -> Expr {
        var e = try operand(&self)
        while case .op(let o) = cur.kind, ops.contains(o) {
            let p = cur.pos
            k += 1
            e = Expr(kind: .binary(o, e, try operand(&self)), pos: p)
        }
        return e
    }

    private mutating func math1() throws -> Expr { try binaryLevel(["+", "-"]) { try $0.concat() } }
    private mutating func concat() throws -> Expr { try binaryLevel(["~"]) { try $0.math2() } }
    private mutating func math2() throws -> Expr { try binaryLevel(["*", "/", "//", "%"]) { try $0.power() } }
    private mutating func power() throws -> Expr { try binaryLevel(["**"]) { try $0.unary(withFilter: true) } }

    private mutating func unary(withFilter: Bool) throws -> Expr {
        let p = cur.pos
        var e: Expr
        nesting += 1
        defer { nesting -= 1 }
        guard nesting <= 400 else { throw error("expressions nested deeper than 200 levels") }
        if isOp("-") { k += 1; e = Expr(kind: .negate(try unary(withFilter: false)), pos: p) }
        else if isOp("+") { k += 1; e = Expr(kind: .plus(try unary(withFilter: false)), pos: p) }
        else { e = try primary() }
        e = try postfix(e)
        if withFilter { e = try filtersAndTests(e) }
        return e
    }

    private mutating func primary() throws -> Expr {
        let p = cur.pos
        switch cur.kind {
        case .name(let n):
            k += 1
            switch n {
            case "true", "True": return Expr(kind: .literal(.bool(true)), pos: p)
            case "false", "False": return Expr(kind: .literal(.bool(false)), pos: p)
            case "none", "None": return Expr(kind: .literal(.none), pos: p)
            default: return Expr(kind: .name(n), pos: p)
            }
        case .string(var s):
            k += 1
            while case .string(let more) = cur.kind { s += more; k += 1 }
            return Expr(kind: .literal(.string(s)), pos: p)
        case .int(let v): k += 1; return Expr(kind: .literal(.int(v)), pos: p)
        case .float(let v): k += 1; return Expr(kind: .literal(.double(v)), pos: p)
        case .op("("):
            k += 1
            if isOp(")") { k += 1; return Expr(kind: .list([]), pos: p) }
            let e = try tupleOrExpression()
            try expectOp(")")
            return e
        case .op("["):
            k += 1
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(","); if isOp("]") { break } }
                items.append(try expression())
            }
            k += 1
            return Expr(kind: .list(items), pos: p)
        case .op("{"):
            k += 1
            var pairs: [(Expr, Expr)] = []
            while !isOp("}") {
                if !pairs.isEmpty { try expectOp(","); if isOp("}") { break } }
                let key = try expression()
                try expectOp(":")
                pairs.append((key, try expression()))
            }
            k += 1
            return Expr(kind: .dict(pairs), pos: p)
        default:
            throw error("unexpected \(describe(cur.kind))")
        }
    }

    private mutating func postfix(_ base: Expr) throws -> Expr {
        var e = base
        while true {
            let p = cur.pos
            if isOp(".") {
                k += 1
                switch cur.kind {
                case .name(let n): k += 1; e = Expr(kind: .attribute(e, n), pos: p)
                case .int(let i): k += 1; e = Expr(kind: .item(e, Expr(kind: .literal(.int(i)), pos: p)), pos: p)
                default: throw error("expected a name after '.'")
                }
            } else if isOp("[") {
                k += 1
                e = try subscriptExpr(e, at: p)
            } else if isOp("(") {
                let (args, kwargs) = try arguments()
                e = Expr(kind: .call(e, args, kwargs), pos: p)
            } else {
                return e
            }
        }
    }

    private mutating func subscriptExpr(_ base: Expr, at p: SourcePos) throws -> Expr {
        var parts: [Expr?] = [nil]
        var colons = 0
        while !isOp("]") {
            if isOp(":") {
                k += 1
                colons += 1
                guard colons <= 2 else { throw error("too many ':' in a slice") }
                parts.append(nil)
            } else {
                guard parts[parts.count - 1] == nil else { throw error("expected ']' or ':', found \(describe(cur.kind))") }
                parts[parts.count - 1] = try expression()
            }
        }
        k += 1
        if colons == 0 {
            guard let index = parts[0] else { throw error("expected an index inside '[]'", at: p) }
            return Expr(kind: .item(base, index), pos: p)
        }
        while parts.count < 3 { parts.append(nil) }
        return Expr(kind: .slice(base, parts[0], parts[1], parts[2]), pos: p)
    }

    private mutating func arguments() throws -> ([Expr], [(String, Expr)]) {
        try expectOp("(")
        var args: [Expr] = [], kwargs: [(String, Expr)] = []
        var first = true
        while !isOp(")") {
            if !first { try expectOp(","); if isOp(")") { break } }
            first = false
            if case .name(let n) = cur.kind, case .op("=") = next.kind {
                k += 2
                kwargs.append((n, try expression()))
            } else {
                guard kwargs.isEmpty else { throw error("a positional argument follows a keyword argument") }
                args.append(try expression())
            }
        }
        k += 1
        return (args, kwargs)
    }

    private mutating func filtersAndTests(_ base: Expr) throws -> Expr {
        var e = base
        while true {
            let p = cur.pos
            if isOp("|") {
                k += 1
                var name = try expectName()
                while isOp(".") { k += 1; name += "." + (try expectName()) }
                var args: [Expr] = [], kwargs: [(String, Expr)] = []
                if isOp("(") { (args, kwargs) = try arguments() }
                e = Expr(kind: .filter(e, name, args, kwargs), pos: p)
            } else if isName("is") {
                k += 1
                var negated = false
                if isName("not") { k += 1; negated = true }
                var name = try expectName()
                while isOp(".") { k += 1; name += "." + (try expectName()) }
                var args: [Expr] = []
                if isOp("(") {
                    let (a, kw) = try arguments()
                    args = a + kw.map(\.1)
                } else if startsTestArgument() {
                    args = [try unary(withFilter: false)]
                }
                e = Expr(kind: .test(e, name, args, negated: negated), pos: p)
            } else {
                return e
            }
        }
    }

    /// `x is divisibleby 3`, `x is sameas none`: a test may take one argument without parentheses.
    private func startsTestArgument() -> Bool {
        switch cur.kind {
        case .name(let n): return !["else", "or", "and", "not", "in", "is", "if", "recursive"].contains(n)
        case .string, .int, .float: return true
        case .op(let o): return o == "[" || o == "{" || o == "-"
        default: return false
        }
    }
}
