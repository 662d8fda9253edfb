import Foundation

/// Finds the OpenCL C sources of the kernel families (`softmax`, `attention`, …).
///
/// They ship as resources of this target; SwiftPM puts the resource bundle beside the
/// executables. A binary that travels alone (see shared/GPU.md) can point
/// `ITUNE_KERNELS_DIR` at a copy of `Kernels/`.
public enum KernelSources {
    /// The source text of one family as it is compiled: the shared files every family may use,
    /// `reduce.cl` (work-group reductions) and `storage.cl` (reading 16-bit weights), followed by
    /// the family's file, e.g. `softmax.cl`.
    public static func source(of family: String) throws -> String {
        let body = try file(family)
        if sharedFiles.contains(family) { return body }
        return try (sharedFiles.map(file) + [body]).joined(separator: "\n")
    }

    /// The files compiled in front of every family.
    static let sharedFiles = ["reduce", "storage"]

    /// The text of one .cl file.
    static func file(_ family: String) throws -> String {
        guard let text = resource(family + ".cl").flatMap({ String(data: $0, encoding: .utf8) }) else {
            throw KernelSourceError.notFound(family: family, searched: searchDirectories().map(\.path))
        }
        return text
    }

    /// The bytes of a file shipped beside the kernels (`softmax.cl`, `tuning.json`), or nil.
    public static func resource(_ fileName: String) -> Data? {
        for dir in searchDirectories() {
            if let data = try? Data(contentsOf: dir.appendingPathComponent(fileName)) { return data }
        }
        return nil
    }

    /// The tunable constants a source declares, with their defaults: every
    /// `#ifndef NAME` directly followed by `#define NAME <integer>`. The host passes `-DNAME=v`
    /// to change one (see KernelTuning); a constant the host must always set (a shape) is
    /// written without a default and is not listed.
    public static func tunableDefaults(in source: String) -> [String: Int] {
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }) }
        var out: [String: Int] = [:]
        for (a, b) in zip(lines, lines.dropFirst()) where a.count == 2 && a[0] == "#ifndef" {
            let commentOnly = b.count == 3 || (b.count > 3 && b[3].hasPrefix("//"))
            if commentOnly, b[0] == "#define", b[1] == a[1], let v = Int(b[2]) { out[String(a[1])] = v }
        }
        return out
    }

    static func searchDirectories() -> [URL] {
        var dirs: [URL] = []
        if let env = ProcessInfo.processInfo.environment["ITUNE_KERNELS_DIR"], !env.isEmpty {
            dirs.append(URL(fileURLWithPath: env))
        }
        let bundleName = "itune-gpu_ITuneKernels.resources"
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
            .deletingLastPathComponent()
        for base in [Bundle.main.bundleURL, exe, Bundle.main.resourceURL].compactMap({ $0 }) {
            dirs.append(base.appendingPathComponent(bundleName))
            dirs.append(base.appendingPathComponent("itune-gpu_ITuneKernels.bundle/Contents/Resources"))
        }
        for b in Bundle.allBundles where b.bundlePath.hasSuffix(bundleName) { dirs.append(b.bundleURL) }
        // A development checkout: the sources beside this file.
        dirs.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent())
        return dirs
    }
}

public enum KernelSourceError: Error, CustomStringConvertible {
    case notFound(family: String, searched: [String])
    public var description: String {
        switch self {
        case let .notFound(family, searched):
            return "OpenCL kernel source \(family).cl not found; looked in: \(searched.joined(separator: ", ")). Set ITUNE_KERNELS_DIR to the Kernels/ folder."
        }
    }
}
