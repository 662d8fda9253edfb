import Foundation
import XCTest
import ITune

/// `mpirun -np N itune-gpu train` against the single process with the same global batch: the
/// loss of every step within 1e-5 (LoRA and full; LoRA dropout off, since each rank draws its
/// own masks), with small gradient buckets so that several start during the backward, rank 0
/// alone writing; a killed rank ends
/// the run on every rank, and its last checkpoint resumes (with another rank count).
final class DataParallelTests: XCTestCase {
    /// mpirun, or a skip naming why; in CI (CI set) a missing mpirun is a failure: `make test`
    /// installs Open MPI.
    func mpirun() throws -> String {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
            .map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        if let path { return path }
        if ProcessInfo.processInfo.environment["CI"] != nil {
            XCTFail("mpirun not found in CI: `make test` installs openmpi-bin and libopenmpi-dev")
        }
        throw XCTSkip("mpirun is not installed (Debian: apt-get install openmpi-bin libopenmpi-dev); the data-parallel tests need it")
    }

    /// Loopback TCP only, root allowed, more ranks than cores allowed.
    static let mpiFlags = ["--allow-run-as-root", "--oversubscribe", "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo",
                           "--mca", "oob_tcp_if_include", "lo"]

    func work(_ name: String) -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-dp-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// The tiny Llama of FineTuneConfigTests and 13 records of different lengths: with a global
    /// batch of 4 an epoch ends on a micro-batch of one row, so that a rank gets no rows.
    func setUp(_ dir: URL, hidden: Int = 32) throws -> (model: String, data: String) {
        let tokenizerDir = FineTuneConfigTests.fixtures.appendingPathComponent("tokenizers/llama3_style")
        let vocab = try Tokenizer(directory: tokenizerDir).vocabularySize
        let base = try LlamaModel(ModelConfig(vocabSize: vocab, hiddenSize: hidden, intermediateSize: 2 * hidden, numLayers: 2, numHeads: 4,
                                              numKVHeads: 2, maxPositions: 256), seed: 1, on: .cpu)
        try base.savePretrained(to: dir.appendingPathComponent("model"), tokenizerDirectory: tokenizerDir)
        let words = ["cat", "river", "blue", "seven", "lantern", "quiet", "orbit", "maple", "ferry", "sand", "violin", "north", "ember"]
        let lines = words.enumerated().map { i, w in
            "{\"instruction\": \"Repeat the word '\(w)' \(i % 4 + 1) times.\", \"output\": \"\(Array(repeating: w, count: i % 4 + 1).joined(separator: " "))\"}"
        }
        let data = dir.appendingPathComponent("records.jsonl")
        try lines.joined(separator: "\n").write(to: data, atomically: true, encoding: .utf8)
        return (dir.appendingPathComponent("model").path, data.path)
    }

    func trainArguments(_ s: (model: String, data: String), output: URL, batch: Int, full: Bool, extra: [String] = [],
                        device: String = "cpu") -> [String] {
        ["train", "--model", s.model, "--data", s.data, "--output", output.path, "--batch-size", "\(batch)", "--grad-accum", "2",
         "--max-steps", "5", "--lr", "1e-2", "--lora-rank", "4", "--lora-dropout", "0", "--samples", "0", "--validation-split", "0", "--device", device,
         "--seed", "7"] + (full ? ["--full"] : []) + extra
    }

    /// The "train" lines of metrics.jsonl.
    func trainLines(_ output: URL) throws -> [[String: Any]] {
        try String(contentsOf: output.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["type"] as? String == "train" }
    }

    func runMPI(_ ranks: Int, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        let exe = try builtExecutablePath("itune-gpu", from: self)
        return try runExecutable(at: try mpirun(), Self.mpiFlags + ["-np", "\(ranks)", exe] + arguments)
    }

    func checkEquivalence(full: Bool, device: String = "cpu") throws {
        _ = try mpirun()
        let dir = work((full ? "full" : "lora") + device)
        let s = try setUp(dir)
        let single = dir.appendingPathComponent("single"), parallel = dir.appendingPathComponent("parallel")
        let one = try runBuiltExecutable("itune-gpu", trainArguments(s, output: single, batch: 4, full: full, device: device), from: self)
        XCTAssertEqual(one.status, 0, one.err)
        // ITUNE_TEST_MPI_RANKS=4 runs the same check on 4 ranks of batch 1.
        let ranks = Int(ProcessInfo.processInfo.environment["ITUNE_TEST_MPI_RANKS"] ?? "") ?? 2
        guard [2, 4].contains(ranks) else { throw XCTSkip("ITUNE_TEST_MPI_RANKS must be 2 or 4 (the global micro-batch is 4 rows)") }
        // Buckets of ~1 KB (LoRA) and ~10 KB (full): several per step, most started during the
        // last backward of the step.
        let two = try runMPI(ranks, trainArguments(s, output: parallel, batch: 4 / ranks, full: full,
                                                   extra: ["--bucket-mb", full ? "0.01" : "0.001"], device: device))
        XCTAssertEqual(two.status, 0, two.out + two.err)
        XCTAssertTrue(two.out.contains("\(ranks) ranks × batch \(4 / ranks) × 2 accumulation = global batch 8"), two.out)
        let a = try trainLines(single), b = try trainLines(parallel)
        XCTAssertEqual(a.count, 5)
        XCTAssertEqual(b.count, 5, "rank 0 alone writes metrics.jsonl")
        for (x, y) in zip(a, b) {
            let lx = try XCTUnwrap(x["loss"] as? Double), ly = try XCTUnwrap(y["loss"] as? Double)
            XCTAssertEqual(lx, ly, accuracy: 1e-5, "step \(x["step"] ?? "?")")
            XCTAssertEqual(try XCTUnwrap(x["grad_norm"] as? Double), try XCTUnwrap(y["grad_norm"] as? Double), accuracy: 1e-4)
            XCTAssertEqual(y["ranks"] as? Int, ranks)
            XCTAssertNotNil(y["allreduce_s"] as? Double)
            XCTAssertGreaterThan(try XCTUnwrap(y["allreduce_overlap"] as? Double), 0, "buckets started during the backward")
        }
        // The losses moved: a test of equal curves that stay flat would prove little.
        let first = try XCTUnwrap(a.first?["loss"] as? Double), last = try XCTUnwrap(a.last?["loss"] as? Double)
        XCTAssertGreaterThan(abs(first - last), 1e-3)
        let final = full ? "model/model.safetensors" : "adapter/adapter_model.safetensors"
        XCTAssertTrue(FileManager.default.fileExists(atPath: parallel.appendingPathComponent(final).path), "rank 0 writes the \(final)")
    }

    func testTwoRanksGiveTheSingleProcessLossCurveUnderLoRA() throws { try checkEquivalence(full: false) }

    /// DPO under MPI: each rank scores its share of the global batch's pairs against the
    /// reference (the adapters switched off); the loss, its gradient and the TRL metrics are
    /// means over the global batch's pairs, so 2 ranks give the single process's curve.
    func testTwoRanksGiveTheSingleProcessDPOCurve() throws {
        _ = try mpirun()
        let dir = work("dpo")
        var s = try setUp(dir)
        let words = ["cat", "river", "blue", "seven", "lantern", "quiet", "orbit", "maple", "ferry", "sand", "violin", "north", "ember"]
        let pairs = words.enumerated().map { i, w -> String in
            let n = i % 4 + 1
            let chosen = Array(repeating: w, count: n).joined(separator: " ")
            let rejected = Array(repeating: w, count: n + 1).joined(separator: " ")
            return "{\"prompt\": \"Repeat the word '\(w)' \(n) times.\", \"chosen\": \"\(chosen)\", \"rejected\": \"\(rejected)\"}"
        }
        let data = dir.appendingPathComponent("pairs.jsonl")
        try pairs.joined(separator: "\n").write(to: data, atomically: true, encoding: .utf8)
        s.data = data.path
        let single = dir.appendingPathComponent("single"), parallel = dir.appendingPathComponent("parallel")
        let extra = ["--method", "dpo", "--beta", "0.5"]
        let one = try runBuiltExecutable("itune-gpu", trainArguments(s, output: single, batch: 4, full: false, extra: extra), from: self)
        XCTAssertEqual(one.status, 0, one.err)
        let two = try runMPI(2, trainArguments(s, output: parallel, batch: 2, full: false, extra: extra + ["--bucket-mb", "0.001"]))
        XCTAssertEqual(two.status, 0, two.out + two.err)
        let a = try trainLines(single), b = try trainLines(parallel)
        XCTAssertEqual(a.count, 5)
        XCTAssertEqual(b.count, 5, "rank 0 alone writes metrics.jsonl")
        for (x, y) in zip(a, b) {
            XCTAssertEqual(try XCTUnwrap(x["loss"] as? Double), try XCTUnwrap(y["loss"] as? Double), accuracy: 1e-5, "step \(x["step"] ?? "?")")
            for key in ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"] {
                XCTAssertEqual(try XCTUnwrap(x[key] as? Double, key), try XCTUnwrap(y[key] as? Double, key), accuracy: 1e-4,
                               "\(key) at step \(x["step"] ?? "?")")
            }
        }
        // DPO starts at ln 2 (the adapter's B is zero: policy = reference) and moves.
        let first = try XCTUnwrap(a.first?["loss"] as? Double), last = try XCTUnwrap(a.last?["loss"] as? Double)
        XCTAssertEqual(first, log(2), accuracy: 1e-6)
        XCTAssertGreaterThan(abs(first - last), 1e-3)
    }
    func testTwoRanksGiveTheSingleProcessLossCurveUnderFullFineTuning() throws { try checkEquivalence(full: true) }

    /// On OpenCL each gradient is read from the device when the tape says it is final, in the
    /// middle of the backward's queue.
    func testTwoRanksOnOpenCLGiveTheSingleProcessLossCurveUnderLoRA() throws {
        _ = try TrainerFixtures.openCLDevice()
        try checkEquivalence(full: false, device: "opencl")
    }

    func testAKilledRankEndsTheRunAndItsCheckpointResumesWithOneRank() throws {
        let launcher = try mpirun()
        let dir = work("fault")
        let s = try setUp(dir, hidden: 64)
        let out = dir.appendingPathComponent("out")
        var args = trainArguments(s, output: out, batch: 2, full: false, extra: ["--save-every", "1"])
        args[args.firstIndex(of: "--max-steps")! + 1] = "8"
        let exe = try builtExecutablePath("itune-gpu", from: self)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: launcher)
        p.arguments = Self.mpiFlags + ["-np", "2", exe] + args
        let errFile = dir.appendingPathComponent("stderr.txt"), outFile = dir.appendingPathComponent("stdout.txt")
        FileManager.default.createFile(atPath: errFile.path, contents: nil)
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        p.standardError = try FileHandle(forWritingTo: errFile)
        p.standardOutput = try FileHandle(forWritingTo: outFile)
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // Wait for the second checkpoint (a hang detector, not a timing assertion).
        let checkpoint = out.appendingPathComponent("checkpoints/step-2/state.json")
        var waited = 0.0
        while !FileManager.default.fileExists(atPath: checkpoint.path), p.isRunning, waited < 300 {
            usleep(20_000)
            waited += 0.02
        }
        XCTAssertTrue(p.isRunning, "the run ended before a rank could be killed: " + ((try? String(contentsOf: errFile, encoding: .utf8)) ?? ""))
        let victim = try XCTUnwrap(rankProcess(1, under: p.processIdentifier), "rank 1's process")
        XCTAssertEqual(kill(victim, SIGKILL), 0)
        waited = 0
        while p.isRunning, waited < 120 {
            usleep(50_000)
            waited += 0.05
        }
        XCTAssertFalse(p.isRunning, "the other rank hangs after rank 1 was killed")
        guard !p.isRunning else { return }
        XCTAssertNotEqual(p.terminationStatus, 0)
        let err = (try? String(contentsOf: errFile, encoding: .utf8)) ?? ""
        XCTAssertTrue(err.contains("signal 9") || err.contains("Killed"), err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("adapter/adapter_model.safetensors").path))
        // The last checkpoint is whole, and resumes in one process of batch 4 (the same global
        // batch); the steps before it keep the curve the two ranks wrote.
        let before = try trainLines(out)
        let saved = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("checkpoints").path)
            .compactMap { $0.hasPrefix("step-") ? Int($0.dropFirst(5)) : nil }.max())
        XCTAssertGreaterThanOrEqual(saved, 2)
        var resume = trainArguments(s, output: out, batch: 4, full: false, extra: ["--save-every", "1", "--resume"])
        resume[resume.firstIndex(of: "--max-steps")! + 1] = "8"
        let r = try runBuiltExecutable("itune-gpu", resume, from: self)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("resumed from step \(saved) of 8"), r.out + r.err)
        XCTAssertTrue(r.out.contains("with 1 × 4: the same global batch"), r.out)
        let after = try trainLines(out)
        for (x, y) in zip(before.prefix(saved), after.prefix(saved)) {
            XCTAssertEqual(x["loss"] as? Double, y["loss"] as? Double)
        }
        XCTAssertEqual(after.map { $0["step"] as? Int }, (1...8).map { $0 })
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("adapter/adapter_model.safetensors").path))
    }

    /// The pid of the process of MPI rank `rank` among the children of `parent` (Linux /proc).
    func rankProcess(_ rank: Int, under parent: Int32) -> Int32? {
        let procs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for name in procs {
            guard let pid = Int32(name),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, Int32(fields[1]) == parent,
                  let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
            let vars = env.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if vars.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return pid }
        }
        return nil
    }
}
