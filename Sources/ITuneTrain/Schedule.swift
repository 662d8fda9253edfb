import Foundation

/// Learning rate over steps: linear warm-up to the peak, then cosine, linear or constant to
/// `minRatio`·peak at the last step (transformers' get_cosine/linear_schedule_with_warmup with
/// minRatio = 0).
public struct LRSchedule: Sendable, Equatable, Codable {
    public enum Decay: String, Sendable, Codable, CaseIterable { case cosine, linear, constant }
    public var peak: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var decay: Decay
    public var minRatio: Float

    public init(peak: Float, warmupSteps: Int, totalSteps: Int, decay: Decay = .cosine, minRatio: Float = 0) {
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.decay = decay
        self.minRatio = minRatio
    }

    /// The rate of optimizer step `step` (counted from 1). As in transformers, the schedule is
    /// evaluated at the number of steps already taken, so with warm-up the first step's rate is 0.
    public func rate(at step: Int) -> Float {
        let s = Float(step - 1)
        let w = Float(warmupSteps), total = Float(max(totalSteps, warmupSteps + 1))
        if s < w { return peak * s / max(1, w) }
        let progress = min(1, (s - w) / max(1, total - w))
        let factor: Float
        switch decay {
        case .constant: factor = 1
        case .linear: factor = max(0, 1 - progress)
        case .cosine: factor = max(0, 0.5 * (1 + cos(Float.pi * progress)))
        }
        return peak * (minRatio + (1 - minRatio) * factor)
    }
}
