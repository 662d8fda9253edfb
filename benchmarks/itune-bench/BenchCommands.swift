import ArgumentParser
import Foundation
import ITune

// itune-bench SUBCOMMAND [options]: times the runtime's operations on the CPU path and on
// OpenCL devices. Each benchmark is a `Benchmark` in its own file and a subcommand here; `all`
// runs every one in turn.

/// The command; benchmarks/itune-bench-main runs it, and so does itune-gpu when run under the
/// name itune-bench (the GPU kit's bin/itune-bench links to itune-gpu).
public struct ITuneBench: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(
        commandName: "itune-bench",
        abstract: "Time the runtime's operations on the CPU path and on OpenCL devices (a table, or JSON lines with --json).",
        subcommands: [BenchCommand<MatmulBench, SizeOptions>.self, BenchCommand<SoftmaxBench, LengthOptions>.self,
                      BenchCommand<AttentionBench, LengthOptions>.self, BenchCommand<StepBench, StepOptions>.self,
                      BenchCommand<TokenizeBench, NoOptions>.self, BenchCommand<LoadBench, NoOptions>.self, BenchCommand<PeakBench, NoOptions>.self,
                      BenchCommand<GenerateBench, StepOptions>.self,
                      AllCommand.self])
}

/// A benchmark that has a subcommand: made with no arguments.
protocol Subcommanded: Benchmark { init() }
extension MatmulBench: Subcommanded {}
extension SoftmaxBench: Subcommanded {}
extension AttentionBench: Subcommanded {}
extension StepBench: Subcommanded {}
extension TokenizeBench: Subcommanded {}
extension LoadBench: Subcommanded {}
extension PeakBench: Subcommanded {}
extension GenerateBench: Subcommanded {}

/// The subcommand of benchmark `B`, taking the common options and the group `Extra` of options
/// particular to it.
struct BenchCommand<B: Subcommanded, Extra: BenchOptionGroup>: ParsableCommand {
    static var configuration: CommandConfiguration { CommandConfiguration(commandName: B().name, abstract: B().summary) }
    @OptionGroup var common: CommonBenchOptions
    @OptionGroup var extra: Extra

    func run() throws { try runBenchmarks([B()], common: common, extra: extra) }
}

/// `all`: every benchmark in turn, with every option.
struct AllCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "all", abstract: "Every benchmark above, in turn.")
    @OptionGroup var common: CommonBenchOptions
    @OptionGroup var sizes: SizeOptions
    @OptionGroup var lengths: LengthOptions
    @OptionGroup var step: StepOptions

    func run() throws {
        try runBenchmarks([PeakBench(), MatmulBench(), SoftmaxBench(), AttentionBench(), StepBench(), TokenizeBench(), LoadBench()],
                          common: common, extra: sizes, lengths, step)
    }
}

/// Runs `benchmarks` on every device and prints each result as it comes.
func runBenchmarks(_ benchmarks: [any Benchmark], common: CommonBenchOptions, extra: any BenchOptionGroup...) throws {
    var options = try common.benchOptions()
    for group in extra { group.apply(to: &options) }
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
