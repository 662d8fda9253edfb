import Foundation

// x · Wᵀ with W a blockwise-quantised frozen weight (nf4, int8). W never requires gradients;
// the op records the gradient of x only (g · W, through the same dequantising GEMM).
//
// CPU: cpuSgemmQuantized dequantises one cache-sized block of W at a time into the GEMM's
// workspace. OpenCL: the blocks (codes, absmax constants) are uploaded to the device once, when
// the weight is quantised on or first used there, and kept; the own GEMM kernels' `_quant` entry
// points (Kernels/storage.cl, GEMM_BQ) read them and dequantise in registers. No product uploads
// anything, and the f32 matrix never exists on either side.

extension Tensor {
    /// self (…, in) · wᵀ, w (out, in) quantised: (…, out).
    public func linear(quantized w: BlockQuantizedMatrix) throws -> Tensor {
        guard dtype == .f32, let K = shape.last, K == w.cols else {
            throw TensorError.shapeMismatch(op: "quantized linear", "input \(dtype.rawValue) \(shape) against a weight of \(w.rows)×\(w.cols) (out, in)")
        }
        let out = try quantizedProduct(w, transposed: true, outer: Array(shape.dropLast()))
        GradientTape.record("linearQuantized", inputs: [self], output: out) { g in
            [try g.quantizedProduct(w, transposed: false, outer: Array(g.shape.dropLast()))]
        }
        return out
    }

    /// self (M, ·) · op(w): op = ᵀ for the forward (M, in) → (M, out), none for the input
    /// gradient (M, out) → (M, in). Records nothing.
    func quantizedProduct(_ w: BlockQuantizedMatrix, transposed: Bool, outer: [Int]) throws -> Tensor {
        let K = transposed ? w.cols : w.rows, N = transposed ? w.rows : w.cols
        let M = count / max(K, 1)
        let out = try Tensor.empty(outer + [N], on: device)
        try quantizedProduct(w, transposed: transposed, into: out, M: M, N: N, K: K)
        return out
    }

    /// The same into `out` (M, N), self read as (M, K).
    func quantizedProduct(_ w: BlockQuantizedMatrix, transposed: Bool, into out: Tensor, M: Int, N: Int, K: Int) throws {
        switch try execution("quantized linear", self) {
        case .cpu:
            // Not recording (a prompt being read): up to GemmBlocking.fewRows rows on the GEMV.
            cpuSgemmQuantized(transA: false, transB: transposed, M: M, N: N, K: K, alpha: 1, A: floats, lda: K,
                              B: w, beta: 0, C: out.floats, ldc: N,
                              gemvRows: GradientTape.isRecording ? 4 : GemmBlocking.fewRows)
        case let .opencl(cl):
            try cl.gemmBlockQuantized(M: M, N: N, K: K, A: self, B: try w.deviceBlocks(on: cl), transB: transposed, C: out)
        }
    }
}

extension BlockQuantizedMatrix {
    /// Embedding lookup from a quantised (V, C) table (`--quantize-embeddings`): ids i32 of any
    /// shape S; returns (S..., C) f32, row ids[s] dequantised at s. The table is frozen and ids
    /// take no gradient, so nothing is recorded; only the looked-up rows are ever dequantised.
    public func embedding(_ ids: Tensor) throws -> Tensor {
        guard ids.dtype == .i32 else { throw TensorError.dtypeMismatch(op: "quantized embedding", expected: .i32, got: ids.dtype) }
        let (V, C) = (rows, cols)
        let hostIDs = try ids.toIndices()
        if let k = hostIDs.firstIndex(where: { $0 < 0 || Int($0) >= V }) {
            throw TensorError.invalidArgument(op: "quantized embedding", "token id \(hostIDs[k]) (at index \(k) of ids \(ids.shape)) is out of range for a vocabulary of \(V) (valid ids 0..<\(V))")
        }
        let n = hostIDs.count
        let out = try Tensor.empty(ids.shape + [C], on: ids.device)
        switch try execution("quantized embedding", ids) {
        case .cpu:
            let copy = host(), o = out.floats
            CPUParallel.forEach(n, grain: max(1, 16_384 / max(C, 1))) { range in
                for i in range { self.dequantize(copy, from: Int(hostIDs[i]) * C, count: C, into: o + i * C) }
            }
        case let .opencl(cl):
            let b = try deviceBlocks(on: cl)
            try cl.embeddingForwardQuant(KernelGrid(global: [C, n], constants: b.constants), out: out, codes: b.codes, ids: ids,
                                         n: n, C: C, scales: b.scales, scaleCodes: b.scaleCodes, scaleOffset: b.scaleOffset)
        }
        return out
    }
}

/// A `BlockQuantizedMatrix` on one OpenCL device, as Kernels/storage.cl's GEMM_BQ reads it.
struct DeviceQuantizedBlocks {
    /// The codes' bytes (nf4: two indices a byte; int8: one), in an i32 tensor of ⌈bytes/4⌉.
    let codes: Tensor
    /// f32: the absmax per block, or under double quantisation the absmax per 256 blocks.
    let scales: Tensor
    /// Double quantisation: the absmax codes' Int8 bytes (an i32 tensor); else `scales` again,
    /// which the kernel then does not read.
    let scaleCodes: Tensor
    let scaleOffset: Float
    /// The program's constants: GEMM_BQ (1 nf4, 2 int8) and GEMM_BQ_DQ.
    let constants: [String: Int]

    /// Uploads `w`'s blocks to `backend` (the only time they cross).
    init(_ w: BlockQuantizedMatrix, on backend: any Backend) throws {
        func upload(_ bytes: UnsafeRawBufferPointer, dtype: DType) throws -> Tensor {
            let n = max(1, (bytes.count + 3) / 4)
            let storage = try backend.allocate(byteCount: 4 * n)
            if bytes.count > 0 { try backend.write(storage, from: bytes.baseAddress!, byteCount: bytes.count) }
            return Tensor(storage: storage, shape: [n], dtype: dtype)
        }
        let host = w.host()
        codes = try host.codes.withUnsafeBytes { try upload($0, dtype: .i32) }
        if let second = w.scaleAbsmax, let q = w.scaleCodes, let offset = w.scaleOffset {
            scales = try second.withUnsafeBytes { try upload($0, dtype: .f32) }
            scaleCodes = try q.withUnsafeBytes { try upload($0, dtype: .i32) }
            scaleOffset = offset
        } else {
            scales = try host.absmax.withUnsafeBytes { try upload($0, dtype: .f32) }
            scaleCodes = scales
            scaleOffset = 0
        }
        constants = ["GEMM_BQ": w.format == .nf4 ? 1 : 2, "GEMM_BQ_DQ": w.scaleCodes == nil ? 0 : 1]
    }
}

/// The device copies of one quantised matrix, one per OpenCL device it has been used on.
final class DeviceQuantizedBlocksCache: @unchecked Sendable {
    private let lock = NSLock()
    private var copies: [Device: DeviceQuantizedBlocks] = [:]

    func blocks(of w: BlockQuantizedMatrix, on backend: any Backend) throws -> DeviceQuantizedBlocks {
        lock.lock()
        if let b = copies[backend.device] { lock.unlock(); return b }
        lock.unlock()
        // Uploaded outside the lock: a released host copy is read back from another device's.
        let b = try DeviceQuantizedBlocks(w, on: backend)
        lock.lock(); defer { lock.unlock() }
        if let first = copies[backend.device] { return first }
        copies[backend.device] = b
        return b
    }

    var devices: Set<Device> { lock.lock(); defer { lock.unlock() }; return Set(copies.keys) }
    /// Some device's copy (where a released host copy is read back from).
    var any: DeviceQuantizedBlocks? { lock.lock(); defer { lock.unlock() }; return copies.values.first }
}

extension BlockQuantizedMatrix {
    /// Places the blocks on `device` now (an OpenCL device; nothing to do on the CPU), so that the
    /// products there upload nothing: what quantising a weight that lives on the device does.
    public func place(on device: Device) throws {
        let backend = try device.backend()
        guard let cl = backend as? OpenCLBackend else { return }
        _ = try deviceBlocks(on: cl)
        // The products there read the device's blocks only: the host copy goes (read back
        // should the host need it again). The upload no longer reads it (Backend.write).
        releaseHostCopy()
    }

    /// The blocks on `cl`, uploaded at the first call there and kept.
    func deviceBlocks(on cl: OpenCLBackend) throws -> DeviceQuantizedBlocks {
        try deviceCopies.blocks(of: self, on: cl)
    }
}

extension OpenCLBackend {
    /// C (M,N) = A (M,K) · op(B), B the quantised weight: op = ᵀ for x·Wᵀ (B (N,K), ldb K),
    /// none for g·W (B (K,N), ldb N); either way B's index is the flat index into W. The own
    /// kernel the shape and tuning pick (ownGemmKernel), as its `_quant` entry point.
    func gemmBlockQuantized(M: Int, N: Int, K: Int, A: Tensor, B: DeviceQuantizedBlocks, transB: Bool, C: Tensor) throws {
        if M == 0 || N == 0 { return }
        let ldb = transB ? K : N
        switch try ownGemmKernel(M: M, N: N, batch: 1, constants: B.constants) {
        case let .skinny(grid):
            try gemmSkinnyQuant(grid, M: M, N: N, K: K, alpha: 1, beta: 0, A: A, lda: K, strideA: 0, transA: false,
                                B: B.codes, ldb: ldb, strideB: 0, transB: transB, C: C, ldc: N, strideC: 0,
                                scales: B.scales, scaleCodes: B.scaleCodes, scaleOffset: B.scaleOffset)
        case let .direct(grid):
            try gemmDirectQuant(grid, M: M, N: N, K: K, alpha: 1, beta: 0, A: A, lda: K, strideA: 0, transA: false,
                                B: B.codes, ldb: ldb, strideB: 0, transB: transB, C: C, ldc: N, strideC: 0,
                                scales: B.scales, scaleCodes: B.scaleCodes, scaleOffset: B.scaleOffset)
        case let .blocked(grid):
            try gemmBlockedQuant(grid, M: M, N: N, K: K, alpha: 1, beta: 0, A: A, lda: K, strideA: 0, transA: false,
                                 B: B.codes, ldb: ldb, strideB: 0, transB: transB, C: C, ldc: N, strideC: 0,
                                 scales: B.scales, scaleCodes: B.scaleCodes, scaleOffset: B.scaleOffset)
        case let .tiled(grid):
            try gemmTiledQuant(grid, M: M, N: N, K: K, alpha: 1, beta: 0, A: A, lda: K, strideA: 0, transA: false,
                               B: B.codes, ldb: ldb, strideB: 0, transB: transB, C: C, ldc: N, strideC: 0,
                               scales: B.scales, scaleCodes: B.scaleCodes, scaleOffset: B.scaleOffset)
        }
    }
}
