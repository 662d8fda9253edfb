import Foundation

// Python's operators, indexing and iteration over template values.

func checked(_ a: Int, _ b: Int, _ op: (Int, Int) -> (partialValue: Int, overflow: Bool)) throws -> Int {
    let r = op(a, b)
    guard !r.overflow else { throw JinjaError(message: "integer overflow") }
    return r.partialValue
}

/// A value as a number for arithmetic (bool counts as int, as in Python).
private enum Num { case int(Int), double(Double) }

private func number(_ v: JinjaValue) -> Num? {
    switch v {
    case .int(let i): return .int(i)
    case .bool(let b): return .int(b ? 1 : 0)
    case .double(let d): return .double(d)
    default: return nil
    }
}

private func asDouble(_ n: Num) -> Double {
    switch n { case .int(let i): return Double(i); case .double(let d): return d }
}

func iterate(_ v: JinjaValue, _ p: SourcePos? = nil) throws -> [JinjaValue] {
    switch v {
    case .list(let l): return l
    case .dict(let d): return d.keys.map { .string($0) }
    case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
    case .undefined: return []
    case .namespace, .none, .bool, .int, .double, .callable:
        throw JinjaError(message: "'\(v.typeName)' object is not iterable", line: p?.line, column: p?.column)
    }
}

func getAttribute(_ v: JinjaValue, _ name: String) throws -> JinjaValue {
    switch v {
    case .undefined(let why): throw JinjaError(message: "\(why); cannot read its attribute '\(name)'")
    case .namespace(let ns): return ns.attributes[name] ?? .undefined("namespace has no attribute '\(name)'")
    case .string(let s): return stringMethod(s, name) ?? .undefined("'str' object has no attribute '\(name)'")
    case .dict(let d):
        // jinja2 tries the Python attribute first, so `m.items` is the method, `m.role` the key.
        if let m = dictMethod(d, name) { return m }
        return d[name] ?? .undefined("'dict object' has no attribute '\(name)'")
    case .list(let l): return listMethod(l, name) ?? .undefined("'list object' has no attribute '\(name)'")
    default: return .undefined("'\(v.typeName) object' has no attribute '\(name)'")
    }
}

func getItem(_ v: JinjaValue, _ key: JinjaValue) throws -> JinjaValue {
    switch (v, key) {
    case (.undefined(let why), _): throw JinjaError(message: "\(why); cannot index it")
    case (.dict(let d), .string(let k)): return d[k] ?? .undefined("'dict object' has no attribute '\(k)'")
    case (.namespace(let ns), .string(let k)): return ns.attributes[k] ?? .undefined("namespace has no attribute '\(k)'")
    case (.list(let l), _):
        guard let i = intIndex(key) else { break }
        let j = i < 0 ? i + l.count : i
        return j >= 0 && j < l.count ? l[j] : .undefined("list index \(i) out of range")
    case (.string(let s), _):
        guard let i = intIndex(key) else { break }
        let u = Array(s.unicodeScalars)
        let j = i < 0 ? i + u.count : i
        return j >= 0 && j < u.count ? .string(String(u[j])) : .undefined("string index \(i) out of range")
    default: break
    }
    if case .string(let name) = key { return try getAttribute(v, name) }
    return .undefined("'\(v.typeName) object' has no item \(key.pythonRepr)")
}

private func intIndex(_ v: JinjaValue) -> Int? {
    switch v {
    case .int(let i): return i
    case .bool(let b): return b ? 1 : 0
    default: return nil
    }
}

/// Python's slice indices for a sequence of `count` items.
func sliceIndices(count: Int, _ start: Int?, _ stop: Int?, _ step: Int) -> [Int] {
    func clamp(_ v: Int?, _ def: Int, lo: Int, hi: Int) -> Int {
        guard var x = v else { return def }
        if x < 0 { x += count }
        return min(max(x, lo), hi)
    }
    var out: [Int] = []
    if step > 0 {
        var i = clamp(start, 0, lo: 0, hi: count)
        let end = clamp(stop, count, lo: 0, hi: count)
        while i < end { out.append(i); i += step }
    } else {
        var i = clamp(start, count - 1, lo: -1, hi: count - 1)
        let end = clamp(stop, -1, lo: -1, hi: count - 1)
        while i > end { out.append(i); i += step }
    }
    return out
}

func slice(_ v: JinjaValue, _ a: JinjaValue?, _ b: JinjaValue?, _ c: JinjaValue?) throws -> JinjaValue {
    func opt(_ x: JinjaValue?) throws -> Int? {
        guard let x else { return nil }
        if case .none = x { return nil }
        guard let i = intIndex(x) else { throw JinjaError(message: "slice indices must be integers or None, not \(x.typeName)") }
        return i
    }
    let step = try opt(c) ?? 1
    guard step != 0 else { throw JinjaError(message: "slice step cannot be zero") }
    switch v {
    case .list(let l):
        return .list(sliceIndices(count: l.count, try opt(a), try opt(b), step).map { l[$0] })
    case .string(let s):
        let u = Array(s.unicodeScalars)
        var out = String.UnicodeScalarView()
        for i in sliceIndices(count: u.count, try opt(a), try opt(b), step) { out.append(u[i]) }
        return .string(String(out))
    case .undefined(let why): throw JinjaError(message: "\(why); cannot slice it")
    default: throw JinjaError(message: "'\(v.typeName)' object is not subscriptable")
    }
}

func binary(_ op: String, _ l: JinjaValue, _ r: JinjaValue) throws -> JinjaValue {
    if op == "~" { return .string(l.pythonString + r.pythonString) }
    if case .undefined(let why) = l { throw JinjaError(message: why) }
    if case .undefined(let why) = r { throw JinjaError(message: why) }
    func unsupported() -> JinjaError {
        JinjaError(message: "unsupported operand type(s) for \(op): '\(l.typeName)' and '\(r.typeName)'")
    }
    switch (op, l, r) {
    case ("+", .string(let a), .string(let b)): return .string(a + b)
    case ("+", .list(let a), .list(let b)): return .list(a + b)
    case ("*", .string(let s), _), ("*", _, .string(let s)):
        guard let n = intIndex(l) ?? intIndex(r) else { throw unsupported() }
        guard n <= 1_000_000 else { throw JinjaError(message: "string repetition of \(n) refused (sandbox limit)") }
        return .string(n <= 0 ? "" : String(repeating: s, count: n))
    case ("*", .list(let a), _), ("*", _, .list(let a)):
        guard let n = intIndex(l) ?? intIndex(r) else { throw unsupported() }
        guard n <= 100_000 else { throw JinjaError(message: "list repetition of \(n) refused (sandbox limit)") }
        return .list(n <= 0 ? [] : Array([[JinjaValue]](repeating: a, count: n).joined()))
    default: break
    }
    guard let a = number(l), let b = number(r) else { throw unsupported() }
    if case .int(let x) = a, case .int(let y) = b {
        switch op {
        case "+": return .int(try checked(x, y, { $0.addingReportingOverflow($1) }))
        case "-": return .int(try checked(x, y, { $0.subtractingReportingOverflow($1) }))
        case "*": return .int(try checked(x, y, { $0.multipliedReportingOverflow(by: $1) }))
        case "/":
            guard y != 0 else { throw JinjaError(message: "division by zero") }
            return .double(Double(x) / Double(y))
        case "//", "%":
            guard y != 0 else { throw JinjaError(message: "integer division or modulo by zero") }
            var q = x / y, m = x % y
            if m != 0, (m < 0) != (y < 0) { q -= 1; m += y }
            return .int(op == "//" ? q : m)
        case "**":
            guard y >= 0 else { return .double(pow(Double(x), Double(y))) }
            var result = 1
            for _ in 0..<min(y, 64) { result = try checked(result, x, { $0.multipliedReportingOverflow(by: $1) }) }
            if y > 64, abs(x) > 1 { throw JinjaError(message: "integer overflow") }
            return .int(y > 64 ? (x == -1 && y % 2 == 1 ? -1 : (x == 0 ? 0 : 1)) : result)
        default: throw unsupported()
        }
    }
    let x = asDouble(a), y = asDouble(b)
    switch op {
    case "+": return .double(x + y)
    case "-": return .double(x - y)
    case "*": return .double(x * y)
    case "/":
        guard y != 0 else { throw JinjaError(message: "float division by zero") }
        return .double(x / y)
    case "//", "%":
        guard y != 0 else { throw JinjaError(message: "float modulo by zero") }
        let q = (x / y).rounded(.down)
        return .double(op == "//" ? q : x - q * y)
    case "**": return .double(pow(x, y))
    default: throw unsupported()
    }
}

/// Python's `==`.
func pythonEquals(_ l: JinjaValue, _ r: JinjaValue) -> Bool {
    switch (l, r) {
    case (.undefined, .undefined), (.none, .none): return true
    case (.string(let a), .string(let b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
    case (.list(let a), .list(let b)): return a.count == b.count && zip(a, b).allSatisfy { pythonEquals($0, $1) }
    case (.dict(let a), .dict(let b)):
        return a.count == b.count && a.entries.allSatisfy { e in b[e.key].map { pythonEquals(e.value, $0) } ?? false }
    case (.namespace(let a), .namespace(let b)): return a === b
    default:
        guard let a = number(l), let b = number(r) else { return false }
        if case .int(let x) = a, case .int(let y) = b { return x == y }
        return asDouble(a) == asDouble(b)
    }
}

/// Python's `<`; nil when the types do not order.
private func pythonLess(_ l: JinjaValue, _ r: JinjaValue) -> Bool? {
    switch (l, r) {
    case (.string(let a), .string(let b)): return a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
    case (.list(let a), .list(let b)):
        for (x, y) in zip(a, b) where !pythonEquals(x, y) { return pythonLess(x, y) }
        return a.count < b.count
    default:
        guard let a = number(l), let b = number(r) else { return nil }
        if case .int(let x) = a, case .int(let y) = b { return x < y }
        return asDouble(a) < asDouble(b)
    }
}

func contains(_ container: JinjaValue, _ item: JinjaValue) throws -> Bool {
    switch container {
    case .string(let s):
        guard case .string(let sub) = item else { throw JinjaError(message: "'in <string>' requires string as left operand, not \(item.typeName)") }
        return sub.isEmpty || s.contains(sub)
    case .list(let l): return l.contains { pythonEquals($0, item) }
    case .dict(let d):
        guard case .string(let k) = item else { return false }
        return d[k] != nil
    case .undefined: return false
    default: throw JinjaError(message: "argument of type '\(container.typeName)' is not iterable")
    }
}

func compare(_ op: String, _ l: JinjaValue, _ r: JinjaValue) throws -> Bool {
    switch op {
    case "==": return pythonEquals(l, r)
    case "!=": return !pythonEquals(l, r)
    case "in": return try contains(r, l)
    case "not in": return !(try contains(r, l))
    default:
        if case .undefined(let why) = l { throw JinjaError(message: why) }
        if case .undefined(let why) = r { throw JinjaError(message: why) }
        let lt = pythonLess(l, r), gt = pythonLess(r, l)
        guard let lt, let gt else { throw JinjaError(message: "'\(op)' not supported between instances of '\(l.typeName)' and '\(r.typeName)'") }
        switch op {
        case "<": return lt
        case ">": return gt
        case "<=": return !gt
        default: return !lt
        }
    }
}
