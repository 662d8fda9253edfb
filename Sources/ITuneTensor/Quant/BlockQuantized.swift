import CGemmKernels
import Foundation

// Blockwise-quantised storage of a frozen base matrix (`--quantize`, issue 17):
//
//   nf4   QLoRA's NormalFloat4 (Dettmers et al. 2023, appendix E): blocks of 64 consecutive
//         values (row-major, flattened) scaled by their absmax, each value the index of the
//         nearest of the 16 code-book values; two indices a byte, the first in the high nibble
//         (as bitsandbytes packs them).
//   int8  blocks of 64 scaled by their absmax, q = round(127 · x / absmax) in [−127, 127].
//
// Double quantisation (QLoRA §3, `--double-quant`): the absmax constants themselves, less their
// mean, in 8-bit blocks of 256 with an f32 absmax per block (linear absmax code, where
// bitsandbytes uses its dynamic 8-bit code): 32/64 → 8/64 + 32/(64·256) bits per weight.
//
// The matrix is never expanded whole: `dequantize(from:count:into:)` turns any run of values
// back into f32 (the CPU GEMM converts one cache-sized block at a time, GemmQuant.swift).

/// A quantisation format of frozen base weights.
public enum QuantFormat: String, Sendable, CaseIterable, Codable {
    case nf4, int8
}

/// QLoRA's NormalFloat4 code book, as published (appendix E of the paper; bitsandbytes'
/// `create_normal_map`): quantiles of N(0,1) normalised to [−1, 1], with an exact zero.
public let nf4CodeBook: [Float] = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]

/// A (rows, cols) f32 matrix stored blockwise quantised, in host memory — or, once placed on an
/// OpenCL device (`place(on:)`), on that device only: the host copy of the codes and absmax
/// constants is released then (a 7B nf4 base would otherwise cost its blocks twice in host
/// RAM) and read back from the device if the host ever needs them again (a CPU product, a
/// second device, `dequantized()`).
public final class BlockQuantizedMatrix: @unchecked Sendable {
    public static let blockSize = 64
    /// Absmax constants per second-level block under double quantisation.
    public static let scaleBlockSize = 256

    public let format: QuantFormat
    public let rows: Int, cols: Int
    /// nf4: ⌈count/2⌉ bytes of packed indices; int8: count bytes of Int8 bit patterns.
    public var codes: [UInt8] { host().codes }
    /// The absmax of each block (dequantised from `scaleCodes` under double quantisation).
    public var absmax: [Float] {
        let copy = host()
        guard let q = scaleCodes, let second = scaleAbsmax, let offset = scaleOffset else { return copy.absmax }
        return (0..<blockCount).map { Self.restoredScale(code: q[$0], absmax: second[$0 / Self.scaleBlockSize], offset: offset) }
    }
    /// The host copy of codes and absmax; nil once released after placing on a device. Under
    /// double quantisation `absmax` is empty: the blocks' scales are restored from the 8-bit
    /// codes as they are read, so that the host holds 1 byte a block, not 4 (+1).
    private var hostCopy: (codes: [UInt8], absmax: [Float])?
    private let hostLock = NSLock()
    /// Bytes of `codes` (kept when the host copy is released).
    private let codeByteCount: Int
    /// Double quantisation: the absmax constants' 8-bit codes, their per-256 f32 absmax and
    /// their mean; nil without it.
    public let scaleCodes: [Int8]?
    public let scaleAbsmax: [Float]?
    public let scaleOffset: Float?
    /// The blocks as uploaded to each OpenCL device they are used on (QuantizedLinear.swift).
    let deviceCopies = DeviceQuantizedBlocksCache()

    public var count: Int { rows * cols }
    public var blockCount: Int { (count + Self.blockSize - 1) / Self.blockSize }

    /// Bytes this matrix occupies (codes and constants).
    public var byteCount: Int {
        codeByteCount + (scaleCodes.map { $0.count + 4 * (scaleAbsmax?.count ?? 0) + 4 } ?? 4 * blockCount)
    }

    /// Quantises `values` (row-major, rows × cols).
    public convenience init(quantizing values: UnsafeBufferPointer<Float>, rows: Int, cols: Int, format: QuantFormat,
                            doubleQuant: Bool = false) throws {
        let (count, overflow) = rows.multipliedReportingOverflow(by: cols)
        guard rows >= 0, cols >= 0, !overflow, values.count == count else {
            throw TensorError.shapeMismatch(op: "quantize", "\(values.count) values for a \(rows)×\(cols) matrix")
        }
        try self.init(rows: rows, cols: cols, format: format, doubleQuant: doubleQuant) { row0, n, dst in
            if n > 0 { dst.update(from: values.baseAddress! + row0 * cols, count: n * cols) }
        }
    }

    /// Quantises a rows × cols matrix read a few rows at a time: `readRows(row0, n, dst)` puts
    /// rows row0..<row0+n (row-major f32) at dst. Only one chunk of about a million values
    /// exists in f32 at once, so a table stored in 16 bits (a 128k-token embedding) is quantised
    /// without its f32 copy.
    public init(rows: Int, cols: Int, format: QuantFormat, doubleQuant: Bool = false,
                readRows: (_ row0: Int, _ n: Int, _ dst: UnsafeMutablePointer<Float>) throws -> Void) throws {
        let (count, overflow) = rows.multipliedReportingOverflow(by: cols)
        guard rows >= 0, cols >= 0, !overflow, count <= Int.max / 2 else {
            throw TensorError.shapeMismatch(op: "quantize", "a \(rows)×\(cols) matrix")
        }
        self.format = format
        self.rows = rows
        self.cols = cols
        let bs = Self.blockSize
        let blocks = (count + bs - 1) / bs
        var scales = [Float](repeating: 0, count: blocks)
        var codes = [UInt8](repeating: 0, count: format == .nf4 ? (count + 1) / 2 : count)
        // Chunks of whole blocks: a multiple of 64 / gcd(cols, 64) rows holds a multiple of 64 values.
        var g = bs, c = cols
        while c != 0 { (g, c) = (c, g % c) }
        let unit = bs / max(g, 1)
        let chunkRows = max(unit, (1 << 20) / max(cols, 1) / unit * unit)
        var buffer = [Float](repeating: 0, count: min(rows, chunkRows) * cols)
        var row0 = 0
        while row0 < rows {
            let n = min(chunkRows, rows - row0)
            let flat0 = row0 * cols, length = n * cols
            try buffer.withUnsafeMutableBufferPointer { chunk in
                guard let base = chunk.baseAddress else { return }
                try readRows(row0, n, base)
                if let bad = chunk[0..<length].firstIndex(where: { !$0.isFinite }) {
                    let k = flat0 + bad
                    throw TensorError.invalidArgument(op: "quantize", "value \(k) (row \(k / max(cols, 1)), column \(k % max(cols, 1))) is not finite")
                }
                for b in (flat0 / bs)..<((flat0 + length + bs - 1) / bs) {
                    let lo = b * bs, hi = min(count, lo + bs)
                    var m: Float = 0
                    for i in lo..<hi { m = max(m, abs(base[i - flat0])) }
                    scales[b] = m
                    for i in lo..<hi {
                        let v = m > 0 ? base[i - flat0] / m : 0
                        switch format {
                        case .nf4:
                            let q = UInt8(nearestNF4(v))
                            codes[i / 2] |= i % 2 == 0 ? q << 4 : q
                        case .int8:
                            codes[i] = UInt8(bitPattern: Int8((v * 127).rounded()))
                        }
                    }
                }
            }
            row0 += n
        }
        codeByteCount = codes.count
        let absmax: [Float]
        if doubleQuant, blocks > 0 {
            let offset = Float(scales.reduce(0.0) { $0 + Double($1) } / Double(blocks))
            let sb = Self.scaleBlockSize
            var q = [Int8](repeating: 0, count: blocks)
            var second = [Float](repeating: 0, count: (blocks + sb - 1) / sb)
            for s in 0..<second.count {
                let lo = s * sb, hi = min(blocks, lo + sb)
                var m: Float = 0
                for i in lo..<hi { m = max(m, abs(scales[i] - offset)) }
                second[s] = m
                for i in lo..<hi {
                    q[i] = m > 0 ? Int8(((scales[i] - offset) / m * 127).rounded()) : 0
                }
            }
            absmax = []  // restored from q as the blocks are read
            scaleCodes = q
            scaleAbsmax = second
            scaleOffset = offset
        } else {
            absmax = scales
            scaleCodes = nil
            scaleAbsmax = nil
            scaleOffset = nil
        }
        hostCopy = (codes, absmax)
    }

    /// A block's absmax from its 8-bit code under double quantisation (one expression for the
    /// quantiser and for a host copy rebuilt from the device).
    @inline(__always)
    static func restoredScale(code c: Int8, absmax m: Float, offset: Float) -> Float { Float(c) / 127 * m + offset }

    /// Whether the host holds the codes and absmax (false once placed on an OpenCL device).
    var holdsHostCopy: Bool { hostLock.lock(); defer { hostLock.unlock() }; return hostCopy != nil }

    /// Drops the host copy; `device` must hold the blocks (QuantizedLinear.swift's `place`).
    func releaseHostCopy() { hostLock.lock(); hostCopy = nil; hostLock.unlock() }

    /// The host copy, read back from a device copy (and kept) if it was released.
    func host() -> (codes: [UInt8], absmax: [Float]) {
        hostLock.lock(); defer { hostLock.unlock() }
        if let hostCopy { return hostCopy }
        guard let device = deviceCopies.any else { fatalError("BlockQuantizedMatrix: host copy released with no device copy") }
        do {
            var codes = [UInt8](repeating: 0, count: codeByteCount)
            try codes.withUnsafeMutableBytes { try device.codes.backend.read(device.codes.storage, into: $0.baseAddress!, byteCount: codeByteCount) }
            var absmax = [Float](repeating: 0, count: scaleCodes == nil ? blockCount : 0)
            if scaleCodes == nil, blockCount > 0 {
                try absmax.withUnsafeMutableBytes { try device.scales.backend.read(device.scales.storage, into: $0.baseAddress!, byteCount: 4 * blockCount) }
            }
            hostCopy = (codes, absmax)
            return (codes, absmax)
        } catch {
            fatalError("BlockQuantizedMatrix: reading the blocks back from \(device.codes.device) failed: \(error)")
        }
    }

    /// dst[0..<n] = the dequantised values at flat indices start..<start+n.
    @inline(__always)
    public func dequantize(from start: Int, count n: Int, into dst: UnsafeMutablePointer<Float>) {
        dequantize(host(), from: start, count: n, into: dst)
    }

    /// `dequantize` from the given host copy (a GEMM fetches it once, not per run of a row), by
    /// `kernel` (default: the CPU's widest; every kernel gives the same bits).
    @inline(__always)
    func dequantize(_ copy: (codes: [UInt8], absmax: [Float]), from start: Int, count n: Int,
                    into dst: UnsafeMutablePointer<Float>, kernel: QuantKernel = .chosen) {
        guard n > 0 else { return }
        if kernel != .swift {
            let run = kernel == .avx512 ? itune_dequant_avx512 : itune_dequant_avx2
            withBlockPointers(copy) { p in
                run(p.format, p.codes, p.absmax, p.scaleCodes, p.second, p.offset, p.book, start, n, dst)
            }
            return
        }
        let restored = scaleCodes.flatMap { q in scaleAbsmax.flatMap { m in scaleOffset.map { (q, m, $0) } } }
        copy.codes.withUnsafeBufferPointer { c in
            copy.absmax.withUnsafeBufferPointer { s in
                var i = start
                let end = start + n
                var out = dst
                while i < end {
                    let block = i / Self.blockSize
                    let blockEnd = min(end, (block + 1) * Self.blockSize)
                    let scale = restored.map { Self.restoredScale(code: $0.0[block], absmax: $0.1[block / Self.scaleBlockSize], offset: $0.2) }
                        ?? s[block]
                    switch format {
                    case .nf4:
                        nf4CodeBook.withUnsafeBufferPointer { book in
                            while i < blockEnd {
                                let byte = c[i >> 1]
                                out.pointee = book[Int(i & 1 == 0 ? byte >> 4 : byte & 0xF)] * scale
                                out += 1; i += 1
                            }
                        }
                    case .int8:
                        let k = scale / 127
                        while i < blockEnd {
                            out.pointee = Float(Int8(bitPattern: c[i])) * k
                            out += 1; i += 1
                        }
                    }
                }
            }
        }
    }

    /// The whole matrix in f32 (tests and small matrices only).
    public func dequantized() -> [Float] {
        var out = [Float](repeating: 0, count: count)
        let copy = host()
        out.withUnsafeMutableBufferPointer { dequantize(copy, from: 0, count: count, into: $0.baseAddress!) }
        return out
    }
}

/// The index of the code-book value nearest to v (v in [−1, 1]); the lower index on a tie.
@inline(__always)
func nearestNF4(_ v: Float) -> Int {
    var best = 0
    var bestDistance = Float.infinity
    for (i, c) in nf4CodeBook.enumerated() {
        let d = abs(v - c)
        if d < bestDistance { best = i; bestDistance = d }
    }
    return best
}
