import Foundation
import ITuneDistributed
import ITuneTensor

// The trainer's side of data parallelism: summing the step's gradients over the ranks, and
// handing a resumed checkpoint from rank 0 to the others. Nothing below the trainer knows
// there are ranks.

extension Trainer {
    /// The bucket plan over the trainable tensors and its host buffer, built once per run.
    func gradientBuckets() throws -> BucketedAllreduce {
        if let b = allreduceBuffers { return b }
        let b = BucketedAllreduce(plan: try GradientBuckets(counts: trainable.map(\.1.count), bucketBytes: bucketBytes))
        allreduceBuffers = b
        return b
    }

    /// Starts a step's gradient sum: the buckets' `parameterReady` (called from the last
    /// backward of the step as each gradient becomes final) packs the gradient into the host
    /// buffer — a device read; on OpenCL a blocking one, which waits for the kernels queued
    /// so far — and starts every bucket that is complete.
    func beginGradientSync(_ buckets: BucketedAllreduce) {
        let params = trainable.map(\.1)
        buckets.begin(communicator) { i, destination in
            guard let g = params[i].grad else { destination.update(repeating: 0); return }
            guard let base = destination.baseAddress else { return }
            try g.backend.read(g.storage, into: base, byteCount: destination.count * 4)
        }
    }

    /// Ends it after the step's last backward: starts the buckets not yet started, sums on the
    /// host which parameters have a gradient on any rank and the step's token count (one small
    /// allreduce, called after every bucket so that the ranks call collectives in one order),
    /// then replaces every trainable tensor's gradient by the sum over the ranks. Returns the
    /// token count over the ranks.
    func finishGradientSync(_ buckets: BucketedAllreduce, tokens: Int) throws -> Int {
        let params = trainable.map(\.1)
        try buckets.startRemaining()
        // A parameter that got a gradient on no rank keeps none (AdamW skips it, as a single
        // process would); one that got it on some ranks gets the sum everywhere.
        let sums = try communicator.allreduceSum(params.map { $0.grad == nil ? 0.0 : 1.0 } + [Double(tokens)])
        try buckets.finish { i, sum in
            guard sums[i] > 0 else { return }
            try params[i].setGradient(sum)
        }
        return Int(sums[params.count])
    }

    /// Rank 0's resumed state on every rank: the step, the optimizer's step and moments and the
    /// trainable values (so the other ranks need not see the output directory). The step to
    /// start from, 0 when rank 0 found no checkpoint.
    func broadcastResumedState(_ state: CheckpointState?) throws -> Int {
        var header: [Double] = [state == nil ? 0 : 1, Double(state?.step ?? 0), Double(state?.optimizerStep ?? 0)]
        try header.withUnsafeMutableBytes { try communicator.broadcast($0, root: 0) }
        guard header[0] == 1 else { return 0 }
        let root = communicator.isRoot
        func share(_ t: Tensor) throws -> [Float] {
            let values = try communicator.broadcast(root ? t.toArray() : [Float](repeating: 0, count: t.count), root: 0)
            if !root { try t.assign(values) }
            return values
        }
        for (_, t) in trainable { _ = try share(t) }
        let moments = try optimizer.moments.map { (m: try share($0.m), v: try share($0.v)) }
        if !root { try optimizer.restore(step: Int(header[2]), moments: moments) }
        return Int(header[1])
    }
}
