import Foundation

// Cosine similarity of rows (sentence-embedding training). Kernels: Kernels/norm.cl.

extension Tensor {
    /// cos(u_n, v_n) = u_n·v_n / (|u_n|·|v_n|) for each row: self and other are (N, C) (leading
    /// dims flattened); the result is (N).
    public func cosineSimilarity(_ other: Tensor) throws -> Tensor {
        guard shape == other.shape, let C = shape.last, C > 0 else {
            throw TensorError.shapeMismatch(op: "cosineSimilarity", "\(shape) and \(other.shape)")
        }
        let N = count / C
        let u = self, v = other
        let out = try Tensor.empty([N], on: device)
        switch try execution("cosineSimilarity", u, v) {
        case .cpu:
            let up = u.floats, vp = v.floats, o = out.floats
            CPUParallel.forEach(N, grain: max(1, 4096 / C)) { rows in
                for n in rows {
                    let (uv, uu, vv) = cosineSums(up + n * C, vp + n * C, C)
                    o[n] = uv / max((uu * vv).squareRoot(), 1e-12)
                }
            }
        case let .opencl(cl):
            let ls = try cl.rowGroupSize(long: false, kernel: "cosine_rows_forward", family: "norm")
            try cl.cosineRowsForward(.rows(N, groupSize: ls), out: out, u: u, v: v, C: C, s: .floats(ls))
        }
        GradientTape.record("cosineSimilarity", inputs: [u, v], output: out) { dy in
            let du = try Tensor.empty(u.shape, on: u.device), dv = try Tensor.empty(v.shape, on: v.device)
            switch try execution("cosineSimilarity", u, v, dy) {
            case .cpu:
                let up = u.floats, vp = v.floats, g = dy.floats, dup = du.floats, dvp = dv.floats
                CPUParallel.forEach(N, grain: max(1, 4096 / C)) { rows in
                    for n in rows {
                        let ur = up + n * C, vr = vp + n * C
                        let (uv, uu, vv) = cosineSums(ur, vr, C)
                        let nu = max(uu.squareRoot(), 1e-12), nv = max(vv.squareRoot(), 1e-12)
                        let cosv = uv / (nu * nv), gn = g[n]
                        for c in 0..<C {
                            dup[n * C + c] = gn * (vr[c] / (nu * nv) - cosv * ur[c] / (nu * nu))
                            dvp[n * C + c] = gn * (ur[c] / (nu * nv) - cosv * vr[c] / (nv * nv))
                        }
                    }
                }
            case let .opencl(cl):
                let ls = try cl.rowGroupSize(long: false, kernel: "cosine_rows_backward", family: "norm")
                try cl.cosineRowsBackward(.rows(N, groupSize: ls), du: du, dv: dv, u: u, v: v, dy: dy, C: C,
                                          s: .floats(ls))
            }
            return [u.requiresGrad ? du : nil, v.requiresGrad ? dv : nil]
        }
        return out
    }
}

@inline(__always)
private func cosineSums(_ u: UnsafePointer<Float>, _ v: UnsafePointer<Float>, _ C: Int) -> (Float, Float, Float) {
    var uv: Float = 0, uu: Float = 0, vv: Float = 0
    for c in 0..<C { uv += u[c] * v[c]; uu += u[c] * u[c]; vv += v[c] * v[c] }
    return (uv, uu, vv)
}
