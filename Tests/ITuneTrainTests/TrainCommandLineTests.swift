import Foundation
import XCTest
import ITune

/// The command line over the library: `itune-gpu train` reads the same keys a run writes, its
/// help lists every config key, and a bad option is refused by name before anything loads.
final class TrainCommandLineTests: XCTestCase {
    func itune(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        try runBuiltExecutable("itune-gpu", arguments, from: self)
    }

    func testTrainHelpListsEveryConfigKey() throws {
        let help = try itune(["train", "--help"]).out
        for option in FineTuneConfig.options where option.onCommandLine {
            XCTAssertTrue(help.contains("--\(option.name) ") || help.contains("--\(option.name)/") || help.contains("--\(option.name)\n"),
                          "--\(option.name) missing from train --help")
        }
    }

    func testEveryOptionOnTheCommandLineReachesTheConfig() throws {
        // One value per option, none of them the default; --print-config shows what the run would use.
        let values: [String: Any] = [
            "model": "m", "data": ["a.jsonl", "b.jsonl"], "mixture": "mix.json", "format": "alpaca",
            "validation-data": ["v.jsonl"], "validation-split": 0.25, "template": "chatml", "output": "o", "full": true,
            "lora-rank": 3, "lora-alpha": 5, "lora-dropout": 0.5, "lora-targets": ["q_proj", "v_proj"], "rslora": true,
            "init-adapter": "adapter", "epochs": 2, "max-steps": 9, "batch-size": 5, "grad-accum": 6, "lr": 0.5,
            "weight-decay": 0.25, "beta1": 0.5, "beta2": 0.75, "adam-eps": 0.125, "warmup-ratio": 0.5, "warmup-steps": 7,
            "schedule": "linear", "max-grad-norm": 2, "seed": 11, "max-length": 77, "packing": true, "train-on-inputs": true,
            "skip-bad-records": true, "pad-id": 4, "eval-every": 3, "save-every": 4, "keep-checkpoints": 5, "samples": 6,
            "resume": true, "resume-anyway": true, "nan-policy": "skip-step", "base-dtype": "f32", "precision": "bf16", "log-every": 8, "profile": true,
            "bucket-mb": 0.5, "grad-checkpoint": true, "double-quant": false, "quantize-embeddings": false,
            "beta": 0.5, "label-smoothing": 0.25, "loss-type": "ipo", "lambda": 0.75, "precompute-ref": true,
        ]
        // --quantize is LoRA's (refused with --full) and --method dpo refuses --packing: each checked on its own below.
        XCTAssertEqual(Set(values.keys).union(["quantize", "method"]), Set(FineTuneConfig.options.filter(\.onCommandLine).map(\.name)))
        var args = ["train", "--print-config"]
        for (key, value) in values.sorted(by: { $0.key < $1.key }) {
            switch value {
            case let b as Bool: if b { args.append("--\(key)") }
            case let list as [String] where key == "lora-targets": args += ["--\(key)", list.joined(separator: ",")]
            case let list as [String]: for v in list { args += ["--\(key)", v] }
            default: args += ["--\(key)", "\(value)"]
            }
        }
        let r = try itune(args)
        XCTAssertEqual(r.status, 0, r.err)
        var printed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
        XCTAssertTrue(printed["quantize"] is NSNull, "no --quantize under --full")
        printed["quantize"] = nil
        XCTAssertEqual(printed["method"] as? String, "sft")
        printed["method"] = nil
        let dpo = try itune(["train", "--print-config", "--model", "m", "--data", "a.jsonl", "--method", "dpo"])
        XCTAssertEqual(dpo.status, 0, dpo.err)
        XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(dpo.out.utf8)) as? [String: Any])?["method"] as? String, "dpo")
        // `ranks` comes from the launcher: 1 in a plain run.
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONSerialization.data(withJSONObject: values.merging(["ranks": 1]) { a, _ in a })) as? [String: Any])
        XCTAssertEqual(printed as NSDictionary, expected as NSDictionary)

        let lora = try itune(["train", "--print-config", "--model", "m", "--data", "a.jsonl", "--quantize", "nf4", "--double-quant",
                              "--quantize-embeddings"])
        XCTAssertEqual(lora.status, 0, lora.err)
        let loraPrinted = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lora.out.utf8)) as? [String: Any], lora.out)
        XCTAssertEqual(loraPrinted["quantize"] as? String, "nf4")
        XCTAssertEqual(loraPrinted["double-quant"] as? Bool, true)
        XCTAssertEqual(loraPrinted["quantize-embeddings"] as? Bool, true)
    }

    func testBadOptionsAreRefusedByNameBeforeLoading() throws {
        let cases: [([String], String)] = [
            (["train", "--model", "/nonexistent", "--data", "x.jsonl", "--lora-rank", "0"], "--lora-rank must be at least 1, not 0"),
            (["train", "--model", "/nonexistent", "--data", "x.jsonl", "--lr=-1"], "--lr must be a finite number ≥ 0, not -1.0"),
            (["train", "--model", "/nonexistent", "--data", "x.jsonl", "--validation-split", "1.5"], "--validation-split must be in [0.0, 1.0), not 1.5"),
            (["train", "--model", "/nonexistent", "--data", "x.jsonl", "--full", "--quantize", "nf4"], "--quantize nf4 quantises a frozen base under LoRA"),
            (["train", "--model", "/nonexistent", "--data", "x.jsonl", "--quantize", "int8", "--double-quant"], "--double-quant quantises nf4's absmax constants"),
            (["train", "--model", "/nonexistent", "--data", "x.jsonl", "--quantize-embeddings"], "--quantize-embeddings quantises the embeddings in the base's format"),
            (["generate", "--model", "/nonexistent", "--prompt", "p", "--quantize", "q4"], "--quantize must be nf4 or int8, not 'q4'"),
            (["generate", "--model", "/nonexistent", "--prompt", "p", "--quantize-embeddings"], "--quantize-embeddings quantises in the base's format"),
            (["eval", "--model", "/nonexistent", "--batch-size", "0"], "--batch-size must be at least 1, not 0"),
            (["eval", "--model", "/nonexistent", "--max-length", "0"], "--max-length must be at least 1, not 0"),
            (["generate", "--model", "/nonexistent", "--prompt", "p", "--top-p", "0"], "--top-p must be in (0, 1], not 0.0"),
            (["select", "--target", "t", "--pool", "/nonexistent", "--top-k", "0"], "--top-k must be at least 1, not 0"),
            (["merge", "--model", "/nonexistent", "--adapter", "a", "--output", "o", "--dtype", "F8"], "--dtype must be F32, F16 or BF16, not F8"),
        ]
        for (args, message) in cases {
            let r = try itune(args + (args[0] == "merge" ? [] : ["--device", "cpu"]))  // merge runs on the CPU only
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.err.contains(message), "\(args): \(r.err)")
        }
    }

    func testConfigFileValuesAreNamedWithTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-cli-config-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("run.yaml")
        try "model: /nonexistent\ndata: x.jsonl\nlora_rank: 0\nlr: 2e-4\n".write(to: file, atomically: true, encoding: .utf8)
        let r = try itune(["train", "--config", file.path, "--device", "cpu"])
        XCTAssertTrue(r.err.contains("\(file.path): 'lora-rank': must be at least 1, not 0"), r.err)
        try "model: /nonexistent\ndata: x.jsonl\nbatch_szie: 2\n".write(to: file, atomically: true, encoding: .utf8)
        let unknown = try itune(["train", "--config", file.path, "--device", "cpu"])
        XCTAssertTrue(unknown.err.contains("\(file.path): 'batch_szie': unknown option"), unknown.err)
    }

    func testTrainConfigOfARunReproducesItsLossCurve() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("itune-cli-reproduce-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        defer { try? FileManager.default.removeItem(at: work) }
        let config = try FineTuneConfigTests.tinyRun(in: work)
        let first = try FineTuneJob(config: config, device: .cpu).run(log: { _ in })
        let again = work.appendingPathComponent("again")
        let r = try itune(["train", "--config", work.appendingPathComponent("out/itune_config.json").path,
                           "--output", again.path, "--device", "cpu"])
        XCTAssertEqual(r.status, 0, r.err)
        // Both curves through the same metrics.jsonl writer (its decimals may round the last bit).
        func losses(_ out: URL) throws -> [Double] {
            try String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .filter { $0["type"] as? String == "train" }.compactMap { $0["loss"] as? Double }
        }
        XCTAssertEqual(first.summary.history.count, 4)
        XCTAssertEqual(try losses(again), try losses(work.appendingPathComponent("out")))
        XCTAssertEqual(try losses(again).count, 4)
    }
}
