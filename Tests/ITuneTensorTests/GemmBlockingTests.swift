import Foundation
import XCTest
@testable import ITuneTensor

/// The packed GEMM's blocking rules (CPU/Gemm.swift): balanced K, M and N blocks, and the grid of
/// regions the workers split C into; and the products they give against the naive product.
final class GemmBlockingTests: XCTestCase {
    func testBalancedBlocksAreEqualAndNeverDeeperThanTheLimit() {
        // M and N: as many blocks as full ones would take, of equal size: 576 with 256 is three of 192.
        XCTAssertEqual(gemmBalancedBlock(576, max: 256), 192)
        XCTAssertEqual(gemmBalancedBlock(257, max: 256), 129)
        XCTAssertEqual(gemmBalancedBlock(256, max: 256), 256)
        XCTAssertEqual(gemmBalancedBlock(1, max: 256), 1)
        XCTAssertEqual(gemmBalancedBlock(0, max: 256), 1)
        for limit in [1, 7, 64, 256, 300] {
            for n in [1, 2, 7, 63, 64, 65, 255, 256, 257, 511, 513, 576, 896, 1536, 4864] {
                let block = gemmBalancedBlock(n, max: limit)
                let blocks = (n + block - 1) / block
                XCTAssertLessThanOrEqual(block, limit, "n \(n) limit \(limit)")
                // As few blocks as full ones would take, and the last one at most blocks − 1 shallower
                // than the others (full blocks and a remainder: up to limit − 1 shallower).
                XCTAssertEqual(blocks, (n + limit - 1) / limit, "n \(n) limit \(limit)")
                XCTAssertGreaterThanOrEqual(n - (blocks - 1) * block, block - (blocks - 1), "n \(n) limit \(limit)")
            }
        }
    }

    func testKBlocksAreTheNearestCountOfEqualDepth() {
        // The step's depths with KC 512: 576 in one pass, 896 in two of 448, 1536 in three of 512,
        // 4864 in ten of 487 (not nine of 512 and one of 256).
        XCTAssertEqual(gemmKBlock(576, kc: 512), 576)
        XCTAssertEqual(gemmKBlock(896, kc: 512), 448)
        XCTAssertEqual(gemmKBlock(1536, kc: 512), 512)
        XCTAssertEqual(gemmKBlock(4864, kc: 512), 487)
        XCTAssertEqual(gemmKBlock(767, kc: 512), 767)
        XCTAssertEqual(gemmKBlock(768, kc: 512), 384)
        XCTAssertEqual(gemmKBlock(1, kc: 512), 1)
        XCTAssertEqual(gemmKBlock(0, kc: 512), 1)
        for kc in [1, 2, 7, 32, 256, 512] {
            for k in [1, 2, 7, 31, 33, 63, 65, 255, 257, 511, 513, 576, 767, 768, 896, 1536, 4864] {
                let block = gemmKBlock(k, kc: kc)
                let blocks = (k + block - 1) / block
                // Within 1.5 · KC, and (for K ≥ KC) at least 2/3 · KC: no more blocks than the count
                // nearest to K / KC (fewer where equal depths need fewer).
                XCTAssertLessThanOrEqual(2 * block, 3 * kc, "k \(k) kc \(kc)")
                if k >= kc { XCTAssertGreaterThanOrEqual(3 * block, 2 * kc, "k \(k) kc \(kc)") }
                XCTAssertLessThanOrEqual(blocks, max(1, (k + kc / 2) / kc), "k \(k) kc \(kc)")
                if kc >= 32 { XCTAssertEqual(blocks, max(1, (k + kc / 2) / kc), "k \(k) kc \(kc)") }
                XCTAssertGreaterThanOrEqual(k - (blocks - 1) * block, block - (blocks - 1), "k \(k) kc \(kc)")
            }
        }
    }

    /// A K block deeper than KC packs fewer A rows: never more bytes than MC × KC (and at least one
    /// micro-panel); at or below KC, MC as configured.
    func testAnABlockDeeperThanKCHoldsNoMoreThanMCTimesKC() {
        for kind in GemmKernelKind.allCases {
            let cfg = GemmConfig(kind: kind).with(kc: 640, mc: 252, nc: nil)
            XCTAssertEqual(gemmMCLimit(kcBlock: 576, config: cfg), cfg.mcMax, "\(kind)")
            XCTAssertEqual(gemmMCLimit(kcBlock: 640, config: cfg), cfg.mcMax, "\(kind)")
            for k in [641, 768, 896, 960, 5000] {
                let mc = gemmMCLimit(kcBlock: k, config: cfg)
                XCTAssertLessThanOrEqual(mc * k, cfg.mcMax * cfg.kc, "\(kind) K block \(k)")
                XCTAssertEqual(mc % cfg.mr, 0, "\(kind) K block \(k)")
                XCTAssertGreaterThanOrEqual(mc, cfg.mr, "\(kind) K block \(k)")
            }
        }
        // The 0.5B model's K = 896 with the Ice Lake's AVX-512 blocking: 180 rows, not 252.
        XCTAssertEqual(gemmMCLimit(kcBlock: 896, config: GemmConfig(kind: .avx512).with(kc: 640, mc: 252, nc: nil)), 180)
    }

    func testWorkerGridSplitsTheLongerSideAndCoversC() {
        // Two workers: along N when M < N (each packs all of A, the smaller operand), else along M.
        XCTAssertEqual(gemmWorkerGrid(M: 1024, N: 1536, workers: 2, mr: 6, nr: 16).rows, 1)
        XCTAssertEqual(gemmWorkerGrid(M: 1024, N: 1536, workers: 2, mr: 6, nr: 16).cols, 2)
        XCTAssertEqual(gemmWorkerGrid(M: 1024, N: 576, workers: 2, mr: 6, nr: 16).rows, 2)
        XCTAssertEqual(gemmWorkerGrid(M: 1024, N: 576, workers: 2, mr: 6, nr: 16).cols, 1)
        // Four workers on a square: 2 × 2.
        XCTAssertEqual(gemmWorkerGrid(M: 512, N: 512, workers: 4, mr: 6, nr: 16).rows, 2)
        XCTAssertEqual(gemmWorkerGrid(M: 512, N: 512, workers: 4, mr: 6, nr: 16).cols, 2)
        // Never more regions than tiles: one tile is one region, two tiles at most two.
        XCTAssertEqual(gemmWorkerGrid(M: 6, N: 16, workers: 2, mr: 6, nr: 16).rows, 1)
        XCTAssertEqual(gemmWorkerGrid(M: 6, N: 16, workers: 2, mr: 6, nr: 16).cols, 1)
        let g = gemmWorkerGrid(M: 12, N: 16, workers: 8, mr: 6, nr: 16)
        XCTAssertEqual([g.rows, g.cols], [2, 1])
        // The ranges of a split cover 0..<n in order, with boundaries at multiples of the unit.
        for (n, parts, unit) in [(1024, 2, 6), (1, 2, 6), (49152, 2, 16), (50, 3, 16), (100, 7, 6)] {
            var next = 0
            for p in 0..<parts {
                let r = gemmSplit(n, parts: parts, part: p, unit: unit)
                XCTAssertEqual(r.lowerBound, next, "n \(n) parts \(parts)")
                if r.upperBound < n { XCTAssertEqual(r.upperBound % unit, 0, "n \(n) parts \(parts)") }
                next = r.upperBound
            }
            XCTAssertEqual(next, n, "n \(n) parts \(parts)")
        }
    }

    func testNBlockKeepsTheCStripsOfAllRegionsInHalfOfL3() {
        let zen3 = GemmConfig(kind: .avx2, caches: (l1d: 32 << 10, l2: 512 << 10, l3: 32 << 20))
        // smollm2's LM head with KC 256, 2 regions of 1024 rows × 24576, K 576 in blocks of 192:
        // 16 MiB / 2 / ((1024 + 192) · 4 B).
        XCTAssertEqual(gemmNCLimit(rows: 1024, cols: 24576, K: 576, kc: 192, regions: 2, config: zen3), 1712)
        // Qwen2.5-0.5B's, 512 rows × 75968, K 896 in blocks of 224.
        XCTAssertEqual(gemmNCLimit(rows: 512, cols: 75968, K: 896, kc: 224, regions: 2, config: zen3), 2848)
        // Few rows: the configuration's NC; an NC set below 4 panels: NC.
        XCTAssertEqual(gemmNCLimit(rows: 64, cols: 8192, K: 512, kc: 256, regions: 2, config: zen3), zen3.nc)
        let tiny = GemmConfig(kind: .avx2, caches: (l1d: 32 << 10, l2: 512 << 10, l3: 1 << 20))
        XCTAssertEqual(gemmNCLimit(rows: 4096, cols: 8192, K: 1024, kc: 256, regions: 2,
                                   config: tiny.with(kc: nil, mc: nil, nc: 32)), 32)
    }

    /// Where keeping the C strip in L3 does not pay, NC is set by the B block alone (kc × NC in
    /// the region's share of a quarter of L3), so that the region's A rows are packed once per K
    /// block rather than once per N block of the strip.
    func testNBlockIgnoresTheCStripWhereItDoesNotPay() {
        let iceLake = GemmConfig(kind: .avx512, caches: (l1d: 48 << 10, l2: 1280 << 10, l3: 48 << 20))
        // One K block: C is written once. Qwen2.5-0.5B's head gradient, 2 regions of 75968 rows ×
        // 896 over K 510: all 896 columns in one block (the strip rule gave 128: 7 packs of A).
        let oneBlock = gemmNCLimit(rows: 75968, cols: 896, K: 510, kc: 510, regions: 2, config: iceLake)
        XCTAssertEqual(oneBlock, min(iceLake.nc, 48 << 20 / 8 / (510 * 4) / 32 * 32))
        XCTAssertGreaterThanOrEqual(oneBlock, 896)
        // One K block over few rows keeps the strip's wider bound: Qwen2.5-0.5B's logits, 512
        // rows × 75968 over K 896, 24 MiB / 2 / ((512 + 896) · 4 B) as before.
        XCTAssertEqual(gemmNCLimit(rows: 512, cols: 75968, K: 896, kc: 896, regions: 2, config: iceLake),
                       48 << 20 / 4 / (1408 * 4) / 32 * 32)
        // A strip too tall for 4 panels of it to fit: smollm2's head gradient, 24576 rows × 576
        // over K 1020 in two blocks of 510.
        XCTAssertGreaterThanOrEqual(gemmNCLimit(rows: 24576, cols: 576, K: 1020, kc: 510, regions: 2, config: iceLake), 576)
        // The strip fits at 256 columns, but 7 more packs of A (7 · K) move more than the one pass
        // over C it saves (2 · cols): the B block's 2048.
        let zen3 = GemmConfig(kind: .avx2, caches: (l1d: 32 << 10, l2: 512 << 10, l3: 32 << 20))
        XCTAssertEqual(gemmNCLimit(rows: 7680, cols: 2048, K: 1024, kc: 512, regions: 2, config: zen3), 2048)
        // A tiny L3: no strip fits; the B block's bound, 128 KiB / (256 · 4 B).
        let tiny = GemmConfig(kind: .avx2, caches: (l1d: 32 << 10, l2: 512 << 10, l3: 1 << 20))
        XCTAssertEqual(gemmNCLimit(rows: 4096, cols: 8192, K: 1024, kc: 256, regions: 2, config: tiny), 128)
    }

    /// The packed path with 1 to 4 workers called directly (cpuSgemm runs products this small on
    /// one thread), with a KC that makes K take several balanced blocks: K = 1, K not a multiple of
    /// 8, K just above KC and just above two KC; M not a multiple of MR and N not of NR, so that
    /// the regions and blocks end in edge tiles; wide (split along N) and tall (along M) C.
    func testPackedPathMatchesTheNaiveProductForEveryKBlockingAndWorkerGrid() throws {
        let kinds = GemmDispatchTests.kernelsToCheck()
        var checked = 0
        for kind in kinds {
            let base = GemmConfig(kind: kind)
            // KC 32: K = 33 is one block, K = 65 two of 33 + 32, K = 100 three of 34 + 34 + 32. MC 12
            // and NC 2·NR: several
            // blocks of M and N inside a region too.
            let config = base.with(kc: 32, mc: 12, nc: 2 * base.nr)
            for (M, N) in [(29, 61), (61, 29)] {
                for K in [1, 7, 31, 32, 33, 65, 100] {
                    for (tA, tB) in [(false, true), (true, false), (false, false)] {
                        let a = randomValues(M * K, seed: 11), b = randomValues(K * N, seed: 12)
                        let c0 = randomValues(M * N, seed: 13)
                        let want = naiveGemm(a, b, c0, M: M, N: N, K: K, tA: tA, tB: tB, alpha: 0.5, beta: 0.25)
                        for workers in [1, 2, 3, 4] {
                            var c = c0
                            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                                let bBase = bp.baseAddress!, ldb = tB ? K : N
                                sgemmPacked(transA: tA, M: M, N: N, K: K, alpha: 0.5, A: ap.baseAddress!, lda: tA ? M : K,
                                            beta: 0.25, C: cp.baseAddress!, ldc: N, workers: workers, config: config) {
                                    k0, kc, j0, cols, panels, nr, dst in
                                    packBPanels(transB: tB, B: bBase, ldb: ldb, k0: k0, kc: kc, j0: j0, cols: cols,
                                                panels: panels, nr: nr, dst: dst, avx2: config.packsWithAVX2)
                                }
                            } } }
                            assertClose(c, want, rtol: 1e-4, atol: 1e-4,
                                        "\(config.description) \(M)x\(N)x\(K) tA=\(tA) tB=\(tB) workers=\(workers)")
                            checked += 1
                        }
                    }
                }
            }
        }
        XCTAssertEqual(checked, kinds.count * 2 * 7 * 3 * 4)
    }

    /// packABlock's C AVX2 path (8 × 8 and 4 × 8 transposes, then single rows) writes the same
    /// panels as the Swift path, bit for bit, zeros past the last row included: every MR of the
    /// kernels, blocks that end in a partial panel (5 rows: 4 + 1), depths that are not a multiple
    /// of 8, and a block that starts inside A (i0, k0 ≠ 0).
    func testAVX2PackingOfAEqualsTheSwiftPacking() throws {
        guard GemmKernelKind.avx2.isSupported else { throw XCTSkip("no AVX2 on this CPU") }
        let lda = 53, a = randomValues(40 * lda, seed: 31)
        var checked = 0
        for mr in [6, 12, 16] {
            for rows in [1, 3, 4, 5, 8, 12, 17, 29] {
                for kc in [1, 7, 8, 13, 40] {
                    let size = (rows + mr - 1) / mr * mr * kc
                    var viaC = [Float](repeating: .nan, count: size), viaSwift = [Float](repeating: -.nan, count: size)
                    a.withUnsafeBufferPointer { ap in
                        packABlock(transA: false, A: ap.baseAddress!, lda: lda, i0: 3, rows: rows, k0: 5, kc: kc, mr: mr,
                                   dst: &viaC, avx2: true)
                        packABlock(transA: false, A: ap.baseAddress!, lda: lda, i0: 3, rows: rows, k0: 5, kc: kc, mr: mr,
                                   dst: &viaSwift, avx2: false)
                    }
                    XCTAssertEqual(viaC.map(\.bitPattern), viaSwift.map(\.bitPattern), "mr \(mr) rows \(rows) kc \(kc)")
                    // And the panels hold A: value (i, k) of the block at panel i / MR, row i % MR.
                    let i = rows - 1, k = kc - 1
                    XCTAssertEqual(viaC[i / mr * mr * kc + k * mr + i % mr], a[(3 + i) * lda + 5 + k], "mr \(mr) rows \(rows) kc \(kc)")
                    checked += 1
                }
            }
        }
        XCTAssertEqual(checked, 3 * 8 * 5)
    }

    /// The step's smollm2 gate_proj shape (K = 576: one block with KC 512) through
    /// cpuSgemm with all workers, against the naive product on a sample of C's entries.
    func testStepShapeMatchesTheNaiveProductOnSampledEntries() throws {
        let M = 1024, N = 1536, K = 576
        let a = randomValues(M * K, seed: 21), w = randomValues(N * K, seed: 22)
        var c = [Float](repeating: .nan, count: M * N)
        a.withUnsafeBufferPointer { ap in w.withUnsafeBufferPointer { wp in c.withUnsafeMutableBufferPointer { cp in
            cpuSgemm(transA: false, transB: true, M: M, N: N, K: K, alpha: 1, A: ap.baseAddress!, lda: K,
                     B: wp.baseAddress!, ldb: K, beta: 0, C: cp.baseAddress!, ldc: N)
        } } }
        var rows = Array(stride(from: 0, to: M, by: 97)) + [M - 4, M - 1], cols = Array(stride(from: 0, to: N, by: 131)) + [N - 1]
        rows.append(511); cols.append(767)
        for i in rows { for j in cols {
            var acc = 0.0
            for k in 0..<K { acc += Double(a[i * K + k]) * Double(w[j * K + k]) }
            XCTAssertEqual(Double(c[i * N + j]), acc, accuracy: 1e-4 * max(1, abs(acc)), "C[\(i), \(j)]")
        } }
    }
}
