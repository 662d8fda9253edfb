// Byte-pair encoding: start from one symbol per character, then repeatedly merge the adjacent
// pair with the lowest merge rank (leftmost first on ties) until no pair in the word merges.
//
// The merge loop is the reference library's (a binary heap of candidate merges over a linked list
// of symbols, stale entries skipped when popped), on Int32 ids in reusable buffers; the result of
// each distinct word is cached by the caller, so a dataset's vocabulary of words is merged once.

/// A tokenization model: one pre-token in, ids out.
protocol TokenizerModel: AnyObject {
    /// Appends the ids for `word` (UTF-8 bytes of one pre-token, never empty).
    func tokenize(_ word: UnsafeBufferPointer<UInt8>, scratch: ModelScratch, into ids: inout [Int32])
    func id(of token: String) -> Int?
    func token(of id: Int) -> String?
    /// Number of entries in the model's vocabulary.
    var vocabularyCount: Int { get }
    /// Largest id in the model's vocabulary (-1 when empty).
    var maxID: Int { get }
}

/// Buffers one encoding thread reuses across words.
final class ModelScratch {
    var symbols: [Int32] = []
    var prev: [Int32] = []
    var next: [Int32] = []
    var alive: [Bool] = []
    var heapKeys: [UInt64] = []
    var heapMerged: [Int32] = []
    var text: [UInt8] = []
}

/// Shared by the models: vocab as tokenizer.json writes it, `{"token": id, …}`.
struct Vocabulary {
    var table = ByteStringTable()
    var tokens: [String?] = []
    var count = 0

    init(_ json: JSONCursor) throws {
        let members = try json.members()
        table = ByteStringTable(capacity: members.count)
        var maxID = -1
        var pairs: [(String, Int)] = []
        pairs.reserveCapacity(members.count)
        for (token, value) in members {
            let id = try value.int()
            guard id >= 0 && id < Int(Int32.max) else { throw value.invalid("id \(id) out of range") }
            pairs.append((token, id))
            maxID = max(maxID, id)
        }
        tokens = [String?](repeating: nil, count: maxID + 1)
        for (token, id) in pairs {
            var bytes = Array(token.utf8)
            bytes.withUnsafeMutableBufferPointer { b in
                if let base = b.baseAddress { table.insert(UnsafePointer(base), b.count, value: Int32(id)) } else {
                    table.insert([], value: Int32(id))
                }
            }
            tokens[id] = token
        }
        count = pairs.count
    }

    func id(_ token: String) -> Int32 { table.find(Array(token.utf8)) }
}

final class BPEModel: TokenizerModel {
    private let vocab: Vocabulary
    private let merges: MergeTable
    private let unkID: Int32
    private let fuseUnk: Bool
    private let byteFallback: Bool
    private let ignoreMerges: Bool
    private let prefix: [UInt8]
    private let suffix: [UInt8]
    /// ids of `<0x00>` … `<0xFF>` (-1 where absent), for byte_fallback.
    private let byteTokenIDs: [Int32]

    init(_ json: JSONCursor) throws {
        let vocab = try Vocabulary(json["vocab"])
        self.vocab = vocab
        fuseUnk = try json["fuse_unk"].bool(default: false)
        byteFallback = try json["byte_fallback"].bool(default: false)
        ignoreMerges = try json["ignore_merges"].bool(default: false)
        prefix = Array((try json["continuing_subword_prefix"].optionalString() ?? "").utf8)
        suffix = Array((try json["end_of_word_suffix"].optionalString() ?? "").utf8)
        let dropout: Double
        switch json["dropout"].value {
        case .null: dropout = 0
        case .int(let v): dropout = Double(v)
        case .double(let v): dropout = v
        default: throw json["dropout"].invalid("expected a number or null")
        }
        if dropout > 0 {
            // Dropout makes encoding random; a fine-tuning run wants the deterministic encoding.
            throw json["dropout"].invalid("BPE dropout \(dropout) is not supported (set it to null)")
        }
        if let unk = try json["unk_token"].optionalString() {
            let id = vocab.id(unk)
            guard id >= 0 else { throw json["unk_token"].invalid("'\(unk)' is not in model.vocab") }
            unkID = id
        } else {
            unkID = -1
        }
        byteTokenIDs = (0..<256).map { b in
            let hex = String(b, radix: 16, uppercase: true)
            return vocab.id("<0x" + (hex.count == 1 ? "0" + hex : hex) + ">")
        }
        let mergesField = json["merges"]
        let entries = mergesField.isNull ? [] : try mergesField.array()
        var table = MergeTable(capacity: entries.count)
        let prefixLength = prefix.count
        for (rank, entry) in entries.enumerated() {
            let a: String, b: String
            switch entry.value {
            case .string(let s):
                // Split at the first space byte: Character-wise, a space followed by a combining
                // character (U+200D, U+0301, …) is one grapheme and would not be found.
                let u = Array(s.utf8)
                guard let space = u.firstIndex(of: 0x20) else {
                    throw entry.invalid("expected \"left right\" separated by a space")
                }
                a = String(decoding: u[..<space], as: UTF8.self)
                b = String(decoding: u[(space + 1)...], as: UTF8.self)
            case .array(let parts) where parts.count == 2:
                a = try JSONCursor(parts[0], file: entry.file, path: entry.path + "[0]").string()
                b = try JSONCursor(parts[1], file: entry.file, path: entry.path + "[1]").string()
            default:
                throw entry.invalid("expected \"left right\" or [\"left\", \"right\"]")
            }
            let aID = vocab.id(a), bID = vocab.id(b)
            guard aID >= 0 else { throw entry.invalid("'\(a)' is not in model.vocab") }
            guard bID >= 0 else { throw entry.invalid("'\(b)' is not in model.vocab") }
            // The merged token drops the right part's continuing_subword_prefix (by length, as the
            // reference library does).
            let bBytes = Array(b.utf8)
            guard bBytes.count >= prefixLength else { throw entry.invalid("'\(b)' is shorter than the subword prefix") }
            let mergedBytes = Array(a.utf8) + bBytes[prefixLength...]
            let merged = vocab.table.find(mergedBytes)
            guard merged >= 0 else {
                throw entry.invalid("the merge result '\(String(decoding: mergedBytes, as: UTF8.self))' is not in model.vocab")
            }
            table.insert(aID, bID, rank: Int32(rank), merged: merged)
        }
        merges = table
    }

    var vocabularyCount: Int { vocab.count }
    var maxID: Int { vocab.tokens.count - 1 }

    func id(of token: String) -> Int? {
        let id = vocab.id(token)
        return id >= 0 ? Int(id) : nil
    }

    func token(of id: Int) -> String? {
        id >= 0 && id < vocab.tokens.count ? vocab.tokens[id] : nil
    }

    func tokenize(_ word: UnsafeBufferPointer<UInt8>, scratch: ModelScratch, into ids: inout [Int32]) {
        guard let p = word.baseAddress, word.count > 0 else { return }
        let n = word.count
        if ignoreMerges {
            let whole = vocab.table.find(p, n)
            if whole >= 0 { ids.append(whole); return }
        }
        initialSymbols(p, n, scratch: scratch)
        mergeAll(scratch)
        let count = scratch.symbols.count
        scratch.symbols.withUnsafeBufferPointer { sym in
            scratch.alive.withUnsafeBufferPointer { alive in
                for k in 0..<count where alive[k] { ids.append(sym[k]) }
            }
        }
    }

    /// One symbol per character (with the subword prefix/suffix where configured); characters
    /// outside the vocabulary become byte tokens (byte_fallback) or `unk` (fused when fuse_unk).
    private func initialSymbols(_ p: UnsafePointer<UInt8>, _ n: Int, scratch: ModelScratch) {
        scratch.symbols.removeAll(keepingCapacity: true)
        var pendingUnk = false
        var i = 0
        while i < n {
            let len = utf8Length(lead: p[i])
            let isFirst = i == 0
            let isLast = i + len >= n
            let decorated = (!isFirst && !prefix.isEmpty) || (isLast && !suffix.isEmpty)
            var id: Int32
            if !decorated {
                id = vocab.table.find(p + i, len)
            } else {
                var s = scratch.text
                s.removeAll(keepingCapacity: true)
                if !isFirst { s.append(contentsOf: prefix) }
                s.append(contentsOf: UnsafeBufferPointer(start: p + i, count: len))
                if isLast { s.append(contentsOf: suffix) }
                id = vocab.table.find(s)
                scratch.text = s
            }
            if id >= 0 {
                if pendingUnk { scratch.symbols.append(unkID); pendingUnk = false }
                scratch.symbols.append(id)
            } else {
                var handled = false
                if byteFallback {
                    // The bytes of the character as looked up (prefix and suffix included).
                    var bytes: [UInt8] = []
                    if decorated && !isFirst { bytes.append(contentsOf: prefix) }
                    bytes.append(contentsOf: UnsafeBufferPointer(start: p + i, count: len))
                    if decorated && isLast { bytes.append(contentsOf: suffix) }
                    if bytes.allSatisfy({ byteTokenIDs[Int($0)] >= 0 }) {
                        for b in bytes { scratch.symbols.append(byteTokenIDs[Int(b)]) }
                        handled = true
                    }
                }
                if !handled && unkID >= 0 {
                    if pendingUnk && !fuseUnk { scratch.symbols.append(unkID) }
                    pendingUnk = true
                }
            }
            i += len
        }
        if pendingUnk { scratch.symbols.append(unkID) }
    }

    private func mergeAll(_ scratch: ModelScratch) {
        let count = scratch.symbols.count
        scratch.alive.removeAll(keepingCapacity: true)
        scratch.alive.append(contentsOf: repeatElement(true, count: count))
        if count < 2 { return }
        scratch.prev.removeAll(keepingCapacity: true)
        scratch.next.removeAll(keepingCapacity: true)
        for k in 0..<count {
            scratch.prev.append(Int32(k - 1))
            scratch.next.append(k + 1 < count ? Int32(k + 1) : -1)
        }
        var heap = MergeHeap(keys: scratch.heapKeys, merged: scratch.heapMerged)
        heap.removeAll()
        scratch.symbols.withUnsafeMutableBufferPointer { sym in
            for k in 0..<(count - 1) {
                let m = merges.find(sym[k], sym[k + 1])
                if m != UInt64.max { heap.push(rank: UInt32(m >> 32), pos: UInt32(k), merged: Int32(truncatingIfNeeded: m)) }
            }
            scratch.alive.withUnsafeMutableBufferPointer { alive in
                scratch.prev.withUnsafeMutableBufferPointer { prev in
                    scratch.next.withUnsafeMutableBufferPointer { next in
                        while let top = heap.pop() {
                            let pos = Int(top.pos)
                            if !alive[pos] { continue }
                            let right = next[pos]
                            if right < 0 { continue }
                            let r = Int(right)
                            let current = merges.find(sym[pos], sym[r])
                            if current == UInt64.max || Int32(truncatingIfNeeded: current) != top.merged { continue }
                            sym[pos] = top.merged
                            alive[r] = false
                            let after = next[r]
                            next[pos] = after
                            if after >= 0 { prev[Int(after)] = Int32(pos) }
                            let before = prev[pos]
                            if before >= 0 {
                                let m = merges.find(sym[Int(before)], sym[pos])
                                if m != UInt64.max {
                                    heap.push(rank: UInt32(m >> 32), pos: UInt32(before), merged: Int32(truncatingIfNeeded: m))
                                }
                            }
                            if after >= 0 {
                                let m = merges.find(sym[pos], sym[Int(after)])
                                if m != UInt64.max {
                                    heap.push(rank: UInt32(m >> 32), pos: UInt32(pos), merged: Int32(truncatingIfNeeded: m))
                                }
                            }
                        }
                    }
                }
            }
        }
        scratch.heapKeys = heap.keys
        scratch.heapMerged = heap.merged
    }
}

/// A min-heap of candidate merges ordered by (rank, position).
struct MergeHeap {
    var keys: [UInt64]    // rank << 32 | position
    var merged: [Int32]

    mutating func removeAll() {
        keys.removeAll(keepingCapacity: true)
        merged.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    mutating func push(rank: UInt32, pos: UInt32, merged id: Int32) {
        let key = UInt64(rank) << 32 | UInt64(pos)
        keys.append(key)
        merged.append(id)
        var k = keys.count - 1
        while k > 0 {
            let parent = (k - 1) >> 1
            if keys[parent] <= key { break }
            keys[k] = keys[parent]
            merged[k] = merged[parent]
            k = parent
        }
        keys[k] = key
        merged[k] = id
    }

    @inline(__always)
    mutating func pop() -> (pos: UInt32, merged: Int32)? {
        guard let top = keys.first else { return nil }
        let topMerged = merged[0]
        let lastKey = keys.removeLast()
        let lastMerged = merged.removeLast()
        let n = keys.count
        if n > 0 {
            var k = 0
            while true {
                let l = 2 * k + 1
                if l >= n { break }
                var c = l
                if l + 1 < n && keys[l + 1] < keys[l] { c = l + 1 }
                if keys[c] >= lastKey { break }
                keys[k] = keys[c]
                merged[k] = merged[c]
                k = c
            }
            keys[k] = lastKey
            merged[k] = lastMerged
        }
        return (UInt32(truncatingIfNeeded: top), topMerged)
    }
}
