import Foundation
import ITuneData
import XCTest
import ITuneModels
import ITuneTensor
@testable import ITuneTrain

/// A tiny model, learnable rows and a fresh output directory for the reliability tests.
enum TrainerFixtures {
    /// Tests/Fixtures.
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func model(seed: UInt64 = 1) throws -> LlamaModel { try TrainerTests.model(seed: seed) }

    /// The first OpenCL device; a failure under ITUNE_REQUIRE_OPENCL=1 when there is none.
    static func openCLDevice() throws -> Device {
        for p in OpenCLRuntime.listDevices().platforms {
            if let d = p.devices.first { return .opencl(platform: p.index, device: d.index) }
        }
        if ProcessInfo.processInfo.environment["ITUNE_REQUIRE_OPENCL"] == "1" {
            XCTFail("ITUNE_REQUIRE_OPENCL=1 but no OpenCL device was found")
        }
        throw XCTSkip("no OpenCL device")
    }

    static func rows(_ n: Int = 24) -> [TrainingRow] { TrainerTests.rows(n) }

    static func options(steps: Int, saveEvery: Int = 0, keep: Int = 10) -> TrainerOptions {
        var o = TrainerOptions()
        o.batchSize = 4
        o.maxSteps = steps
        o.optimizer = AdamWConfig(learningRate: 1e-2, weightDecay: 0.01)
        o.warmupSteps = 1
        o.saveEvery = saveEvery
        o.keepCheckpoints = keep
        return o
    }

    /// A trainer of a fresh model (same seed, so two of them compute the same curve).
    static func trainer(_ options: TrainerOptions, _ dir: URL) throws -> Trainer {
        let m = try model()
        return try Trainer(model: m, trainable: m.namedParameters(), options: options, train: rows(), outputDirectory: dir)
    }

    /// A fresh, empty directory path (not created) for one test.
    static func directory(_ name: String = #function) -> URL {
        let clean = name.filter { $0.isLetter || $0.isNumber }
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("itune-reliab-\(clean)-\(getpid())")
        try? FileManager.default.removeItem(at: d)
        return d
    }

    /// The error `body` throws, as its message (a failure when it throws none).
    static func message<T>(_ body: () throws -> T, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try body()
            XCTFail("expected an error", file: file, line: line)
            return ""
        } catch {
            return "\(error)"
        }
    }

    /// Runs `body` with every write to a file whose name `matches` failing with `code`.
    static func failingWrites<T>(_ code: Int32, _ matches: @escaping @Sendable (String) -> Bool, _ body: () throws -> T) rethrows -> T {
        try OutputFiles.$injectedFault.withValue(OutputFiles.InjectedFault(errno: code, matches: matches), operation: body)
    }

    static func lines(_ url: URL) throws -> [[String: Any]] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }
}
