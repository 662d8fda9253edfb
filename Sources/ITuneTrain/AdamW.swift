import ITuneTensor

/// AdamW over a fixed list of parameters, with its moment buffers allocated once.
public final class AdamW {
    public var config: AdamWConfig
    public let parameters: [Tensor]
    /// Steps taken so far; the next update uses step + 1 for bias correction.
    public private(set) var step = 0
    private var moments: [(m: Tensor, v: Tensor)]

    public init(parameters: [Tensor], config: AdamWConfig) throws {
        self.config = config
        self.parameters = parameters.filter(\.requiresGrad)
        moments = try self.parameters.map {
            (try Tensor.zeros($0.shape, on: $0.device), try Tensor.zeros($0.shape, on: $0.device))
        }
    }

    /// Applies one update to every parameter that has a gradient.
    public func update() throws {
        step += 1
        for (p, state) in zip(parameters, moments) {
            guard let g = p.grad else { continue }
            try p.adamWUpdate(grad: g, m: state.m, v: state.v, step: step, config: config)
        }
    }

    public func zeroGrad() { for p in parameters { p.zeroGrad() } }
}
