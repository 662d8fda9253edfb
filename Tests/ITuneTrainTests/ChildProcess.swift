import Foundation
import XCTest
import ITuneTrain

/// Runs one worker of this test bundle in a child process: the bundle's executable re-run with
/// a filter that selects `ChildWorkerTests.testWorker` and `ITUNE_TEST_WORKER` saying what to do.
/// Why: a trap in the code under test kills only the child, and the parent reports it as a
/// failure naming the input, instead of the test runner dying.
enum ChildProcess {
    static let workerVariable = "ITUNE_TEST_WORKER"
    static let workerTest = "ITuneTrainTests.ChildWorkerTests/testWorker"

    /// How a child ended.
    struct Outcome {
        var status: Int32
        /// Killed by a signal (a trap is SIGILL or SIGTRAP), or by us at the deadline.
        var signaled: Bool
        var timedOut: Bool
        var log: String
    }

    /// The executable and arguments that run only the worker test; nil where this platform's
    /// test runner cannot be re-run that way.
    static func command() -> (URL, [String])? {
        #if os(Linux)
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return (exe, [workerTest])
        #elseif os(macOS)
        let bundle = Bundle(for: ChildWorkerTests.self).bundlePath
        guard let runner = ProcessInfo.processInfo.arguments.first, runner.hasSuffix("xctest") else { return nil }
        return (URL(fileURLWithPath: runner), ["-XCTest", workerTest, bundle])
        #else
        return nil
        #endif
    }

    /// Starts the worker `kind` with `environment` added; output goes to `log`.
    static func start(_ kind: String, environment: [String: String], log: URL) throws -> Process {
        guard let (exe, args) = command() else { throw XCTSkip("this platform's test runner cannot be re-run as a child process") }
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let out = try FileHandle(forWritingTo: log)
        let p = Process()
        p.executableURL = exe
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env[workerVariable] = kind
        for (k, v) in environment { env[k] = v }
        p.environment = env
        p.standardOutput = out
        p.standardError = out
        try p.run()
        return p
    }

    /// Runs the worker `kind` to its end, or kills it after `timeout` seconds.
    static func run(_ kind: String, environment: [String: String], log: URL, timeout: TimeInterval) throws -> Outcome {
        let p = try start(kind, environment: environment, log: log)
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while p.isRunning {
            if Date() > deadline {
                timedOut = true
                kill(p.processIdentifier, SIGKILL)
            }
            usleep(20_000)
        }
        p.waitUntilExit()
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return Outcome(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal, timedOut: timedOut, log: text)
    }

    /// Waits until `url` exists (a worker's signal that it is ready), up to `timeout` seconds.
    static func wait(for url: URL, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while !FileManager.default.fileExists(atPath: url.path) {
            if Date() > deadline { return false }
            usleep(20_000)
        }
        return true
    }
}

/// The child side: does nothing (skips) in a normal test run.
final class ChildWorkerTests: XCTestCase {
    func testWorker() throws {
        let env = ProcessInfo.processInfo.environment
        switch env[ChildProcess.workerVariable] {
        case "fuzz"?:
            try FuzzWorker(environment: env).run()
        case "hold-lock"?:
            // Holds the output lock of ITUNE_LOCK_DIR until killed.
            let dir = URL(fileURLWithPath: env["ITUNE_LOCK_DIR"] ?? "")
            let lock = try ITuneTrain.OutputLock(directory: dir)
            try Data("\(getpid())".utf8).write(to: dir.appendingPathComponent("ready"))
            sleep(120)
            lock.release()
        default:
            throw XCTSkip("the child-process worker of FuzzTests and OutputDirectoryTests; it runs only in their child processes")
        }
    }
}
