import ITuneTensor

/// AdamW over a fixed list of parameters, with its moment buffers allocated once.
public final class AdamW {
    public var config: AdamWConfig
    public let parameters: [Tensor]
    /// Steps taken so far; the next update uses step + 1 for bias correction.
    public private(set) var step = 0
    /// First and second moments of each parameter, in `parameters` order.
    public private(set) var moments: [(m: Tensor, v: Tensor)]

    public init(parameters: [Tensor], config: AdamWConfig) throws {
        self.config = config
        self.parameters = parameters.filter(\.requiresGrad)
        moments = try self.parameters.map {
            (try Tensor.zeros($0.shape, on: $0.device), try Tensor.zeros($0.shape, on: $0.device))
        }
    }

    /// Applies one update to every parameter that has a gradient, at `learningRate` (default
    /// the config's).
    public func update(learningRate: Float? = nil) throws {
        step += 1
        for (p, state) in zip(parameters, moments) {
            guard let g = p.grad else { continue }
            try p.adamWUpdate(grad: g, m: state.m, v: state.v, step: step, config: config, learningRate: learningRate)
        }
    }

    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    /// Restores a checkpoint's step count and moments (values in `parameters` order).
    public func restore(step: Int, moments values: [(m: [Float], v: [Float])]) throws {
        guard values.count == moments.count else {
            throw TensorError.invalidArgument(op: "AdamW.restore", "\(values.count) moment pairs for \(moments.count) parameters")
        }
        for (state, v) in zip(moments, values) {
            try state.m.assign(v.m)
            try state.v.assign(v.v)
        }
        self.step = step
    }
}
