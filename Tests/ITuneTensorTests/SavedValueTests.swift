import Foundation
import XCTest
@testable import ITuneTensor

/// A recorded op keeps alive only what its backward reads: the tape refers to gradient nodes,
/// not to tensors. Each case drops the test's reference to an intermediate and checks, through a
/// weak reference to its storage, whether the backward still holds it; then the gradients are
/// checked against the explicit formula, so that keeping less did not change them.
final class SavedValueTests: XCTestCase {
    /// The CPU and the OpenCL device under test (required with ITUNE_REQUIRE_OPENCL=1).
    func devices() -> [Device] {
        _ = TestDevices.announce
        if TestDevices.opencl == nil, ProcessInfo.processInfo.environment["ITUNE_REQUIRE_OPENCL"] == "1" {
            XCTFail("ITUNE_REQUIRE_OPENCL=1 but no OpenCL device was found")
        }
        return [.cpu] + (TestDevices.opencl.map { [$0] } ?? [])
    }

    /// x = 2·leaf (a recorded intermediate); returns x's storage, weakly, and `body(x)`.
    func intermediate(_ leaf: Tensor, _ body: (Tensor) throws -> Tensor) throws -> (weak: () -> Storage?, out: Tensor) {
        weak var storage: Storage?
        let out: Tensor = try {
            let x = try leaf.scaled(by: 2)
            storage = x.storage
            return try body(x)
        }()
        return ({ storage }, out)
    }

    /// The backward consumes the tape: a second backward through the same forward is an error
    /// (it used to find nothing and leave the gradients as they were), and a fresh forward works.
    func testASecondBackwardThroughOneForwardIsRefused() throws {
        let leaf = try Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        let loss = try leaf.scaled(by: 3).sum()
        try loss.backward()
        XCTAssertEqual(try XCTUnwrap(leaf.grad).toArray(), [3, 3, 3])
        XCTAssertThrowsError(try loss.backward()) { XCTAssertTrue("\($0)".contains("a backward already ran through it"), "\($0)") }
        try leaf.scaled(by: 3).sum().backward()
        XCTAssertEqual(try XCTUnwrap(leaf.grad).toArray(), [6, 6, 6], "gradients accumulate over forwards")
    }

    func testProductWithAFrozenWeightKeepsTheWeightNotItsInput() throws {
        for device in devices() {
            let (M, K, N) = (3, 5, 4)
            let a = randomValues(M * K, seed: 1), w = randomValues(N * K, seed: 2)
            let leaf = try Tensor(a, shape: [M, K], on: device, requiresGrad: true)
            let weight = try Tensor(w, shape: [N, K], on: device)  // frozen
            let (kept, y) = try intermediate(leaf) { try $0.matmul(weight, transposeB: true) }
            XCTAssertNil(kept(), "\(device): the input of a frozen weight's product is kept")
            try y.sum().backward()
            // d(sum(2·leaf·Wᵀ))/d leaf[i,k] = 2·Σ_j W[j,k]
            let want = (0..<(M * K)).map { i in 2 * (0..<N).reduce(Float(0)) { $0 + w[$1 * K + i % K] } }
            assertClose(try XCTUnwrap(leaf.grad).toArray(), want, rtol: 1e-5, atol: 1e-5, "\(device)")
        }
    }

    func testProductWithATrainedWeightKeepsItsInput() throws {
        for device in devices() {
            let (M, K, N) = (3, 5, 4)
            let a = randomValues(M * K, seed: 3), w = randomValues(N * K, seed: 4)
            let leaf = try Tensor(a, shape: [M, K], on: device)  // frozen: only the weight trains
            let weight = try Tensor(w, shape: [N, K], on: device, requiresGrad: true)
            let (kept, y) = try intermediate(leaf) { try $0.matmul(weight, transposeB: true) }
            XCTAssertNotNil(kept(), "\(device): the weight's gradient reads the input: it must be kept")
            try y.sum().backward()
            // d/dW[j,k] = Σ_i 2·a[i,k]
            let want = (0..<(N * K)).map { j in 2 * (0..<M).reduce(Float(0)) { $0 + a[$1 * K + j % K] } }
            assertClose(try XCTUnwrap(weight.grad).toArray(), want, rtol: 1e-5, atol: 1e-5, "\(device)")
        }
    }

    func testSumAndRotaryPositionsKeepNoInput() throws {
        for device in devices() {
            let leaf = try Tensor(randomValues(2 * 3 * 2 * 4, seed: 5), shape: [2, 3, 2, 4], on: device, requiresGrad: true)
            let other = try Tensor(randomValues(2 * 3 * 2 * 4, seed: 6), shape: [2, 3, 2, 4], on: device)
            let (keptBySum, s) = try intermediate(leaf) { try $0 + other }
            XCTAssertNil(keptBySum(), "\(device): a sum keeps its operands")
            let table = try RoPETable(inverseFrequencies: [1, 0.1], maxPositions: 8, on: device)
            let positions = try Tensor(indices: [0, 1, 2], shape: [3], on: device)
            let (keptByRoPE, r) = try intermediate(leaf) { try $0.rope(table, positions: positions) }
            XCTAssertNil(keptByRoPE(), "\(device): RoPE keeps its input")
            try (s.sum() + r.sum()).backward()
            XCTAssertNotNil(leaf.grad)
        }
    }

    func testNormOutputIsRecomputedBitForBitWhereAProductKeepsIt() throws {
        for device in devices() {
            let (N, C, R) = (6, 8, 3)
            let x = try Tensor(randomValues(N * C, seed: 7), shape: [N, C], on: device, requiresGrad: true)
            let gamma = try Tensor(randomValues(C, seed: 8).map { 1 + 0.1 * $0 }, shape: [C], on: device)
            let a = try Tensor(randomValues(R * C, seed: 9), shape: [R, C], on: device, requiresGrad: true)
            func gradient(recompute: Bool) throws -> ([Float], Storage?) {
                try GradientTape.$recomputesKeptValues.withValue(recompute) {
                    a.zeroGrad(); x.zeroGrad()
                    weak var normStorage: Storage?
                    let y: Tensor = try {
                        let n = try x.rmsNorm(weight: gamma, eps: 1e-5)
                        normStorage = n.storage
                        return try n.matmul(a, transposeB: true)  // a LoRA A: dA reads the norm's output
                    }()
                    let held = normStorage
                    try y.sum().backward()
                    return (try XCTUnwrap(a.grad).toArray(), held)
                }
            }
            let (recomputed, heldWithRecipe) = try gradient(recompute: true)
            let (kept, heldWithout) = try gradient(recompute: false)
            XCTAssertNil(heldWithRecipe, "\(device): the norm's output is kept though it can be made again")
            XCTAssertNotNil(heldWithout, "\(device): without recipes the product keeps the norm's output")
            XCTAssertEqual(recomputed, kept, "\(device): the recomputed output gives other bits")
        }
    }

    /// LoRA's adapted linear over a frozen base (f32 weight, or quantised blocks) reading a
    /// norm's output keeps the recipe, not the output: its backward closure once captured its
    /// inputs' array, x among them, and held every adapted layer's input until the backward
    /// (+330 MB at the 135M LoRA step). The gradients equal those with the output kept.
    func testLowRankLinearOverAFrozenBaseKeepsItsNormInputsRecipeOnly() throws {
        let (N, C, outF, R) = (40, 64, 24, 4)
        let wv = randomValues(outF * C, seed: 31)
        let q = try wv.withUnsafeBufferPointer { try BlockQuantizedMatrix(quantizing: $0, rows: outF, cols: C, format: .nf4, doubleQuant: false) }
        for device in devices() {
            let x = try Tensor(randomValues(N * C, seed: 27), shape: [N, C], on: device, requiresGrad: true)
            let gamma = try Tensor(randomValues(C, seed: 28).map { 1 + 0.1 * $0 }, shape: [C], on: device)
            let w = try Tensor(wv, shape: [outF, C], on: device)  // frozen
            let a = try Tensor(randomValues(R * C, seed: 29), shape: [R, C], on: device, requiresGrad: true)
            let b = try Tensor(randomValues(outF * R, seed: 30), shape: [outF, R], on: device, requiresGrad: true)
            for quantized in [false, true] {
                func run(recompute: Bool) throws -> ([[Float]], Storage?) {
                    try GradientTape.$recomputesKeptValues.withValue(recompute) {
                        for t in [x, a, b] { t.zeroGrad() }
                        weak var normStorage: Storage?
                        let y: Tensor = try {
                            let n = try x.rmsNorm(weight: gamma, eps: 1e-5)
                            normStorage = n.storage
                            return quantized ? try n.linearWithLowRank(quantized: q, a: a, b: b, scale: 2)
                                             : try n.linearWithLowRank(w, a: a, b: b, scale: 2)
                        }()
                        let held = normStorage
                        try y.sum().backward()
                        return (try [x, a, b].map { try XCTUnwrap($0.grad).toArray() }, held)
                    }
                }
                let (recomputed, heldWithRecipe) = try run(recompute: true)
                let (kept, heldWithout) = try run(recompute: false)
                let what = "\(device) \(quantized ? "nf4" : "f32") base"
                XCTAssertNil(heldWithRecipe, "\(what): the adapted linear holds the norm's output though it can be made again")
                XCTAssertNotNil(heldWithout, "\(what): without recipes dA keeps the norm's output")
                for i in 0..<3 { XCTAssertEqual(recomputed[i], kept[i], "\(what): gradient \(i) differs when recomputed") }
            }
        }
    }

    /// Three products reading one norm output (q, k and v after a layer's input norm) share one
    /// recomputed value: the recipe runs once in the backward, and the gradients are the bits of
    /// the kept output's.
    func testProductsReadingOneNormOutputShareOneRecomputation() throws {
        for device in devices() {
            let (N, C, R) = (5, 8, 3)
            let x = try Tensor(randomValues(N * C, seed: 17), shape: [N, C], on: device, requiresGrad: true)
            let gamma = try Tensor(randomValues(C, seed: 18).map { 1 + 0.1 * $0 }, shape: [C], on: device)
            let adapters = try (0..<3).map {
                try Tensor(randomValues(R * C, seed: 19 + UInt64($0)), shape: [R, C], on: device, requiresGrad: true)
            }
            func gradients(recompute: Bool) throws -> (grads: [[Float]], made: Int) {
                try GradientTape.$recomputesKeptValues.withValue(recompute) {
                    for t in adapters + [x] { t.zeroGrad() }
                    var made = 0
                    let loss: Tensor = try {
                        let n = try x.rmsNorm(weight: gamma, eps: 1e-5)
                        let recipe = try XCTUnwrap(n.recompute)
                        n.recompute = { made += 1; return try recipe() }
                        return try adapters.map { try n.matmul($0, transposeB: true).sum() }.reduce(try Tensor.zeros([], on: device), +)
                    }()
                    try loss.backward()
                    return (try (adapters + [x]).map { try XCTUnwrap($0.grad).toArray() }, made)
                }
            }
            let shared = try gradients(recompute: true), kept = try gradients(recompute: false)
            XCTAssertEqual(shared.made, 1, "\(device): the norm's output was made again \(shared.made) times for 3 products")
            XCTAssertEqual(kept.made, 0, "\(device)")
            XCTAssertEqual(shared.grads, kept.grads, "\(device): the shared recomputed output gives other bits")
        }
    }
}
