import Foundation
import ITuneTensor

extension CausalLM {
    /// Quantises every frozen projection (attention and MLP, nn.Linear or GPT-2's Conv1D; not
    /// the embeddings or the head) blockwise to `format`; the forward then reads the blocks.
    /// Returns how many were quantised. Refused for a projection whose weight trains (full
    /// fine-tuning).
    ///
    /// The f32 (or 16-bit) `weight` is then released: it becomes an empty (0, in) tensor (a
    /// Conv1D's: (0, out)) of the same name, so that only the blocks hold the matrix (merging
    /// such a model is refused by the shapes; load the adapter on the unquantised base to merge).
    @discardableResult
    public func quantizeBase(_ format: QuantFormat, doubleQuant: Bool = false) throws -> Int {
        var n = 0
        let setting = QuantizeSetting(format: format, doubleQuant: doubleQuant)
        for p in projections() {
            guard !p.weight.requiresGrad else {
                throw ModelFileError.malformed(file: p.name, "--quantize quantises a frozen base: this weight trains (full fine-tuning?)")
            }
            if p.quantizedWeight == nil {
                switch p {
                case let linear as Linear: try linear.quantize(setting)
                case let conv as Conv1D: try conv.quantize(setting)
                default: throw ModelFileError.malformed(file: p.name, "--quantize: \(type(of: p)) projections cannot be quantised")
                }
            }
            n += 1
        }
        return n
    }
}

/// How `--quantize` stores the frozen projections.
public struct QuantizeSetting: Sendable, Equatable {
    public var format: QuantFormat
    public var doubleQuant: Bool
    /// The token embeddings and the head too (`--quantize-embeddings`, as mlx-lm's quantised
    /// models store them; QLoRA keeps them in 16 bits): the rotary decoders' tied table or
    /// embed_tokens and lm_head.
    public var embeddings: Bool
    public init(format: QuantFormat, doubleQuant: Bool = false, embeddings: Bool = false) {
        self.format = format
        self.doubleQuant = doubleQuant
        self.embeddings = embeddings
    }
}

/// Quantising while loading: a model built inside `QuantizeOnLoad.$setting.withValue(s) { … }`
/// quantises each decoder-layer nn.Linear as soon as its weight is read, so that at most one
/// full matrix exists at a time (the rest of the base as stored, the projections as blocks).
public enum QuantizeOnLoad {
    @TaskLocal public static var setting: QuantizeSetting?
}

/// A frozen (rows, cols) weight as blocks, and the empty (0, cols) tensor of its name that
/// replaces it: what quantising an nn.Linear or an embedding table does. On an OpenCL device the
/// blocks go up now, once; the products then upload nothing.
/// The weight is read a chunk of rows at a time (converted to f32 per chunk), so that no f32
/// copy of a large 16-bit table exists.
private func quantizedBlocks(of weight: Tensor, rows: Int, cols: Int, _ s: QuantizeSetting) throws -> (BlockQuantizedMatrix, Tensor) {
    let size = weight.dtype.byteSize
    let blocks = try BlockQuantizedMatrix(rows: rows, cols: cols, format: s.format, doubleQuant: s.doubleQuant) { row0, n, dst in
        let chunk = try Tensor.empty([n, cols], dtype: weight.dtype, on: weight.device)
        try weight.backend.copy(from: weight.storage, at: row0 * cols * size, to: chunk.storage, at: 0, byteCount: n * cols * size)
        let values = try chunk.toArray()
        values.withUnsafeBufferPointer { if let v = $0.baseAddress { dst.update(from: v, count: n * cols) } }
    }
    try blocks.place(on: weight.device)
    let placeholder = try Tensor.zeros([0, cols], on: weight.device)
    placeholder.name = weight.name
    return (blocks, placeholder)
}

extension Linear {
    /// Replaces the weight by its blocks; the weight becomes an empty (0, in) tensor of the same name.
    func quantize(_ s: QuantizeSetting) throws {
        (quantizedWeight, weight) = try quantizedBlocks(of: weight, rows: outFeatures, cols: inFeatures, s)
    }
}

extension Embedding {
    /// Replaces the (V, C) table by its blocks; the weight becomes an empty (0, C) tensor of the
    /// same name. Refused for a table that trains.
    func quantize(_ s: QuantizeSetting) throws {
        guard weight.rank == 2, !weight.requiresGrad else {
            throw ModelFileError.malformed(file: name, "--quantize-embeddings quantises a frozen (V, C) table; this one is \(weight.shape)\(weight.requiresGrad ? " and trains" : "")")
        }
        (quantizedWeight, weight) = try quantizedBlocks(of: weight, rows: weight.shape[0], cols: weight.shape[1], s)
    }
}

extension Conv1D {
    /// Replaces the (in, out) weight by the blocks of its transpose (out, in); the weight becomes
    /// an empty (0, out) tensor of the same name.
    func quantize(_ s: QuantizeSetting) throws {
        let (inF, outF) = (weight.shape[0], weight.shape[1])
        let values = try weight.converted(to: .f32).toArray()
        var transposed = [Float](repeating: 0, count: values.count)
        for i in 0..<inF { for o in 0..<outF { transposed[o * inF + i] = values[i * outF + o] } }
        quantizedWeight = try transposed.withUnsafeBufferPointer {
            try BlockQuantizedMatrix(quantizing: $0, rows: outF, cols: inF, format: s.format, doubleQuant: s.doubleQuant)
        }
        try quantizedWeight?.place(on: weight.device)
        let placeholder = try Tensor.zeros([0, outF], on: weight.device)
        placeholder.name = weight.name
        weight = placeholder
    }
}
