import ArgumentParser
import Foundation
import ITune

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Instruction-tune a model. With no arguments: the embedded demonstration.",
        discussion: """
        The embedded demonstration builds a small Llama-shaped model, trains it on generated \
        instructions (reverse, sort, uppercase) with the loss on answer tokens only, and prints \
        exact match on held-out instructions before and after.
        """)

    @OptionGroup var deviceOptions: DeviceOptions

    @Option(help: "Optimizer steps.")
    var steps: Int = 300

    @Option(help: "Examples per step.")
    var batchSize: Int = 16

    @Option(help: "Peak learning rate (linear warm-up over a tenth of the steps, then linear decay).")
    var lr: Float = 3e-3

    @Option(help: "Seed of the initialisation and the data.")
    var seed: UInt64 = 1

    func run() throws {
        var demo = ToyInstructionDemo()
        demo.device = try deviceOptions.resolve()
        demo.steps = steps
        demo.batchSize = batchSize
        demo.learningRate = lr
        demo.seed = seed
        print("itune-gpu train: embedded demonstration (no --model given)")
        let result = try demo.run()
        print("samples after training (instruction → expected | model):")
        for s in result.samples { print("  \(s.prompt) \(s.expected) | \(s.got)") }
        print(String(format: "loss %.3f → %.3f, exact match %.0f%% → %.0f%%, %.0f tokens/s",
                     result.firstLoss, result.lastLoss, result.exactMatchBefore * 100, result.exactMatchAfter * 100,
                     result.tokensPerSecond))
        print("Hugging Face models (--model DIR) and datasets (--data FILE) arrive with the model and data layers; see README.md.")
    }
}
