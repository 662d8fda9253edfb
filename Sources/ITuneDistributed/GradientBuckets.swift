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

    /// The buckets that hold part of parameter `i` (empty for a parameter of no elements).
    public func buckets(of i: Int) -> Range<Int> {
        guard counts[i] > 0, let per = buckets.first?.count, per > 0 else { return 0..<0 }
        return offsets[i] / per ..< (offsets[i] + counts[i] - 1) / per + 1
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

/// Sums gradients over the ranks bucket by bucket through a host buffer allocated once, as
/// PyTorch DDP's reducer does: during the step's last backward the trainer says when each
/// parameter's gradient is final (`parameterReady`); as soon as every parameter in a bucket
/// is, their gradients are packed into the flat buffer and the bucket's non-blocking allreduce
/// starts, so that communication overlaps the rest of the backward. Packing a bucket at once
/// (not each gradient as it becomes final) makes one device read — on OpenCL one wait for
/// the queue — per bucket, not one per parameter.
/// Buckets start strictly in order (0, 1, …) on every rank — MPI matches collectives by the
/// order they are called — so a ready bucket waits for the ones before it.
///
/// A step: `begin`, `parameterReady` any number of times (each parameter at most once),
/// `startRemaining` when the backward is over (it readies whatever is left), `finish`.
public final class BucketedAllreduce {
    public let plan: GradientBuckets
    private let flat: UnsafeMutableBufferPointer<Float>
    /// For each bucket, the parameters with elements in it, and how many are not ready yet.
    private let members: [[Int]]
    private var waitingOn: [Int]
    private var ready: [Bool]
    private var packed: [Bool]
    private var started: [PendingReduction] = []
    /// Buckets before this one are known to be reduced (by `test`).
    private var tested = 0
    private var communicator: (any Communicator)?
    private var pack: ((Int, UnsafeMutableBufferPointer<Float>) throws -> Void)?
    private var stepBegan = Date()
    private var backwardEnded: Date?
    private var secondsIn = 0.0
    /// Buckets started before the latest `parameterReady` call of the backward.
    private var startedBeforeLastReady = 0

    /// Of the last step: the seconds spent in this type's calls (packing, starting, waiting,
    /// unpacking), those after the backward ended (what the step pays for communication), those
    /// waiting for the network, and the share of the gradient's elements whose allreduce
    /// started while the backward still had gradients to compute — before the last
    /// `parameterReady` of the backward (the buckets that call starts overlap nothing).
    public private(set) var lastSeconds = 0.0
    public private(set) var lastExposedSeconds = 0.0
    public private(set) var lastWaitSeconds = 0.0
    public private(set) var lastOverlap = 0.0
    /// The order of the last step's events, for tests: `.ready(i)` (a parameter made ready
    /// during the backward), `.started(b)`, `.backwardEnded`, `.reduced(b)`.
    public enum Event: Equatable, Sendable { case ready(Int), started(Int), backwardEnded, reduced(Int) }
    public private(set) var lastEvents: [Event] = []
    public var bytesPerRun: Int { plan.totalElements * 4 }

    public init(plan: GradientBuckets) {
        self.plan = plan
        flat = .allocate(capacity: max(plan.totalElements, 1))
        flat.initialize(repeating: 0)
        waitingOn = [Int](repeating: 0, count: plan.buckets.count)
        packed = [Bool](repeating: false, count: plan.counts.count)
        ready = packed
        var members = [[Int]](repeating: [], count: plan.buckets.count)
        for i in plan.counts.indices.reversed() { for b in plan.buckets(of: i) { members[b].append(i) } }
        self.members = members
    }

    deinit { flat.deallocate() }

    private func slice(_ i: Int) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: flat[plan.offsets[i]..<plan.offsets[i] + plan.counts[i]])
    }

    /// Starts a step. `pack(i, destination)` fills parameter i's gradient (zeros when it has
    /// none) into its slice of the flat buffer; it is called once per parameter of elements,
    /// when the first bucket holding it starts.
    public func begin(_ communicator: any Communicator, pack: @escaping (Int, UnsafeMutableBufferPointer<Float>) throws -> Void) {
        self.communicator = communicator
        self.pack = pack
        for b in waitingOn.indices { waitingOn[b] = 0 }
        for b in waitingOn.indices { waitingOn[b] = members[b].count }
        for i in plan.counts.indices { packed[i] = false; ready[i] = false }
        started.removeAll(keepingCapacity: true)
        tested = 0
        lastEvents.removeAll(keepingCapacity: true)
        stepBegan = Date()
        backwardEnded = nil
        secondsIn = 0
        startedBeforeLastReady = 0
    }

    /// Parameter i's gradient is final for this step: starts every bucket, in order, whose
    /// parameters are all ready, packing them first. Also lets MPI progress the buckets in flight.
    public func parameterReady(_ i: Int) throws {
        guard let communicator, let pack else { throw DistributedError.invalid("BucketedAllreduce.parameterReady before begin") }
        guard plan.counts.indices.contains(i) else { throw DistributedError.invalid("parameter \(i) of \(plan.counts.count) made ready") }
        guard !ready[i] else { return }
        let t = Date()
        defer { secondsIn += Date().timeIntervalSince(t) }
        ready[i] = true
        if backwardEnded == nil {
            startedBeforeLastReady = started.count
            lastEvents.append(.ready(i))
        }
        for b in plan.buckets(of: i) { waitingOn[b] -= 1 }
        while started.count < plan.buckets.count, waitingOn[started.count] == 0 {
            let b = started.count
            // A parameter that spans buckets is packed whole with the first of them.
            for j in members[b] where !packed[j] {
                packed[j] = true
                try pack(j, slice(j))
            }
            lastEvents.append(.started(b))
            started.append(try communicator.startAllreduceSum(UnsafeMutableBufferPointer(rebasing: flat[plan.buckets[b]])))
        }
        // Open MPI progresses a non-blocking collective only inside MPI calls: test the
        // oldest one in flight so that it moves while the backward computes.
        while tested < started.count, try started[tested].test() { tested += 1 }
    }

    /// The backward is over: readies every parameter not yet ready (in reverse parameter
    /// order, the buckets' order), so that every bucket has started.
    public func startRemaining() throws {
        backwardEnded = Date()
        lastEvents.append(.backwardEnded)
        let overlapped = plan.buckets[0..<startedBeforeLastReady].reduce(0) { $0 + $1.count }
        lastOverlap = plan.totalElements > 0 ? Double(overlapped) / Double(plan.totalElements) : 0
        for i in plan.counts.indices.reversed() where !ready[i] { try parameterReady(i) }
    }

    /// Waits for every bucket and hands each parameter's sum over the ranks to `unpack`, once
    /// the bucket holding its last element is reduced.
    public func finish(unpack: (Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        if backwardEnded == nil { try startRemaining() }
        let t = Date()
        var waited = 0.0
        for (b, request) in started.enumerated() {
            let w = Date()
            try request.wait()
            waited += Date().timeIntervalSince(w)
            lastEvents.append(.reduced(b))
            for i in plan.parametersEnding(in: b) { try unpack(i, UnsafeBufferPointer(slice(i))) }
        }
        let end = Date()
        secondsIn += end.timeIntervalSince(t)
        lastWaitSeconds = waited
        lastExposedSeconds = end.timeIntervalSince(backwardEnded ?? t)
        lastSeconds = secondsIn
        communicator = nil
        pack = nil
    }

    /// One step with nothing overlapped: every parameter is packed and every bucket started
    /// at once, then all are waited for.
    public func run(_ communicator: any Communicator,
                    pack: @escaping (Int, UnsafeMutableBufferPointer<Float>) throws -> Void,
                    unpack: (Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        begin(communicator, pack: pack)
        try startRemaining()
        try finish(unpack: unpack)
    }
}
