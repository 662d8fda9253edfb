import Foundation

/// How a step's gradients are grouped for allreduce, as PyTorch DDP does: the parameters are
/// laid out in one flat vector in reverse order (the order the backward finishes them) and
/// the vector is cut into buckets of at most `bucketElements`, so small gradients travel
/// together (one message, not one per bias) and a large one is split over several buckets
/// (no bucket waits for a whole embedding matrix).
public struct GradientBuckets: Equatable, Sendable {
    /// Element counts of the parameters, in the caller's order.
    public let counts: [Int]
    /// Where each parameter starts in the flat vector (the last parameter starts at 0).
    public let offsets: [Int]
    /// Element ranges of the flat vector, in the order they are reduced.
    public let buckets: [Range<Int>]
    public var totalElements: Int { counts.reduce(0, +) }

    /// 25 MB, DDP's default bucket size.
    public static let defaultBucketBytes = 25 * 1024 * 1024

    public init(counts: [Int], bucketBytes: Int = GradientBuckets.defaultBucketBytes) throws {
        guard counts.allSatisfy({ $0 >= 0 }) else { throw DistributedError.invalid("a parameter with a negative element count") }
        guard bucketBytes >= 4 else { throw DistributedError.invalid("bucket size \(bucketBytes) bytes: must hold at least one float") }
        self.counts = counts
        var offsets = [Int](repeating: 0, count: counts.count)
        var at = 0
        for i in counts.indices.reversed() {
            offsets[i] = at
            at += counts[i]
        }
        self.offsets = offsets
        let per = bucketBytes / 4
        buckets = stride(from: 0, to: at, by: per).map { $0..<min(at, $0 + per) }
    }

    /// The parameters whose first element lies in `bucket` (packed before it is sent).
    public func parametersStarting(in bucket: Int) -> [Int] {
        let r = buckets[bucket]
        return counts.indices.reversed().filter { counts[$0] > 0 && r.contains(offsets[$0]) }
    }

    /// The parameters whose last element lies in `bucket` (complete once it is reduced).
    public func parametersEnding(in bucket: Int) -> [Int] {
        let r = buckets[bucket]
        return counts.indices.reversed().filter { counts[$0] > 0 && r.contains(offsets[$0] + counts[$0] - 1) }
    }
}

/// Sums gradients over the ranks bucket by bucket through a host buffer allocated once: each
/// bucket's allreduce starts (non-blocking) as soon as its parameters are packed, so packing
/// (a device read) of the next bucket overlaps the transfer of the previous ones, and
/// unpacking (a device write) of a finished bucket overlaps the rest.
public final class BucketedAllreduce {
    public let plan: GradientBuckets
    private let flat: UnsafeMutableBufferPointer<Float>

    /// Seconds and bytes of the last `run`.
    public private(set) var lastWaitSeconds = 0.0
    public private(set) var lastSeconds = 0.0
    public var bytesPerRun: Int { plan.totalElements * 4 }

    public init(plan: GradientBuckets) {
        self.plan = plan
        flat = .allocate(capacity: max(plan.totalElements, 1))
        flat.initialize(repeating: 0)
    }

    deinit { flat.deallocate() }

    /// `pack(i, destination)` fills parameter i's gradient (zeros when it has none) into its
    /// slice of the flat buffer; `unpack(i, sum)` takes the sum over all ranks.
    public func run(_ communicator: any Communicator,
                    pack: (Int, UnsafeMutableBufferPointer<Float>) throws -> Void,
                    unpack: (Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        let began = Date()
        func slice(_ i: Int) -> UnsafeMutableBufferPointer<Float> {
            UnsafeMutableBufferPointer(rebasing: flat[plan.offsets[i]..<plan.offsets[i] + plan.counts[i]])
        }
        var pending: [PendingReduction] = []
        pending.reserveCapacity(plan.buckets.count)
        for (b, range) in plan.buckets.enumerated() {
            for i in plan.parametersStarting(in: b) { try pack(i, slice(i)) }
            pending.append(try communicator.startAllreduceSum(UnsafeMutableBufferPointer(rebasing: flat[range])))
        }
        var waited = 0.0
        for (b, request) in pending.enumerated() {
            let t = Date()
            try request.wait()
            waited += Date().timeIntervalSince(t)
            for i in plan.parametersEnding(in: b) { try unpack(i, UnsafeBufferPointer(slice(i))) }
        }
        lastWaitSeconds = waited
        lastSeconds = Date().timeIntervalSince(began)
    }
}
