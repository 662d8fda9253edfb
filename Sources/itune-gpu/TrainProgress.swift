import Foundation
import ITune

/// Training progress: a redrawn bar on a terminal, plain lines otherwise (logs, CI).
final class Progress {
    let terminal = isatty(STDOUT_FILENO) != 0
    private var barShown = false
    private var lastPlain = Date.distantPast

    func line(_ s: String) {
        clearBar()
        print(s)
        fflush(stdout)
    }

    func event(_ e: TrainerEvent) {
        switch e {
        case let .step(m):
            var text = String(format: "step %d/%d  epoch %.2f  loss %.4f  lr %.2e  %.0f tok/s  ETA %@", m.step, m.totalSteps, m.epoch,
                              m.loss, m.learningRate, m.tokensPerSecond, Self.duration(m.eta))
            if !m.preference.isEmpty { text += "  " + Self.preference(m.preference) }
            if terminal {
                let width = 24, filled = Int(Double(width) * Double(m.step) / Double(max(m.totalSteps, 1)))
                let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
                print("\r\u{1B}[K[\(bar)] \(text)", terminator: "")
                fflush(stdout)
                barShown = true
            } else if m.step == 1 || m.step == m.totalSteps || Date().timeIntervalSince(lastPlain) >= 10 {
                lastPlain = Date()
                print(text)
                fflush(stdout)
            }
        case let .validation(step, loss):
            line(String(format: "validation at step %d: loss %.4f, perplexity %.2f", step, loss, exp(loss)))
        case let .checkpoint(step, url):
            line("checkpoint at step \(step): \(url.path)")
        case let .info(s):
            line(s)
        }
    }

    func finish() { clearBar() }

    /// TRL's preference metrics, short: reward accuracy and margin, the chosen and rejected
    /// log-probabilities (and ORPO's NLL).
    static func preference(_ p: [String: Double]) -> String {
        var parts: [String] = []
        if let a = p["rewards/accuracies"] { parts.append(String(format: "acc %.2f", a)) }
        if let m = p["rewards/margins"] { parts.append(String(format: "margin %.3f", m)) }
        if let c = p["logps/chosen"], let r = p["logps/rejected"] { parts.append(String(format: "logps %.2f/%.2f", c, r)) }
        if let n = p["nll_loss"] { parts.append(String(format: "nll %.3f", n)) }
        return parts.joined(separator: "  ")
    }

    private func clearBar() {
        if barShown { print(""); barShown = false }
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}
