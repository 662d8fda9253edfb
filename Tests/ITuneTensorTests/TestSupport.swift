import Foundation
import XCTest
@testable import ITuneTensor

/// The OpenCL device the tests compare against the CPU path: `ITUNE_TEST_DEVICE`
/// (e.g. `opencl:0:0`), else the first OpenCL device of any type (PoCL in CI).
/// With `ITUNE_REQUIRE_OPENCL=1` (set by `make test`), a missing device fails instead of
/// skipping, so CI cannot pass without running the OpenCL cases.
enum TestDevices {
    static let opencl: Device? = {
        if let s = ProcessInfo.processInfo.environment["ITUNE_TEST_DEVICE"], let d = try? Device(parsing: s) {
            return d
        }
        let listing = OpenCLRuntime.listDevices()
        for p in listing.platforms { if let d = p.devices.first { return .opencl(platform: p.index, device: d.index) } }
        return nil
    }()

    static let announce: Void = {
        if let d = opencl, let b = try? d.backend() {
            print("[itune-tests] OpenCL device under test: \(d) = \(b.name); CLBlast: \(CLBlast.isAvailable ? "yes" : "no (\(CLBlast.loadError ?? ""))")")
        } else {
            print("[itune-tests] no OpenCL device: OpenCL cases skip")
        }
    }()

    /// The OpenCL device, or an XCTSkip (a failure under ITUNE_REQUIRE_OPENCL=1).
    static func requireOpenCL() throws -> Device {
        _ = announce
        if let d = opencl { return d }
        if ProcessInfo.processInfo.environment["ITUNE_REQUIRE_OPENCL"] == "1" {
            XCTFail("ITUNE_REQUIRE_OPENCL=1 but no OpenCL device was found")
        }
        throw XCTSkip("no OpenCL device")
    }
}

/// Odd and round sizes every op is checked on.
let oddSizes = [1, 7, 33, 127, 257]

/// Asserts |a - b| ≤ atol + rtol·|b| elementwise, reporting the worst element.
func assertClose(_ a: [Float], _ b: [Float], rtol: Float, atol: Float = 1e-6, _ what: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    guard a.count == b.count else {
        XCTFail("\(what): sizes differ \(a.count) vs \(b.count)", file: file, line: line)
        return
    }
    var worst = 0, worstExcess: Float = -1
    for i in a.indices {
        let excess = abs(a[i] - b[i]) - (atol + rtol * abs(b[i]))
        if !(excess <= 0) || a[i].isNaN != b[i].isNaN {
            if !(excess <= worstExcess) { worstExcess = excess.isNaN ? .infinity : excess; worst = i }
        }
    }
    if worstExcess > 0 || worstExcess.isInfinite {
        XCTFail("\(what): element \(worst) differs: \(a[worst]) vs \(b[worst]) (rtol \(rtol), atol \(atol))", file: file, line: line)
    }
}

/// Seeded random values in [-1, 1).
func randomValues(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var g = SplitMix64(seed: seed)
    return (0..<n).map { _ in scale * (2 * g.nextFloat() - 1) }
}

/// Checks the gradients that autograd gives for `inputs` against central finite differences
/// of the scalar `f` (evaluated on the CPU, in f32).
///
/// `f` maps the input tensors to a tensor; the scalar is Σ f(x)·w with fixed random weights
/// w, so every output element's gradient is exercised.
func checkGradients(_ shapes: [[Int]], seed: UInt64 = 1, eps: Float = 1e-2, rtol: Float = 2e-2, atol: Float = 2e-3,
                    values: [[Float]]? = nil, requires: [Bool]? = nil,
                    file: StaticString = #filePath, line: UInt = #line,
                    _ f: ([Tensor]) throws -> Tensor) throws {
    let vals = values ?? shapes.enumerated().map { randomValues($0.element.reduce(1, *), seed: seed + UInt64($0.offset)) }
    let needs = requires ?? shapes.map { _ in true }
    let inputs = try zip(vals, shapes).enumerated().map { i, vs in
        try Tensor(vs.0, shape: vs.1, requiresGrad: needs[i])
    }
    let out = try f(inputs)
    let weights = randomValues(out.count, seed: seed + 100)
    let w = try Tensor(weights, shape: out.shape)
    let loss = try (out * w).sum()
    try loss.backward()

    func scalar(_ xs: [[Float]]) throws -> Double {
        try noGrad {
            let ts = try zip(xs, shapes).map { try Tensor($0.0, shape: $0.1) }
            let o = try f(ts).toArray()
            return zip(o, weights).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
    }
    for (i, t) in inputs.enumerated() where needs[i] {
        guard let g = try t.grad?.toArray() else {
            XCTFail("input \(i) got no gradient", file: file, line: line)
            continue
        }
        var numeric = [Float](repeating: 0, count: vals[i].count)
        for j in 0..<vals[i].count {
            var plus = vals, minus = vals
            plus[i][j] += eps
            minus[i][j] -= eps
            numeric[j] = Float((try scalar(plus) - scalar(minus)) / Double(2 * eps))
        }
        assertClose(g, numeric, rtol: rtol, atol: atol, "gradient of input \(i)", file: file, line: line)
    }
}

/// Runs `f` on the CPU and on the OpenCL device with the same inputs, compares the outputs
/// and, with `backward`, the gradients of Σ f(x)·w for every input.
func compareBackends(_ shapes: [[Int]], seed: UInt64 = 7, rtol: Float, atol: Float = 1e-6,
                     values: [[Float]]? = nil, indices: [[Int32]]? = nil, backward: Bool = true,
                     file: StaticString = #filePath, line: UInt = #line,
                     _ f: ([Tensor]) throws -> Tensor) throws {
    let cl = try TestDevices.requireOpenCL()
    let vals = values ?? shapes.enumerated().map { randomValues($0.element.reduce(1, *), seed: seed + UInt64($0.offset)) }
    func run(_ device: Device) throws -> (out: [Float], grads: [[Float]]) {
        let inputs = try zip(vals, shapes).map { try Tensor($0.0, shape: $0.1, on: device, requiresGrad: backward) }
        let out = try f(inputs)
        var grads: [[Float]] = []
        if backward {
            let w = try Tensor(randomValues(out.count, seed: seed + 100), shape: out.shape, on: device)
            try (out * w).sum().backward()
            grads = try inputs.map { try $0.grad?.toArray() ?? [] }
        }
        return (try out.toArray(), grads)
    }
    let ref = try run(.cpu)
    let got = try run(cl)
    assertClose(got.out, ref.out, rtol: rtol, atol: atol, "OpenCL forward vs CPU", file: file, line: line)
    for i in ref.grads.indices {
        assertClose(got.grads[i], ref.grads[i], rtol: rtol, atol: atol, "OpenCL gradient \(i) vs CPU", file: file, line: line)
    }
}

/// C = alpha · op(A) · op(B) + beta · C in Double, row-major (the GEMM tests' reference).
func naiveGemm(_ a: [Float], _ b: [Float], _ c0: [Float], M: Int, N: Int, K: Int, tA: Bool, tB: Bool,
               alpha: Float, beta: Float) -> [Float] {
    var c = c0
    for i in 0..<M { for j in 0..<N {
        var acc = 0.0
        for k in 0..<K {
            acc += Double(tA ? a[k * M + i] : a[i * K + k]) * Double(tB ? b[j * K + k] : b[k * N + j])
        }
        c[i * N + j] = Float(Double(alpha) * acc + (beta == 0 ? 0 : Double(beta) * Double(c0[i * N + j])))
    } }
    return c
}

/// A rows × cols matrix of uniform values in ±scale (seeded), blockwise quantised.
func quantizedMatrix(rows: Int, cols: Int, _ format: QuantFormat, doubleQuant: Bool, seed: UInt64,
                     scale: Float) throws -> BlockQuantizedMatrix {
    let w = randomValues(rows * cols, seed: seed, scale: scale)
    return try w.withUnsafeBufferPointer {
        try BlockQuantizedMatrix(quantizing: $0, rows: rows, cols: cols, format: format, doubleQuant: doubleQuant)
    }
}

/// Σ a(k)·b(k) over 0..<n in Double, and Σ |a(k)·b(k)|: the scale a Float sum's rounding error
/// is measured against.
func exactDot(_ n: Int, _ a: (Int) -> Float, _ b: (Int) -> Float) -> (value: Double, magnitude: Double) {
    var value = 0.0, magnitude = 0.0
    for k in 0..<n {
        let p = Double(a(k)) * Double(b(k))
        value += p
        magnitude += abs(p)
    }
    return (value, magnitude)
}
