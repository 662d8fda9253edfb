import Foundation

// A scalar function of a short vector, evaluated on the host in double precision: what a
// preference loss is once the per-sequence log-probabilities exist (2·B numbers per micro-batch).
// The vector comes down in one read, the function gives its value and gradient, and the value
// goes back up as a scalar whose backward is the gradient times the incoming one. Kernels for a
// handful of numbers would cost more launches than the read; the read is the one blocking sync
// this op adds to a step.

extension Tensor {
    /// `f(self)` as a tensor of shape [], with `f`'s own gradient in the backward.
    ///
    /// self is any small f32 tensor (its elements flattened, n of them); `f` takes the n values
    /// and returns the value and ∂value/∂xᵢ (n of them, or an error). `op` names it in errors
    /// and profiles.
    public func hostScalarFunction(_ op: String,
                                   _ f: ([Double]) throws -> (value: Double, gradient: [Double])) throws -> Tensor {
        let x = try toArray().map(Double.init)
        let (value, gradient) = try f(x)
        guard gradient.count == x.count else {
            throw TensorError.shapeMismatch(op: op, "the function gave \(gradient.count) partial derivatives for \(x.count) inputs")
        }
        let out = try Tensor([Float(value)], shape: [], on: device)
        let shape = self.shape
        let g = gradient.map(Float.init)
        GradientTape.record(op, inputs: [self], output: out) { dy in
            [try Tensor(g, shape: shape, on: dy.device) * dy]
        }
        return out
    }
}
