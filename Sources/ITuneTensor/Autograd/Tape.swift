import Foundation

/// Reverse-mode autograd over a tape recorded during the forward pass.
///
/// Each op that has an input requiring gradients appends one entry: its inputs, its output
/// and a closure from the output's gradient to the inputs' gradients. `backward()` walks the
/// tape from the end. Tensors that do not require gradients (frozen weights under LoRA)
/// record nothing and get no gradient buffer. One tape serves the process; training is driven
/// from one thread.
public final class GradientTape {
    struct Entry {
        let op: String
        let inputs: [Tensor]
        let output: Tensor
        let backward: (Tensor) throws -> [Tensor?]
    }

    nonisolated(unsafe) public static let shared = GradientTape()
    private var entries: [Entry] = []
    private var disabledDepth = 0

    public var isRecording: Bool { disabledDepth == 0 }
    public var count: Int { entries.count }

    /// Drops everything recorded (e.g. after an evaluation forward with grad mode on).
    public func reset() { entries.removeAll(keepingCapacity: true) }

    /// Records `op` if grad mode is on and an input requires gradients; marks the output as
    /// requiring gradients then. `backward` gets the output's gradient and returns one
    /// gradient per input (nil where the input needs none).
    static func record(_ op: String, inputs: [Tensor], output: Tensor,
                       backward: @escaping (Tensor) throws -> [Tensor?]) {
        let tape = shared
        guard tape.disabledDepth == 0, inputs.contains(where: { $0.requiresGrad }) else { return }
        output.requiresGrad = true
        output.isLeaf = false
        tape.entries.append(Entry(op: op, inputs: inputs, output: output, backward: backward))
    }

    func withRecordingDisabled<T>(_ body: () throws -> T) rethrows -> T {
        disabledDepth += 1
        defer { disabledDepth -= 1 }
        return try body()
    }

    /// Propagates from `root` (seeded with `seed`, default ones) to every tensor on the tape.
    /// Leaves accumulate into `grad`; the tape is cleared.
    func backward(from root: Tensor, seed: Tensor?) throws {
        guard root.requiresGrad else {
            throw TensorError.noGradient("backward: the tensor does not require gradients (no parameter with requiresGrad took part, or it ran under noGrad)")
        }
        defer { entries.removeAll(keepingCapacity: true) }
        try withRecordingDisabled {
            let g = try seed ?? Tensor.full(root.shape, 1, on: root.device)
            try accumulate(g, into: root)
            for e in entries.reversed() {
                guard let g = e.output.grad else { continue }
                let grads = try e.backward(g)
                precondition(grads.count == e.inputs.count, "\(e.op): backward returned \(grads.count) gradients for \(e.inputs.count) inputs")
                for (input, gi) in zip(e.inputs, grads) where input.requiresGrad {
                    guard let gi else { continue }
                    guard gi.shape == input.shape else {
                        fatalError("\(e.op): gradient shape \(gi.shape) for input of shape \(input.shape)")
                    }
                    try accumulate(gi, into: input)
                }
                // Intermediate gradients are not needed once passed on.
                if !e.output.isLeaf { e.output.grad = nil; e.output.ownsGrad = false }
            }
        }
    }

    /// grad += g, in place when the gradient buffer is the tensor's own.
    private func accumulate(_ g: Tensor, into t: Tensor) throws {
        if let existing = t.grad {
            if t.ownsGrad {
                try existing.addInPlace(g)
            } else {
                t.grad = try existing + g
                t.ownsGrad = true
            }
        } else {
            t.grad = g  // may be shared with another tensor until a second gradient arrives
            t.ownsGrad = false
        }
    }
}

extension Tensor {
    /// Computes gradients of this tensor (a scalar loss, or with `seed` of the same shape)
    /// with respect to every tensor that requires them.
    public func backward(seed: Tensor? = nil) throws {
        try GradientTape.shared.backward(from: self, seed: seed)
    }
}

/// Runs `body` without recording anything (inference, optimizer updates).
public func noGrad<T>(_ body: () throws -> T) rethrows -> T {
    try GradientTape.shared.withRecordingDisabled(body)
}
