import Foundation
import ITune

// itune-bench SUBCOMMAND [options]: times the runtime's operations on the CPU path and on
// OpenCL devices. Each subcommand is a `Benchmark` in its own file; add new ones to the
// list below. `all` runs every one in turn.

let benchmarks: [any Benchmark] = [
    MatmulBench(),
    SoftmaxBench(),
    AttentionBench(),
    StepBench(),
    TokenizeBench(),
    LoadBench(),
]

func usage() -> String {
    var lines = ["usage: itune-bench SUBCOMMAND [options]", "", "subcommands:"]
    for b in benchmarks { lines.append("  \(b.name.padding(toLength: 9, withPad: " ", startingAt: 0)) \(b.summary)") }
    lines.append("  all       every subcommand above, in turn")
    lines.append("")
    lines.append(BenchOptions.usage)
    return lines.joined(separator: "\n")
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("itune-bench: \(message)\n\n\(usage())\n".utf8))
    exit(2)
}

let args = Array(CommandLine.arguments.dropFirst())
guard let command = args.first else { fail("no subcommand") }
if command == "-h" || command == "--help" || command == "help" {
    print(usage())
    exit(0)
}
let selected: [any Benchmark]
if command == "all" {
    selected = benchmarks
} else if let b = benchmarks.first(where: { $0.name == command }) {
    selected = [b]
} else {
    fail("unknown subcommand '\(command)'")
}

do {
    let options = try BenchOptions.parse(Array(args.dropFirst()))
    let printer = ResultPrinter(json: options.json)
    var seen: [String: DeviceLabel] = [:]
    for b in selected {
        try b.run(options) { result in
            seen[result.device.id] = result.device
            printer.print(result)
        }
    }
    printer.printDrivers(options.devices.compactMap { seen[$0.description] })
} catch let error as BenchError {
    fail(error.description)
} catch {
    FileHandle.standardError.write(Data("itune-bench: \(error)\n".utf8))
    exit(1)
}
