import ArgumentParser
import Foundation
import ITune

@main
struct ITuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "itune-gpu",
        abstract: "Instruction tuning on any OpenCL device, or on the CPU in pure Swift.",
        subcommands: [DevicesCommand.self, TrainCommand.self, GenerateCommand.self, EvalCommand.self, MergeCommand.self, SelectCommand.self, DemoPoolCommand.self])
}

/// Options every command that computes shares.
struct DeviceOptions: ParsableArguments {
    @Option(name: .long, help: "cpu, auto (first OpenCL GPU or accelerator, else cpu) or opencl:PLATFORM:DEVICE.")
    var device: String = "auto"

    /// The device, resolving `auto` and saying what it picked.
    func resolve(verbose: Bool = true) throws -> Device {
        let d = try Device(parsing: device)
        if case .auto = d {
            let (choice, reason) = Device.resolveAuto()
            if verbose { print("device: \(choice) — \(reason)") }
            return choice
        }
        _ = try d.backend()  // fail early, naming the device
        return d
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(1)
}

