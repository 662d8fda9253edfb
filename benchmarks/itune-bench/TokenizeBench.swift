import Foundation
import ITune

/// `itune-bench tokenize`: tokenizer.json encoding throughput in MB/s of UTF-8 input, one
/// thread (`encode`) and all cores (`encode(batch:)`), on the lines of a text file.
/// scripts/bench_tokenizer.py runs Hugging Face `tokenizers` on the same files.
struct TokenizeBench: Benchmark {
    let name = "tokenize"
    let summary = "tokenizer.json encode, MB/s of UTF-8 text (ITUNE_BENCH_TOKENIZER=DIR, ITUNE_BENCH_TEXT=FILE)"

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The tokenizers to run: ITUNE_BENCH_TOKENIZER, else the byte-level and SentencePiece-style fixtures.
    static func tokenizers() -> [URL] {
        if let dir = ProcessInfo.processInfo.environment["ITUNE_BENCH_TOKENIZER"] { return [URL(fileURLWithPath: dir)] }
        return ["llama3_style", "llama2_metaspace_bytefallback"].map {
            root.appendingPathComponent("Tests/Fixtures/tokenizers/\($0)")
        }
    }

    /// The text: ITUNE_BENCH_TEXT, else every file of ../shared/data/t0-pool (real prompts), else
    /// a generated mix of English, Japanese, code and emoji.
    static func lines(smoke: Bool) throws -> [String] {
        var text = ""
        if let file = ProcessInfo.processInfo.environment["ITUNE_BENCH_TEXT"] {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } else {
            let pool = root.deletingLastPathComponent().appendingPathComponent("shared/data/t0-pool")
            let files = (try? FileManager.default.contentsOfDirectory(atPath: pool.path))?.filter { $0.hasSuffix(".jsonl") }.sorted() ?? []
            for f in files.prefix(smoke ? 1 : files.count) {
                text += try String(contentsOfFile: pool.appendingPathComponent(f).path, encoding: .utf8)
            }
            if text.isEmpty {
                text = String(repeating: "The quick brown fox 日本語のテキスト 🦊 func f(x) { return x  *  2 }\n", count: smoke ? 50 : 100_000)
            }
        }
        let all = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        return smoke ? Array(all.prefix(200)) : all
    }

    func run(_ options: BenchOptions, _ report: (BenchResult) -> Void) throws {
        let lines = try Self.lines(smoke: options.smoke)
        let bytes = Double(lines.reduce(0) { $0 + $1.utf8.count })
        let cpu = try DeviceLabel(.cpu)
        for dir in Self.tokenizers() {
            let tokenizer = try Tokenizer(directory: dir)
            let label = dir.lastPathComponent
            let single = try measure(seconds: options.secondsPerCase, minReps: options.minReps) {
                for l in lines { _ = tokenizer.encode(l, addSpecialTokens: false) }
            }
            report(BenchResult(bench: name, name: "encode 1 thread", label: label, device: cpu, shape: [lines.count, Int(bytes)],
                               flops: bytes, timing: single, unit: "MB/s", unitScale: 1e6))
            let batch = try measure(seconds: options.secondsPerCase, minReps: options.minReps) {
                _ = tokenizer.encode(batch: lines, addSpecialTokens: false)
            }
            report(BenchResult(bench: name, name: "encode batch", label: label, device: cpu, shape: [lines.count, Int(bytes)],
                               flops: bytes, timing: batch, unit: "MB/s", unitScale: 1e6))
        }
    }
}
