import ArgumentParser
import ITune
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Instruction-tune a model.")
    func run() throws { print("not yet") }
}
