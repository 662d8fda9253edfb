import Foundation

/// What `itune-gpu devices` shows: every OpenCL platform and device, the CPU path, CLBlast,
/// and the device `auto` picks. Library code, so that other tools can show the same.
public struct DeviceReport {
    public let listing: OpenCLRuntime.Listing
    public let autoChoice: Device
    public let autoReason: String
    public let clblastError: String?

    public static func gather() -> DeviceReport {
        let listing = OpenCLRuntime.listDevices()
        let (choice, reason) = Device.resolveAuto()
        return DeviceReport(listing: listing, autoChoice: choice, autoReason: reason,
                            clblastError: listing.error == nil ? CLBlast.loadError : "needs OpenCL")
    }

    public var text: String {
        var lines: [String] = []
        lines.append("cpu            pure Swift, \(CPUParallel.threadCount) threads, \(formatBytes(Int(ProcessInfo.processInfo.physicalMemory))) memory")
        if let error = listing.error {
            lines.append("OpenCL         unavailable: \(error)")
        }
        for p in listing.platforms {
            lines.append("platform \(p.index)     \(p.name) — \(p.vendor), \(p.version)")
            if p.devices.isEmpty { lines.append("  (no devices)") }
            for d in p.devices {
                lines.append("  opencl:\(p.index):\(d.index)   \(d.name)")
                lines.append("      type \(d.typeName), \(d.computeUnits) compute units, global memory \(formatBytes(d.globalMemory)) (max buffer \(formatBytes(d.maxAllocation))), local memory \(formatBytes(d.localMemory))")
                lines.append("      max work-group size \(d.maxWorkGroupSize) (per dimension \(d.maxWorkItemSizes)), fp16 \(d.supportsFP16 ? "yes" : "no"), subgroups \(d.supportsSubgroups ? "yes" : "no"), \(d.version), driver \(d.driverVersion)")
                lines.append("      tuning \(Self.tuning(p, d).summary)")
            }
        }
        if listing.error == nil {
            lines.append("CLBlast        \(clblastError.map { "unavailable (\($0)); matmul uses the built-in kernel" } ?? "loaded")")
        }
        lines.append("auto           \(autoChoice) — \(autoReason)")
        return lines.joined(separator: "\n")
    }

    public var json: [String: Any] {
        var platforms: [[String: Any]] = []
        for p in listing.platforms {
            platforms.append([
                "index": p.index, "name": p.name, "vendor": p.vendor, "version": p.version,
                "devices": p.devices.map { d -> [String: Any] in
                    ["id": "opencl:\(p.index):\(d.index)", "name": d.name, "vendor": d.vendor, "type": d.typeName,
                     "compute_units": d.computeUnits, "global_memory": d.globalMemory,
                     "max_allocation": d.maxAllocation, "local_memory": d.localMemory,
                     "max_work_group_size": d.maxWorkGroupSize, "max_work_item_sizes": d.maxWorkItemSizes,
                     "fp16": d.supportsFP16, "subgroups": d.supportsSubgroups,
                     "version": d.version, "driver": d.driverVersion,
                     "tuning": Self.tuning(p, d).values, "tuning_origins": Self.tuning(p, d).origins]
                },
            ])
        }
        var out: [String: Any] = [
            "cpu": ["threads": CPUParallel.threadCount, "memory": Int(ProcessInfo.processInfo.physicalMemory)],
            "platforms": platforms, "auto": autoChoice.description, "auto_reason": autoReason,
        ]
        if let e = listing.error { out["opencl_error"] = e }
        out["clblast"] = clblastError == nil ? "loaded" : "unavailable: \(clblastError!)"
        return out
    }
}

extension DeviceReport {
    /// The kernel tuning in force for a listed device (cache, then table, then .cl defaults).
    static func tuning(_ p: OpenCLPlatformInfo, _ d: OpenCLDeviceInfo) -> KernelTuning {
        KernelTuning.resolve(for: KernelTuning.DeviceKey(platform: p.name, device: d.name, driver: d.driverVersion))
    }
}
