import Foundation

/// The ranks of a data-parallel run and the collectives the trainer needs. Rank 0 is the one
/// that writes; every rank holds the same model and takes its own shard of each global batch.
/// `SingleProcessCommunicator` is a run of one; `MPICommunicator` talks to the other ranks
/// through libmpi loaded at run time.
public protocol Communicator: AnyObject {
    /// This process's rank, 0..<size.
    var rank: Int { get }
    var size: Int { get }
    /// This process's rank among the ranks on its node, and how many there are: which GPU it
    /// takes and how many cores it may use.
    var localRank: Int { get }
    var localSize: Int { get }
    /// A short description for the start of a run, e.g. "MPI (Open MPI v4.1.4), rank 0 of 2".
    var description: String { get }

    /// Sums `buffer` over all ranks, in place; every rank gets the sum.
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    /// The largest of each element over all ranks, in place.
    func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    /// Starts summing `buffer` over all ranks in place and returns at once; the buffer must
    /// stay alive and untouched until the returned reduction's `wait()` returns.
    func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingReduction
    /// Copies `root`'s bytes into every rank's buffer (same size on every rank).
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws
    func barrier() throws
    /// Ends the run cleanly (MPI_Finalize); nothing may be called afterwards.
    func finalize() throws
    /// Ends every rank of the run now, with `code` (MPI_Abort): an error on one rank must not
    /// leave the others waiting in a collective.
    func abort(code: Int32) -> Never
}

/// A non-blocking collective in flight.
public protocol PendingReduction: AnyObject {
    /// Blocks until the collective has completed on this rank.
    func wait() throws
    /// Whether it has completed, without blocking (MPI_Test): also lets the library move it
    /// on, which Open MPI does only inside MPI calls.
    func test() throws -> Bool
}

extension PendingReduction {
    public func test() throws -> Bool { false }
}

public enum DistributedError: Error, CustomStringConvertible, Equatable {
    /// An MPI call failed: the call, its error code and the library's message.
    case mpi(call: String, code: Int32, message: String)
    /// Launched by an MPI launcher, but the library cannot be used.
    case unavailable(String)
    case invalid(String)

    public var description: String {
        switch self {
        case let .mpi(call, code, message): return "\(call) failed (MPI error \(code): \(message)); another rank may have stopped"
        case let .unavailable(why): return why
        case let .invalid(why): return why
        }
    }
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    /// The sum of `values` over all ranks.
    public func allreduceSum(_ values: [Double]) throws -> [Double] {
        var v = values
        try v.withUnsafeMutableBufferPointer { try allreduceSum($0) }
        return v
    }

    public func allreduceSum(_ values: [Float]) throws -> [Float] {
        var v = values
        try v.withUnsafeMutableBufferPointer { try allreduceSum($0) }
        return v
    }

    /// The largest of each of `values` over all ranks.
    public func allreduceMax(_ values: [Double]) throws -> [Double] {
        var v = values
        try v.withUnsafeMutableBufferPointer { try allreduceMax($0) }
        return v
    }

    /// `root`'s `values` on every rank (every rank passes the same count).
    public func broadcast(_ values: [Float], root: Int = 0) throws -> [Float] {
        var v = values
        try v.withUnsafeMutableBytes { try broadcast($0, root: root) }
        return v
    }

    /// Throws on every rank unless `value` is the same on all of them (`what` names it): ranks
    /// that disagree about the data or the model would silently train different things.
    public func checkSame(_ value: Double, _ what: String) throws {
        guard size > 1 else { return }
        let r = try allreduceMax([value, -value])
        guard r[0] == value, -r[1] == value else {
            throw DistributedError.invalid("ranks disagree about \(what) (rank \(rank): \(value), others from \(-r[1]) to \(r[0])): every rank must see the same model, data and options")
        }
    }
}

/// A run of one process: collectives are identities.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var localRank: Int { 0 }
    public var localSize: Int { 1 }
    public var description: String { "single process" }
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingReduction { Completed() }
    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {
        guard root == 0 else { throw DistributedError.invalid("broadcast from rank \(root) in a run of one process") }
    }
    public func barrier() throws {}
    public func finalize() throws {}
    public func abort(code: Int32) -> Never { exit(code) }

    final class Completed: PendingReduction {
        func wait() throws {}
        func test() throws -> Bool { true }
    }
}
