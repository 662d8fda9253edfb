import Foundation
import XCTest

/// Runs one of the package's executables (built beside the test bundle) and returns its exit
/// status, standard output and standard error; skips the test where it is not built.
/// `environment` is added to this process's.
func runBuiltExecutable(_ name: String, _ arguments: [String], environment: [String: String] = [:],
                        from test: XCTestCase) throws -> (status: Int32, out: String, err: String) {
    try runExecutable(at: builtExecutablePath(name, from: test), arguments, environment: environment)
}

/// The path of one of the package's executables, built beside the test bundle; skips the
/// test where it is not built.
func builtExecutablePath(_ name: String, from test: XCTestCase) throws -> String {
    var dir = Bundle(for: type(of: test)).bundleURL.deletingLastPathComponent()
    if !FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path) {
        dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }
    let exe = dir.appendingPathComponent(name)
    guard FileManager.default.isExecutableFile(atPath: exe.path) else {
        throw XCTSkip("\(name) is not built next to the tests (\(exe.path))")
    }
    return exe.path
}

/// Runs the program at `path` and returns its exit status, standard output and standard error.
func runExecutable(at path: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
    // Standard error goes to a file, so that neither stream can fill a pipe and stall the child.
    let errFile = FileManager.default.temporaryDirectory.appendingPathComponent("itune-stderr-\(getpid())-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: errFile) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    if !environment.isEmpty {
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, added in added }
    }
    let out = Pipe()
    p.standardOutput = out
    p.standardError = try FileHandle(forWritingTo: errFile)
    try p.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let errData = (try? Data(contentsOf: errFile)) ?? Data()
    return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}
