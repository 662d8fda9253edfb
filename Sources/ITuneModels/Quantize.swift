import Foundation
import ITuneTensor

extension CausalLM {
    /// Quantises every frozen nn.Linear projection (attention and MLP; not the embeddings or the
    /// head) blockwise to `format`; the forward then reads the blocks. Returns how many were
    /// quantised. Refused for a projection whose weight trains (full fine-tuning) or is a
    /// GPT-2 Conv1D (not yet).
    ///
    /// The f32 (or 16-bit) `weight` tensor is still held beside the blocks: dropping it (the
    /// memory saving) needs Linear to carry its shape without the tensor — see issue 17's notes.
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
            n += 1
        }
        return n
    }
}
