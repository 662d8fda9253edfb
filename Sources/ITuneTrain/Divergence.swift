import Foundation

/// What the trainer does when a step's loss or gradient norm is NaN or infinite.
public enum NaNPolicy: String, Sendable, Codable, CaseIterable {
    /// Stop at once with an error naming the step; the last checkpoint (all finite) stays.
    case stop
    /// Leave the parameters as they were for that step (no update; the schedule moves on), count
    /// it, and go on. Still stops when the parameters themselves are no longer finite.
    case skipStep = "skip-step"
}

/// Why training could not go on; each names the file, field or step at fault.
public enum TrainError: Error, CustomStringConvertible {
    case invalid(String)
    /// The loss, gradient norm or parameters became NaN or infinite at `step`.
    case diverged(step: Int, what: String, lastCheckpoint: String?)

    public var description: String {
        switch self {
        case let .invalid(s): return s
        case let .diverged(step, what, last):
            return "loss diverged at step \(step) (\(what)): lower --lr, raise --adam-eps, keep --max-grad-norm on, "
                + "or pass --nan-policy skip-step; "
                + (last.map { "the last good checkpoint is \($0) (--resume continues from it)" }
                    ?? "no checkpoint was written (--save-every N keeps one); nothing non-finite was saved")
        }
    }
}

/// What of a step's numbers is not finite, for the divergence message; nil when all are.
func divergence(loss: Double, gradNorm: Float) -> String? {
    loss.isFinite && gradNorm.isFinite ? nil : "loss \(loss), grad norm \(gradNorm)"
}
