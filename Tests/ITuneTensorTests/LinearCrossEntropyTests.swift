import XCTest
@testable import ITuneTensor

/// The chunked head + loss equals `hidden.linear(W).crossEntropy(targets)` — loss and both
/// gradients — on every backend, with rows ignored, chunks that do not divide the rows, and
/// a weight shared with another use (tied embeddings).
final class LinearCrossEntropyTests: XCTestCase {
    struct Case { let N: Int, C: Int, V: Int, chunk: Int? }

    func reference(_ h: [Float], _ w: [Float], _ t: [Int32], _ c: Case, on device: Device) throws -> (Float, [Float], [Float]) {
        let hidden = try Tensor(h, shape: [c.N, c.C], on: device, requiresGrad: true)
        let weight = try Tensor(w, shape: [c.V, c.C], on: device, requiresGrad: true)
        let loss = try hidden.linear(weight).crossEntropy(targets: Tensor(indices: t, shape: [c.N], on: device))
        try loss.scaled(by: 0.75).backward()
        return (try loss.item(), try hidden.grad!.toArray(), try weight.grad!.toArray())
    }

    func fused(_ h: [Float], _ w: [Float], _ t: [Int32], _ c: Case, on device: Device) throws -> (Float, [Float], [Float]) {
        let hidden = try Tensor(h, shape: [c.N, c.C], on: device, requiresGrad: true)
        let weight = try Tensor(w, shape: [c.V, c.C], on: device, requiresGrad: true)
        let loss = try hidden.linearCrossEntropy(weight: weight, targets: Tensor(indices: t, shape: [c.N], on: device), chunkRows: c.chunk)
        XCTAssertEqual(loss.shape, [])
        try loss.scaled(by: 0.75).backward()
        return (try loss.item(), try hidden.grad!.toArray(), try weight.grad!.toArray())
    }

    func data(_ c: Case, seed: UInt64) -> ([Float], [Float], [Int32]) {
        var g = SplitMix64(seed: seed)
        let h = (0..<(c.N * c.C)).map { _ in g.nextGaussian() }
        let w = (0..<(c.V * c.C)).map { _ in 0.3 * g.nextGaussian() }
        let t = (0..<c.N).map { i in i % 4 == 1 ? Int32(-100) : Int32(g.next() % UInt64(c.V)) }
        return (h, w, t)
    }

    func testEqualsLinearThenCrossEntropyOnEveryBackend() throws {
        var devices: [Device] = [.cpu]
        if let p = OpenCLRuntime.listDevices().platforms.first(where: { !$0.devices.isEmpty }) {
            devices.append(.opencl(platform: p.index, device: 0))
        } else if ProcessInfo.processInfo.environment["ITUNE_REQUIRE_OPENCL"] == "1" {
            XCTFail("ITUNE_REQUIRE_OPENCL=1 but no OpenCL device was found")
        }
        let cases = [Case(N: 1, C: 7, V: 33, chunk: nil), Case(N: 33, C: 16, V: 127, chunk: 7),
                     Case(N: 64, C: 24, V: 257, chunk: 16), Case(N: 10, C: 8, V: 1000, chunk: 3)]
        for device in devices {
            for (k, c) in cases.enumerated() {
                let (h, w, t) = data(c, seed: UInt64(k + 1))
                let (l0, dh0, dw0) = try reference(h, w, t, c, on: .cpu)
                let (l1, dh1, dw1) = try fused(h, w, t, c, on: device)
                let what = "\(device) N \(c.N) C \(c.C) V \(c.V) chunk \(c.chunk.map(String.init) ?? "auto")"
                XCTAssertEqual(l1, l0, accuracy: 1e-5 * max(1, abs(l0)), what)
                for (a, b) in zip(dh1, dh0) { XCTAssertEqual(a, b, accuracy: 1e-5 + 1e-4 * abs(b), "dHidden \(what)") }
                for (a, b) in zip(dw1, dw0) { XCTAssertEqual(a, b, accuracy: 1e-5 + 1e-4 * abs(b), "dWeight \(what)") }
                XCTAssertTrue(dh1.contains { $0 != 0 } && dw1.contains { $0 != 0 })
            }
        }
    }

    /// Spans of ignored rows (a prompt under an answer-only loss, padding), across chunk
    /// boundaries: the loss and gradients are the reference's, and the head's products run over
    /// the scored rows only (the CPU profile names each product's shape).
    func testIgnoredSpansAreSkippedAndMatchTheReference() throws {
        let spans: [(ignored: Bool, count: Int)] = [(true, 10), (false, 7), (true, 5), (false, 11), (true, 1), (false, 2), (true, 4)]
        let N = spans.reduce(0) { $0 + $1.count }, scored = spans.filter { !$0.ignored }.reduce(0) { $0 + $1.count }
        for chunk in [nil, 4, 7, 100] as [Int?] {
            let c = Case(N: N, C: 8, V: 41, chunk: chunk)
            let (h, w, random) = data(c, seed: 9)
            var t = random
            var g = SplitMix64(seed: 10), i = 0
            for span in spans {
                for _ in 0..<span.count { t[i] = span.ignored ? -100 : Int32(g.next() % 41); i += 1 }
            }
            let (l0, dh0, dw0) = try reference(h, w, t, c, on: .cpu)
            try CPUBackend.shared.startProfiling()
            let (l1, dh1, dw1) = try fused(h, w, t, c, on: .cpu)
            let profile = try XCTUnwrap(try CPUBackend.shared.stopProfiling())
            let what = "chunk \(chunk.map(String.init) ?? "auto")"
            XCTAssertEqual(l1, l0, accuracy: 1e-5 * max(1, abs(l0)), what)
            for (a, b) in zip(dh1, dh0) { XCTAssertEqual(a, b, accuracy: 1e-5 + 1e-4 * abs(b), "dHidden \(what)") }
            for (a, b) in zip(dw1, dw0) { XCTAssertEqual(a, b, accuracy: 1e-5 + 1e-4 * abs(b), "dWeight \(what)") }
            // Logits rows made: the forward products' M, summed over chunks.
            let logitRows = profile.launches.compactMap { name, n -> Int? in
                let parts = name.split(separator: " ")
                guard parts.count == 3, parts[0] == "matmul", parts[1] == "nt" else { return nil }
                let dims = parts[2].split(separator: "×").compactMap { Int($0) }
                return dims.count == 3 && dims[1] == 41 && dims[2] == 8 ? dims[0] * n : nil
            }.reduce(0, +)
            XCTAssertEqual(logitRows, scored, "\(what): logits for the \(scored) scored rows of \(N) only")
        }
    }

    func testEveryRowIgnoredGivesZeroLossAndGradients() throws {
        let hidden = try Tensor.randn([5, 4], seed: 1, requiresGrad: true)
        let weight = try Tensor.randn([9, 4], seed: 2)
        let loss = try hidden.linearCrossEntropy(weight: weight, targets: Tensor(indices: [Int32](repeating: -100, count: 5), shape: [5]),
                                                 chunkRows: 2)
        try loss.backward()
        XCTAssertEqual(try loss.item(), 0)
        XCTAssertEqual(try hidden.grad!.toArray(), [Float](repeating: 0, count: 20))
    }

    func testATiedWeightAccumulatesBothUses() throws {
        // The weight is also the embedding table: its gradient is the sum of both paths.
        let c = Case(N: 12, C: 6, V: 20, chunk: 5)
        let (_, w, t) = data(c, seed: 4)
        let ids: [Int32] = (0..<12).map { Int32(($0 * 7) % 20) }
        func run(_ fusedHead: Bool) throws -> [Float] {
            let weight = try Tensor(w, shape: [20, 6], requiresGrad: true)
            let hidden = try weight.embedding(Tensor(indices: ids, shape: [12])).scaled(by: 1.5)
            let targets = try Tensor(indices: t, shape: [12])
            let loss = fusedHead ? try hidden.linearCrossEntropy(weight: weight, targets: targets, chunkRows: c.chunk)
                                 : try hidden.linear(weight).crossEntropy(targets: targets)
            try loss.backward()
            return try weight.grad!.toArray()
        }
        let a = try run(true), b = try run(false)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5 + 1e-4 * abs(y)) }
    }

    func testUnderNoGradNothingIsRecordedOrComputedForTheBackward() throws {
        let hidden = try Tensor.randn([6, 4], seed: 1, requiresGrad: true)
        let weight = try Tensor.randn([9, 4], seed: 2)
        let targets = try Tensor(indices: [1, 2, 3, 4, 5, 6], shape: [6])
        let a = try noGrad { try hidden.linearCrossEntropy(weight: weight, targets: targets, chunkRows: 4) }
        XCTAssertFalse(a.requiresGrad)
        let b = try noGrad { try hidden.linear(weight).crossEntropy(targets: targets) }
        XCTAssertEqual(try a.item(), try b.item(), accuracy: 1e-6)
    }
}
