import Foundation
import XCTest
import ITuneModels
import ITuneTensor
@testable import ITuneTrain

/// One run per output directory (a lock with the owner's pid, a dead owner's lock taken over);
/// an output that cannot be written is one line naming the path and the cause; a full disk
/// stops the run with the last checkpoint whole; the run reports its peak memory.
final class OutputDirectoryTests: XCTestCase {
    typealias F = TrainerFixtures

    func testASecondTrainerOnTheSameOutputFailsAtOnceNamingThePid() throws {
        let dir = F.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try F.trainer(F.options(steps: 1), dir)
        XCTAssertEqual(F.message { try F.trainer(F.options(steps: 1), dir) },
                       "cannot write \(dir.path): in use by this process (pid \(getpid())); wait for it to finish or choose another output directory")
        XCTAssertEqual(try String(contentsOf: dir.appendingPathComponent(".lock"), encoding: .utf8), "\(getpid())\n")
        _ = try first.run()
        first.outputLock?.release()
        XCTAssertNoThrow(try F.trainer(F.options(steps: 1), dir), "free again once released")
    }

    func testALiveRunInAnotherProcessBlocksAndItsLockIsTakenOverWhenItDies() throws {
        let dir = F.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let log = dir.appendingPathComponent("child.log")
        let child = try ChildProcess.start("hold-lock", environment: ["ITUNE_LOCK_DIR": dir.path], log: log)
        defer { if child.isRunning { kill(child.processIdentifier, SIGKILL) } }
        guard ChildProcess.wait(for: dir.appendingPathComponent("ready"), timeout: 60) else {
            return XCTFail("the child never took the lock: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        }
        let pid = child.processIdentifier
        XCTAssertEqual(F.message { try F.trainer(F.options(steps: 1), dir) },
                       "cannot write \(dir.path): in use by another run (pid \(pid)); wait for it to finish or choose another output directory")
        // Killed: its pid stays in the file, the kernel has dropped its lock.
        kill(pid, SIGKILL)
        child.waitUntilExit()
        var infos: [String] = []
        _ = try F.trainer(F.options(steps: 1), dir).run { if case let .info(s) = $0 { infos.append(s) } }
        XCTAssertTrue(infos.contains("\(dir.path)/.lock: took over a stale lock from pid \(pid) (no longer running)"), "\(infos)")
    }

    func testOutputThatIsAFileOrReadOnlyIsOneLineNamingThePath() throws {
        let dir = F.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("taken")
        try Data("x".utf8).write(to: file)
        XCTAssertEqual(F.message { try F.trainer(F.options(steps: 1), file) },
                       "cannot write \(file.path): exists and is a file, not a directory (choose another output directory)")
        XCTAssertEqual(F.message { try F.trainer(F.options(steps: 1), file.appendingPathComponent("out")) },
                       "cannot write \(file.path): is a file, not a directory")
        // A read-only file system, as the operating system reports it (root ignores permissions,
        // so the error is injected here; the real case follows where the test is not root).
        let readOnly = dir.appendingPathComponent("ro")
        XCTAssertEqual(F.message { try F.failingWrites(EROFS, { $0 == "ro" }) { try F.trainer(F.options(steps: 1), readOnly) } },
                       "cannot write \(readOnly.path): \(String(cString: strerror(EROFS)))")
        if getuid() != 0 {
            try FileManager.default.createDirectory(at: readOnly, withIntermediateDirectories: true)
            try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: readOnly.path)
            defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: readOnly.path) }
            XCTAssertEqual(F.message { try F.trainer(F.options(steps: 1), readOnly) },
                           "cannot write \(readOnly.path): \(String(cString: strerror(EACCES)))")
            XCTAssertEqual(F.message { try F.trainer(F.options(steps: 1), readOnly.appendingPathComponent("sub")) },
                           "cannot write \(readOnly.path): \(String(cString: strerror(EACCES)))")
        }
    }

    /// The disk fills while metrics are appended at step 5: the run stops naming the file, the
    /// step-4 checkpoint is whole, and a resume once there is room continues from it.
    func testFullDiskStopsTheRunWithTheLastCheckpointIntact() throws {
        let dir = F.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try F.trainer(F.options(steps: 4, saveEvery: 2), dir).run()
        let metrics = dir.appendingPathComponent("metrics.jsonl")
        let message = F.message {
            try F.failingWrites(ENOSPC, { $0 == "metrics.jsonl" }) { try F.trainer(F.options(steps: 8, saveEvery: 2), dir).run(resume: true) }
        }
        XCTAssertEqual(message, "no space left on \(metrics.path) (\(String(cString: strerror(ENOSPC))))")
        XCTAssertEqual(try F.lines(metrics).compactMap { $0["step"] as? Int }, [1, 2, 3, 4])
        // A checkpoint that cannot be written is named too, and leaves no half directory.
        let full = F.message {
            try F.failingWrites(ENOSPC, { $0 == "optimizer.safetensors" }) { try F.trainer(F.options(steps: 8, saveEvery: 2), dir).run(resume: true) }
        }
        XCTAssertTrue(full.hasPrefix("no space left on \(dir.path)/checkpoints/.tmp-step-6-"), full)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("checkpoints").path).sorted(), ["step-2", "step-4"])
        var infos: [String] = []
        let resumed = try F.trainer(F.options(steps: 8, saveEvery: 2), dir).run(resume: true) { if case let .info(s) = $0 { infos.append(s) } }
        XCTAssertTrue(infos.contains("resumed from step 4 of 8"), "\(infos)")
        XCTAssertEqual(resumed.history.map(\.0), Array(1...8))
        XCTAssertEqual(Array(resumed.history.prefix(4).map(\.1)), first.history.map(\.1), "steps 1–4 as the checkpoint kept them")
        XCTAssertTrue(resumed.history.allSatisfy { $0.1.isFinite })
    }

    func testTheRunReportsItsPeakMemory() throws {
        let dir = F.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var infos: [String] = []
        let summary = try F.trainer(F.options(steps: 2), dir).run { if case let .info(s) = $0 { infos.append(s) } }
        XCTAssertGreaterThan(summary.peakMemory.residentBytes, 1 << 20)
        XCTAssertGreaterThan(summary.peakMemory.tensorBytes, 0)
        XCTAssertLessThan(summary.peakMemory.tensorBytes, summary.peakMemory.residentBytes)
        XCTAssertTrue(infos.contains(summary.peakMemory.description), "\(infos)")
        XCTAssertTrue(summary.peakMemory.description.hasPrefix("peak memory: "))
    }
}
