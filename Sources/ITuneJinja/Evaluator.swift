import Foundation

// The evaluator: walks statements, writes output, keeps jinja2's scoping (a `for` body has its
// own variables, an `if` has none, a macro sees where it was defined) and records the spans that
// `{% generation %}` marks.

final class Scope {
    var vars: [String: JinjaValue] = [:]
    let parent: Scope?
    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> JinjaValue? {
        var s: Scope? = self
        while let cur = s {
            if let v = cur.vars[name] { return v }
            s = cur.parent
        }
        return nil
    }
}

enum LoopSignal: Error { case breakLoop, continueLoop }

final class Interpreter {
    let now: Date
    /// Byte ranges (UTF-8) of the top-level output written inside `{% generation %}`.
    var generationSpans: [Range<Int>] = []
    private var depth = 0

    init(now: Date) { self.now = now }

    static func located(_ e: Error, _ p: SourcePos) -> Error {
        guard var j = e as? JinjaError else { return e }
        if j.line == nil { j.line = p.line; j.column = p.column }
        return j
    }

    // MARK: statements

    func run(_ body: [Stmt], scope: Scope, into out: inout String, topLevel: Bool) throws {
        for stmt in body {
            switch stmt {
            case .text(let t):
                out += t
            case .output(let e):
                out += try eval(e, scope).pythonString
            case .ifChain(let branches, let otherwise):
                var taken = false
                for (cond, b) in branches where try eval(cond, scope).truthy {
                    try run(b, scope: scope, into: &out, topLevel: topLevel)
                    taken = true
                    break
                }
                if !taken { try run(otherwise, scope: scope, into: &out, topLevel: topLevel) }
            case let .forLoop(targets, iterable, condition, body, otherwise, _, pos):
                try forLoop(targets: targets, iterable: iterable, condition: condition, body: body, otherwise: otherwise, pos: pos,
                            scope: scope, into: &out, topLevel: topLevel)
            case let .set(target, value, pos):
                let v = try eval(value, scope)
                switch target {
                case .names(let names) where names.count == 1:
                    scope.vars[names[0]] = v
                case .names(let names):
                    let items = try iterate(v, pos)
                    guard items.count == names.count else {
                        throw JinjaError(message: "cannot unpack \(items.count) values into \(names.count) names", line: pos.line, column: pos.column)
                    }
                    for (n, x) in zip(names, items) { scope.vars[n] = x }
                case .attribute(let name, let attr):
                    guard case .namespace(let ns)? = scope.lookup(name) else {
                        throw JinjaError(message: "cannot assign attribute '\(attr)' on '\(name)': it is not a namespace()", line: pos.line, column: pos.column)
                    }
                    ns.attributes[attr] = v
                }
            case .setBlock(let name, let body):
                var captured = ""
                try run(body, scope: scope, into: &captured, topLevel: false)
                scope.vars[name] = .string(captured)
            case let .macro(name, params, body):
                scope.vars[name] = .callable(macro(name: name, params: params, body: body, defined: scope))
            case let .callBlock(call, params, body):
                let caller = macro(name: "caller", params: params, body: body, defined: scope)
                let inner = Scope(parent: scope)
                inner.vars["caller"] = .callable(caller)
                out += try eval(call, inner).pythonString
            case let .filterBlock(name, args, kwargs, body, pos):
                var captured = ""
                try run(body, scope: scope, into: &captured, topLevel: false)
                let a = try args.map { try eval($0, scope) }
                let kw = try kwargs.map { ($0.0, try eval($0.1, scope)) }
                do { out += try applyFilter(name, .string(captured), a, kw).pythonString } catch { throw Self.located(error, pos) }
            case .breakLoop:
                throw LoopSignal.breakLoop
            case .continueLoop:
                throw LoopSignal.continueLoop
            case .generation(let body):
                let start = out.utf8.count
                try run(body, scope: scope, into: &out, topLevel: topLevel)
                if topLevel { generationSpans.append(start..<out.utf8.count) }
            case .exprStatement(let e):
                _ = try eval(e, scope)
            }
        }
    }

    private func forLoop(targets: [String], iterable: Expr, condition: Expr?, body: [Stmt], otherwise: [Stmt], pos: SourcePos,
                         scope: Scope, into out: inout String, topLevel: Bool) throws {
        // Each iteration gets fresh variables (a `set` in one is gone in the next), as jinja2 does.
        var loopScope = Scope(parent: scope)
        func bind(_ item: JinjaValue) throws {
            if targets.count == 1 { loopScope.vars[targets[0]] = item; return }
            let parts = try iterate(item, pos)
            guard parts.count == targets.count else {
                throw JinjaError(message: "cannot unpack \(parts.count) values into \(targets.count) loop variables", line: pos.line, column: pos.column)
            }
            for (n, x) in zip(targets, parts) { loopScope.vars[n] = x }
        }
        var items = try iterate(try eval(iterable, scope), iterable.pos)
        if let condition {
            // The loop filter runs before the loop: loop.index and loop.length count kept items only.
            var kept: [JinjaValue] = []
            for item in items {
                try bind(item)
                if try eval(condition, loopScope).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            try run(otherwise, scope: scope, into: &out, topLevel: topLevel)
            return
        }
        let n = items.count
        for (i, item) in items.enumerated() {
            loopScope = Scope(parent: scope)
            try bind(item)
            var loop = JinjaDict()
            loop["index"] = .int(i + 1)
            loop["index0"] = .int(i)
            loop["revindex"] = .int(n - i)
            loop["revindex0"] = .int(n - i - 1)
            loop["first"] = .bool(i == 0)
            loop["last"] = .bool(i == n - 1)
            loop["length"] = .int(n)
            loop["depth"] = .int(1)
            loop["depth0"] = .int(0)
            loop["previtem"] = i > 0 ? items[i - 1] : .undefined("loop.previtem")
            loop["nextitem"] = i + 1 < n ? items[i + 1] : .undefined("loop.nextitem")
            loop["cycle"] = .callable(JinjaCallable(name: "loop.cycle") { args, _ in
                guard !args.isEmpty else { throw JinjaError(message: "loop.cycle() needs at least one value") }
                return args[i % args.count]
            })
            loopScope.vars["loop"] = .dict(loop)
            do {
                try run(body, scope: loopScope, into: &out, topLevel: topLevel)
            } catch LoopSignal.continueLoop {
                continue
            } catch LoopSignal.breakLoop {
                break
            }
        }
    }

    private func macro(name: String, params: [(String, Expr?)], body: [Stmt], defined: Scope) -> JinjaCallable {
        JinjaCallable(name: name) { [unowned self] args, kwargs in
            let s = Scope(parent: defined)
            guard args.count <= params.count else {
                throw JinjaError(message: "macro '\(name)' takes \(params.count) arguments, \(args.count) given")
            }
            for (i, (p, def)) in params.enumerated() {
                if i < args.count { s.vars[p] = args[i] }
                else if let kv = kwargs.first(where: { $0.0 == p }) { s.vars[p] = kv.1 }
                else if let def { s.vars[p] = try self.eval(def, s) }
                else { s.vars[p] = .undefined(p) }
            }
            for (k, _) in kwargs where !params.contains(where: { $0.0 == k }) {
                throw JinjaError(message: "macro '\(name)' takes no keyword argument '\(k)'")
            }
            self.depth += 1
            defer { self.depth -= 1 }
            guard self.depth < 200 else { throw JinjaError(message: "macro '\(name)' recursed deeper than 200 calls") }
            var out = ""
            try self.run(body, scope: s, into: &out, topLevel: false)
            return .string(out)
        }
    }

    // MARK: expressions

    func eval(_ e: Expr, _ scope: Scope) throws -> JinjaValue {
        do { return try evalUnlocated(e, scope) } catch { throw Self.located(error, e.pos) }
    }

    private func evalUnlocated(_ e: Expr, _ scope: Scope) throws -> JinjaValue {
        switch e.kind {
        case .literal(let v):
            return v
        case .name(let n):
            return scope.lookup(n) ?? globals(n) ?? .undefined("'\(n)' is undefined")
        case .list(let items):
            return .list(try items.map { try eval($0, scope) })
        case .dict(let pairs):
            var d = JinjaDict()
            for (k, v) in pairs {
                let key = try eval(k, scope)
                guard case .string(let ks) = key else { throw JinjaError(message: "dict keys must be strings here, not \(key.typeName)", line: k.pos.line, column: k.pos.column) }
                d[ks] = try eval(v, scope)
            }
            return .dict(d)
        case .attribute(let base, let name):
            return try getAttribute(try eval(base, scope), name)
        case .item(let base, let index):
            return try getItem(try eval(base, scope), try eval(index, scope))
        case let .slice(base, a, b, c):
            let v = try eval(base, scope)
            let start = try a.map { try eval($0, scope) }, stop = try b.map { try eval($0, scope) }, step = try c.map { try eval($0, scope) }
            return try slice(v, start, stop, step)
        case let .call(callee, args, kwargs):
            let f = try eval(callee, scope)
            let a = try args.map { try eval($0, scope) }
            let kw = try kwargs.map { ($0.0, try eval($0.1, scope)) }
            switch f {
            case .callable(let c): return try c.call(a, kw)
            case .undefined(let why): throw JinjaError(message: why)
            default: throw JinjaError(message: "'\(f.typeName)' object is not callable")
            }
        case let .filter(base, name, args, kwargs):
            let v = try eval(base, scope)
            let a = try args.map { try eval($0, scope) }
            let kw = try kwargs.map { ($0.0, try eval($0.1, scope)) }
            return try applyFilter(name, v, a, kw)
        case let .test(base, name, args, negated):
            let v = try eval(base, scope)
            let a = try args.map { try eval($0, scope) }
            return .bool(try applyTest(name, v, a) != negated)
        case .not(let x):
            return .bool(!(try eval(x, scope).truthy))
        case .negate(let x):
            switch try eval(x, scope) {
            case .int(let i): return .int(try checked(0, i, { $0.subtractingReportingOverflow($1) }))
            case .bool(let b): return .int(b ? -1 : 0)
            case .double(let d): return .double(-d)
            case let v: throw JinjaError(message: "bad operand type for unary -: '\(v.typeName)'")
            }
        case .plus(let x):
            let v = try eval(x, scope)
            switch v {
            case .int, .double: return v
            case .bool(let b): return .int(b ? 1 : 0)
            default: throw JinjaError(message: "bad operand type for unary +: '\(v.typeName)'")
            }
        case let .binary(op, l, r):
            return try binary(op, try eval(l, scope), try eval(r, scope))
        case let .compare(first, rest):
            var left = try eval(first, scope)
            for (op, rexpr) in rest {
                let right = try eval(rexpr, scope)
                if !(try compare(op, left, right)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case let .and(l, r):
            let a = try eval(l, scope)
            return a.truthy ? try eval(r, scope) : a
        case let .or(l, r):
            let a = try eval(l, scope)
            return a.truthy ? a : try eval(r, scope)
        case let .conditional(cond, then, otherwise):
            if try eval(cond, scope).truthy { return try eval(then, scope) }
            return try otherwise.map { try eval($0, scope) } ?? .undefined("the conditional expression had no else")
        }
    }

    // MARK: globals

    private func globals(_ name: String) -> JinjaValue? {
        switch name {
        case "range":
            return .callable(JinjaCallable(name: "range") { args, _ in
                let ints = try args.map { a -> Int in
                    guard case .int(let i) = a else { throw JinjaError(message: "range() takes integers, not \(a.typeName)") }
                    return i
                }
                let (start, stop, step): (Int, Int, Int)
                switch ints.count {
                case 1: (start, stop, step) = (0, ints[0], 1)
                case 2: (start, stop, step) = (ints[0], ints[1], 1)
                case 3: (start, stop, step) = (ints[0], ints[1], ints[2])
                default: throw JinjaError(message: "range() takes 1 to 3 arguments")
                }
                guard step != 0 else { throw JinjaError(message: "range() step must not be zero") }
                let r = Array(stride(from: start, to: stop, by: step))
                guard r.count <= 100_000 else { throw JinjaError(message: "range() of more than 100000 items refused (sandbox limit)") }
                return .list(r.map { .int($0) })
            })
        case "namespace", "dict":
            return .callable(JinjaCallable(name: name) { args, kwargs in
                var d = JinjaDict()
                for a in args {
                    guard case .dict(let given) = a else { throw JinjaError(message: "\(name)() takes a mapping, not \(a.typeName)") }
                    for (k, v) in given.entries { d[k] = v }
                }
                for (k, v) in kwargs { d[k] = v }
                return name == "dict" ? .dict(d) : .namespace(JinjaNamespace(d))
            })
        case "raise_exception":
            return .callable(JinjaCallable(name: name) { args, _ in
                throw JinjaError(message: args.first?.pythonString ?? "raise_exception() called", raised: true)
            })
        case "strftime_now":
            return .callable(JinjaCallable(name: name) { [now] args, _ in
                guard case .string(let format)? = args.first else { throw JinjaError(message: "strftime_now() takes a format string") }
                return .string(strftime(format, now))
            })
        default:
            return nil
        }
    }
}

/// The subset of C's strftime that chat templates use (dates like "26 Jul 2024"), in local time
/// as transformers' `datetime.now().strftime`.
func strftime(_ format: String, _ date: Date) -> String {
    let cal = Calendar(identifier: .gregorian)
    let c = cal.dateComponents(in: TimeZone.current, from: date)
    let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
    let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    func two(_ v: Int?) -> String { String(format: "%02d", v ?? 0) }
    var out = ""
    var it = format.makeIterator()
    while let ch = it.next() {
        guard ch == "%" else { out.append(ch); continue }
        guard let f = it.next() else { out.append("%"); break }
        let month = (c.month ?? 1) - 1, weekday = (c.weekday ?? 1) - 1
        switch f {
        case "d": out += two(c.day)
        case "m": out += two(c.month)
        case "Y": out += String(c.year ?? 0)
        case "y": out += two((c.year ?? 0) % 100)
        case "b": out += String(months[month].prefix(3))
        case "B": out += months[month]
        case "a": out += String(days[weekday].prefix(3))
        case "A": out += days[weekday]
        case "H": out += two(c.hour)
        case "I": out += two(((c.hour ?? 0) + 11) % 12 + 1)
        case "M": out += two(c.minute)
        case "S": out += two(c.second)
        case "p": out += (c.hour ?? 0) < 12 ? "AM" : "PM"
        case "j": out += String(format: "%03d", cal.ordinality(of: .day, in: .year, for: date) ?? 0)
        case "%": out += "%"
        default: out += "%" + String(f)
        }
    }
    return out
}
