import ArgumentParser
import Foundation
import ITune

struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List every OpenCL platform and device, the CPU path, and what `auto` picks.")

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let report = DeviceReport.gather()
        if json {
            let data = try JSONSerialization.data(withJSONObject: report.json, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(report.text)
        }
    }
}
