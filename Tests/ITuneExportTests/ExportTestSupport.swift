import Foundation
import ITuneModels
import ITuneTensor
@testable import ITuneExport

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures").standardized
let exportFixtures = fixtures.appendingPathComponent("export")

/// Tests/Fixtures/export/golden.json, written by scripts/make_gguf_fixtures.py.
func loadGolden() throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(contentsOf: exportFixtures.appendingPathComponent("golden.json"))) as! [String: Any]
}

func fnv1a32(_ s: String) -> UInt32 {
    var h: UInt32 = 0x811C_9DC5
    for b in s.utf8 { h = (h ^ UInt32(b)) &* 0x0100_0193 }
    return h
}

/// The fixture script's weights: value k of `name` = ((k·2654435761 + fnv1a32(name)) mod 2³² >> 8)
/// / 2²⁴ − ½, times 0.2 (plus 1 for norms), in f32 — the same bits numpy computes.
func formulaWeights(_ name: String, count: Int, norm: Bool) -> [Float] {
    let seed = UInt64(fnv1a32(name))
    return (0..<count).map { k in
        let x = (UInt64(k) &* 2_654_435_761 &+ seed) & 0xFFFF_FFFF
        let v = (Float(x >> 8) / 16_777_216 - 0.5) * 0.2
        return norm ? v + 1 : v
    }
}

/// A directory with the case's config.json and its tokenizer files, and the model built from the
/// formula weights.
func fixtureModel(_ name: String, tokenizer: String) throws -> (URL, any CausalLM) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-export-\(name)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    try FileManager.default.copyItem(at: exportFixtures.appendingPathComponent("\(name)/config.json"), to: dir.appendingPathComponent("config.json"))
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("tokenizers/\(tokenizer)/\(f)"), to: dir.appendingPathComponent(f))
    }
    let config = try ModelConfig(configJSON: dir.appendingPathComponent("config.json"))
    let model = try makeModel(config, on: .cpu) { n, shape, role in
        try Tensor(formulaWeights(n, count: shape.reduce(1, *), norm: role == .normWeight), shape: shape)
    }
    return (dir, model)
}

func hex(_ d: Data) -> String { d.map { String(format: "%02x", $0) }.joined() }

func fromHex(_ s: String) -> Data {
    var d = Data()
    var i = s.startIndex
    while i < s.endIndex {
        let j = s.index(i, offsetBy: 2)
        d.append(UInt8(s[i..<j], radix: 16)!)
        i = j
    }
    return d
}

/// SHA-256 (FIPS 180-4), for comparing bytes with the fixture script's hashlib digests.
func sha256(_ data: Data) -> String {
    let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
        0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
        0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
        0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
        0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
        0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]
    var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    var msg = [UInt8](data)
    let bitLength = UInt64(msg.count) * 8
    msg.append(0x80)
    while msg.count % 64 != 56 { msg.append(0) }
    for i in (0..<8).reversed() { msg.append(UInt8((bitLength >> (8 * UInt64(i))) & 0xFF)) }
    func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
    var w = [UInt32](repeating: 0, count: 64)
    for chunk in stride(from: 0, to: msg.count, by: 64) {
        for i in 0..<16 {
            w[i] = (0..<4).reduce(UInt32(0)) { ($0 << 8) | UInt32(msg[chunk + 4 * i + $1]) }
        }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
        for i in 0..<64 {
            let t1 = hh &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ k[i] &+ w[i]
            let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
            (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
        }
        h = zip(h, [a, b, c, d, e, f, g, hh]).map { $0 &+ $1 }
    }
    return h.map { String(format: "%08x", $0) }.joined()
}

/// A metadata value as gguf-py's GGUFReader reports it in golden.json: [type codes], value.
func goldenForm(_ v: GGUFValue) -> ([Int], Any) {
    switch v {
    case let .array(t, items): return ([Int(GGUFValueType.array.rawValue), Int(t.rawValue)], items.map { goldenForm($0).1 })
    case let .string(s): return ([Int(v.type.rawValue)], s)
    case let .bool(b): return ([Int(v.type.rawValue)], b)
    case let .float32(f): return ([Int(v.type.rawValue)], Double(f))
    case let .float64(f): return ([Int(v.type.rawValue)], f)
    default: return ([Int(v.type.rawValue)], v.integer ?? 0)
    }
}

/// A small seeded generator for mutation tests.
struct SplitMix {
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
