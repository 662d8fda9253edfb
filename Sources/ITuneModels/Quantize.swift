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
            if linear.quantizedWeight == nil { try linear.quantize(QuantizeSetting(format: format, doubleQuant: doubleQuant)) }
            n += 1
        }
        return n
    }
}

/// How `--quantize` stores the frozen projections.
public struct QuantizeSetting: Sendable, Equatable {
    public var format: QuantFormat
    public var doubleQuant: Bool
    public init(format: QuantFormat, doubleQuant: Bool = false) {
        self.format = format
        self.doubleQuant = doubleQuant
    }
}

/// Quantising while loading: a model built inside `QuantizeOnLoad.$setting.withValue(s) { … }`
/// quantises each decoder-layer nn.Linear as soon as its weight is read, so that at most one
/// full matrix exists at a time (the rest of the base as stored, the projections as blocks).
public enum QuantizeOnLoad {
    @TaskLocal public static var setting: QuantizeSetting?
}

extension Linear {
    /// Replaces the weight by its blocks; the weight becomes an empty (0, in) tensor of the same name.
    func quantize(_ s: QuantizeSetting) throws {
        let (rows, cols) = (outFeatures, inFeatures)
        let values = try weight.converted(to: .f32).toArray()
        quantizedWeight = try values.withUnsafeBufferPointer {
            try BlockQuantizedMatrix(quantizing: $0, rows: rows, cols: cols, format: s.format, doubleQuant: s.doubleQuant)
        }
        // On an OpenCL device the blocks go up now, once; the products then upload nothing.
        try quantizedWeight?.place(on: weight.device)
        let placeholder = try Tensor.zeros([0, cols], on: weight.device)
        placeholder.name = weight.name
        weight = placeholder
    }
}
