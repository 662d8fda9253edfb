import Foundation

/// Finds the OpenCL C sources of the kernel families (`softmax`, `attention`, …).
///
/// They ship as resources of this target; SwiftPM puts the resource bundle beside the
/// executables. A binary that travels alone (see shared/GPU.md) can point
/// `ITUNE_KERNELS_DIR` at a copy of `Kernels/`.
public enum KernelSources {
    /// The source text of one family as it is compiled: `reduce.cl` (the work-group reductions
    /// every family may use) followed by the family's file, e.g. `softmax.cl`.
    public static func source(of family: String) throws -> String {
        let body = try file(family)
        return family == "reduce" ? body : try file("reduce") + "\n" + body
    }

    /// The text of one .cl file.
    static func file(_ family: String) throws -> String {
        for dir in searchDirectories() {
            let url = dir.appendingPathComponent(family + ".cl")
            if let text = try? String(contentsOf: url, encoding: .utf8) { return text }
        }
        throw KernelSourceError.notFound(family: family, searched: searchDirectories().map(\.path))
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
