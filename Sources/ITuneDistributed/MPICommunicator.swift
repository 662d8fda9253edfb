import CMPI
import Foundation

/// MPI_COMM_WORLD of the run, through libmpi opened at run time (Open MPI, or a library of the
/// MPICH ABI). MPI errors return codes (MPI_ERRORS_RETURN) that become `DistributedError.mpi`
/// naming the call.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let localRank: Int
    public let localSize: Int
    public let library: String
    private var finalized = false

    /// Loads libmpi and initialises MPI; `launch` (what the launcher's environment said) gives
    /// the node-local rank and count, which MPI_COMM_WORLD does not.
    public init(launch: LaunchEnvironment) throws {
        var err = [CChar](repeating: 0, count: 512)
        guard itune_mpi_load(launch.prefersMPICH ? 1 : 0, &err, err.count) == 1 else {
            throw DistributedError.unavailable("started by \(launch.launcher) as one of \(launch.size) processes, but MPI cannot be loaded: \(String(cString: err)). Install Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev) or set ITUNE_MPI_LIBRARY to the libmpi of the launcher used")
        }
        // "Open MPI v4.1.4, package: Debian OpenMPI, …" or "MPICH Version: 4.1 …": the first part.
        library = String(cString: itune_mpi_library_version()).split(whereSeparator: { $0 == "\n" || $0 == "," }).first
            .map { String($0).trimmingCharacters(in: .whitespaces) } ?? "MPI"
        try Self.check(itune_mpi_init(), "MPI_Init")
        var r: Int32 = 0, s: Int32 = 0
        try Self.check(itune_mpi_rank(&r), "MPI_Comm_rank")
        try Self.check(itune_mpi_size(&s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
        guard size == launch.size else {
            throw DistributedError.unavailable("\(launch.launcher) started \(launch.size) processes but MPI_COMM_WORLD has \(size): the launcher and libmpi (\(library)) do not belong together; set ITUNE_MPI_LIBRARY to the launcher's libmpi")
        }
        // Without the launcher's node-local numbers, all ranks are taken to share one node.
        localRank = launch.localRank ?? rank
        localSize = max(1, launch.localSize ?? size)
    }

    public var description: String { "MPI (\(library)), rank \(rank) of \(size), local rank \(localRank) of \(localSize)" }

    static func check(_ code: Int32, _ call: String) throws {
        guard code != 0 else { return }
        var text = [CChar](repeating: 0, count: 1024)
        itune_mpi_error_string(code, &text, text.count)
        throw DistributedError.mpi(call: call, code: code, message: String(cString: text))
    }

    static func count(_ n: Int, _ call: String) throws -> Int32 {
        guard let c = Int32(exactly: n) else {
            throw DistributedError.invalid("\(call): \(n) elements is more than one MPI call takes (2³¹−1); use smaller buckets")
        }
        return c
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
        try Self.check(itune_mpi_allreduce(base, try Self.count(buffer.count, "MPI_Allreduce"), Int32(ITUNE_MPI_F32), Int32(ITUNE_MPI_OP_SUM)), "MPI_Allreduce")
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
        try Self.check(itune_mpi_allreduce(base, try Self.count(buffer.count, "MPI_Allreduce"), Int32(ITUNE_MPI_F64), Int32(ITUNE_MPI_OP_SUM)), "MPI_Allreduce")
    }

    public func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
        try Self.check(itune_mpi_allreduce(base, try Self.count(buffer.count, "MPI_Allreduce"), Int32(ITUNE_MPI_F64), Int32(ITUNE_MPI_OP_MAX)), "MPI_Allreduce")
    }

    public func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingReduction {
        let pending = Request()
        guard let base = buffer.baseAddress, !buffer.isEmpty else { pending.done = true; return pending }
        try Self.check(itune_mpi_iallreduce(base, try Self.count(buffer.count, "MPI_Iallreduce"), Int32(ITUNE_MPI_F32),
                                            Int32(ITUNE_MPI_OP_SUM), &pending.request), "MPI_Iallreduce")
        return pending
    }

    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        try Self.check(itune_mpi_bcast(base, try Self.count(bytes.count, "MPI_Bcast"), Int32(root)), "MPI_Bcast")
    }

    public func barrier() throws { try Self.check(itune_mpi_barrier(), "MPI_Barrier") }

    public func finalize() throws {
        guard !finalized else { return }
        finalized = true
        try Self.check(itune_mpi_finalize(), "MPI_Finalize")
    }

    public func abort(code: Int32) -> Never {
        _ = itune_mpi_abort(code)
        exit(code)
    }

    final class Request: PendingReduction {
        var request = itune_mpi_request(pointer: nil, integer: 0)
        var done = false
        func wait() throws {
            guard !done else { return }
            done = true
            try MPICommunicator.check(itune_mpi_wait(&request), "MPI_Wait")
        }
        func test() throws -> Bool {
            guard !done else { return true }
            var flag: Int32 = 0
            try MPICommunicator.check(itune_mpi_test(&request, &flag), "MPI_Test")
            done = flag != 0
            return done
        }
    }
}
