import Foundation
import XCTest
@testable import ITuneTensor

/// The typed kernel functions, the `.cl` sources and Package.swift's resource list agree.
/// All of it runs on the CPU: drift fails here, not on a device.
final class KernelSignatureTests: XCTestCase {
    func testEveryKernelHasATypedFunctionWithItsSignature() throws {
        let cl = try RepositoryPaths.clSources()
        let swift = try RepositoryPaths.files(in: RepositoryPaths.typedKernels, suffix: ".swift")
        let kernels = cl.flatMap { KernelSignatureCheck.kernels(family: $0.key, source: $0.value) }
        XCTAssertGreaterThanOrEqual(kernels.count, 40, "the parser should see every kernel")
        for (file, text) in swift {
            XCTAssertEqual(text.components(separatedBy: "launch(").count - 1,
                           KernelSignatureCheck.functions(file: file, source: text).count,
                           "\(file): every launch is in a typed function of the form the check reads")
        }
        let problems = KernelSignatureCheck.problems(clSources: cl, swiftSources: swift)
        XCTAssertEqual(problems, [], problems.joined(separator: "\n"))
    }

    func testTheCheckCatchesARenamedKernelAndSwappedOrAddedArguments() throws {
        let cl = try RepositoryPaths.clSources()
        let swift = try RepositoryPaths.files(in: RepositoryPaths.typedKernels, suffix: ".swift")
        let softmax = try XCTUnwrap(cl["softmax"]), softmaxSwift = try XCTUnwrap(swift["SoftmaxKernels.swift"])
        func problems(cl clText: String? = nil, swift swiftText: String? = nil) -> [String] {
            var c = cl, s = swift
            c["softmax"] = clText ?? softmax
            s["SoftmaxKernels.swift"] = swiftText ?? softmaxSwift
            return KernelSignatureCheck.problems(clSources: c, swiftSources: s)
        }
        func replacing(_ text: String, _ a: String, _ b: String) throws -> String {
            XCTAssertTrue(text.contains(a), "the fixture text moved: \(a)")
            return text.replacingOccurrences(of: a, with: b)
        }
        let renamed = problems(cl: try replacing(softmax, "void softmax_forward(", "void softmax_fwd("))
        XCTAssertTrue(renamed.contains { $0.contains("softmax_fwd") && $0.contains("no typed functions") }, "\(renamed)")
        XCTAssertTrue(renamed.contains { $0.contains("which no softmax.cl declares") }, "\(renamed)")

        let swappedInSource = problems(cl: try replacing(softmax, "__global float* y, __global const float* x",
                                                        "__global const float* x, __global float* y"))
        XCTAssertTrue(swappedInSource.contains { $0.contains("parameter 0 is x") }, "\(swappedInSource)")

        let added = problems(cl: try replacing(softmax, "softmax_forward(__global float* y, __global const float* x, int C,",
                                               "softmax_forward(__global float* y, __global const float* x, int C, float temperature,"))
        XCTAssertTrue(added.contains { $0.contains("5 parameters in the .cl, 4 in softmaxForward") }, "\(added)")

        let swappedInSwift = problems(swift: try replacing(softmaxSwift, "[.buffer(y), .buffer(x), .int(C)", "[.buffer(x), .buffer(y), .int(C)"))
        XCTAssertTrue(swappedInSwift.contains { $0.contains("argument 0 should be y") }, "\(swappedInSwift)")

        let wrongKind = problems(swift: try replacing(softmaxSwift, ".int(C), .local(scratch)])", ".float(C), .local(scratch)])"))
        XCTAssertTrue(wrongKind.contains { $0.contains("passes .float(C)") }, "\(wrongKind)")
    }

    func testOnlyTheTypedKernelFunctionsCallTheUntypedLaunch() throws {
        let sources = RepositoryPaths.root.appendingPathComponent("Sources/ITuneTensor")
        let files = try XCTUnwrap(FileManager.default.enumerator(atPath: sources.path)).compactMap { $0 as? String }
        let outside = files.filter { $0.hasSuffix(".swift") && !$0.hasPrefix("OpenCL/Kernels/") }
        XCTAssertTrue(outside.contains("Ops/Softmax.swift"), "\(outside)")
        for path in outside {
            let text = try String(contentsOf: sources.appendingPathComponent(path), encoding: .utf8)
            XCTAssertFalse(text.contains(".launch(") || text.contains("launch(\""),
                           "\(path) calls launch directly; call the family's typed function in OpenCL/Kernels/")
        }
    }

    func testPackageShipsEveryFileOfTheKernelsFolder() throws {
        let manifest = try String(contentsOf: RepositoryPaths.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let start = try XCTUnwrap(manifest.range(of: #".target(name: "ITuneKernels""#), "Package.swift has no ITuneKernels target")
        let target = manifest[start.upperBound...]
        let end = try XCTUnwrap(target.range(of: "swiftSettings"), "ITuneKernels target has no swiftSettings")
        let declaration = String(target[..<end.lowerBound])
        let re = try NSRegularExpression(pattern: #"\.(?:copy|process)\("([^"]+)"\)"#)
        let listed = Set(re.matches(in: declaration, range: NSRange(declaration.startIndex..., in: declaration)).compactMap {
            Range($0.range(at: 1), in: declaration).map { String(declaration[$0]) }
        })
        let onDisk = Set(try FileManager.default.contentsOfDirectory(atPath: RepositoryPaths.kernels.path)
            .filter { !$0.hasSuffix(".swift") && !$0.hasPrefix(".") })
        XCTAssertTrue(onDisk.contains("softmax.cl"), "\(onDisk)")
        XCTAssertEqual(onDisk.subtracting(listed).sorted(), [], "files in Kernels/ that Package.swift's ITuneKernels resources leave out")
        XCTAssertEqual(listed.subtracting(onDisk).sorted(), [], "resources Package.swift names that Kernels/ lacks")

        // And the build put them into the resource bundle beside the test binary (SwiftPM builds;
        // an IDE may put its bundles elsewhere, and then this part has nothing to look at).
        let testBinary = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
        let places = [Bundle(for: Self.self).bundleURL.deletingLastPathComponent(), Bundle.main.bundleURL,
                      testBinary.deletingLastPathComponent()]
        let bundles = places.flatMap { dir in
            ["itune-gpu_ITuneKernels.resources", "itune-gpu_ITuneKernels.bundle/Contents/Resources"].map { dir.appendingPathComponent($0) }
        }
        if let bundle = bundles.first(where: { FileManager.default.fileExists(atPath: $0.path) }) {
            print("[itune-tests] kernel resources checked in \(bundle.path)")
            for file in onDisk.sorted() {
                XCTAssertTrue(FileManager.default.fileExists(atPath: bundle.appendingPathComponent(file).path),
                              "\(file) is not in the built resource bundle \(bundle.path)")
            }
        }
    }
}
