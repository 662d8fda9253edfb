import Foundation
import XCTest

/// Any malformed input is an error, never a trap: a valid safetensors file, config.json,
/// tokenizer.json and data files (JSONL and a JSON array) are mutated a few thousand times
/// (seeded, so a failure reproduces) and read as a run reads them, in a child process so that a
/// trap is reported as a failure naming the case and its saved input, and the fuzzing goes on
/// after it.
final class FuzzTests: XCTestCase {
    /// Cases and seconds per target: about a minute in all on two cores.
    static let plan: [(FuzzTarget, cases: Int, seconds: Double)] = [
        (.safetensors, 800, 11), (.config, 800, 11), (.tokenizer, 400, 13), (.jsonl, 1000, 10), (.jsonArray, 1000, 10),
    ]
    static let seed: UInt64 = 20261130
    /// Traps recorded per target before moving on (each needs a new child).
    static let maxTrapsPerTarget = 8

    func testMutatedInputsNeverTrap() throws {
        guard ChildProcess.command() != nil else { throw XCTSkip("this platform's test runner cannot be re-run as a child process") }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("itune-fuzz-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let started = Date()
        var total = 0, totalRejected = 0
        var traps: [String] = []
        var perTarget: [String] = []
        for (target, cases, seconds) in Self.plan {
            let dir = root.appendingPathComponent(target.rawValue)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let deadline = Date().addingTimeInterval(seconds)
            var next = 0, done = 0, rejected = 0, trapped = 0
            while next < cases, Date() < deadline, trapped < Self.maxTrapsPerTarget {
                try? FileManager.default.removeItem(at: FuzzWorker.doneURL(dir))
                try? FileManager.default.removeItem(at: FuzzWorker.progressURL(dir))
                let env = FuzzWorker.environment(target, seed: Self.seed, first: next, end: cases, deadline: deadline, directory: dir)
                // The child stops itself at the deadline; a hang is killed a little after it.
                let outcome = try ChildProcess.run("fuzz", environment: env, log: dir.appendingPathComponent("log.txt"),
                                                   timeout: deadline.timeIntervalSinceNow + 30)
                if let summary = try? String(contentsOf: FuzzWorker.doneURL(dir), encoding: .utf8), outcome.status == 0, !outcome.signaled {
                    let parts = summary.split(separator: " ").compactMap { Int($0) }
                    done += parts.first ?? 0
                    rejected += parts.last ?? 0
                    break
                }
                // Trapped (or hung) at the case in progress: keep its input, go on after it.
                guard let text = try? String(contentsOf: FuzzWorker.progressURL(dir), encoding: .utf8), let index = Int(text) else {
                    traps.append("\(target.rawValue): the worker ended (status \(outcome.status)) before its first case:\n\(outcome.log.suffix(2000))")
                    break
                }
                trapped += 1
                let saved = dir.appendingPathComponent("trap-\(index)-\(target.fileName)")
                try? FileManager.default.removeItem(at: saved)
                try? FileManager.default.copyItem(at: FuzzWorker.caseDirectory(dir).appendingPathComponent(target.fileName), to: saved)
                let cause = outcome.log.split(separator: "\n").filter {
                    $0.contains("Fatal error") || $0.contains("fatal error") || $0.contains("Precondition") || $0.contains("Assertion")
                }.prefix(2).joined(separator: " | ")
                traps.append("\(target.rawValue) case \(index) (seed \(Self.seed)): \(outcome.timedOut ? "hung" : outcome.signaled ? "killed by signal \(outcome.status)" : "exit \(outcome.status)")"
                             + (cause.isEmpty ? "" : ": \(cause)") + "; input saved at \(saved.path)")
                done += index - next + 1
                next = index + 1
            }
            total += done
            totalRejected += rejected
            perTarget.append("\(target.rawValue) \(done)")
        }
        let seconds = Date().timeIntervalSince(started)
        print(String(format: "[itune-tests] fuzz: %d mutated inputs (%@) in %.0f s, %d rejected with errors, %d traps",
                     total, perTarget.joined(separator: ", "), seconds, totalRejected, traps.count))
        XCTAssertGreaterThan(total, 500, "the fuzzing ran too few cases to mean anything")
        for t in traps { XCTFail("trap instead of an error: \(t)") }
        if traps.isEmpty { try? FileManager.default.removeItem(at: root) }
    }
}
