import ArgumentParser
import Foundation
import ITune

// itune-bench SUBCOMMAND [options]: times the runtime's operations on the CPU path and on
// OpenCL devices. Each benchmark is a `Benchmark` in its own file and a subcommand here; `all`
// runs every one in turn.

@main
struct ITuneBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "itune-bench",
        abstract: "Time the runtime's operations on the CPU path and on OpenCL devices (a table, or JSON lines with --json).",
        subcommands: [MatmulCommand.self, SoftmaxCommand.self, AttentionCommand.self, StepCommand.self, TokenizeCommand.self,
                      LoadCommand.self, AllCommand.self])
}

/// What every subcommand does once its options are gathered: run its benchmarks on every
/// device and print each result as it comes.
protocol BenchCommand: ParsableCommand {
    var common: CommonBenchOptions { get }
    /// The benchmarks it runs.
    var benchmarks: [any Benchmark] { get }
    /// Fills the options particular to this subcommand.
    func apply(to options: inout BenchOptions)
}

extension BenchCommand {
    func run() throws {
        var options = try common.benchOptions()
        apply(to: &options)
        let printer = ResultPrinter(json: options.json)
        var seen: [String: DeviceLabel] = [:]
        for b in benchmarks {
            try b.run(options) { result in
                seen[result.device.id] = result.device
                printer.print(result)
            }
        }
        printer.printDrivers(options.devices.compactMap { seen[$0.description] })
    }
}

struct MatmulCommand: BenchCommand {
    static let configuration = CommandConfiguration(commandName: "matmul", abstract: MatmulBench().summary)
    @OptionGroup var common: CommonBenchOptions
    @OptionGroup var sizes: SizeOptions
    var benchmarks: [any Benchmark] { [MatmulBench()] }
    func apply(to options: inout BenchOptions) { sizes.apply(to: &options) }
}

struct SoftmaxCommand: BenchCommand {
    static let configuration = CommandConfiguration(commandName: "softmax", abstract: SoftmaxBench().summary)
    @OptionGroup var common: CommonBenchOptions
    @OptionGroup var lengths: LengthOptions
    var benchmarks: [any Benchmark] { [SoftmaxBench()] }
    func apply(to options: inout BenchOptions) { lengths.apply(to: &options) }
}

struct AttentionCommand: BenchCommand {
    static let configuration = CommandConfiguration(commandName: "attention", abstract: AttentionBench().summary)
    @OptionGroup var common: CommonBenchOptions
    @OptionGroup var lengths: LengthOptions
    var benchmarks: [any Benchmark] { [AttentionBench()] }
    func apply(to options: inout BenchOptions) { lengths.apply(to: &options) }
}

struct StepCommand: BenchCommand {
    static let configuration = CommandConfiguration(commandName: "step", abstract: StepBench().summary)
    @OptionGroup var common: CommonBenchOptions
    @OptionGroup var step: StepOptions
    var benchmarks: [any Benchmark] { [StepBench()] }
    func apply(to options: inout BenchOptions) { step.apply(to: &options) }
}

struct TokenizeCommand: BenchCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: TokenizeBench().summary)
    @OptionGroup var common: CommonBenchOptions
    var benchmarks: [any Benchmark] { [TokenizeBench()] }
    func apply(to options: inout BenchOptions) {}
}

struct LoadCommand: BenchCommand {
    static let configuration = CommandConfiguration(commandName: "load", abstract: LoadBench().summary)
    @OptionGroup var common: CommonBenchOptions
    var benchmarks: [any Benchmark] { [LoadBench()] }
    func apply(to options: inout BenchOptions) {}
}

struct AllCommand: BenchCommand {
    static let configuration = CommandConfiguration(commandName: "all", abstract: "Every benchmark above, in turn.")
    @OptionGroup var common: CommonBenchOptions
    @OptionGroup var sizes: SizeOptions
    @OptionGroup var lengths: LengthOptions
    @OptionGroup var step: StepOptions
    var benchmarks: [any Benchmark] { [MatmulBench(), SoftmaxBench(), AttentionBench(), StepBench(), TokenizeBench(), LoadBench()] }
    func apply(to options: inout BenchOptions) {
        sizes.apply(to: &options)
        lengths.apply(to: &options)
        step.apply(to: &options)
    }
}
