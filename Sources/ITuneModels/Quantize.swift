import Foundation
import ITuneTensor

extension CausalLM {
    /// Quantises every frozen nn.Linear projection (attention and MLP; not the embeddings or the
    /// head) blockwise to `format`; the forward then reads the blocks. Returns how many were
    /// quantised. Refused for a projection whose weight trains (full fine-tuning) or is a
    /// GPT-2 Conv1D (not yet).
    ///
    /// The f32 (or 16-bit) `weight` is then released: it becomes an empty (0, in) tensor of the
    /// same name, so that only the blocks hold the matrix (merging such a model is refused by
    /// the shapes; load the adapter on the unquantised base to merge).
    @discardableResult
    public func quantizeBase(_ format: QuantFormat, doubleQuant: Bool = false) throws -> Int {
        var n = 0
        for p in projections() {
            guard let linear = p as? Linear else {
                throw ModelFileError.malformed(file: p.name, "--quantize: only nn.Linear projections can be quantised (this is a Conv1D)")
            }
            guard !linear.weight.requiresGrad else {
                throw ModelFileError.malformed(file: p.name, "--quantize quantises a frozen base: this weight trains (full fine-tuning?)")
            }
            let values = try linear.weight.converted(to: .f32).toArray()
            linear.quantizedWeight = try values.withUnsafeBufferPointer {
                try BlockQuantizedMatrix(quantizing: $0, rows: linear.outFeatures, cols: linear.inFeatures, format: format,
                                         doubleQuant: doubleQuant)
            }
            let placeholder = try Tensor.zeros([0, linear.inFeatures], on: linear.weight.device)
            placeholder.name = linear.weight.name
            linear.weight = placeholder
            n += 1
        }
        return n
    }
}
