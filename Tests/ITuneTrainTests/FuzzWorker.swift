import Foundation
import XCTest
import ITuneData
import ITuneModels
import ITuneTensor
import ITuneTokenizers
@testable import ITuneTrain

/// The inputs the fuzz test mutates, each read by the code that reads it in a real run.
enum FuzzTarget: String, CaseIterable {
    case safetensors, config, tokenizer, jsonl, jsonArray = "json-array"

    var fileName: String {
        switch self {
        case .safetensors: return "model.safetensors"
        case .config: return "config.json"
        case .tokenizer: return "tokenizer.json"
        case .jsonl: return "data.jsonl"
        case .jsonArray: return "data.json"
        }
    }
}

/// Seeded mutations of a file's bytes: bit flips, interesting bytes, cut, repeated and inserted
/// ranges, truncation, and for JSON (and a safetensors header) numbers and strings swapped for
/// values that break sizes and types (0, −1, 2⁶², 2⁶⁴, 1e308, null, [], {}); a data file may be
/// re-encoded as UTF-16.
struct Mutator {
    var rng: SplitMix64

    init(seed: UInt64, index: Int) {
        rng = SplitMix64(seed: seed ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15))
    }

    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }

    static let bytes: [UInt8] = [0x00, 0xFF, 0x7F, 0x80, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x30, 0x2D, 0x39, 0x0A, 0x20, 0xC3, 0xED]
    static let numbers = ["0", "-1", "1", "2", "3", "4611686018427387904", "9223372036854775807", "18446744073709551616", "-9223372036854775808",
                          "1e308", "-1e308", "1e-320", "0.5", "-0", "null", "\"7\"", "[]", "{}", "true", "NaN", "1e3"]
    static let strings = ["\"\"", "null", "[]", "{}", "0", "\"\\u0000\"", "\"\\ud800\"", "\"F64\"", "\"I8\"", "\"llama\"", "\"gpt2\"",
                          "\"<unk>\"", "\"Ģ\"", "[\"a\", \"b\"]", "\"\(String(repeating: "x", count: 300))\""]
    static let headerLengths: [UInt64] = [0, 1, 7, 8, 2, 1 << 32, 1 << 62, 1 << 63, UInt64.max, UInt64.max - 7, 100_000_001]

    /// `data` with 1 to 4 mutations; `json` says where the JSON is (all of it, or a header).
    mutating func mutate(_ data: [UInt8], json: Range<Int>?, utf16: Bool) -> [UInt8] {
        var d = data
        for _ in 0..<(1 + below(4)) {
            let region = json.map { $0.clamped(to: 0..<d.count) }.flatMap { $0.isEmpty || below(10) < 3 ? nil : $0 } ?? 0..<d.count
            guard !d.isEmpty else { d = [Self.bytes[below(Self.bytes.count)]]; continue }
            let at = region.lowerBound + below(region.count)
            switch below(json == nil ? 6 : 9) {
            case 0: d[at] ^= 1 << UInt8(below(8))
            case 1: d[at] = Self.bytes[below(Self.bytes.count)]
            case 2: d.removeSubrange(at..<min(d.count, at + 1 + below(16)))
            case 3: d.insert(contentsOf: d[at..<min(d.count, at + 1 + below(16))], at: at)
            case 4: d.removeSubrange(at...)
            case 5: d.insert(contentsOf: (0..<(1 + below(8))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
            case 6: d = replaceToken(d, in: region, numbers: true)
            case 7: d = replaceToken(d, in: region, numbers: false)
            default:
                if json != nil, json?.lowerBound == 8, d.count >= 8 {  // a safetensors header length
                    let v = Self.headerLengths[below(Self.headerLengths.count)]
                    withUnsafeBytes(of: v.littleEndian) { d.replaceSubrange(0..<8, with: $0) }
                } else {
                    d = replaceToken(d, in: region, numbers: true)
                }
            }
        }
        if utf16, below(8) == 0, let text = String(bytes: d, encoding: .utf8) {
            let le = below(2) == 0
            let bom: [UInt8] = below(2) == 0 ? [] : (le ? [0xFF, 0xFE] : [0xFE, 0xFF])
            d = bom + [UInt8](text.data(using: le ? .utf16LittleEndian : .utf16BigEndian) ?? Data())
        }
        return d
    }

    /// Replaces a random number (or string) token in `region` with an interesting value.
    mutating func replaceToken(_ d: [UInt8], in region: Range<Int>, numbers: Bool) -> [UInt8] {
        let r = region.clamped(to: 0..<d.count)
        var starts: [Int] = []
        var i = r.lowerBound
        while i < r.upperBound {
            let b = d[i]
            let isStart = numbers ? ((b >= 0x30 && b <= 0x39) || b == 0x2D) && (i == 0 || !(d[i - 1] >= 0x30 && d[i - 1] <= 0x39)) : b == 0x22
            if isStart { starts.append(i) }
            i += 1
        }
        guard !starts.isEmpty else { return d }
        let s = starts[below(starts.count)]
        var e = s + 1
        if numbers {
            while e < r.upperBound, "0123456789.eE+-".utf8.contains(d[e]) { e += 1 }
        } else {
            while e < r.upperBound, d[e] != 0x22 { e += d[e] == 0x5C ? 2 : 1 }
            e = min(e + 1, d.count)
        }
        let list = numbers ? Self.numbers : Self.strings
        var out = d
        out.replaceSubrange(s..<min(e, out.count), with: Array(list[below(list.count)].utf8))
        return out
    }
}

/// The child side of `FuzzTests`: mutates one target's file case after case and reads each,
/// errors being fine and traps being what the parent looks for. Before each case it records the
/// case's index and writes its input, so that a trap names the mutation that caused it.
struct FuzzWorker {
    let target: FuzzTarget
    let seed: UInt64
    let first: Int, end: Int
    let deadline: Date
    let directory: URL

    static func environment(_ target: FuzzTarget, seed: UInt64, first: Int, end: Int, deadline: Date, directory: URL) -> [String: String] {
        ["ITUNE_FUZZ_TARGET": target.rawValue, "ITUNE_FUZZ_SEED": "\(seed)", "ITUNE_FUZZ_FIRST": "\(first)", "ITUNE_FUZZ_END": "\(end)",
         "ITUNE_FUZZ_DEADLINE": "\(deadline.timeIntervalSince1970)", "ITUNE_FUZZ_DIR": directory.path]
    }

    init(environment env: [String: String]) throws {
        guard let t = env["ITUNE_FUZZ_TARGET"].flatMap(FuzzTarget.init), let seed = env["ITUNE_FUZZ_SEED"].flatMap(UInt64.init),
              let first = env["ITUNE_FUZZ_FIRST"].flatMap(Int.init), let end = env["ITUNE_FUZZ_END"].flatMap(Int.init),
              let deadline = env["ITUNE_FUZZ_DEADLINE"].flatMap(Double.init), let dir = env["ITUNE_FUZZ_DIR"] else {
            throw XCTSkip("fuzz worker: incomplete environment")
        }
        (target, self.seed, self.first, self.end) = (t, seed, first, end)
        self.deadline = Date(timeIntervalSince1970: deadline)
        directory = URL(fileURLWithPath: dir)
    }

    static func progressURL(_ dir: URL) -> URL { dir.appendingPathComponent("progress") }
    static func doneURL(_ dir: URL) -> URL { dir.appendingPathComponent("done") }
    static func caseDirectory(_ dir: URL) -> URL { dir.appendingPathComponent("case") }

    func run() throws {
        let fixtures = TrainerFixtures.fixtures
        let caseDir = Self.caseDirectory(directory)
        try FileManager.default.createDirectory(at: caseDir, withIntermediateDirectories: true)
        let (original, json, model) = try FuzzInputs.original(target)
        if let model {  // the model directory the mutated file is read in: the rest of it valid
            for name in ["config.json", "model.safetensors"] where name != target.fileName {
                try? FileManager.default.removeItem(at: caseDir.appendingPathComponent(name))
                try FileManager.default.copyItem(at: model.appendingPathComponent(name), to: caseDir.appendingPathComponent(name))
            }
        }
        let tokenizer = try Tokenizer(directory: fixtures.appendingPathComponent("tokenizers/gpt2_style"))
        var done = 0, rejected = 0
        for index in first..<end {
            if Date() > deadline { break }
            try Data("\(index)".utf8).write(to: Self.progressURL(directory))
            var m = Mutator(seed: seed, index: index)
            let input = m.mutate(original, json: json, utf16: target == .jsonl || target == .jsonArray)
            let file = caseDir.appendingPathComponent(target.fileName)
            try Data(input).write(to: file)
            do { try FuzzInputs.read(target, file: file, tokenizer: tokenizer) } catch { rejected += 1 }
            done += 1
        }
        try Data("\(done) \(rejected)".utf8).write(to: Self.doneURL(directory))
    }
}
