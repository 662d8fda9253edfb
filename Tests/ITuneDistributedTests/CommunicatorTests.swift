import XCTest
@testable import ITuneDistributed

/// N ranks that all hold the same values, simulated in one process: a sum multiplies by N.
/// Checks the bucket wiring (pack, reduce, unpack) without MPI.
final class ReplicatedCommunicator: Communicator {
    let size: Int
    var started: [Int] = []
    init(size: Int) { self.size = size }
    var rank: Int { 0 }
    var localRank: Int { 0 }
    var localSize: Int { size }
    var description: String { "replicated ×\(size)" }
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws { for i in buffer.indices { buffer[i] *= Float(size) } }
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws { for i in buffer.indices { buffer[i] *= Double(size) } }
    func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingReduction {
        started.append(buffer.count)
        return Deferred { for i in buffer.indices { buffer[i] *= Float(self.size) } }
    }
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {}
    func barrier() throws {}
    func finalize() throws {}
    func abort(code: Int32) -> Never { fatalError("abort \(code)") }

    /// The sum happens at wait(), so a test sees unpacking read a buffer before it is reduced.
    final class Deferred: PendingReduction {
        let body: () -> Void
        var done = false
        init(_ body: @escaping () -> Void) { self.body = body }
        func wait() throws { if !done { body(); done = true } }
    }
}

final class CommunicatorTests: XCTestCase {
    func testSingleProcessCollectivesAreIdentities() throws {
        let c = SingleProcessCommunicator()
        XCTAssertEqual(c.rank, 0)
        XCTAssertEqual(c.size, 1)
        XCTAssertTrue(c.isRoot)
        XCTAssertEqual(try c.allreduceSum([1.5, -2.0] as [Double]), [1.5, -2.0])
        XCTAssertEqual(try c.allreduceSum([3, 4] as [Float]), [3, 4])
        XCTAssertEqual(try c.allreduceMax([7, -1]), [7, -1])
        XCTAssertEqual(try c.broadcast([1, 2, 3], root: 0), [1, 2, 3])
        XCTAssertThrowsError(try c.broadcast([1], root: 1)) { XCTAssertTrue("\($0)".contains("rank 1")) }
        var v: [Float] = [5, 6]
        try v.withUnsafeMutableBufferPointer { try c.startAllreduceSum($0).wait() }
        XCTAssertEqual(v, [5, 6])
        try c.checkSame(42, "anything")
        try c.barrier()
    }

    func testBucketsFuseSmallParametersAndSplitLargeOnesInReverseOrder() throws {
        // 4-byte floats, 10-element buckets: parameters of 3, 25, 2, 4 elements, laid out last first.
        let plan = try GradientBuckets(counts: [3, 25, 2, 4], bucketBytes: 40)
        XCTAssertEqual(plan.offsets, [31, 6, 4, 0])
        XCTAssertEqual(plan.totalElements, 34)
        XCTAssertEqual(plan.buckets, [0..<10, 10..<20, 20..<30, 30..<34])
        XCTAssertEqual(plan.parametersStarting(in: 0), [3, 2, 1])  // 4 and 2 fused, 25 begins
        XCTAssertEqual(plan.parametersEnding(in: 0), [3, 2])
        XCTAssertEqual(plan.parametersStarting(in: 1), [])
        // The 25-element parameter spans elements 6..<31: it is complete with the last bucket.
        XCTAssertEqual(plan.parametersEnding(in: 2), [])
        XCTAssertEqual(plan.parametersEnding(in: 3), [1, 0])
        XCTAssertThrowsError(try GradientBuckets(counts: [1], bucketBytes: 3))
        // The default is DDP's 25 MB.
        XCTAssertEqual(try GradientBuckets(counts: [10_000_000]).buckets.count, 2)
    }

    func testBucketedAllreduceSumsEveryParameterOnce() throws {
        let counts = [3, 25, 2, 0, 4]
        let grads = counts.enumerated().map { i, n in (0..<n).map { Float(i * 100 + $0) } }
        let comm = ReplicatedCommunicator(size: 3)
        let reduce = BucketedAllreduce(plan: try GradientBuckets(counts: counts, bucketBytes: 40))
        var out = counts.map { [Float](repeating: .nan, count: $0) }
        var unpacked: [Int] = []
        try reduce.run(comm, pack: { i, d in
            for k in d.indices { d[k] = grads[i][k] }
        }, unpack: { i, s in
            out[i] = Array(s)
            unpacked.append(i)
        })
        XCTAssertEqual(comm.started, [10, 10, 10, 4])
        XCTAssertEqual(unpacked.sorted(), [0, 1, 2, 4])
        for i in counts.indices { XCTAssertEqual(out[i], grads[i].map { $0 * 3 }, "parameter \(i)") }
        XCTAssertEqual(reduce.bytesPerRun, 34 * 4)
    }

    func testABucketIsPackedAndStartedOnceAllItsParametersAreReadyAndThoseBeforeItStarted() throws {
        // Elements: parameter 3 at 0..<4, 2 at 4..<6, 1 at 6..<31, 0 at 31..<34; buckets of 10.
        let counts = [3, 25, 2, 4]
        let comm = ReplicatedCommunicator(size: 2)
        let reduce = BucketedAllreduce(plan: try GradientBuckets(counts: counts, bucketBytes: 40))
        var log: [String] = []
        reduce.begin(comm) { i, d in
            log.append("pack \(i)")
            for k in d.indices { d[k] = Float(i * 100 + k) }
        }
        func ready(_ i: Int) throws {
            log.append("ready \(i)")
            try reduce.parameterReady(i)
            log.append("started \(comm.started.count)")
        }
        // Parameter 0 first: its bucket (3) must wait for buckets 0–2.
        try ready(0)
        try ready(3)
        try ready(2)
        try ready(2)  // a second signal changes nothing
        try ready(1)
        try reduce.startRemaining()
        var out = counts.map { [Float](repeating: .nan, count: $0) }
        try reduce.finish { i, s in out[i] = Array(s) }
        XCTAssertEqual(log, ["ready 0", "started 0", "ready 3", "started 0", "ready 2", "started 0", "ready 2", "started 0",
                             "ready 1", "pack 3", "pack 2", "pack 1", "pack 0", "started 4"])
        XCTAssertEqual(comm.started, [10, 10, 10, 4])
        for i in counts.indices { XCTAssertEqual(out[i], (0..<counts[i]).map { Float(2 * (i * 100 + $0)) }, "parameter \(i)") }
        XCTAssertEqual(reduce.lastEvents.filter { if case .started = $0 { return true } else { return false } }.count, 4)
        // Every bucket started with the last ready signal of the backward: nothing overlapped.
        XCTAssertEqual(reduce.lastOverlap, 0)
    }

    func testLaunchEnvironmentOfEachLauncher() {
        XCTAssertNil(LaunchEnvironment.detect([:]))
        XCTAssertNil(LaunchEnvironment.detect(["OMPI_COMM_WORLD_SIZE": "1", "OMPI_COMM_WORLD_RANK": "0"]), "-np 1 is a plain run")
        let ompi = LaunchEnvironment.detect(["OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3",
                                             "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"])
        XCTAssertEqual(ompi?.size, 4)
        XCTAssertEqual(ompi?.rank, 3)
        XCTAssertEqual(ompi?.localRank, 1)
        XCTAssertEqual(ompi?.localSize, 2)
        let hydra = LaunchEnvironment.detect(["PMI_SIZE": "2", "PMI_RANK": "1", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"])
        XCTAssertEqual(hydra?.size, 2)
        XCTAssertEqual(hydra?.localRank, 1)
        XCTAssertEqual(hydra?.prefersMPICH, true, "Hydra's ranks load MPICH's library first")
        XCTAssertEqual(ompi?.prefersMPICH, false)
        let srun = LaunchEnvironment.detect(["SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
                                             "SLURM_STEP_TASKS_PER_NODE": "4(x2)", "SLURM_NTASKS": "8"])
        XCTAssertEqual(srun?.size, 8)
        XCTAssertEqual(srun?.localSize, 4)
        XCTAssertTrue(srun?.launcher.contains("srun") ?? false)
        // A batch script's own process: the allocation's task count is not a launch.
        XCTAssertNil(LaunchEnvironment.detect(["SLURM_NTASKS": "8", "SLURM_PROCID": "0"]))
    }

    func testPlainRunNeverLoadsMPI() throws {
        // A library path that cannot load: a plain run must not notice it.
        let c = try makeCommunicator(["ITUNE_MPI_LIBRARY": "/nonexistent/libmpi.so"])
        XCTAssertTrue(c is SingleProcessCommunicator)
    }

    func testLaunchWithoutUsableMPISaysSo() throws {
        setenv("ITUNE_MPI_LIBRARY", "/nonexistent/libmpi.so.40", 1)
        defer { unsetenv("ITUNE_MPI_LIBRARY") }
        XCTAssertThrowsError(try makeCommunicator(["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("mpirun"), text)
            XCTAssertTrue(text.contains("/nonexistent/libmpi.so.40"), text)
            XCTAssertTrue(text.contains("openmpi"), text)
        }
    }
}
