import Foundation
import XCTest
@testable import ITuneTensor

/// Blockwise quantisation (--quantize nf4|int8): code book and blocks against
/// scripts/make_quant_fixtures.py (numpy, the NF4 code book rebuilt from the paper's normal
/// quantiles, and bitsandbytes 0.50.2's CPU quantize_4bit, whose codes and absmax it checked
/// equal), and the dequantising GEMM against f32 arithmetic on the dequantised matrix.
final class QuantTests: XCTestCase {
    struct Fixture: Decodable {
        let rows, cols: Int
        let seed: UInt64
        let nf4_code_book_from_quantiles: [Float]
        let nf4_codes_hex: String
        let nf4_absmax: [Float]
        let int8_codes_hex: String
        let int8_absmax: [Float]
        let dq_codes: [Int]
        let dq_second_absmax: [Float]
        let dq_offset: Float
        let dq_absmax: [Float]
    }

    static let fixture: Fixture = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fixtures/quant/quant_blocks.json").standardized
        // A missing fixture is a failing test, reported by the tests that read it.
        guard let data = try? Data(contentsOf: url), let f = try? JSONDecoder().decode(Fixture.self, from: data) else {
            fatalError("cannot read \(url.path)")
        }
        return f
    }()

    /// The script's matrix: (2u − 1) · 2^−(r mod 5), u = SplitMix64's nextFloat.
    static func matrix(rows: Int, cols: Int, seed: UInt64) -> [Float] {
        var g = SplitMix64(seed: seed)
        var out: [Float] = []
        for r in 0..<rows { for _ in 0..<cols { out.append((2 * g.nextFloat() - 1) * Float(sign: .plus, exponent: -(r % 5), significand: 1)) } }
        return out
    }

    /// Half the widest gap between neighbouring code-book values (−1 … −0.696: 0.152).
    let nf4HalfGap = zip(nf4CodeBook.dropFirst(), nf4CodeBook).map { $0 - $1 }.max()! / 2

    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    func quantized(_ format: QuantFormat, doubleQuant: Bool = false) throws -> (BlockQuantizedMatrix, [Float]) {
        let f = Self.fixture
        let w = Self.matrix(rows: f.rows, cols: f.cols, seed: f.seed)
        let q = try w.withUnsafeBufferPointer {
            try BlockQuantizedMatrix(quantizing: $0, rows: f.rows, cols: f.cols, format: format, doubleQuant: doubleQuant)
        }
        return (q, w)
    }

    func testNF4CodeBookIsTheNormalQuantilesOfThePaper() {
        let fromQuantiles = Self.fixture.nf4_code_book_from_quantiles
        XCTAssertEqual(fromQuantiles.count, 16)
        for (got, want) in zip(nf4CodeBook, fromQuantiles) { XCTAssertEqual(got, want, accuracy: 2e-7) }
        XCTAssertEqual(nf4CodeBook[7], 0, "an exact zero")
        XCTAssertEqual(nf4CodeBook.first, -1)
        XCTAssertEqual(nf4CodeBook.last, 1)
    }

    func testNF4BlocksEqualTheFixture() throws {
        let (q, _) = try quantized(.nf4)
        XCTAssertEqual(q.blockCount, Self.fixture.nf4_absmax.count)
        XCTAssertEqual(q.absmax, Self.fixture.nf4_absmax)
        XCTAssertEqual(hex(q.codes), Self.fixture.nf4_codes_hex)
        XCTAssertEqual(q.byteCount, Self.fixture.rows * Self.fixture.cols / 2 + 4 * q.blockCount)
    }

    func testInt8BlocksEqualTheFixture() throws {
        let (q, _) = try quantized(.int8)
        XCTAssertEqual(q.absmax, Self.fixture.int8_absmax)
        XCTAssertEqual(hex(q.codes), Self.fixture.int8_codes_hex)
    }

    /// A matrix past a million values is quantised in chunks of rows (blocks straddling rows:
    /// 1000 columns); the blocks equal those of the same values as one row (one chunk).
    func testChunkedQuantisationEqualsOneChunk() throws {
        let values = randomValues(1100 * 1000, seed: 21)
        for (format, dq) in [(QuantFormat.nf4, true), (.int8, false)] {
            let (chunked, whole) = try values.withUnsafeBufferPointer {
                (try BlockQuantizedMatrix(quantizing: $0, rows: 1100, cols: 1000, format: format, doubleQuant: dq),
                 try BlockQuantizedMatrix(quantizing: $0, rows: 1, cols: 1_100_000, format: format, doubleQuant: dq))
            }
            XCTAssertEqual(chunked.codes, whole.codes, "\(format)")
            XCTAssertEqual(chunked.absmax, whole.absmax, "\(format)")
            XCTAssertEqual(chunked.scaleCodes, whole.scaleCodes, "\(format)")
        }
        var bad = values
        bad[1_050_123] = .nan
        XCTAssertThrowsError(try bad.withUnsafeBufferPointer {
            try BlockQuantizedMatrix(quantizing: $0, rows: 1100, cols: 1000, format: .nf4)
        }) { XCTAssertTrue("\($0)".contains("value 1050123 (row 1050, column 123) is not finite"), "\($0)") }
    }

    func testDoubleQuantisedConstantsEqualTheFixture() throws {
        let f = Self.fixture
        let (q, _) = try quantized(.nf4, doubleQuant: true)
        XCTAssertEqual(hex(q.codes), f.nf4_codes_hex, "the 4-bit codes do not depend on how the constants are stored")
        XCTAssertEqual(try XCTUnwrap(q.scaleOffset), f.dq_offset, accuracy: 1e-7 * f.dq_offset)
        XCTAssertEqual(try XCTUnwrap(q.scaleCodes).map(Int.init), f.dq_codes)
        XCTAssertEqual(try XCTUnwrap(q.scaleAbsmax).count, 2, "300 blocks: two second-level blocks of 256")
        for (got, want) in zip(try XCTUnwrap(q.scaleAbsmax), f.dq_second_absmax) { XCTAssertEqual(got, want, accuracy: 1e-6 * want) }
        for (got, want) in zip(q.absmax, f.dq_absmax) { XCTAssertEqual(got, want, accuracy: 1e-6 * want) }
        // 8 + 32/256 bits per block constant instead of 32 (the paper's 0.5 → 0.127 bits per weight).
        XCTAssertLessThan(q.byteCount, f.rows * f.cols / 2 + q.blockCount + 2 * 4 + 4 + 1)
        // And the host holds just that: no f32 absmax beside the 8-bit codes (the scales are
        // restored as the blocks are read, to the same values as above).
        XCTAssertTrue(q.host().absmax.isEmpty)
        let (plain, _) = try quantized(.nf4)
        XCTAssertEqual(plain.host().absmax.count, plain.blockCount)
        let dequantised = q.dequantized(), codes = q.codes, absmax = q.absmax
        for i in stride(from: 0, to: q.count, by: 97) {
            let byte = codes[i / 2]
            XCTAssertEqual(dequantised[i], nf4CodeBook[Int(i % 2 == 0 ? byte >> 4 : byte & 0xF)] * absmax[i / 64])
        }
    }

    /// Each dequantised value is within half the widest code-book gap (nf4) or half a step
    /// (int8) of its block's absmax of the original.
    func testDequantisedValuesAreWithinHalfAStep() throws {
        for format in QuantFormat.allCases {
            let (q, w) = try quantized(format)
            let d = q.dequantized()
            let halfStep: Float = format == .nf4 ? nf4HalfGap : 0.5 / 127
            for i in 0..<w.count {
                let bound = q.absmax[i / 64] * halfStep * (1 + 1e-5) + 1e-7
                XCTAssertLessThanOrEqual(abs(d[i] - w[i]), bound, "\(format) value \(i)")
            }
        }
    }

    /// Every dequantiser this CPU runs (the Swift loop, CGemmKernels' 8 and 16 lanes) gives the
    /// Swift loop's bits, for both formats with and without double quantisation (over 256 blocks,
    /// so that the second-level scale changes), on runs that start and end inside blocks, at odd
    /// nf4 indices and across block edges.
    func testEveryDequantiserGivesTheSwiftLoopsBits() throws {
        let (rows, cols) = (30, 640)  // 300 blocks
        let w = Self.matrix(rows: rows, cols: cols, seed: 41)
        let total = rows * cols
        var runs: [(Int, Int)] = [(0, total)]
        for start in [0, 1, 7, 8, 15, 16, 17, 63, 64, 65, 127, 130, 256 * 64 - 3, total - 40] {
            for count in [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 129, 500] where start + count <= total {
                runs.append((start, count))
            }
        }
        for format in QuantFormat.allCases {
            for doubleQuant in [false, true] {
                let q = try w.withUnsafeBufferPointer {
                    try BlockQuantizedMatrix(quantizing: $0, rows: rows, cols: cols, format: format, doubleQuant: doubleQuant)
                }
                let copy = q.host()
                for kernel in QuantKernel.allCases where kernel != .swift && kernel.isSupported {
                    for (start, count) in runs {
                        var want = [Float](repeating: .nan, count: count + 1)
                        var got = [Float](repeating: .nan, count: count + 1)
                        want.withUnsafeMutableBufferPointer {
                            q.dequantize(copy, from: start, count: count, into: $0.baseAddress!, kernel: .swift)
                        }
                        got.withUnsafeMutableBufferPointer {
                            q.dequantize(copy, from: start, count: count, into: $0.baseAddress!, kernel: kernel)
                        }
                        XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                       "\(kernel) \(format) double quant \(doubleQuant): run \(start) + \(count)")
                        XCTAssertTrue(got[count].isNaN, "\(kernel) wrote past the run \(start) + \(count)")
                    }
                }
            }
        }
    }

    /// The packed converting GEMM (more than GemmBlocking.fewRows rows and columns: B's panels
    /// dequantised as they are packed, eight stored rows at a time for x·Wᵀ) gives the bits of
    /// the f32 GEMM on the dequantised matrix, forward and backward, over two K blocks' edges.
    func testPackedDequantisingGemmGivesTheF32GemmsBits() throws {
        let (rows, cols, M) = (45, 704, 37)
        for format in QuantFormat.allCases {
            for doubleQuant in [false, true] {
                let w = Self.matrix(rows: rows, cols: cols, seed: 29)
                let q = try w.withUnsafeBufferPointer {
                    try BlockQuantizedMatrix(quantizing: $0, rows: rows, cols: cols, format: format, doubleQuant: doubleQuant)
                }
                let d = q.dequantized()
                var g = SplitMix64(seed: 11)
                let x = (0..<(M * cols)).map { _ in 2 * g.nextFloat() - 1 }
                let gy = (0..<(M * rows)).map { _ in 2 * g.nextFloat() - 1 }
                for transB in [true, false] {
                    let (K, N) = transB ? (cols, rows) : (rows, cols)
                    let a = transB ? x : gy
                    var got = [Float](repeating: 0, count: M * N), want = got
                    a.withUnsafeBufferPointer { pa in
                        got.withUnsafeMutableBufferPointer { pc in
                            cpuSgemmQuantized(transA: false, transB: transB, M: M, N: N, K: K, alpha: 1, A: pa.baseAddress!,
                                              lda: K, B: q, beta: 0, C: pc.baseAddress!, ldc: N)
                        }
                        d.withUnsafeBufferPointer { pb in
                            want.withUnsafeMutableBufferPointer { pc in
                                cpuSgemm(transA: false, transB: transB, M: M, N: N, K: K, alpha: 1, A: pa.baseAddress!, lda: K,
                                         B: pb.baseAddress!, ldb: cols, beta: 0, C: pc.baseAddress!, ldc: N)
                            }
                        }
                    }
                    XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                   "\(format) double quant \(doubleQuant) transB \(transB)")
                }
            }
        }
    }

    /// The dequantising GEMM equals f32 arithmetic on the dequantised matrix, forward (x·Wᵀ) and
    /// backward (g·W), across a depth block boundary (K > 2048); its error against the original
    /// matrix stays within Σ|x|·(elementwise bound).
    func testDequantisingGemmEqualsF32OfTheDequantisedMatrix() throws {
        for (rows, cols) in [(48, 400), (5, 2100)] {
            for format in QuantFormat.allCases {
                let w = Self.matrix(rows: rows, cols: cols, seed: 23)
                let q = try w.withUnsafeBufferPointer {
                    try BlockQuantizedMatrix(quantizing: $0, rows: rows, cols: cols, format: format)
                }
                let d = q.dequantized()
                let M = 3
                var g = SplitMix64(seed: 5)
                let x = (0..<(M * cols)).map { _ in 2 * g.nextFloat() - 1 }
                let y = try q.linear(x, rows: M)
                let halfStep: Float = format == .nf4 ? nf4HalfGap : 0.5 / 127
                for m in 0..<M {
                    for n in 0..<rows {
                        var exact = 0.0, original = 0.0, bound = 0.0, magnitude = 0.0
                        for k in 0..<cols {
                            let xv = Double(x[m * cols + k])
                            exact += xv * Double(d[n * cols + k])
                            original += xv * Double(w[n * cols + k])
                            bound += abs(xv) * Double(q.absmax[(n * cols + k) / 64] * halfStep)
                            magnitude += abs(xv * Double(d[n * cols + k]))
                        }
                        let got = Double(y[m * rows + n])
                        XCTAssertEqual(got, exact, accuracy: 1e-5 * max(magnitude, 1), "\(format) \(rows)×\(cols) y[\(m),\(n)]")
                        XCTAssertLessThanOrEqual(abs(got - original), bound * 1.001 + 1e-4, "\(format) error bound")
                    }
                }
                let gy = (0..<(M * rows)).map { _ in 2 * g.nextFloat() - 1 }
                let dx = try q.linearInputGradient(gy, rows: M)
                for m in 0..<M {
                    for k in 0..<cols {
                        let (exact, magnitude) = exactDot(rows, { gy[m * rows + $0] }, { d[$0 * cols + k] })
                        XCTAssertEqual(Double(dx[m * cols + k]), exact, accuracy: 1e-5 * max(magnitude, 1), "\(format) dx[\(m),\(k)]")
                    }
                }
            }
        }
    }

    func testNonFiniteWeightsAndWrongShapesAreRefused() {
        let w: [Float] = [1, .nan, 3, 4]
        XCTAssertThrowsError(try w.withUnsafeBufferPointer { try BlockQuantizedMatrix(quantizing: $0, rows: 2, cols: 2, format: .nf4) }) {
            XCTAssertTrue("\($0)".contains("row 0, column 1"), "\($0)")
        }
        XCTAssertThrowsError(try w.withUnsafeBufferPointer { try BlockQuantizedMatrix(quantizing: $0, rows: 3, cols: 2, format: .int8) })
    }
}
