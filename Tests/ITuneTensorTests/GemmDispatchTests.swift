import Foundation
import XCTest
@testable import ITuneTensor

/// The GEMM's run-time kernel choice (CPU/GemmDispatch.swift): it follows the CPU's own
/// features, and every kernel this CPU runs gives the naive product.
final class GemmDispatchTests: XCTestCase {
    /// The CPU flags as Linux reports them (an independent reading of cpuid), or nil elsewhere.
    func procCPUFlags() -> Set<String>? {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        return Set(line.split(separator: ":").last?.split(separator: " ").map(String.init) ?? [])
    }

    func testDispatchPicksTheKernelTheCPUFlagsCallFor() throws {
        if let forced = ProcessInfo.processInfo.environment["ITUNE_GEMM_KERNEL"], !forced.isEmpty {
            throw XCTSkip("ITUNE_GEMM_KERNEL=\(forced) overrides the choice")
        }
#if arch(x86_64)
        guard let flags = procCPUFlags() else { throw XCTSkip("no /proc/cpuinfo") }
        XCTAssertEqual(GemmKernelKind.avx2.isSupported, flags.contains("avx2") && flags.contains("fma"))
        XCTAssertEqual(GemmKernelKind.avx512.isSupported, flags.contains("avx512f"))
        XCTAssertFalse(GemmKernelKind.neon.isSupported, "the NEON kernel is portable C here")
        // Native or portable build: the widest C kernel the CPU runs (AVX-512, else AVX2+FMA),
        // unless the build's own Swift vectors are 16 wide and the CPU has no AVX-512.
        let expected: GemmKernelKind
        if flags.contains("avx512f") {
            expected = .avx512
        } else if flags.contains("avx2") && flags.contains("fma") && GemmVector.scalarCount < 16 {
            expected = .avx2
        } else {
            expected = .swift
        }
        XCTAssertEqual(cpuSgemmKernelKind, expected, cpuSgemmKernelDescription)
        print("[itune-tests] GEMM kernel: \(cpuSgemmKernelDescription) (cpu: \(GemmCPU.featureNames))")
#elseif arch(arm64)
        // Every arm64 CPU has ASIMD: the NEON kernel.
        XCTAssertEqual(cpuSgemmKernelKind, .neon, cpuSgemmKernelDescription)
        XCTAssertFalse(GemmKernelKind.avx2.isSupported)
#else
        XCTAssertEqual(cpuSgemmKernelKind, .swift)
        XCTAssertFalse(GemmKernelKind.avx2.isSupported)
#endif
    }

    func testCacheBlockingFollowsTheCacheSizes() {
        let small = GemmConfig(kind: .avx2, caches: (l1d: 32 << 10, l2: 512 << 10, l3: 32 << 20))
        XCTAssertEqual(small.kc, 512)                        // B micro-panel (512,16) = 1/16 of L2
        XCTAssertEqual(small.mcMax, 126)                     // A block (126,512) ≤ half of L2
        XCTAssertEqual(small.nc, 4096)
        // ITUNE_GEMM_KC/_MC/_NC: MC and NC rounded up to the tile, non-positive values ignored.
        let tuned = small.with(kc: 300, mc: 100, nc: 1000)
        XCTAssertEqual([tuned.kc, tuned.mcMax, tuned.nc], [300, 102, 1008])
        let ignored = small.with(kc: 0, mc: -5, nc: nil)
        XCTAssertEqual([ignored.kc, ignored.mcMax, ignored.nc], [512, 126, 4096])
        // Unknown caches: a 512 KiB L2, so the 12 × 32 kernel's B micro-panel (256,32) is 1/16 of it.
        let unknown = GemmConfig(kind: .avx512, caches: (l1d: 0, l2: 0, l3: 0))
        XCTAssertEqual(unknown.kc, 256)
        XCTAssertEqual(unknown.mcMax % unknown.mr, 0)
        XCTAssertEqual(unknown.nc % unknown.nr, 0)
    }

    /// The kernels this CPU runs, and the NEON kernel everywhere: off arm64 it is the same
    /// arithmetic in portable C, so that the driver's 12 × 8 tile (Swift packing of 12-row A and
    /// 8-wide B panels, edge tiles, the two-pair form) is tested on every machine.
    static func kernelsToCheck() -> [GemmKernelKind] {
        GemmKernelKind.allCases.filter { $0.isSupported || $0 == .neon }
    }

    /// Every kernel the CPU runs, with its own blocking and with tiny caches (so that K and N
    /// take several blocks), on odd shapes, all transposes, beta 0 and not, 1 and 2 workers,
    /// through the packed path even for few rows.
    func testEveryKernelMatchesTheNaiveProduct() throws {
        let kinds = Self.kernelsToCheck()
        var checked = 0
        for kind in kinds {
            for config in [GemmConfig(kind: kind), GemmConfig(kind: kind, caches: (l1d: 4 << 10, l2: 16 << 10, l3: 64 << 10))] {
                for (M, N, K) in [(1, 1, 1), (5, 17, 3), (13, 67, 300), (37, 301, 129), (26, 33, 513)] {
                    for tA in [false, true] { for tB in [false, true] { for beta: Float in [0, 0.5] {
                        let a = randomValues(M * K, seed: 3), b = randomValues(K * N, seed: 4)
                        // beta = 0 must not read C: NaNs there must not leak.
                        let c0 = beta == 0 ? [Float](repeating: .nan, count: M * N) : randomValues(M * N, seed: 5)
                        let want = naiveGemm(a, b, c0, M: M, N: N, K: K, tA: tA, tB: tB, alpha: 0.75, beta: beta)
                        for workers in [1, 2] {
                            var c = c0
                            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                                cpuSgemm(transA: tA, transB: tB, M: M, N: N, K: K, alpha: 0.75,
                                         A: ap.baseAddress!, lda: tA ? M : K, B: bp.baseAddress!, ldb: tB ? K : N,
                                         beta: beta, C: cp.baseAddress!, ldc: N, workers: workers, config: config, fewRows: false)
                            } } }
                            assertClose(c, want, rtol: 1e-4, atol: 1e-4,
                                        "\(config.description) \(M)x\(N)x\(K) tA=\(tA) tB=\(tB) beta=\(beta) workers=\(workers)")
                            checked += 1
                        }
                    } } }
                }
            }
        }
        XCTAssertEqual(checked, kinds.count * 2 * 5 * 8 * 2)
        print("[itune-tests] GEMM kernels checked against the naive product: \(kinds.map(\.rawValue).joined(separator: ", "))")
    }

    /// The K + r product of LoRA's adapted linear (cpuSgemmPlusLowRank): every kernel, its own
    /// blocking and tiny caches (K in several blocks, the extra panels joining the last), odd
    /// shapes (edge tiles), op(B) and op(B2) both ways, beta 0 and not, 1 and 2 workers, against
    /// the naive [A | A2] · [op(B) ; op(B2)].
    func testProductWithLowRankColumnsMatchesTheConcatenatedProduct() throws {
        let kinds = Self.kernelsToCheck()
        XCTAssertFalse(cpuSgemmPlusLowRankApplies(M: 32, N: 100, K: 10, r: 8), "few rows take the two products")
        XCTAssertFalse(cpuSgemmPlusLowRankApplies(M: 100, N: 100, K: 10, r: 0))
        var checked = 0
        for kind in kinds {
            for config in [GemmConfig(kind: kind), GemmConfig(kind: kind, caches: (l1d: 4 << 10, l2: 16 << 10, l3: 64 << 10))] {
                for (M, N, K, r) in [(37, 41, 29, 8), (61, 83, 300, 3), (33, 130, 513, 16)] {
                    for tB in [false, true] { for tB2 in [false, true] { for beta: Float in [0, 0.5] {
                        let a = randomValues(M * K, seed: 3), b = randomValues(K * N, seed: 4)
                        let a2 = randomValues(M * r, seed: 6), b2 = randomValues(r * N, seed: 7)
                        let c0 = beta == 0 ? [Float](repeating: .nan, count: M * N) : randomValues(M * N, seed: 5)
                        // [A | A2] (M, K + r) and [op(B) ; op(B2)] stored as op(B) is (transposed: (N, K + r)).
                        var cat = [Float](), catB = [Float](repeating: 0, count: (K + r) * N)
                        for i in 0..<M { cat += a[(i * K)..<(i * K + K)] + a2[(i * r)..<(i * r + r)] }
                        for k in 0..<(K + r) { for j in 0..<N {
                            let v = k < K ? b[tB ? j * K + k : k * N + j] : b2[tB2 ? j * r + (k - K) : (k - K) * N + j]
                            catB[tB ? j * (K + r) + k : k * N + j] = v
                        } }
                        let want = naiveGemm(cat, catB, c0, M: M, N: N, K: K + r, tA: false, tB: tB, alpha: 1, beta: beta)
                        for workers in [1, 2] {
                            var c = c0
                            let took = a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                                a2.withUnsafeBufferPointer { a2p in b2.withUnsafeBufferPointer { b2p in
                                    c.withUnsafeMutableBufferPointer { cp in
                                        cpuSgemmPlusLowRank(M: M, N: N, K: K, A: ap.baseAddress!, lda: K,
                                                            packB: f32BPacker(transB: tB, B: bp.baseAddress!, ldb: tB ? K : N, config: config),
                                                            r: r, A2: a2p.baseAddress!, lda2: r, B2: b2p.baseAddress!,
                                                            ldb2: tB2 ? r : N, transB2: tB2, beta: beta, C: cp.baseAddress!,
                                                            ldc: N, workers: workers, config: config)
                                    } } } } }
                            XCTAssertTrue(took)
                            assertClose(c, want, rtol: 1e-4, atol: 1e-4,
                                        "\(config.description) \(M)x\(N)x\(K)+\(r) tB=\(tB) tB2=\(tB2) beta=\(beta) workers=\(workers)")
                            checked += 1
                        }
                    } } }
                }
            }
        }
        XCTAssertEqual(checked, kinds.count * 2 * 3 * 8 * 2)
    }

    /// op(B) packed once (gemmPrepackB) and read by the packed path in windows, as attention
    /// reads a KV head's keys and values: every kernel, its own blocking and tiny caches (K in
    /// several blocks, several N blocks), op(B) both ways, a window of columns from a panel's
    /// first column and of rows from any row, 1 and 2 workers, against the naive product of the
    /// window; the few-row path (M ≤ 32) reads B itself with the same window.
    func testProductsOverPrepackedBMatchTheNaiveProductOfTheirWindow() throws {
        let (K, N) = (300, 150)
        var checked = 0
        for kind in Self.kernelsToCheck() {
            for config in [GemmConfig(kind: kind), GemmConfig(kind: kind, caches: (l1d: 4 << 10, l2: 16 << 10, l3: 64 << 10))] {
                let nr = config.nr
                for tB in [false, true] {
                    let b = randomValues(K * N, seed: 21), ldb = tB ? K : N
                    let size = gemmPrepackedFloats(K: K, N: N, config: config)
                    let packed = UnsafeMutablePointer<Float>.allocate(capacity: size)
                    defer { packed.deallocate() }
                    packed.initialize(repeating: .nan, count: size)
                    let whole = b.withUnsafeBufferPointer { bp in
                        gemmPrepackB(transB: tB, B: bp.baseAddress!, ldb: ldb, K: K, N: N, into: packed, config: config)
                    }
                    // (first column, columns, first row, rows, M): the whole, a window, a window to the end.
                    for (j0, n, k0, k, M) in [(0, N, 0, K, 45), (nr, N - nr - 7, 13, 200, 37), (2 * nr, N - 2 * nr, 99, K - 99, 20)] {
                        let a = randomValues(M * k, seed: 22)
                        // The window of op(B) as its own row-major (k, n) matrix.
                        var window = [Float](repeating: 0, count: k * n)
                        for r in 0..<k { for c in 0..<n {
                            window[r * n + c] = tB ? b[(j0 + c) * K + k0 + r] : b[(k0 + r) * N + j0 + c]
                        } }
                        for beta: Float in [0, 0.5] {
                            let c0 = beta == 0 ? [Float](repeating: .nan, count: M * n) : randomValues(M * n, seed: 23)
                            let want = naiveGemm(a, window, c0, M: M, N: n, K: k, tA: false, tB: false, alpha: 0.75, beta: beta)
                            for workers in [1, 2] {
                                var c = c0
                                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                                    let source = bp.baseAddress! + (tB ? j0 * K + k0 : k0 * N + j0)
                                    cpuSgemm(transA: false, transB: tB, M: M, N: n, K: k, alpha: 0.75, A: ap.baseAddress!, lda: k,
                                             B: source, ldb: ldb, beta: beta, C: cp.baseAddress!, ldc: n, workers: workers,
                                             config: config, packedB: whole.from(column: j0, row: k0, nr: nr))
                                } } }
                                assertClose(c, want, rtol: 1e-4, atol: 1e-4,
                                            "\(config.description) tB=\(tB) window \(j0)+\(n) × \(k0)+\(k) M \(M) beta \(beta) workers \(workers)")
                                checked += 1
                            }
                        }
                    }
                }
            }
        }
        XCTAssertEqual(checked, Self.kernelsToCheck().count * 2 * 2 * 3 * 2 * 2)
    }

    /// The few-row paths (M ≤ 32: generation, small batches) and the few-column path (N ≤ 32 < M:
    /// LoRA's rank-r products, computed as the transposed few-row product), with this process's
    /// helpers (AVX2 + FMA, and the AVX-512 4 × 4 dot tiles, where the CPU has them), against the
    /// naive product.
    func testFewRowPathsMatchTheNaiveProduct() throws {
        for (M, N, K) in [(1, 1, 1), (1, 37, 129), (3, 203, 77), (32, 45, 1030), (203, 3, 77), (45, 32, 1030), (300, 8, 513)] {
            for tA in [false, true] { for tB in [false, true] { for beta: Float in [0, 0.5] {
                let a = randomValues(M * K, seed: 6), b = randomValues(K * N, seed: 7)
                let c0 = beta == 0 ? [Float](repeating: .nan, count: M * N) : randomValues(M * N, seed: 8)
                var c = c0
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                    cpuSgemm(transA: tA, transB: tB, M: M, N: N, K: K, alpha: 1.5, A: ap.baseAddress!, lda: tA ? M : K,
                             B: bp.baseAddress!, ldb: tB ? K : N, beta: beta, C: cp.baseAddress!, ldc: N, workers: 2)
                } } }
                assertClose(c, naiveGemm(a, b, c0, M: M, N: N, K: K, tA: tA, tB: tB, alpha: 1.5, beta: beta), rtol: 1e-4, atol: 1e-4,
                            "\(M)x\(N)x\(K) tA=\(tA) tB=\(tB) beta=\(beta)")
            } } }
        }
    }
}
