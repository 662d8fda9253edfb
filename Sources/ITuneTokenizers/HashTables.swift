// Two open-addressing hash tables for the tokenizer's hot path. Swift's Dictionary would need a
// String or an Array key per lookup (an allocation per pre-token); these look up a byte slice or a
// pair of ids in place.

/// Byte string → Int32, keys stored back to back in one arena.
struct ByteStringTable {
    private var slots: [Int32]       // entry index, or -1 for empty
    private var keyStart: [Int32] = []
    private var keyLength: [Int32] = []
    private var keyHash: [UInt32] = []
    private(set) var values: [Int32] = []
    private var arena: [UInt8] = []
    private var mask: Int

    init(capacity: Int = 16) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
    }

    var count: Int { values.count }
    var arenaBytes: Int { arena.count }

    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
        // FNV-1a over 8-byte words, then a final mix: keys are short (a word, a token).
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(n)
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 8 <= n {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x0000_0100_0000_01B3
            h ^= h >> 29
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(p[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ tail) &* 0x0000_0100_0000_01B3
        h ^= h >> 32
        h = h &* 0x9E37_79B9_7F4A_7C15
        return h ^ (h >> 29)
    }

    /// The value stored for the `n` bytes at `p`, or -1.
    @inline(__always)
    func find(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32 {
        let h = Self.hash(p, n)
        let h32 = UInt32(truncatingIfNeeded: h)
        return slots.withUnsafeBufferPointer { slotBuf -> Int32 in
            var s = Int(truncatingIfNeeded: h) & mask
            while true {
                let e = slotBuf[s]
                if e < 0 { return -1 }
                let ei = Int(e)
                if keyHash[ei] == h32 && Int(keyLength[ei]) == n {
                    let start = Int(keyStart[ei])
                    let same = arena.withUnsafeBufferPointer { a -> Bool in
                        n == 0 || memcmpBytes(a.baseAddress! + start, p, n)
                    }
                    if same { return values[ei] }
                }
                s = (s + 1) & mask
            }
        }
    }

    func find(_ bytes: [UInt8]) -> Int32 {
        bytes.withUnsafeBufferPointer { b in
            guard let p = b.baseAddress else { return findEmpty() }
            return find(p, b.count)
        }
    }

    private func findEmpty() -> Int32 {
        var dummy: UInt8 = 0
        return withUnsafePointer(to: &dummy) { find($0, 0) }
    }

    /// Inserts or overwrites.
    mutating func insert(_ p: UnsafePointer<UInt8>, _ n: Int, value: Int32) {
        if (values.count + 1) * 2 > slots.count { grow() }
        let h = Self.hash(p, n)
        let h32 = UInt32(truncatingIfNeeded: h)
        var s = Int(truncatingIfNeeded: h) & mask
        while true {
            let e = slots[s]
            if e < 0 { break }
            let ei = Int(e)
            if keyHash[ei] == h32 && Int(keyLength[ei]) == n {
                let start = Int(keyStart[ei])
                let same = arena.withUnsafeBufferPointer { a in n == 0 || memcmpBytes(a.baseAddress! + start, p, n) }
                if same { values[ei] = value; return }
            }
            s = (s + 1) & mask
        }
        slots[s] = Int32(values.count)
        keyStart.append(Int32(arena.count))
        keyLength.append(Int32(n))
        keyHash.append(h32)
        values.append(value)
        arena.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
    }

    mutating func insert(_ bytes: [UInt8], value: Int32) {
        var copy = bytes
        if copy.isEmpty {
            var dummy: UInt8 = 0
            withUnsafePointer(to: &dummy) { insert($0, 0, value: value) }
            return
        }
        copy.withUnsafeMutableBufferPointer { insert(UnsafePointer($0.baseAddress!), $0.count, value: value) }
    }

    mutating func removeAll() {
        for k in slots.indices { slots[k] = -1 }
        keyStart.removeAll(keepingCapacity: true)
        keyLength.removeAll(keepingCapacity: true)
        keyHash.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        arena.removeAll(keepingCapacity: true)
    }

    private mutating func grow() {
        let size = slots.count * 2
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
        for ei in 0..<values.count {
            // Entries keep their hash (its low 32 bits pick the slot: tables stay far below 2^32).
            var s = Int(keyHash[ei]) & mask
            while slots[s] >= 0 { s = (s + 1) & mask }
            slots[s] = Int32(ei)
        }
    }
}

@inline(__always)
func memcmpBytes(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    var i = 0
    while i + 8 <= n {
        if UnsafeRawPointer(a).loadUnaligned(fromByteOffset: i, as: UInt64.self)
            != UnsafeRawPointer(b).loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
        i += 8
    }
    while i < n {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}

/// (left id, right id) → (merge rank, merged id), for BPE merges.
struct MergeTable {
    private var keys: [UInt64]
    private var values: [UInt64]
    private var mask: Int
    private(set) var count = 0
    private static let empty = UInt64.max

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = [UInt64](repeating: Self.empty, count: size)
        values = [UInt64](repeating: 0, count: size)
        mask = size - 1
    }

    @inline(__always)
    private static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    @inline(__always)
    private static func slot(_ k: UInt64) -> Int {
        let h = k &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: h ^ (h >> 31))
    }

    /// Later merges of the same pair overwrite earlier ones, as the reference library's map does.
    mutating func insert(_ a: Int32, _ b: Int32, rank: Int32, merged: Int32) {
        let k = Self.key(a, b)
        var s = Self.slot(k) & mask
        while keys[s] != Self.empty && keys[s] != k { s = (s + 1) & mask }
        if keys[s] == Self.empty { count += 1 }
        keys[s] = k
        values[s] = UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: merged))
    }

    /// (rank, merged id) packed as rank << 32 | merged, or UInt64.max when the pair never merges.
    @inline(__always)
    func find(_ a: Int32, _ b: Int32) -> UInt64 {
        let k = Self.key(a, b)
        return keys.withUnsafeBufferPointer { kb -> UInt64 in
            var s = Self.slot(k) & mask
            while true {
                let stored = kb[s]
                if stored == k { return values[s] }
                if stored == Self.empty { return UInt64.max }
                s = (s + 1) & mask
            }
        }
    }
}
