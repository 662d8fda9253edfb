import Foundation

// jinja2's filters and tests, and the Python str/dict methods that chat templates call, as
// jinja2 3.1 defines them (their argument names are accepted as keywords).

/// Arguments of a filter or method: positional first, then by keyword.
struct Arguments {
    let positional: [JinjaValue]
    let keywords: [(String, JinjaValue)]
    let function: String

    func get(_ i: Int, _ name: String) -> JinjaValue? {
        if i >= 0, i < positional.count { return positional[i] }
        return keywords.first { $0.0 == name }?.1
    }

    func string(_ i: Int, _ name: String, _ def: String? = nil) throws -> String? {
        guard let v = get(i, name) else { return def }
        switch v {
        case .string(let s): return s
        case .none, .undefined: return def
        default: throw JinjaError(message: "\(function)(): '\(name)' must be a string, not \(v.typeName)")
        }
    }

    func int(_ i: Int, _ name: String, _ def: Int) throws -> Int {
        guard let v = get(i, name) else { return def }
        switch v {
        case .int(let n): return n
        case .bool(let b): return b ? 1 : 0
        default: throw JinjaError(message: "\(function)(): '\(name)' must be an integer, not \(v.typeName)")
        }
    }

    func bool(_ i: Int, _ name: String, _ def: Bool) -> Bool { get(i, name)?.truthy ?? def }
}

private func isPythonSpace(_ u: Unicode.Scalar) -> Bool {
    u.properties.isWhitespace || (0x1C...0x1F).contains(u.value)
}

/// Python's `str.strip()` (or `lstrip`/`rstrip`) without arguments: whitespace as `str.isspace`
/// sees it, one code point at a time. For callers that mirror transformers' string handling.
public func pythonStripped(_ s: String, left: Bool = true, right: Bool = true) -> String { pyStrip(s, nil, left: left, right: right) }

private func pyStrip(_ s: String, _ chars: String?, left: Bool, right: Bool) -> String {
    let set = chars.map { Set($0.unicodeScalars) }
    func strip(_ u: Unicode.Scalar) -> Bool { set.map { $0.contains(u) } ?? isPythonSpace(u) }
    var u = Array(s.unicodeScalars)[...]
    if left { while let f = u.first, strip(f) { u = u.dropFirst() } }
    if right { while let l = u.last, strip(l) { u = u.dropLast() } }
    var out = String.UnicodeScalarView()
    out.append(contentsOf: u)
    return String(out)
}

/// Python's str.split: on runs of whitespace without `sep`, else on each `sep`.
private func pySplit(_ s: String, _ sep: String?, _ maxsplit: Int) throws -> [String] {
    var out: [String] = []
    let u = Array(s.unicodeScalars)
    func str(_ r: ArraySlice<Unicode.Scalar>) -> String { var v = String.UnicodeScalarView(); v.append(contentsOf: r); return String(v) }
    if let sep {
        let p = Array(sep.unicodeScalars)
        guard !p.isEmpty else { throw JinjaError(message: "split(): empty separator") }
        var start = 0, i = 0
        while i + p.count <= u.count, maxsplit < 0 || out.count < maxsplit {
            if Array(u[i..<i + p.count]) == p { out.append(str(u[start..<i])); i += p.count; start = i } else { i += 1 }
        }
        out.append(str(u[start...]))
        return out
    }
    var i = 0
    while i < u.count {
        while i < u.count, isPythonSpace(u[i]) { i += 1 }
        guard i < u.count else { break }
        if maxsplit >= 0, out.count == maxsplit {
            var end = u.count
            while end > i, isPythonSpace(u[end - 1]) { end -= 1 }
            out.append(str(u[i..<end]))
            break
        }
        let start = i
        while i < u.count, !isPythonSpace(u[i]) { i += 1 }
        out.append(str(u[start..<i]))
    }
    return out
}

private func pyReplace(_ s: String, _ old: String, _ new: String, _ count: Int) -> String {
    if old.isEmpty {
        var out = String.UnicodeScalarView(), n = 0
        for u in s.unicodeScalars {
            if count < 0 || n < count { out.append(contentsOf: new.unicodeScalars); n += 1 }
            out.append(u)
        }
        if count < 0 || n < count { out.append(contentsOf: new.unicodeScalars) }
        return String(out)
    }
    let u = Array(s.unicodeScalars), o = Array(old.unicodeScalars)
    var out = String.UnicodeScalarView(), i = 0, n = 0
    while i < u.count {
        if (count < 0 || n < count), i + o.count <= u.count, Array(u[i..<i + o.count]) == o {
            out.append(contentsOf: new.unicodeScalars)
            i += o.count
            n += 1
        } else {
            out.append(u[i])
            i += 1
        }
    }
    return String(out)
}

/// Python's str.title: a cased letter after an uncased character starts a word.
private func pyTitle(_ s: String) -> String {
    var out = "", prevCased = false
    for u in s.unicodeScalars {
        let c = u.properties.isCased
        out += c ? (prevCased ? u.properties.lowercaseMapping : u.properties.titlecaseMapping) : String(u)
        prevCased = c
    }
    return out
}

private func pyCapitalize(_ s: String) -> String {
    guard let f = s.unicodeScalars.first else { return s }
    return f.properties.titlecaseMapping + String(String.UnicodeScalarView(s.unicodeScalars.dropFirst())).lowercased()
}

/// Python's str.splitlines (without keepends).
private func pySplitLines(_ s: String) -> [String] {
    var out: [String] = [], cur = String.UnicodeScalarView()
    let u = Array(s.unicodeScalars)
    var i = 0
    while i < u.count {
        let c = u[i]
        if [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029].contains(c.value) {
            out.append(String(cur))
            cur = String.UnicodeScalarView()
            if c == "\r", i + 1 < u.count, u[i + 1] == "\n" { i += 1 }
        } else {
            cur.append(c)
        }
        i += 1
    }
    if !cur.isEmpty { out.append(String(cur)) }
    return out
}

private func method(_ name: String, _ body: @escaping (Arguments) throws -> JinjaValue) -> JinjaValue {
    .callable(JinjaCallable(name: name) { a, kw in try body(Arguments(positional: a, keywords: kw, function: name)) })
}

private func prefixes(_ v: JinjaValue?) throws -> [String] {
    switch v {
    case .string(let s)?: return [s]
    case .list(let l)?: return try l.map { guard case .string(let s) = $0 else { throw JinjaError(message: "startswith/endswith take strings") }; return s }
    default: throw JinjaError(message: "startswith/endswith take a string or a tuple of strings")
    }
}

func stringMethod(_ s: String, _ name: String) -> JinjaValue? {
    switch name {
    case "strip", "lstrip", "rstrip":
        return method(name) { a in .string(pyStrip(s, try a.string(0, "chars"), left: name != "rstrip", right: name != "lstrip")) }
    case "split":
        return method(name) { a in .list(try pySplit(s, try a.string(0, "sep"), try a.int(1, "maxsplit", -1)).map { .string($0) }) }
    case "splitlines": return method(name) { _ in .list(pySplitLines(s).map { .string($0) }) }
    case "startswith":
        return method(name) { a in .bool(try prefixes(a.get(0, "prefix")).contains { s.unicodeScalars.starts(with: $0.unicodeScalars) }) }
    case "endswith":
        return method(name) { a in .bool(try prefixes(a.get(0, "suffix")).contains { s.unicodeScalars.reversed().starts(with: $0.unicodeScalars.reversed()) }) }
    case "upper": return method(name) { _ in .string(s.uppercased()) }
    case "lower": return method(name) { _ in .string(s.lowercased()) }
    case "title": return method(name) { _ in .string(pyTitle(s)) }
    case "capitalize": return method(name) { _ in .string(pyCapitalize(s)) }
    case "replace":
        return method(name) { a in
            guard let old = try a.string(0, "old"), let new = try a.string(1, "new") else { throw JinjaError(message: "replace() takes two strings") }
            return .string(pyReplace(s, old, new, try a.int(2, "count", -1)))
        }
    case "find", "count", "index":
        return method(name) { a in
            guard let sub = try a.string(0, "sub") else { throw JinjaError(message: "\(name)() takes a string") }
            let u = Array(s.unicodeScalars), p = Array(sub.unicodeScalars)
            var hits: [Int] = [], i = 0
            while i + p.count <= u.count {
                if Array(u[i..<i + p.count]) == p { hits.append(i); i += max(p.count, 1) } else { i += 1 }
            }
            if name == "count" { return .int(p.isEmpty ? u.count + 1 : hits.count) }
            if let first = hits.first { return .int(first) }
            if name == "index" { throw JinjaError(message: "substring not found") }
            return .int(-1)
        }
    case "join":
        return method(name) { a in
            guard let items = a.get(0, "iterable") else { throw JinjaError(message: "join() takes a list") }
            return .string(try iterate(items).map { v -> String in
                guard case .string(let x) = v else { throw JinjaError(message: "join(): expected str, found \(v.typeName)") }
                return x
            }.joined(separator: s))
        }
    case "isdigit": return method(name) { _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType == .decimal || $0.properties.numericType == .digit }) }
    case "isspace": return method(name) { _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(isPythonSpace)) }
    case "isalpha": return method(name) { _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic }) }
    case "isupper": return method(name) { _ in .bool(s.unicodeScalars.contains { $0.properties.isCased } && s == s.uppercased()) }
    case "islower": return method(name) { _ in .bool(s.unicodeScalars.contains { $0.properties.isCased } && s == s.lowercased()) }
    default: return nil
    }
}

func dictMethod(_ d: JinjaDict, _ name: String) -> JinjaValue? {
    switch name {
    case "items": return method(name) { _ in .list(d.entries.map { .list([.string($0.key), $0.value]) }) }
    case "keys": return method(name) { _ in .list(d.keys.map { .string($0) }) }
    case "values": return method(name) { _ in .list(d.entries.map(\.value)) }
    case "get":
        return method(name) { a in
            guard case .string(let k)? = a.get(0, "key") else { return a.get(1, "default") ?? .none }
            return d[k] ?? a.get(1, "default") ?? .none
        }
    case "update", "pop", "popitem", "setdefault", "clear":
        return method(name) { _ in throw JinjaError(message: "dict.\(name)() is not allowed: the template sandbox is immutable") }
    default: return nil
    }
}

func listMethod(_ l: [JinjaValue], _ name: String) -> JinjaValue? {
    switch name {
    case "count": return method(name) { a in .int(l.filter { pythonEquals($0, a.get(0, "x") ?? .none) }.count) }
    case "index":
        return method(name) { a in
            guard let i = l.firstIndex(where: { pythonEquals($0, a.get(0, "x") ?? .none) }) else { throw JinjaError(message: "value is not in list") }
            return .int(i)
        }
    case "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse":
        return method(name) { _ in throw JinjaError(message: "list.\(name)() is not allowed: the template sandbox is immutable") }
    default: return nil
    }
}

// MARK: - tests

func applyTest(_ name: String, _ v: JinjaValue, _ args: [JinjaValue]) throws -> Bool {
    func arg() throws -> JinjaValue {
        guard let a = args.first else { throw JinjaError(message: "test '\(name)' needs an argument") }
        return a
    }
    switch name {
    case "defined": return !v.isUndefined
    case "undefined": return v.isUndefined
    case "none": if case .none = v { return true }; return false
    case "string": if case .string = v { return true }; return false
    case "mapping": if case .dict = v { return true }; return false
    case "sequence", "iterable":
        switch v { case .list, .string, .dict: return true; case .undefined: return name == "iterable"; default: return false }
    case "number": switch v { case .int, .double, .bool: return true; default: return false }
    case "integer": if case .int = v { return true }; return false
    case "float": if case .double = v { return true }; return false
    case "boolean": if case .bool = v { return true }; return false
    case "true": if case .bool(true) = v { return true }; return false
    case "false": if case .bool(false) = v { return true }; return false
    case "callable": if case .callable = v { return true }; return false
    case "odd", "even", "divisibleby":
        guard case .int(let i) = v else { throw JinjaError(message: "test '\(name)' needs an integer, not \(v.typeName)") }
        if name == "divisibleby" {
            guard case .int(let d) = try arg(), d != 0 else { throw JinjaError(message: "divisibleby needs a non-zero integer") }
            return i % d == 0
        }
        return (i % 2 != 0) == (name == "odd")
    case "eq", "equalto", "==": return pythonEquals(v, try arg())
    case "ne", "!=": return !pythonEquals(v, try arg())
    case "lt", "<": return try compare("<", v, try arg())
    case "le", "<=": return try compare("<=", v, try arg())
    case "gt", ">", "greaterthan": return try compare(">", v, try arg())
    case "ge", ">=": return try compare(">=", v, try arg())
    case "in": return try contains(try arg(), v)
    case "sameas":
        let other = try arg()
        switch (v, other) {
        case (.none, .none): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.namespace(let a), .namespace(let b)): return a === b
        default: return false
        }
    case "lower": if case .string(let s) = v { return s == s.lowercased() }; return false
    case "upper": if case .string(let s) = v { return s == s.uppercased() }; return false
    case "escaped": return false
    default: throw JinjaError(message: "no test named '\(name)'")
    }
}

// MARK: - filters

/// jinja2's `attribute="a.b"` lookup (dotted path, integer parts index lists).
private func attributePath(_ v: JinjaValue, _ path: String) throws -> JinjaValue {
    var cur = v
    for part in path.split(separator: ".", omittingEmptySubsequences: false) {
        if let i = Int(part) { cur = try getItem(cur, .int(i)) } else { cur = try getItem(cur, .string(String(part))) }
    }
    return cur
}

private func sortKey(_ v: JinjaValue, caseSensitive: Bool) -> JinjaValue {
    if !caseSensitive, case .string(let s) = v { return .string(s.lowercased()) }
    return v
}

private func lessThan(_ a: JinjaValue, _ b: JinjaValue) throws -> Bool { try compare("<", a, b) }

func applyFilter(_ name: String, _ v: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue {
    let a = Arguments(positional: args, keywords: kwargs, function: name)
    func str() -> String { v.pythonString }
    switch name {
    case "trim":
        return .string(pyStrip(str(), try a.string(0, "chars"), left: true, right: true))
    case "length", "count":
        switch v {
        case .string(let s): return .int(s.unicodeScalars.count)
        case .list(let l): return .int(l.count)
        case .dict(let d): return .int(d.count)
        case .undefined: return .int(0)
        default: throw JinjaError(message: "object of type '\(v.typeName)' has no len()")
        }
    case "tojson":
        var indent: String? = nil
        switch a.get(0, "indent") {
        case .int(let n)?: indent = String(repeating: " ", count: max(0, n))
        case .string(let s)?: indent = s
        case nil, .none?: break
        case let other?: throw JinjaError(message: "tojson(): indent must be an integer, not \(other.typeName)")
        }
        var separators: (String, String)? = nil
        if case .list(let seps)? = a.get(2, "separators"), seps.count == 2, case .string(let x) = seps[0], case .string(let y) = seps[1] {
            separators = (x, y)
        }
        return .string(try v.json(indent: indent, separators: separators, sortKeys: a.bool(3, "sort_keys", false)))
    case "indent":
        var indention: String
        switch a.get(0, "width") {
        case .string(let s)?: indention = s
        case nil: indention = "    "
        default: indention = String(repeating: " ", count: max(0, try a.int(0, "width", 4)))
        }
        let first = a.bool(1, "first", false), blank = a.bool(2, "blank", false)
        var lines = pySplitLines(str() + "\n")
        var rv: String
        if blank {
            rv = lines.joined(separator: "\n" + indention)
        } else {
            rv = lines.isEmpty ? "" : lines.removeFirst()
            if !lines.isEmpty { rv += "\n" + lines.map { $0.isEmpty ? $0 : indention + $0 }.joined(separator: "\n") }
        }
        if first { rv = indention + rv }
        return .string(rv)
    case "join":
        var items = try iterate(v)
        if let attr = try a.string(1, "attribute") { items = try items.map { try attributePath($0, attr) } }
        return .string(items.map(\.pythonString).joined(separator: try a.string(0, "d", "") ?? ""))
    case "first":
        return try iterate(v).first ?? .undefined("first() of an empty sequence")
    case "last":
        return try iterate(v).last ?? .undefined("last() of an empty sequence")
    case "default", "d":
        let useDefault = a.bool(1, "boolean", false) ? !v.truthy : v.isUndefined
        return useDefault ? (a.get(0, "default_value") ?? .string("")) : v
    case "list":
        return .list(try iterate(v))
    case "items":
        switch v {
        case .dict(let d): return .list(d.entries.map { .list([.string($0.key), $0.value]) })
        case .undefined: return .list([])
        default: throw JinjaError(message: "items() needs a mapping, not \(v.typeName)")
        }
    case "selectattr", "rejectattr", "select", "reject":
        let byAttribute = name.hasSuffix("attr")
        let keep = name.hasPrefix("select")
        var rest = args
        var attr: String? = nil
        if byAttribute {
            guard case .string(let s)? = rest.first else { throw JinjaError(message: "\(name)() needs an attribute name") }
            attr = s
            rest.removeFirst()
        }
        let test: String? = rest.isEmpty ? nil : { if case .string(let t) = rest[0] { return t } else { return nil } }()
        let testArgs = Array(rest.dropFirst())
        return .list(try iterate(v).filter { item in
            let x = try attr.map { try attributePath(item, $0) } ?? item
            let passed = try test.map { try applyTest($0, x, testArgs) } ?? x.truthy
            return passed == keep
        })
    case "map":
        let items = try iterate(v)
        if let attr = try a.string(-1, "attribute") {
            let def = a.keywords.first { $0.0 == "default" }?.1
            return .list(try items.map { item in
                let x = try attributePath(item, attr)
                if x.isUndefined, let def { return def }
                return x
            })
        }
        guard case .string(let filter)? = args.first else { throw JinjaError(message: "map() needs a filter name or attribute=") }
        return .list(try items.map { try applyFilter(filter, $0, Array(args.dropFirst()), kwargs) })
    case "upper": return .string(str().uppercased())
    case "lower": return .string(str().lowercased())
    case "capitalize": return .string(pyCapitalize(str()))
    case "title":
        // jinja2's own title(): words begin after spaces, hyphens and opening brackets.
        var out = "", atStart = true
        for u in str().unicodeScalars {
            let breaker = isPythonSpace(u) || "-({[<".unicodeScalars.contains(u)
            if breaker { out.unicodeScalars.append(u); atStart = true; continue }
            out += atStart ? u.properties.uppercaseMapping : u.properties.lowercaseMapping
            atStart = false
        }
        return .string(out)
    case "replace":
        guard let old = try a.string(0, "old"), let new = try a.string(1, "new") else { throw JinjaError(message: "replace() takes two strings") }
        return .string(pyReplace(str(), old, new, try a.int(2, "count", -1)))
    case "string": return .string(str())
    case "safe": return v
    case "e", "escape":
        var out = ""
        for c in str().unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return .string(out)
    case "int":
        switch v {
        case .int: return v
        case .bool(let b): return .int(b ? 1 : 0)
        case .double(let d): return d.isFinite && abs(d) < 9.2e18 ? .int(Int(d)) : a.get(0, "default") ?? .int(0)
        case .string(let s):
            let t = s.trimmingCharacters(in: .whitespaces)
            if let i = Int(t) { return .int(i) }
            if let d = Double(t), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d)) }
            return a.get(0, "default") ?? .int(0)
        default: return a.get(0, "default") ?? .int(0)
        }
    case "float":
        switch v {
        case .int(let i): return .double(Double(i))
        case .double: return v
        case .bool(let b): return .double(b ? 1 : 0)
        case .string(let s): return Double(s.trimmingCharacters(in: .whitespaces)).map { .double($0) } ?? a.get(0, "default") ?? .double(0)
        default: return a.get(0, "default") ?? .double(0)
        }
    case "abs":
        switch v {
        case .int(let i): return .int(try checked(0, i, { $0.subtractingReportingOverflow($1) }) < 0 ? i : -i)
        case .double(let d): return .double(Swift.abs(d))
        default: throw JinjaError(message: "bad operand type for abs(): '\(v.typeName)'")
        }
    case "round":
        let precision = try a.int(0, "precision", 0)
        let method = try a.string(1, "method", "common") ?? "common"
        let x: Double
        switch v { case .int(let i): x = Double(i); case .double(let d): x = d; default: throw JinjaError(message: "round() needs a number") }
        let scale = pow(10.0, Double(precision))
        let rule: FloatingPointRoundingRule = method == "ceil" ? .up : method == "floor" ? .down : .toNearestOrAwayFromZero
        return .double((x * scale).rounded(rule) / scale)
    case "reverse":
        if case .string(let s) = v { return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed()))) }
        return .list(try iterate(v).reversed())
    case "unique":
        var out: [JinjaValue] = []
        let cs = a.bool(0, "case_sensitive", false)
        for x in try iterate(v) where !out.contains(where: { pythonEquals(sortKey($0, caseSensitive: cs), sortKey(x, caseSensitive: cs)) }) { out.append(x) }
        return .list(out)
    case "sort":
        let reverse = a.bool(0, "reverse", false), cs = a.bool(1, "case_sensitive", false)
        let attr = try a.string(2, "attribute")
        let items = try iterate(v)
        let keys = try items.map { item in sortKey(try attr.map { try attributePath(item, $0) } ?? item, caseSensitive: cs) }
        var order = Array(items.indices)
        var failure: Error? = nil
        order.sort { i, j in
            do { return reverse ? try lessThan(keys[j], keys[i]) : try lessThan(keys[i], keys[j]) } catch { failure = error; return false }
        }
        if let failure { throw failure }
        return .list(order.map { items[$0] })
    case "dictsort":
        guard case .dict(let d) = v else { throw JinjaError(message: "dictsort() needs a mapping") }
        let cs = a.bool(0, "case_sensitive", false)
        let byValue = (try a.string(1, "by", "key") ?? "key") == "value"
        let reverse = a.bool(2, "reverse", false)
        var entries = d.entries
        var failure: Error? = nil
        entries.sort { x, y in
            let kx = sortKey(byValue ? x.value : .string(x.key), caseSensitive: cs), ky = sortKey(byValue ? y.value : .string(y.key), caseSensitive: cs)
            do { return reverse ? try lessThan(ky, kx) : try lessThan(kx, ky) } catch { failure = error; return false }
        }
        if let failure { throw failure }
        return .list(entries.map { .list([.string($0.key), $0.value]) })
    case "sum":
        var total = a.get(1, "start") ?? .int(0)
        let attr = try a.string(0, "attribute")
        for x in try iterate(v) { total = try binary("+", total, try attr.map { try attributePath(x, $0) } ?? x) }
        return total
    case "min", "max":
        let items = try iterate(v)
        guard var best = items.first else { return .undefined("\(name)() of an empty sequence") }
        for x in items.dropFirst() where try (name == "min" ? lessThan(x, best) : lessThan(best, x)) { best = x }
        return best
    case "wordcount":
        return .int(try pySplit(str(), nil, -1).count)
    case "attr":
        guard case .string(let n)? = args.first else { throw JinjaError(message: "attr() needs a name") }
        return try getAttribute(v, n)
    case "batch":
        let size = try a.int(0, "linecount", 1)
        guard size > 0 else { throw JinjaError(message: "batch() needs a positive size") }
        let items = try iterate(v)
        return .list(stride(from: 0, to: items.count, by: size).map { .list(Array(items[$0..<min($0 + size, items.count)])) })
    case "center":
        let width = try a.int(0, "width", 80), s = str()
        let n = s.unicodeScalars.count
        guard width > n else { return .string(s) }
        let left = (width - n) / 2 + ((width - n) & width & 1)
        return .string(String(repeating: " ", count: left) + s + String(repeating: " ", count: width - n - left))
    default:
        throw JinjaError(message: "no filter named '\(name)'")
    }
}
