import Foundation
import ITuneTensor

// The T5 family's registrations: T5 / T5 v1.1 / FLAN-T5 and mT5 are encoder-decoders, so their
// entries say so (`kind`) and carry no decoder constructor — a decoder-only path handed one of
// their directories refuses it by name (ModelFileError.encoderDecoder) instead of calling the
// architecture unknown. Their config and weights are read by T5Config and T5Model.load.

extension ModelFamily {
    static let t5 = encoderDecoder(.t5, className: "T5ForConditionalGeneration")
    static let mt5 = encoderDecoder(.mt5, className: "MT5ForConditionalGeneration")

    private static func encoderDecoder(_ architecture: Architecture, className: String) -> ModelFamily {
        ModelFamily(architecture: architecture, classNames: [className], defaultLoRATargets: T5Model.defaultLoRATargets,
                    kind: .encoderDecoder,
                    decode: { f in throw ModelFileError.encoderDecoder(file: f.file, found: className) },
                    encode: { _ in [:] },
                    make: { _, _, _ in throw ModelFileError.encoderDecoder(file: "(model config)", found: className) })
    }
}

extension T5Model {
    /// Whether `directory` holds a model of an encoder-decoder family (its config.json says so
    /// through the registry). Why: commands pick the encoder-decoder path by family, not by name.
    public static func holdsModel(_ directory: URL) -> Bool {
        (try? ModelFamily.of(directory: directory))?.kind == .encoderDecoder
    }
}
