import Foundation

/// One worker's part of a `GemmWorkspace`: a buffer (its packed A block, or its partial
/// sums) and an edge tile of C.
struct GemmScratch {
    let buffer: UnsafeMutablePointer<Float>
    let tile: UnsafeMutablePointer<Float>
}

/// Scratch memory for one cpuSgemm call: a buffer shared by all workers (the packed B block)
/// and one `GemmScratch` per worker. Workspaces are kept in a free list and grown on demand,
/// so repeated calls allocate nothing, and concurrent calls (e.g. from inside another
/// parallel loop) each get their own.
final class GemmWorkspace {
    private(set) var shared: UnsafeMutablePointer<Float>
    private var sharedCapacity: Int
    private var perWorker: UnsafeMutablePointer<Float>
    private var perWorkerCapacity: Int
    private var bufferFloats = 0, stride = 0

    private static let lock = NSLock()
    nonisolated(unsafe) private static var free: [GemmWorkspace] = []

    private init() {
        sharedCapacity = 16
        shared = Self.allocateAligned(sharedCapacity)
        perWorkerCapacity = 16
        perWorker = Self.allocateAligned(perWorkerCapacity)
    }

    /// A workspace with room for `sharedFloats` shared and `perWorkerFloats` per worker.
    static func take(sharedFloats: Int, perWorkerFloats: Int, workers: Int) -> GemmWorkspace {
        lock.lock()
        let ws = free.popLast() ?? GemmWorkspace()
        lock.unlock()
        ws.reserve(sharedFloats: sharedFloats, perWorkerFloats: perWorkerFloats, workers: workers)
        return ws
    }

    static func give(_ ws: GemmWorkspace) {
        lock.lock()
        free.append(ws)
        lock.unlock()
    }

    private func reserve(sharedFloats: Int, perWorkerFloats: Int, workers: Int) {
        if sharedFloats > sharedCapacity {
            UnsafeMutableRawPointer(shared).deallocate()
            sharedCapacity = sharedFloats
            shared = Self.allocateAligned(sharedCapacity)
        }
        // Each part starts on a 64-byte boundary.
        bufferFloats = gemmRoundUp(perWorkerFloats, 16)
        stride = bufferFloats + gemmRoundUp(GemmBlocking.maxTile, 16)
        if stride * workers > perWorkerCapacity {
            UnsafeMutableRawPointer(perWorker).deallocate()
            perWorkerCapacity = stride * workers
            perWorker = Self.allocateAligned(perWorkerCapacity)
        }
    }

    func scratch(_ worker: Int) -> GemmScratch {
        let base = perWorker + worker * stride
        return GemmScratch(buffer: base, tile: base + bufferFloats)
    }

    private static func allocateAligned(_ floats: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: floats * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: floats)
    }

    deinit {
        UnsafeMutableRawPointer(shared).deallocate()
        UnsafeMutableRawPointer(perWorker).deallocate()
    }
}
