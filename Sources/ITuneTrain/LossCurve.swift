import Foundation
import ITuneData

/// The loss curve of a run as a standalone SVG: training loss per step (a line) and validation
/// loss (dots), with labelled axes. Written atomically beside metrics.jsonl.
public enum LossCurve {
    public static func svg(train: [(Int, Double)], validation: [(Int, Double)]) -> String {
        let (w, h, left, right, top, bottom) = (720.0, 400.0, 60.0, 20.0, 20.0, 40.0)
        let all = (train + validation).filter { $0.1.isFinite }
        guard let maxStep = all.map(\.0).max(), let lo = all.map(\.1).min(), let hi = all.map(\.1).max() else {
            return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\"><text x=\"20\" y=\"40\">no steps yet</text></svg>\n"
        }
        let span = max(hi - lo, 1e-6), steps = Double(max(maxStep, 1))
        func x(_ s: Int) -> Double { left + (w - left - right) * Double(s) / steps }
        func y(_ v: Double) -> Double { top + (h - top - bottom) * (1 - (v - lo) / span) }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<line x1=\"\(left)\" y1=\"\(h - bottom)\" x2=\"\(w - right)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        out += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        for i in 0...4 {
            let v = lo + span * Double(i) / 4
            out += String(format: "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.3f</text>\n", left - 6, y(v) + 4, v)
            let s = Int(steps * Double(i) / 4)
            out += String(format: "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%d</text>\n", x(s), h - bottom + 16, s)
        }
        out += "<text x=\"\(w / 2)\" y=\"\(h - 4)\" text-anchor=\"middle\">step</text>\n"
        let points = train.filter { $0.1.isFinite }.map { String(format: "%.1f,%.1f", x($0.0), y($0.1)) }.joined(separator: " ")
        out += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"\(points)\"/>\n"
        for (s, v) in validation where v.isFinite {
            out += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#d62728\"/>\n", x(s), y(v))
        }
        out += "<text x=\"\(w - right - 150)\" y=\"\(top + 12)\" fill=\"#1f77b4\">— train loss</text>\n"
        if !validation.isEmpty { out += "<text x=\"\(w - right - 150)\" y=\"\(top + 28)\" fill=\"#d62728\">● validation loss</text>\n" }
        return out + "</svg>\n"
    }

    public static func write(train: [(Int, Double)], validation: [(Int, Double)], to url: URL) throws {
        try OutputFiles.writeAtomically(Data(svg(train: train, validation: validation).utf8), to: url)
    }
}
