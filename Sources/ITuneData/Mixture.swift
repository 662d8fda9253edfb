import Foundation

// FLAN-style task mixtures: several tasks, each from one or more files (its templates), mixed by
// examples-proportional sampling with a per-task cap (FLAN-T5, Chung et al. 2022) or by
// temperature-scaled rates (T5, Raffel et al. 2020), deterministic under a seed.

/// A mixture file (JSON): which tasks, from which files, in what proportions.
public struct Mixture: Codable, Sendable, Equatable {
    public enum Scheme: String, Codable, Sendable { case proportional, temperature }

    public struct Task: Codable, Sendable, Equatable {
        public var name: String
        public var files: [String]
        /// Multiplies the task's rate (default 1).
        public var weight: Double?
        /// Similarity to the target when `itune-gpu select` chose it (informational).
        public var similarity: Double?

        public init(name: String, files: [String], weight: Double? = nil, similarity: Double? = nil) {
            self.name = name
            self.files = files
            self.weight = weight
            self.similarity = similarity
        }
    }

    public var tasks: [Task]
    public var scheme: Scheme = .proportional
    /// Examples-proportional cap K: a task counts as min(size, K) examples.
    public var cap: Int? = 3000
    /// Temperature T: rates ∝ min(size, cap)^(1/T).
    public var temperature: Double? = nil
    /// Examples to draw in all; default Σ min(size, cap).
    public var total: Int? = nil
    /// The target a selection was made for (informational).
    public var target: String? = nil

    public init(tasks: [Task], scheme: Scheme = .proportional, cap: Int? = 3000, temperature: Double? = nil, total: Int? = nil) {
        self.tasks = tasks
        self.scheme = scheme
        self.cap = cap
        self.temperature = temperature
        self.total = total
    }

    public static func read(_ path: String) throws -> Mixture {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw DataError(source: path, field: nil, reason: "cannot read: \(error.localizedDescription)")
        }
        do { return try JSONDecoder().decode(Mixture.self, from: data) } catch let DecodingError.keyNotFound(key, ctx) {
            throw DataError(source: path, field: (ctx.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: "."), reason: "missing")
        } catch {
            throw DataError(source: path, field: nil, reason: "not a mixture file: \(error)")
        }
    }

    public func write(_ path: String) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try OutputFiles.writeAtomically(e.encode(self), to: URL(fileURLWithPath: path))
    }
}

public enum MixtureSampler {
    /// How many examples each task contributes, from the task sizes: rates r_i = w_i·min(n_i, K)
    /// (proportional) or w_i·min(n_i, K)^(1/T) (temperature), scaled to `total` (default
    /// Σ min(n_i, K)) by largest remainders, so the counts add up exactly.
    public static func counts(sizes: [Int], weights: [Double], mixture m: Mixture) -> [Int] {
        let cap = m.cap ?? Int.max
        let capped = sizes.map { Double(min($0, cap)) }
        let rates: [Double] = zip(capped, weights).map { c, w in
            switch m.scheme {
            case .proportional: return w * c
            case .temperature: return w * pow(c, 1 / max(m.temperature ?? 1, 1e-6))
            }
        }
        let total = m.total ?? Int(capped.reduce(0, +))
        let sum = rates.reduce(0, +)
        guard sum > 0, total > 0 else { return sizes.map { _ in 0 } }
        let exact = rates.map { Double(total) * $0 / sum }
        var out = exact.map { Int($0.rounded(.down)) }
        var left = total - out.reduce(0, +)
        for i in exact.indices.sorted(by: { (exact[$0] - Double(out[$0]), -$0) > (exact[$1] - Double(out[$1]), -$1) }) where left > 0 {
            out[i] += 1
            left -= 1
        }
        return out
    }

    /// Draws the mixture: each task's examples interleaved across its files (so that its
    /// templates take turns), shuffled by the seed, then `count` of them taken (cycling, in a
    /// fresh order each pass, when the count exceeds the task). Returns the examples in a
    /// seeded order and the realised count per task.
    public static func sample(_ tasks: [[Example]], weights: [Double], mixture: Mixture, seed: UInt64) -> (examples: [Example], counts: [Int]) {
        let want = counts(sizes: tasks.map(\.count), weights: weights, mixture: mixture)
        var out: [Example] = []
        for (i, task) in tasks.enumerated() where !task.isEmpty && want[i] > 0 {
            // Round-robin over the task's files: template rotation.
            var byFile: [String: [Example]] = [:]
            var fileOrder: [String] = []
            for e in task {
                if byFile[e.source.file] == nil { fileOrder.append(e.source.file) }
                byFile[e.source.file, default: []].append(e)
            }
            let shuffledFiles = fileOrder.map { DatasetTokenizer.shuffled(byFile[$0]!, seed: seed ^ UInt64(i + 1) &* 0x9E37_79B9) }
            var rotated: [Example] = []
            var k = 0
            while rotated.count < task.count {
                for f in shuffledFiles where k < f.count { rotated.append(f[k]) }
                k += 1
            }
            var pass: UInt64 = 0
            var taken = 0
            while taken < want[i] {
                let order = pass == 0 ? rotated : DatasetTokenizer.shuffled(rotated, seed: seed &+ pass &* 31 &+ UInt64(i))
                for e in order.prefix(want[i] - taken) { out.append(e) }
                taken = min(want[i], taken + order.count)
                pass += 1
            }
        }
        return (DatasetTokenizer.shuffled(out, seed: seed), want)
    }
}
