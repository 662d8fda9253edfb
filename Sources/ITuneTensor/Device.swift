import Foundation

/// Where tensors live and ops run: the pure-Swift CPU path, one OpenCL device, or `auto`
/// (the first OpenCL GPU or accelerator, else `cpu`).
public enum Device: Hashable, Sendable, CustomStringConvertible {
    case cpu
    case opencl(platform: Int, device: Int)
    case auto

    /// Parses `cpu`, `auto`, `opencl`, `opencl:P` or `opencl:P:D`.
    public init(parsing text: String) throws {
        let parts = text.lowercased().split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        switch parts.first {
        case "cpu" where parts.count == 1: self = .cpu
        case "auto" where parts.count == 1: self = .auto
        case "opencl", "cl":
            let nums = parts.dropFirst().map { Int($0) }
            guard nums.count <= 2, nums.allSatisfy({ $0 != nil && $0! >= 0 }) else {
                throw TensorError.invalidArgument(op: "device", "cannot parse '\(text)': expected cpu, auto or opencl:PLATFORM:DEVICE")
            }
            self = .opencl(platform: nums.first.flatMap { $0 } ?? 0, device: nums.count > 1 ? nums[1]! : 0)
        default:
            throw TensorError.invalidArgument(op: "device", "cannot parse '\(text)': expected cpu, auto or opencl:PLATFORM:DEVICE")
        }
    }

    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .auto: return "auto"
        case let .opencl(p, d): return "opencl:\(p):\(d)"
        }
    }

    /// The concrete device `auto` stands for, and why it was chosen.
    public static func resolveAuto() -> (device: Device, reason: String) {
        let listing = OpenCLRuntime.listDevices()
        if let error = listing.error {
            return (.cpu, "no OpenCL (\(error)); using the CPU path")
        }
        for p in listing.platforms {
            for d in p.devices where d.isGPUOrAccelerator {
                return (.opencl(platform: p.index, device: d.index),
                        "picked \(d.name) (\(d.typeName), \(p.name))")
            }
        }
        let count = listing.platforms.reduce(0) { $0 + $1.devices.count }
        return (.cpu, count == 0 ? "no OpenCL device found; using the CPU path"
                    : "no OpenCL GPU or accelerator among \(count) device(s); using the CPU path")
    }

    /// `auto` resolved; any other device as it is.
    public var resolved: Device {
        if case .auto = self { return Device.autoChoice }
        return self
    }

    private static let autoChoice: Device = resolveAuto().device

    /// The backend that serves this device (created once per device).
    public func backend() throws -> any Backend {
        switch resolved {
        case .cpu, .auto: return CPUBackend.shared
        case let .opencl(p, d): return try OpenCLBackend.shared(platform: p, device: d)
        }
    }
}
