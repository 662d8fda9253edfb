import ArgumentParser
import Foundation
import ITune

@main
struct ITuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "itune-gpu",
        abstract: "Instruction tuning on any OpenCL device, or on the CPU in pure Swift.",
        subcommands: [DevicesCommand.self, TuneCommand.self, TrainCommand.self, GenerateCommand.self, EvalCommand.self, MergeCommand.self, ExportCommand.self,
                      SelectCommand.self, DemoPoolCommand.self, RenderCommand.self, JGLUECommand.self, InitModelCommand.self])
}
