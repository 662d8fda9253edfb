import Foundation
import ITuneTensor

extension TuneShapes {
    /// The shapes of a training step of the model `config` describes: `batch` rows of
    /// `sequence` tokens (at most the model's context), LoRA rank `loraRank`.
    public init(config: ModelConfig, label: String, batch: Int = 4, sequence: Int = 256, loraRank: Int = 8) {
        self.init(label: label, batch: max(1, batch), sequence: max(1, min(sequence, config.maxSequenceLength)),
                  hidden: config.hiddenSize, intermediate: config.intermediateSize,
                  heads: config.numHeads, kvHeads: config.numKVHeads, headDim: config.headDim,
                  vocab: config.vocabSize, loraRank: max(1, loraRank))
    }
}
