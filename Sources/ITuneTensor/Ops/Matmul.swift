import COpenCL
import Foundation

// Matrix multiplication, 2-D and batched, with transposed operands. CPU: CPU/Gemm.swift;
// OpenCL: CLBlast, or Kernels/gemm.cl when CLBlast is missing.

extension Tensor {
    /// op(self) · op(other), where op transposes the last two dims when asked.
    ///
    /// Shapes: (M,K)·(K,N) → (M,N); (B…,M,K)·(B…,K,N) → (B…,M,N) with equal batch dims;
    /// (B…,M,K)·(K,N) → (B…,M,N) (a linear layer over any leading dims).
    /// `alpha` scales the product inside the GEMM (its alpha), forward and backward, so that a
    /// scaled product (LoRA's scaling) costs no separate pass over the output or its gradient.
    public func matmul(_ other: Tensor, transposeA: Bool = false, transposeB: Bool = false, alpha: Float = 1) throws -> Tensor {
        let a = self, b = other
        guard a.rank >= 2, b.rank >= 2 else {
            throw TensorError.shapeMismatch(op: "matmul", "operands need rank ≥ 2, got \(a.shape) and \(b.shape)")
        }
        // Leading dims against a matrix: fold them into M.
        if a.rank > 2, b.rank == 2, !transposeA {
            let lead = Array(a.shape.dropLast())
            let out = try a.reshaped([-1, a.shape.last!]).matmul(b, transposeB: transposeB, alpha: alpha)
            return try out.reshaped(lead + [out.shape[1]])
        }
        guard a.rank == b.rank, a.shape.dropLast(2) == b.shape.dropLast(2) else {
            throw TensorError.shapeMismatch(op: "matmul", "batch dims differ: \(a.shape) and \(b.shape)")
        }
        let batchDims = Array(a.shape.dropLast(2))
        let batch = batchDims.reduce(1, *)
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (M, K) = transposeA ? (ac, ar) : (ar, ac)
        let (K2, N) = transposeB ? (bc, br) : (br, bc)
        guard K == K2 else {
            throw TensorError.shapeMismatch(op: "matmul", "inner dims differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        }
        let out = try Tensor.empty(batchDims + [M, N], on: a.device)
        try gemm(a, b, into: out, transA: transposeA, transB: transposeB, M: M, N: N, K: K, batch: batch, alpha: alpha)

        // dA reads only b and dB only a: each operand is kept only where the other's gradient
        // needs it. A frozen weight's product (the base under LoRA) keeps the weight, not its
        // input, whose values the backward never reads.
        // An operand with a recipe (a norm's output, a LoRA input's dropout) is made again.
        let keptA = b.requiresGrad ? a.keptForBackward() : nil, keptB = a.requiresGrad ? b.keptForBackward() : nil
        GradientTape.record("matmul", inputs: [a, b], output: out) { dC in
            var dA: Tensor? = nil, dB: Tensor? = nil
            if let keptB {
                let b = try keptB()
                dA = transposeA ? try b.matmul(dC, transposeA: transposeB, transposeB: true, alpha: alpha)
                                : try dC.matmul(b, transposeB: !transposeB, alpha: alpha)
            }
            if let keptA {
                let a = try keptA()
                dB = transposeB ? try dC.matmul(a, transposeA: true, transposeB: transposeA, alpha: alpha)
                                : try a.matmul(dC, transposeA: !transposeA, alpha: alpha)
            }
            return [dA, dB]
        }
        return out
    }

    /// A linear layer: self (…, in) · weightᵀ (out, in) [+ bias (out)] → (…, out); `scale`
    /// multiplies the product inside the GEMM (LoRA's scaling, without a pass of its own).
    public func linear(_ weight: Tensor, bias: Tensor? = nil, scale: Float = 1) throws -> Tensor {
        let y = try matmul(weight, transposeB: true, alpha: scale)
        guard let bias else { return y }
        return try y + bias
    }
}

/// out = alpha · op(a) · op(b) + beta · out over `batch` matrices, on a's device.
func gemm(_ a: Tensor, _ b: Tensor, into out: Tensor, transA: Bool, transB: Bool, M: Int, N: Int, K: Int,
          batch: Int, alpha: Float = 1, beta: Float = 0) throws {
    let lda = transA ? M : K, ldb = transB ? K : N, ldc = N
    let sA = M * K, sB = K * N, sC = M * N
    // The B operand may be a frozen weight kept in a 16-bit storage format: it is read as
    // stored and converted in registers (OpenCL) or block by block (CPU/GemmHalf.swift), with
    // f32 accumulation. Blockwise-quantised weights (int8, NF4) are not tensors: their product is
    // Quant/QuantizedLinear.swift's, through the same own kernels (gemmBlockQuantized).
    guard a.dtype == .f32, out.dtype == .f32, b.dtype == .f32 || b.dtype.isHalfFloat else {
        throw TensorError.invalidArgument(op: "matmul", "operands are \(a.dtype.rawValue) · \(b.dtype.rawValue) → \(out.dtype.rawValue); only the right operand may be stored as f16 or bf16, the rest must be f32")
    }
    // The CPU profile has a row per product shape: op(A)·op(B) as n/t, M×N×K, and B's storage.
    let profiled = {
        "matmul \(transA ? "t" : "n")\(transB ? "t" : "n") \(batch > 1 ? "\(batch)×" : "")\(M)×\(N)×\(K)"
            + (b.dtype == .f32 ? "" : " \(b.dtype.rawValue)")
    }
    switch try execution("matmul", [a, b, out], profiledAs: profiled) {
    case .cpu where b.dtype.isHalfFloat:
        let pa = a.floats, pb = b.storage.host.assumingMemoryBound(to: UInt16.self), pc = out.floats
        for i in 0..<batch {
            cpuSgemmW16(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: pa + i * sA, lda: lda,
                        B: pb + i * sB, format: b.dtype, ldb: ldb, beta: beta, C: pc + i * sC, ldc: ldc)
        }
    case .cpu:
        let pa = a.floats, pb = b.floats, pc = out.floats
        for i in 0..<batch {
            cpuSgemm(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha,
                     A: pa + i * sA, lda: lda, B: pb + i * sB, ldb: ldb, beta: beta, C: pc + i * sC, ldc: ldc)
        }
    case let .opencl(cl):
        if M == 0 || N == 0 { return }
        // A 16-bit B: the own kernels' programs built with GEMM_B16 (Kernels/storage.cl), which
        // convert B as they load it; CLBlast has no bf16 (and its half GEMM needs cl_khr_fp16).
        let storage: [String: Int] = b.dtype.isHalfFloat ? ["GEMM_B16": b.dtype.w16Format] : [:]
        // A thin output takes gemm_skinny (ownGemmKernel) even where CLBlast is the GEMM.
        if min(M, N) > skinnyGemmDimension, K != 0, storage.isEmpty, CLBlast.isAvailable, cl.gemmImplementation == .clblast {
            do {
                try CLBlast.sgemm(cl, transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha,
                                  a: a.storage.mem, lda: lda, strideA: sA, b: b.storage.mem, ldb: ldb, strideB: sB,
                                  beta: beta, c: out.storage.mem, ldc: ldc, strideC: sC, batch: batch)
                return
            } catch let error as TensorError {
                // CLBlast picks its own work-groups (from its database, per device); where they
                // do not fit (a lowered limit, an unknown GPU) the call is refused: the own
                // kernel takes this and every later matmul of the device, said once.
                guard case .clblast = error else { throw error }
                cl.giveUpCLBlast(error)
            }
        }
        switch try cl.ownGemmKernel(M: M, N: N, batch: batch, constants: storage) {
        case let .skinny(grid):
            try cl.gemmSkinny(grid, M: M, N: N, K: K, alpha: alpha, beta: beta, A: a, lda: lda, strideA: sA, transA: transA,
                              B: b, ldb: ldb, strideB: sB, transB: transB, C: out, ldc: ldc, strideC: sC)
        case let .direct(grid):
            try cl.gemmDirect(grid, M: M, N: N, K: K, alpha: alpha, beta: beta, A: a, lda: lda, strideA: sA, transA: transA,
                              B: b, ldb: ldb, strideB: sB, transB: transB, C: out, ldc: ldc, strideC: sC)
        case let .blocked(grid):
            try cl.gemmBlocked(grid, M: M, N: N, K: K, alpha: alpha, beta: beta, A: a, lda: lda, strideA: sA, transA: transA,
                               B: b, ldb: ldb, strideB: sB, transB: transB, C: out, ldc: ldc, strideC: sC)
        case let .tiled(grid):
            try cl.gemmTiled(grid, M: M, N: N, K: K, alpha: alpha, beta: beta, A: a, lda: lda, strideA: sA, transA: transA,
                             B: b, ldb: ldb, strideB: sB, transB: transB, C: out, ldc: ldc, strideC: sC)
        }
    }
}

/// Which of the own GEMM kernels a product runs on a device, with its grid.
enum OwnGemmKernel {
    case skinny(KernelGrid), direct(KernelGrid), blocked(KernelGrid), tiled(KernelGrid)
}

extension OpenCLBackend {
    /// The own kernel for an (M,N) output over `batch` matrices, its program built with
    /// `constants` (B's storage format): gemm_skinny for an output with a thin side (LoRA's
    /// tokens × r, r × features; one token's logits: one work-item per output, no tile padded
    /// to 64 wide over a side of 8); else gemm_direct where tuning chose it (CPU devices); else
    /// gemm_blocked where its tuned tile fits the device; else gemm.cl's gemm_tiled.
    func ownGemmKernel(M: Int, N: Int, batch: Int, constants: [String: Int]) throws -> OwnGemmKernel {
        if min(M, N) <= skinnyGemmDimension {
            return .skinny(KernelGrid(global: [M * N, batch], local: [try skinnyGroupSize(), 1], constants: constants))
        }
        if let (dwm, dwn) = try gemmDirectBlock() {
            return .direct(KernelGrid(global: [(M + dwm - 1) / dwm, (N + dwn - 1) / dwn, batch], constants: constants))
        }
        if let tile = try gemmBlockedTile() {
            return .blocked(KernelGrid(global: [(N + tile.tsn - 1) / tile.tsn * tile.groupN,
                                                (M + tile.tsm - 1) / tile.tsm * tile.groupM, batch],
                                       local: [tile.groupN, tile.groupM, 1], constants: constants))
        }
        // gemm.cl's groups are TS×TS: the tuned TS, halved until a group fits the device and
        // the kernel built with it (its CL_KERNEL_WORK_GROUP_SIZE, its local tiles).
        let ts = try gemmTile()
        return .tiled(KernelGrid(global: [N, M, batch], local: [ts, ts, 1], constants: constants.merging(["TS": ts]) { a, _ in a }))
    }
}

/// Products whose output has a side this thin or thinner run Kernels/gemm_skinny.cl on OpenCL.
let skinnyGemmDimension = 64

/// The work-group shape of Kernels/gemm_blocked.cl under a device's tuning.
struct GemmBlockedTile: Equatable {
    /// Rows and columns of C per work-group.
    var tsm: Int, tsn: Int
    /// Work-items per group along M and N (each computes tsm/groupM × tsn/groupN outputs).
    var groupM: Int, groupN: Int
}

extension OpenCLBackend {
    /// The TS of Kernels/gemm.cl on this device: the tuned value, lowered (halving) until a
    /// TS×TS group fits the device's and the kernel's work-group limits and two TS×(TS+1)
    /// tiles fit local memory.
    func gemmTile() throws -> Int {
        let tuned = try tuned("TS", family: "gemm")
        var start = tuned
        while start > 1, start * start > info.maxWorkGroupSize { start /= 2 }
        return try fittedSize("gemm", "gemm_tiled", start: start, items: { $0 * $0 }, constants: { ["TS": $0] })
    }

    /// Kernels/gemm_blocked.cl's tile under this device's tuning, or nil when the tuned
    /// values do not divide (GEMM_TSM by GEMM_WPTM, GEMM_TSN by GEMM_WPTN) or the group does
    /// not fit the device, the kernel or local memory, or the kernel does not build (matmul then
    /// uses gemm.cl). Decided once per tuning.
    func gemmBlockedTile() throws -> GemmBlockedTile? {
        let d = try tunedDefines("gemm_blocked")
        guard let tsm = d["GEMM_TSM"], let tsn = d["GEMM_TSN"], let tsk = d["GEMM_TSK"],
              let wptm = d["GEMM_WPTM"], let wptn = d["GEMM_WPTN"],
              tsm > 0, tsn > 0, tsk > 0, wptm > 0, wptn > 0, tsm % wptm == 0, tsn % wptn == 0 else { return nil }
        let tile = GemmBlockedTile(tsm: tsm, tsn: tsn, groupM: tsm / wptm, groupN: tsn / wptn)
        let key = "gemm_blocked/fits|\(tsm),\(tsn),\(tsk),\(wptm),\(wptn)"
        if let v = fitState.withLock({ $0.fitted[key] }) { return v == 1 ? tile : nil }
        let items = tile.groupM * tile.groupN
        var fits = items <= info.maxWorkGroupSize && info.maxWorkItemSizes.count >= 2
            && tile.groupN <= info.maxWorkItemSizes[0] && tile.groupM <= info.maxWorkItemSizes[1]
        if fits {
            // A driver that cannot build it (or its tile) leaves the plain kernel in charge.
            if let l = try? kernelLimits("gemm_blocked", "gemm_blocked") {
                fits = items <= l.workGroupSize && l.localMemory <= info.localMemory
            } else {
                fits = false
            }
        }
        fitState.withLock { $0.fitted[key] = fits ? 1 : 0 }
        return fits ? tile : nil
    }

    /// GEMM_DWM × GEMM_DWN of gemm_blocked.cl's gemm_direct when the tuning sets
    /// GEMM_DIRECT 1 and the block is valid (GEMM_DWN a positive multiple of 8); else nil.
    func gemmDirectBlock() throws -> (Int, Int)? {
        let d = try tunedDefines("gemm_blocked")
        guard d["GEMM_DIRECT"] == 1, let dwm = d["GEMM_DWM"], let dwn = d["GEMM_DWN"],
              dwm >= 1, dwm <= 16, dwn >= 8, dwn <= 64, dwn % 8 == 0 else { return nil }
        return (dwm, dwn)
    }

    /// The work-group size of Kernels/gemm_skinny.cl: the tuned SKINNY_GROUP within the
    /// device's and the kernel's limits.
    func skinnyGroupSize() throws -> Int {
        let cap = try tuned("SKINNY_GROUP", family: "gemm_skinny")
        return try fittedSize("gemm_skinny", "gemm_skinny", start: reductionGroupSize(cap: max(1, cap)),
                              items: { $0 }, constants: { _ in [:] })
    }
}

/// Which GEMM an OpenCL device's matmuls use (`OpenCLBackend.gemmImplementation`).
public enum GemmImplementation: String, Sendable, CaseIterable {
    /// CLBlast, where it loads; our own kernel otherwise.
    case clblast
    /// Our own tiled kernel, Kernels/gemm.cl (for comparisons, and where CLBlast misbehaves).
    case own

    /// The tuning value (`itune-gpu tune` stores 1 where gemm_blocked beat CLBlast at the
    /// model's shapes) that starts a device on `.own` unless `ITUNE_OWN_GEMM` is set.
    public static let preferOwnKey = "GEMM_PREFER_OWN"

    /// `ITUNE_OWN_GEMM=1` starts every device on `.own` (as the old process-wide switch did).
    static var fromEnvironment: GemmImplementation {
        ProcessInfo.processInfo.environment["ITUNE_OWN_GEMM"] == "1" ? .own : .clblast
    }
}
