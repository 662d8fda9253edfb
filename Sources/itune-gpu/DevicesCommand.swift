import ArgumentParser
import Foundation
import ITune

struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List every OpenCL platform and device, the CPU path, and what `auto` picks; with --check, test a device against the CPU path.")

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Flag(help: "Run every op, forward and backward, on the device against the CPU path and report each, with the device's limits and the fallbacks they select. Exits non-zero if any op fails.")
    var check = false

    @Option(help: "The device --check tests (opencl:PLATFORM:DEVICE); default: what auto picks, else the first OpenCL device.")
    var device: String?

    @Option(help: "With --check: only the ops whose names contain one of these (comma-separated), e.g. matmul,softmax.")
    var only: String?

    func validate() throws {
        if !check, device != nil || only != nil {
            throw ValidationError("--device and --only go with --check")
        }
        if check, json { throw ValidationError("--check prints a table; --json is for the listing") }
    }

    func run() throws {
        if check {
            let target: Device
            if let device {
                target = try Device(parsing: device)
            } else if let d = DeviceCheck.defaultDevice() {
                target = d
            } else {
                throw ValidationError("no OpenCL device to check (see `itune-gpu devices`)")
            }
            let only = only?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let result = try DeviceCheck.run(on: target, only: only)
            print(result.text)
            if !result.passed { throw ExitCode.failure }
            return
        }
        let report = DeviceReport.gather()
        if json {
            let data = try JSONSerialization.data(withJSONObject: report.json, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(report.text)
        }
    }
}
