import Foundation
import ITuneKernels

/// The tunable constants of the OpenCL kernels on one device: tile sizes, block sizes and
/// work-group sizes, CLBlast-style. Each is declared with its default in a `.cl` file
/// (`#ifndef TS` / `#define TS 16`) and passed as `-DTS=v` when a device's value differs.
///
/// A device's values are looked up, name by name, in this order: the on-disk cache of values
/// tuned on this machine (`ProgramCache.directory/tuning.json`), the repository's table of
/// known devices (`Kernels/tuning.json`), the defaults in the `.cl` files. Both files hold a
/// `Table`: `{"entries": [{"platform": …, "device": …, "driver": …, "values": {"TS": 16}}]}`.
public struct KernelTuning: Sendable, Equatable {
    /// Tunable name → value, only for names set by the cache or the table; the rest keep the
    /// `.cl` defaults. A name no `.cl` file declares is ignored.
    public var values: [String: Int]
    /// Name → where its value came from (`cache …` or `table …`), for reports.
    public var origins: [String: String]
    /// Files that could not be read as a table (they are skipped, not fatal).
    public var problems: [String]

    public init(values: [String: Int] = [:], origins: [String: String] = [:], problems: [String] = []) {
        self.values = values
        self.origins = origins
        self.problems = problems
    }

    /// What a table entry is matched against.
    public struct DeviceKey: Sendable, Equatable {
        public var platform: String
        public var device: String
        public var driver: String
        public init(platform: String, device: String, driver: String) {
            self.platform = platform
            self.device = device
            self.driver = driver
        }
    }

    /// One row of a tuning table. Each given field must occur in the device's (case-insensitive
    /// substring); a missing field matches any device.
    public struct Entry: Codable, Sendable, Equatable {
        public var platform: String?
        public var device: String?
        public var driver: String?
        public var values: [String: Int]
        /// Why these values (what was measured, on what).
        public var note: String?

        public init(platform: String? = nil, device: String? = nil, driver: String? = nil, values: [String: Int],
                    note: String? = nil) {
            self.platform = platform
            self.device = device
            self.driver = driver
            self.values = values
            self.note = note
        }

        func matches(_ key: DeviceKey) -> Bool {
            func ok(_ want: String?, _ have: String) -> Bool {
                guard let want else { return true }
                return have.range(of: want, options: .caseInsensitive) != nil
            }
            return ok(platform, key.platform) && ok(device, key.device) && ok(driver, key.driver)
        }

        /// How many fields the entry names: a device and driver entry beats a platform one.
        var specificity: Int { [platform, device, driver].compactMap { $0 }.count }

        var label: String {
            [platform, device, driver].compactMap { $0 }.joined(separator: " / ")
        }
    }

    /// A tuning file's contents.
    public struct Table: Codable, Sendable, Equatable {
        public var entries: [Entry]
        public init(entries: [Entry]) { self.entries = entries }
    }

    /// The entry of `entries` that fits `key` best: every field it names matches, the most
    /// fields named wins, the earlier entry wins a tie.
    public static func bestEntry(in entries: [Entry], for key: DeviceKey) -> Entry? {
        var best: Entry?
        for e in entries where e.matches(key) && e.specificity > (best?.specificity ?? -1) { best = e }
        return best
    }

    /// Which values are in force and where they come from, one clause per source:
    /// `cache (…): GEMM_TSM=64 …; table (…): TS=16 …; the rest the .cl defaults`.
    public var summary: String {
        var bySource: [String: [String]] = [:]
        for (name, v) in values { bySource[origins[name] ?? "set", default: []].append("\(name)=\(v)") }
        let clauses = bySource.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.sorted().joined(separator: " "))" }
        let text = clauses.isEmpty ? "the .cl defaults" : clauses.joined(separator: "; ") + "; the rest the .cl defaults"
        return problems.isEmpty ? text : text + " (skipped: \(problems.joined(separator: "; ")))"
    }

    /// The values for `key`: the cache's best entry over the table's best entry, name by name.
    public static func resolve(for key: DeviceKey, cache: [Entry], table: [Entry]) -> KernelTuning {
        var tuning = KernelTuning()
        for (entries, origin) in [(table, "table"), (cache, "cache")] {
            guard let e = bestEntry(in: entries, for: key) else { continue }
            for (name, v) in e.values {
                tuning.values[name] = v
                tuning.origins[name] = "\(origin) (\(e.label))"
            }
        }
        return tuning
    }

    /// The values for `key` from the cache file and the repository's table.
    public static func resolve(for key: DeviceKey) -> KernelTuning {
        var problems: [String] = []
        func entries(_ data: Data?, _ what: String) -> [Entry] {
            guard let data else { return [] }
            do { return try JSONDecoder().decode(Table.self, from: data).entries } catch {
                problems.append("\(what) is not a tuning table: \(error)")
                return []
            }
        }
        let cache = entries(try? Data(contentsOf: cacheFile), cacheFile.path)
        let table = entries(KernelSources.resource("tuning.json"), "Kernels/tuning.json")
        var tuning = resolve(for: key, cache: cache, table: table)
        tuning.problems = problems
        return tuning
    }

    /// The tunables that `family`'s source declares (with the `reduce.cl` prelude's), at their
    /// `.cl` defaults.
    public static func defaults(family: String) throws -> [String: Int] {
        KernelSources.tunableDefaults(in: try KernelSources.source(of: family))
    }

    /// The repository's table of known devices (`Kernels/tuning.json`); nil when the file is
    /// not found beside the kernels.
    public static func repositoryTable() throws -> Table? {
        guard let data = KernelSources.resource("tuning.json") else { return nil }
        return try JSONDecoder().decode(Table.self, from: data)
    }

    /// Where values tuned on this machine are kept: `tuning.json` in the program cache folder.
    public static var cacheFile: URL { ProgramCache.directory.appendingPathComponent("tuning.json") }
}

extension OpenCLBackend {
    /// A work-group size for a reduction per row (or per chunk) of `family/kernel`: the tuned
    /// `REDUCE_GROUP_MAX` for long rows, else `REDUCE_GROUP_SHORT` (short rows leave most of a
    /// big group idle), a power of two within the device's maximum and the kernel's own
    /// CL_KERNEL_WORK_GROUP_SIZE (KernelLimits.swift).
    func rowGroupSize(long: Bool, kernel: String, family: String) throws -> Int {
        let cap = try tuned(long ? "REDUCE_GROUP_MAX" : "REDUCE_GROUP_SHORT", family: "reduce")
        return try fittedSize(family, kernel, start: reductionGroupSize(cap: cap), items: { $0 }, constants: { _ in [:] })
    }

    /// The work-group size of elementwise kernels that set one (`ELEMENTWISE_GROUP`).
    func elementwiseGroupSize() throws -> Int {
        reductionGroupSize(cap: try tuned("ELEMENTWISE_GROUP", family: "reduce"))
    }
}
