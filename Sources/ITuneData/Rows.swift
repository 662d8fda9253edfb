import Foundation

// From tokenized examples to training rows: packing, validation splits, seeded shuffles.

/// A row of packed examples: their ids and labels one after another, and each one's length in
/// order. The model keeps attention inside each example from `lengths`
/// (ITuneTensor's `AttentionSegments(lengths:rowLength:)`), and restarts positions at each.
public struct PackedRow: Sendable, Equatable {
    public var ids: [Int32]
    public var labels: [Int32]
    public var lengths: [Int]

    public init(ids: [Int32], labels: [Int32], lengths: [Int]) {
        self.ids = ids
        self.labels = labels
        self.lengths = lengths
    }
}

extension DatasetTokenizer {
    /// Greedy first-fit packing in the given order: each example goes into the first row with
    /// room, rows hold at most `rowLength` tokens, no example is split. Each example's first
    /// label is set to −100: alone it is never scored (nothing precedes it), and packed it would
    /// be predicted from the previous example's last token, which is the kind of cross-example
    /// loss packing must not add (TRL's padding-free packing does the same).
    /// Examples must be at most `rowLength` long (tokenize with `maxLength ≤ rowLength`).
    public static func pack(_ examples: [TokenizedExample], rowLength: Int) -> [PackedRow] {
        precondition(rowLength > 0, "rowLength must be positive")
        var rows: [PackedRow] = []
        // Rows that still have room, oldest first; the list is kept short so that packing stays
        // linear in the number of examples (a row that has waited through 64 newer ones is left
        // as it is).
        var open: [Int] = []
        for e in examples {
            let n = e.ids.count
            precondition(n <= rowLength, "an example of \(n) tokens does not fit rows of \(rowLength): tokenize with maxLength ≤ rowLength")
            guard n > 0 else { continue }
            var labels = e.labels
            labels[0] = -100
            if let k = open.firstIndex(where: { rows[$0].ids.count + n <= rowLength }) {
                let r = open[k]
                rows[r].ids += e.ids
                rows[r].labels += labels
                rows[r].lengths.append(n)
                if rows[r].ids.count == rowLength { open.remove(at: k) }
            } else {
                var row = PackedRow(ids: e.ids, labels: labels, lengths: [n])
                row.ids.reserveCapacity(rowLength)
                row.labels.reserveCapacity(rowLength)
                rows.append(row)
                if n < rowLength { open.append(rows.count - 1) }
                if open.count > 64 { open.removeFirst() }
            }
        }
        return rows
    }

    /// A deterministic validation split: `count` items (or a `fraction` of them, rounded) drawn
    /// by `seed`. Both parts keep the input order. Same items and seed, same split, on any
    /// machine (SplitMix64, not the system generator).
    public static func split<T>(_ items: [T], fraction: Double? = nil, count: Int? = nil, seed: UInt64) -> (train: [T], validation: [T]) {
        precondition(fraction.map { $0 >= 0 && $0 <= 1 } ?? true, "fraction must be in 0...1")
        precondition(count.map { $0 >= 0 } ?? true, "count must not be negative")
        let n = min(items.count, count ?? Int((Double(items.count) * (fraction ?? 0)).rounded()))
        guard n > 0 else { return (items, []) }
        let order = permutation(items.count, seed: seed)
        var held = [Bool](repeating: false, count: items.count)
        for i in order.prefix(n) { held[i] = true }
        var train: [T] = [], validation: [T] = []
        train.reserveCapacity(items.count - n)
        validation.reserveCapacity(n)
        for (i, item) in items.enumerated() {
            if held[i] { validation.append(item) } else { train.append(item) }
        }
        return (train, validation)
    }

    /// `items` in an order drawn by `seed` (Fisher–Yates over SplitMix64): the same on every run
    /// and machine, so that a run can be repeated and resumed.
    public static func shuffled<T>(_ items: [T], seed: UInt64) -> [T] {
        permutation(items.count, seed: seed).map { items[$0] }
    }

    static func permutation(_ count: Int, seed: UInt64) -> [Int] {
        var order = Array(0..<count)
        var rng = SplitMix64(seed: seed)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        }
        return order
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny generator whose sequence is fixed by its seed.
/// Kept here because ITuneData sits below the tensor layer, which has its own.
struct SplitMix64 {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
