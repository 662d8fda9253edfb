import ArgumentParser
import Foundation
import ITune

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
