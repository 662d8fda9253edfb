import Foundation
import XCTest
import ITuneDistributed
import ITuneModels
import ITuneTensor
@testable import ITuneTrain

/// The trainer starts a gradient bucket's allreduce during the step's last backward, as soon
/// as the bucket's tensors are final, not after the backward: checked on the order of events
/// that a communicator standing for rank 0 of 2 records (the other rank's sum is left out; the
/// equivalence with one process is DataParallelTests' under mpirun).
final class GradientOverlapTests: XCTestCase {
    /// Rank 0 of `size`: collectives return this rank's values. Each bucket start records the
    /// micro-batch whose backward is running (nil outside one) and whether the embedding —
    /// the tensor the backward finishes last — had a gradient then.
    final class RecordingCommunicator: Communicator {
        struct Start { var elements: Int; var microBatch: UInt64?; var embeddingHadGradient: Bool }
        let size = 2
        var rank: Int { 0 }
        var localRank: Int { 0 }
        var localSize: Int { 2 }
        var description: String { "recording" }
        var embedding: Tensor?
        var starts: [Start] = []
        func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
        func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
        func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
        func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingReduction {
            starts.append(Start(elements: buffer.count, microBatch: TrainingContext.current?.microBatchIndex,
                                embeddingHadGradient: embedding?.grad != nil))
            return Done()
        }
        func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {}
        func barrier() throws {}
        func finalize() throws {}
        func abort(code: Int32) -> Never { fatalError("abort \(code)") }
        final class Done: PendingReduction { func wait() throws {} }
    }

    func train(accumulation: Int) throws -> (Trainer, RecordingCommunicator) {
        let dir = TrainerFixtures.directory("overlap\(accumulation)")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let model = try TrainerFixtures.model()
        let trainable = model.namedParameters()
        let comm = RecordingCommunicator()
        comm.embedding = try XCTUnwrap(trainable.first { $0.0.contains("embed_tokens") }?.1)
        var options = TrainerFixtures.options(steps: 2)
        options.gradientAccumulation = accumulation
        // 1 KB buckets: the tiny model's 6 K parameters (24 KB) fill about 24.
        let trainer = try Trainer(model: model, trainable: trainable, options: options, train: TrainerFixtures.rows(),
                                  outputDirectory: dir, communicator: comm, bucketBytes: 1024)
        _ = try trainer.run()
        return (trainer, comm)
    }

    func testTheFirstBucketStartsBeforeTheBackwardEnds() throws {
        let (trainer, comm) = try train(accumulation: 1)
        let buckets = try XCTUnwrap(trainer.allreduceBuffers)
        let n = buckets.plan.buckets.count
        XCTAssertGreaterThan(n, 3)
        let events = buckets.lastEvents
        let end = try XCTUnwrap(events.firstIndex(of: .backwardEnded))
        let started = events.compactMap { if case let .started(b) = $0 { return b } else { return nil } }
        XCTAssertEqual(started, Array(0..<n), "every bucket once, in order")
        // Every tensor was made ready during the backward (each reaches the tape), and more
        // than one bucket started before the last of them.
        let ready = events.compactMap { if case let .ready(i) = $0 { return i } else { return nil } }
        XCTAssertEqual(ready.sorted(), Array(trainer.trainable.indices))
        let lastReady = try XCTUnwrap(events.lastIndex { if case .ready = $0 { return true } else { return false } })
        XCTAssertLessThan(lastReady, end)
        let startedEarly = events[..<lastReady].filter { if case .started = $0 { return true } else { return false } }.count
        XCTAssertGreaterThan(startedEarly, 1, "buckets started while the backward still computed: \(events)")
        XCTAssertEqual(events.compactMap { if case let .reduced(b) = $0 { return b } else { return nil } }, Array(0..<n))
        XCTAssertTrue(events[..<end].allSatisfy { if case .reduced = $0 { return false } else { return true } })
        XCTAssertEqual(comm.starts.count, 2 * n)
        // The backward was still running: the embedding had no gradient yet.
        XCTAssertEqual(comm.starts.first?.embeddingHadGradient, false)
        XCTAssertNotNil(comm.starts.first?.microBatch)
        XCTAssertEqual(buckets.lastOverlap, Double(buckets.plan.buckets[0..<startedEarly].reduce(0) { $0 + $1.count })
                       / Double(buckets.plan.totalElements), accuracy: 1e-12)
        XCTAssertGreaterThan(buckets.lastOverlap, 0)
        XCTAssertLessThan(buckets.lastOverlap, 1, "the bucket of the embedding, final last, overlaps nothing")
    }

    func testWithAccumulationOnlyTheLastMicroBatchStartsBuckets() throws {
        let (trainer, comm) = try train(accumulation: 2)
        let n = try XCTUnwrap(trainer.allreduceBuffers).plan.buckets.count
        XCTAssertEqual(comm.starts.count, 2 * n)
        // Rank 0's dropout key of micro-batch m is 2m: the last micro-batches are 1 and 3.
        for (step, last) in [(0, UInt64(2)), (1, UInt64(6))] {
            let during = comm.starts[(step * n)..<((step + 1) * n)].compactMap(\.microBatch)
            XCTAssertFalse(during.isEmpty, "step \(step + 1): no bucket started during a backward")
            XCTAssertEqual(Set(during), [last], "step \(step + 1): buckets started in the backward of micro-batch key(s) \(Set(during))")
        }
    }
}
