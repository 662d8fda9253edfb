import Foundation
import ITuneData

/// metrics.jsonl: one JSON object per line (`type`: train, validation or skipped; `step`; …).
/// Appends go through the throwing POSIX calls; the trim on resume rewrites the file through a
/// temporary file and a rename, so a run killed during it leaves the old file or the new one.
struct MetricsLog {
    let url: URL

    /// Appends one line. JSON has no NaN or infinity: a non-finite number is written as null.
    func append(_ object: [String: Any]) throws {
        var data = try JSONSerialization.data(withJSONObject: object.mapValues(Self.jsonSafe), options: [.sortedKeys])
        data.append(0x0A)
        try OutputFiles.append(data, to: url)
    }

    static func jsonSafe(_ value: Any) -> Any {
        switch value {
        case let d as Double: return d.isFinite ? d : NSNull()
        case let f as Float: return f.isFinite ? f : NSNull()
        default: return value
        }
    }

    /// Keeps the lines of steps up to `step` (a resumed run continues the same curve) and drops
    /// the rest and any line that is not a JSON object with a step (a half-written last line).
    /// Returns how many lines were dropped; the file is only rewritten when some were.
    @discardableResult
    func trim(keepingUpTo step: Int) throws -> Int {
        guard FileManager.default.fileExists(atPath: url.path) else { return 0 }
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw OutputError.from(error, path: url.path) }
        let lines = data.split(separator: 0x0A)
        let kept = lines.filter { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let s = o["step"] as? Int else { return false }
            return s <= step
        }
        let endsWithNewline = data.last == 0x0A || data.isEmpty
        guard kept.count != lines.count || !endsWithNewline else { return 0 }
        var out = Data()
        for line in kept {
            out.append(contentsOf: line)
            out.append(0x0A)
        }
        try OutputFiles.writeAtomically(out, to: url)
        return lines.count - kept.count
    }
}
