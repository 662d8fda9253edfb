import Foundation
import ITuneTensor

/// A profile of whole optimizer steps (`Trainer.profile`, `itune-bench step --profile`), and
/// the table `itune-gpu train --profile` ends with.
public struct StepProfile: Sendable {
    public var profile: OpProfile
    /// The optimizer steps it covers.
    public var steps: ClosedRange<Int>

    public init(profile: OpProfile, steps: ClosedRange<Int>) {
        self.profile = profile
        self.steps = steps
    }

    /// One line per kernel (per op on the CPU path), most time first, per optimizer step:
    /// launches, time, its share of the step's wall time, and the idle time before its launches;
    /// then the totals.
    public func table() -> String {
        let p = profile, n = Double(steps.count)
        let wallMs = p.wallSeconds / n * 1e3
        let name = p.clock == .deviceEvents ? "kernel" : "op"
        var lines = [
            String(format: "profile of steps %d–%d on %@ (%@): %.2f ms wall per step", steps.lowerBound, steps.upperBound,
                   p.device, p.clock.rawValue, wallMs),
            Self.row(name, "launches/step", "ms/step", "share", p.clock == .deviceEvents ? "idle before ms/step" : "host before ms/step"),
        ]
        for r in p.rows {
            lines.append(Self.row(r.name, Self.count(Double(r.launches) / n), String(format: "%.3f", r.seconds / n * 1e3),
                                  Self.share(r.seconds, of: p.wallSeconds), String(format: "%.3f", r.gapSeconds / n * 1e3)))
        }
        lines.append(Self.row("total", Self.count(Double(p.totalLaunches) / n), String(format: "%.3f", p.busySeconds / n * 1e3),
                              Self.share(p.busySeconds, of: p.wallSeconds), String(format: "%.3f", p.gapSeconds / n * 1e3)))
        return lines.joined(separator: "\n")
    }

    /// The table's numbers, per optimizer step, for a JSON line.
    public var json: [String: Any] {
        let n = Double(steps.count)
        return ["first_step": steps.lowerBound, "last_step": steps.upperBound, "clock": profile.clock.rawValue,
                "wall_ms_per_step": profile.wallSeconds / n * 1e3,
                "rows": profile.rows.map { r -> [String: Any] in
                    ["name": r.name, "launches_per_step": Double(r.launches) / n, "ms_per_step": r.seconds / n * 1e3,
                     "gap_ms_per_step": r.gapSeconds / n * 1e3]
                }]
    }

    static func count(_ x: Double) -> String { x == x.rounded() ? String(Int(x)) : String(format: "%.1f", x) }

    static func share(_ part: Double, of whole: Double) -> String {
        whole > 0 ? String(format: "%.1f%%", 100 * part / whole) : "-"
    }

    static func row(_ c: String...) -> String {
        let widths = [34, 14, 10, 8, 20]
        return zip(c, widths).enumerated().map { i, cw in
            i == 0 ? cw.0.padding(toLength: max(cw.1, cw.0.count), withPad: " ", startingAt: 0)
                : String(repeating: " ", count: max(0, cw.1 - cw.0.count)) + cw.0
        }.joined(separator: " ")
    }
}
