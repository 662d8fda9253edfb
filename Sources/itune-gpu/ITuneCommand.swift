import ArgumentParser
import Foundation
import ITune
import ITuneBenchCommands

@main
struct ITuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "itune-gpu",
        abstract: "Instruction tuning on any OpenCL device, or on the CPU in pure Swift.",
        subcommands: [DevicesCommand.self, TuneCommand.self, TrainCommand.self, GenerateCommand.self, EvalCommand.self, MergeCommand.self, ExportCommand.self,
                      SelectCommand.self, DemoPoolCommand.self, RenderCommand.self, JGLUECommand.self, InitModelCommand.self])

    /// One binary for both commands: run under the name `itune-bench` (the GPU kit's
    /// bin/itune-bench is a link to itune-gpu, which halves the kit) it is the benchmark command.
    static func main() {
        let name = CommandLine.arguments.first.map { URL(fileURLWithPath: $0).lastPathComponent }
        if name == "itune-bench" { ITuneBench.main() } else { main(nil) }
    }
}
