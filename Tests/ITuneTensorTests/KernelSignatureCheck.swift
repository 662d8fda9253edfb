import Foundation

/// Compares the `__kernel` signatures of Kernels/*.cl with the typed Swift functions in
/// Sources/ITuneTensor/OpenCL/Kernels/*.swift, by reading both as text, so that a renamed
/// kernel or a swapped, added or dropped argument fails a CPU-only test instead of a device run.
///
/// The Swift side is written in one form (see SoftmaxKernels.swift):
///
///     func softmaxForward(_ grid: KernelGrid, y: Tensor, x: Tensor, C: Int, scratch: LocalMemory) throws {
///         try launch("softmax", "softmax_forward", grid, [.buffer(y), .buffer(x), .int(C), .local(scratch)])
///     }
///
/// Checked: every kernel has exactly one function, named in camelCase, in `<Family>Kernels.swift`;
/// its parameters after the grid are the kernel's, in order, named in camelCase, of the matching
/// kind; the launch passes exactly those parameters in that order with the matching argument
/// cases; no function launches a kernel that the sources do not declare.
enum KernelSignatureCheck {
    /// The kind of an OpenCL C kernel parameter.
    enum Kind: String {
        case buffer, int, uint, float, local
        /// A type the typed functions have no argument case for (long, half, a struct).
        case other
    }

    struct Parameter: Equatable {
        let name: String
        let kind: Kind
    }

    struct CLKernel {
        let family: String
        let name: String
        let parameters: [Parameter]
    }

    struct SwiftKernelFunction {
        let file: String
        let name: String
        /// (label, Swift type) after the grid.
        let parameters: [(label: String, type: String)]
        let family: String
        let kernel: String
        /// (argument case, label) in the launch's list.
        let arguments: [(kind: String, label: String)]
    }

    /// Every `__kernel void name(...)` of one .cl file.
    static func kernels(family: String, source: String) -> [CLKernel] {
        let pattern = #"__kernel\s+void\s+(\w+)\s*\(([^)]*)\)"#
        return matches(pattern, in: source).map { groups in
            let params = groups[2].split(separator: ",").map { p -> Parameter in
                let words = p.replacingOccurrences(of: "*", with: " * ").split(whereSeparator: \.isWhitespace).map(String.init)
                let name = words.last ?? ""
                let kind: Kind
                if words.contains("__local") { kind = .local }
                else if words.contains("__global") || words.contains("*") { kind = .buffer }
                else { kind = [Kind.int, .uint, .float].first { $0.rawValue == words.dropLast().last } ?? .other }
                return Parameter(name: name, kind: kind)
            }
            return CLKernel(family: family, name: groups[1], parameters: params)
        }
    }

    /// Every typed kernel function of one Swift file.
    static func functions(file: String, source: String) -> [SwiftKernelFunction] {
        let pattern = #"func\s+(\w+)\s*\(\s*_\s+grid\s*:\s*KernelGrid\s*,([^)]*)\)\s*throws\s*\{\s*try\s+launch\(\s*"(\w+)"\s*,\s*"(\w+)"\s*,\s*grid\s*,\s*\[([^\]]*)\]\s*\)"#
        return matches(pattern, in: source).map { g in
            let params = g[2].split(separator: ",").map { p -> (String, String) in
                let parts = p.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                return (parts.first ?? "", parts.count > 1 ? parts[1] : "")
            }
            let args = matches(#"\.(\w+)\(\s*(\w+)\s*\)"#, in: g[5]).map { ($0[1], $0[2]) }
            return SwiftKernelFunction(file: file, name: g[1], parameters: params, family: g[3], kernel: g[4], arguments: args)
        }
    }

    /// seg_start → segStart, bc2_sqrt → bc2Sqrt, Tq → Tq.
    static func camelCase(_ snake: String) -> String {
        let parts = snake.split(separator: "_")
        guard let first = parts.first else { return snake }
        return String(first) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    /// `rope` → RopeKernels.swift, `gemm_blocked` → GemmBlockedKernels.swift.
    static func swiftFile(of family: String) -> String {
        let name = camelCase(family)
        return name.prefix(1).uppercased() + name.dropFirst() + "Kernels.swift"
    }

    /// The Swift parameter types and launch argument cases each .cl kind may have.
    static let swiftTypes: [Kind: [(type: String, argument: String)]] = [
        .buffer: [("Tensor", "buffer")],
        .int: [("Int", "int"), ("Bool", "bool")],
        .uint: [("UInt32", "uint")],
        .float: [("Float", "float")],
        .local: [("LocalMemory", "local")],
    ]

    /// Everything that disagrees, one line each; empty when the two sides match.
    /// `clSources`: family → .cl text; `swiftSources`: file name → Swift text.
    static func problems(clSources: [String: String], swiftSources: [String: String]) -> [String] {
        var out: [String] = []
        let cl = clSources.sorted { $0.key < $1.key }.flatMap { kernels(family: $0.key, source: $0.value) }
        let swift = swiftSources.sorted { $0.key < $1.key }.flatMap { functions(file: $0.key, source: $0.value) }
        for f in swift where !cl.contains(where: { $0.family == f.family && $0.name == f.kernel }) {
            out.append("\(f.file): \(f.name) launches \(f.family)/\(f.kernel), which no \(f.family).cl declares")
        }
        for k in cl {
            let id = "\(k.family).cl \(k.name)"
            let fs = swift.filter { $0.family == k.family && $0.kernel == k.name }
            guard fs.count == 1, let f = fs.first else {
                out.append("\(id): \(fs.isEmpty ? "no" : "\(fs.count)") typed functions (want one, \(camelCase(k.name)) in \(swiftFile(of: k.family)))")
                continue
            }
            if f.name != camelCase(k.name) { out.append("\(id): the function is \(f.name), want \(camelCase(k.name))") }
            if f.file != swiftFile(of: k.family) { out.append("\(id): \(f.name) is in \(f.file), want \(swiftFile(of: k.family))") }
            if f.parameters.count != k.parameters.count {
                out.append("\(id): \(k.parameters.count) parameters in the .cl, \(f.parameters.count) in \(f.name)")
            }
            if f.arguments.count != k.parameters.count {
                out.append("\(id): \(k.parameters.count) parameters in the .cl, \(f.name) passes \(f.arguments.count)")
            }
            for (i, p) in k.parameters.enumerated() {
                let want = camelCase(p.name)
                let allowed = swiftTypes[p.kind] ?? []
                if i < f.parameters.count {
                    let (label, type) = f.parameters[i]
                    if label != want { out.append("\(id): parameter \(i) is \(p.name), \(f.name) has \(label)") }
                    if !allowed.contains(where: { $0.type == type }) {
                        out.append("\(id): parameter \(i) (\(p.name)) is \(p.kind.rawValue), \(f.name) takes \(type)")
                    }
                }
                if i < f.arguments.count {
                    let (kind, label) = f.arguments[i]
                    if label != want { out.append("\(id): argument \(i) should be \(want), \(f.name) passes \(label)") }
                    let type = f.parameters.first { $0.label == label }?.type
                    if !allowed.contains(where: { $0.argument == kind && (type == nil || $0.type == type) }) {
                        out.append("\(id): argument \(i) (\(p.name)) is \(p.kind.rawValue), \(f.name) passes .\(kind)(\(label))")
                    }
                }
            }
        }
        return out
    }

    private static func matches(_ pattern: String, in text: String) -> [[String]] {
        guard let re = try? NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators]) else { return [] }
        let ns = text as NSString
        return re.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { m in
            (0..<m.numberOfRanges).map { m.range(at: $0).location == NSNotFound ? "" : ns.substring(with: m.range(at: $0)) }
        }
    }
}

/// The repository's folders, found from this file.
enum RepositoryPaths {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let kernels = root.appendingPathComponent("Kernels")
    static let typedKernels = root.appendingPathComponent("Sources/ITuneTensor/OpenCL/Kernels")

    /// name → text of the files of `dir` whose names end in `suffix`.
    static func files(in dir: URL, suffix: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name.hasSuffix(suffix) {
            out[name] = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
        }
        return out
    }

    /// family → text of Kernels/*.cl.
    static func clSources() throws -> [String: String] {
        Dictionary(uniqueKeysWithValues: try files(in: kernels, suffix: ".cl").map { (String($0.key.dropLast(3)), $0.value) })
    }
}
