import Foundation

/// Reverse-mode autograd over a tape recorded during the forward pass.
///
/// Each op that has an input requiring gradients appends one entry: its inputs, its output
/// and a closure from the output's gradient to the inputs' gradients. `backward()` walks the
/// tape the loss was recorded on from the end. Tensors that do not require gradients (frozen
/// weights under LoRA) record nothing and get no gradient buffer.
///
/// The tape holds gradient nodes (where each tensor's gradient collects), never tensors: an op
/// keeps alive only what its backward closure captures, on purpose (a frozen weight's product
/// keeps the weight, not its input; an addition keeps nothing), so the activations a step holds
/// are exactly what its backward reads.
///
/// No tape belongs to the process. Ops record on the tape of the `TrainingContext` bound to the
/// current task (`context.run { … }`); outside any context, on the tape of the current thread
/// (so that a test or a small program can call `loss.backward()` without ceremony). Two models
/// training at once — on two devices, or a policy beside a reference — each use their own.
public final class GradientTape {
    struct Entry {
        let op: String
        /// One per input: its node where the input required gradients when recorded, else nil.
        let inputs: [GradientNode?]
        let output: GradientNode
        let backward: (Tensor) throws -> [Tensor?]
        /// Whether each gradient the backward returns is a tensor of its own (made by the
        /// backward, or kept by its closure alone, and handed to one input): the input then
        /// owns it, and later gradients are added into it in place.
        let freshGradients: Bool
    }

    private var entries: [Entry] = []
    /// With `logsOutputs`, each recorded output's storage (weakly) by op: what the forward
    /// still holds is what the backward closures saved (`liveOutputBytes`).
    private var outputLog: [(op: String, storage: WeakStorage)] = []
    struct WeakStorage { weak var storage: Storage? }

    /// Whether recording logs each output's storage for `liveOutputBytes` (off: costs nothing).
    public var logsOutputs = false

    /// Bytes of recorded ops' outputs still alive now, by op (a storage shared by reshapes
    /// counts once, under the op that made it): after a forward, the activations the backward
    /// will read, plus whatever the caller still holds (the loss).
    public func liveOutputBytes() -> [(op: String, bytes: Int)] {
        var seen = Set<ObjectIdentifier>()
        var total: [String: Int] = [:]
        for (op, ref) in outputLog {
            guard let s = ref.storage, seen.insert(ObjectIdentifier(s)).inserted else { continue }
            total[op, default: 0] += s.byteCount
        }
        return total.map { (op: $0.key, bytes: $0.value) }.sorted { $0.bytes > $1.bytes }
    }

    public init() {}

    public var count: Int { entries.count }

    /// Drops everything recorded (e.g. after an evaluation forward with grad mode on).
    public func reset() { entries.removeAll(keepingCapacity: true); outputLog.removeAll() }

    /// The tape ops record on here: the bound training context's, else this thread's own.
    public static var current: GradientTape {
        if let tape = recomputing { return tape }
        if let context = TrainingContext.current { return context.tape }
        return threadTape
    }

    /// Whether ops record now: false inside `noGrad { }` (task-local, so a `noGrad` on one
    /// thread or task does not switch recording off for another).
    public static var isRecording: Bool { GradMode.enabled }

    /// Records `op` if grad mode is on and an input requires gradients; marks the output as
    /// requiring gradients then. `backward` gets the output's gradient and returns one
    /// gradient per input (nil where the input needs none). `freshGradients`: each returned
    /// gradient is its own tensor, shared with nothing (Entry.freshGradients); by default a
    /// gradient may be shared (an addition hands its output's gradient to both operands).
    static func record(_ op: String, inputs: [Tensor], output: Tensor, freshGradients: Bool = false,
                       backward: @escaping (Tensor) throws -> [Tensor?]) {
        guard GradMode.enabled, inputs.contains(where: { $0.requiresGrad }) else { return }
        let tape = current
        output.requiresGrad = true
        output.isLeaf = false
        output.tape = tape
        let node = output.node
        node.isLeaf = false
        tape.entries.append(Entry(op: op, inputs: inputs.map { $0.requiresGrad ? $0.node : nil }, output: node,
                                  backward: backward, freshGradients: freshGradients))
        if tape.logsOutputs { tape.outputLog.append((op, WeakStorage(storage: output.storage))) }
    }

    /// Propagates from `root` (seeded with `seed`, default ones) to every tensor on the tape.
    /// Leaves accumulate into `grad`; the tape is cleared.
    ///
    /// `final(i)` is called once for each of `watched` (leaves: parameters) as soon as this
    /// backward adds nothing more to its gradient, which is then read: after the walk passes the
    /// earliest entry that reads it (a tied embedding is final only at the end, a checkpointed
    /// block's weights when its recomputation is done), or at the start for a leaf the tape
    /// never reads. A data-parallel trainer starts a gradient bucket's allreduce from it while
    /// the rest of the backward runs.
    func backward(from root: Tensor, seed: Tensor?, watched: [Tensor] = [], final: ((Int) throws -> Void)? = nil) throws {
        guard root.requiresGrad else {
            throw TensorError.noGradient("backward: the tensor does not require gradients (no parameter with requiresGrad took part, or it ran under noGrad)")
        }
        // A result of ops must have been recorded here; a second backward through the same
        // forward (whose entries the first one consumed) would otherwise give no gradients.
        guard root.node.isLeaf || entries.contains(where: { $0.output === root.node }) else {
            throw TensorError.noGradient("backward: this tensor's graph is not on the tape: a backward already ran through it (run the forward again, as PyTorch requires without retain_graph), or the training context it was recorded in has ended")
        }
        defer { entries.removeAll(keepingCapacity: true); outputLog.removeAll() }
        // Entry index → the watched leaves it is the earliest reader of (one forward scan).
        var finishing: [Int: [Int]] = [:]
        var unread: [Int] = []
        if final != nil, !watched.isEmpty {
            var slot: [ObjectIdentifier: [Int]] = [:]
            for (i, t) in watched.enumerated() { slot[ObjectIdentifier(t.node), default: []].append(i) }
            for (k, e) in entries.enumerated() where !slot.isEmpty {
                for case let input? in e.inputs {
                    guard let found = slot.removeValue(forKey: ObjectIdentifier(input)) else { continue }
                    finishing[k, default: []] += found
                }
            }
            unread = slot.values.flatMap { $0 }.sorted()
        }
        try noGrad {
            let g = try seed ?? Tensor.full(root.shape, 1, on: root.device)
            try accumulate(g, into: root.node)
            for i in unread { try final?(i) }
            for k in entries.indices.reversed() {
                let e = entries[k]
                if let g = e.output.grad {
                    let grads = try e.backward(g)
                    guard grads.count == e.inputs.count else {
                        fatalError("\(e.op): backward returned \(grads.count) gradients for \(e.inputs.count) inputs")
                    }
                    // A fresh gradient becomes its input's own and is added into in place: two
                    // inputs holding one buffer would each see the other's additions.
                    if e.freshGradients {
                        let storages = grads.compactMap { $0.map { ObjectIdentifier($0.storage) } }
                        guard Set(storages).count == storages.count else {
                            throw TensorError.invalidArgument(op: e.op, "its backward says its gradients are fresh but hands one buffer to two inputs")
                        }
                    }
                    for (input, gi) in zip(e.inputs, grads) {
                        guard let input, let gi else { continue }
                        guard gi.shape == input.shape else {
                            fatalError("\(e.op): gradient shape \(gi.shape) for input of shape \(input.shape)")
                        }
                        try accumulate(gi, into: input, fresh: e.freshGradients)
                    }
                    // Intermediate gradients are not needed once passed on.
                    if !e.output.isLeaf { e.output.grad = nil; e.output.ownsGrad = false }
                }
                if let done = finishing[k] { for i in done { try final?(i) } }
            }
        }
    }

    /// grad += g, in place when the gradient buffer is the node's own. A first gradient becomes
    /// the node's own when it is `fresh` (shared with nothing).
    private func accumulate(_ g: Tensor, into t: GradientNode, fresh: Bool = false) throws {
        if let existing = t.grad {
            if t.ownsGrad {
                try existing.addInPlace(g)
            } else {
                t.grad = try existing + g
                t.ownsGrad = true
            }
        } else {
            t.grad = g  // unless fresh, may be shared with another tensor until a second gradient arrives
            t.ownsGrad = fresh
        }
    }

    // MARK: the thread's own tape

    private static let threadKey: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { raw in
            guard let raw else { return }
            Unmanaged<GradientTape>.fromOpaque(raw).release()
        }
        guard rc == 0 else { fatalError("pthread_key_create failed (\(rc))") }
        return key
    }()

    private static var threadTape: GradientTape {
        if let raw = pthread_getspecific(threadKey) {
            return Unmanaged<GradientTape>.fromOpaque(raw).takeUnretainedValue()
        }
        let tape = GradientTape()
        pthread_setspecific(threadKey, Unmanaged.passRetained(tape).toOpaque())
        return tape
    }
}

/// A tensor's place in the autograd graph: where its gradient collects. The tape refers to
/// these, so that a recorded op keeps its inputs' and output's values alive only where its
/// backward closure captures them.
final class GradientNode {
    /// The tensor's shape (the gradient's).
    let shape: [Int]
    var grad: Tensor?
    /// Whether `grad` may be modified in place (it is not shared with another tensor).
    var ownsGrad = false
    /// false for a recorded op's output: its gradient is dropped once passed on.
    var isLeaf = true

    init(shape: [Int]) { self.shape = shape }
}

extension Tensor {
    /// What a backward closure keeps to read this tensor's values: its recipe when it has one
    /// (`recompute`: the values are made again, bit for bit, from tensors kept anyway), else the
    /// tensor. Called inside the backward.
    func keptForBackward() -> () throws -> Tensor {
        guard GradientTape.recomputesKeptValues, let share = recomputeShare() else { return { self } }
        share.addHolder()
        return { try share.value() }
    }

    /// The shared recipe of this tensor's values (`sharedRecompute`, made from `recompute` the
    /// first time it is asked for); nil for a tensor without one.
    func recomputeShare() -> SharedRecompute? {
        if let share = sharedRecompute { return share }
        guard let recompute else { return nil }
        let share = SharedRecompute(recompute)
        sharedRecompute = share
        return share
    }
}

/// A recomputed value shared by the backward closures that keep the same tensor's recipe: the
/// first to ask makes it, the last of them drops it. (Each made its own: the q, k and v
/// projections read one RMSNorm output, and the 135M step ran 211 RMSNorms where 121 do.)
/// A reshaped tensor's recipe is its source's, reshaped, so the views of one value share it too.
/// A closure that asks twice, or a backward run again, makes the value again (never a wrong
/// value, at worst the cost of each closure making its own); one that never asks (its output got
/// no gradient) leaves the value held until the tape is freed. Used as the tape is, from one thread.
final class SharedRecompute {
    private let make: () throws -> Tensor
    /// A view's share: the source's, whose holders and value it uses.
    private let base: SharedRecompute?
    /// The closures that keep this recipe, and the values they have been given.
    private var holders = 0, served = 0
    private var kept: Tensor?

    init(_ make: @escaping () throws -> Tensor) { self.make = make; base = nil }

    /// The recipe of `share`'s value reshaped to `shape`.
    init(reshaping share: SharedRecompute, to shape: [Int]) {
        base = share
        make = { try share.value().reshaped(shape) }
    }

    func addHolder() {
        if let base { base.addHolder() } else { holders += 1 }
    }

    func value() throws -> Tensor {
        if base != nil { return try make() }
        let v = try kept ?? make()
        served += 1
        kept = served < holders ? v : nil
        return v
    }
}

extension GradientTape {
    /// Whether backward closures keep recipes instead of tensors (`keptForBackward`); off only
    /// in tests that compare the two (the gradients are the same bits).
    @TaskLocal static var recomputesKeptValues = true
}

/// Whether ops record on a tape. Task-local: `noGrad` in one task or thread leaves the others
/// recording.
enum GradMode {
    @TaskLocal static var enabled = true
}

extension Tensor {
    /// Computes gradients of this tensor (a scalar loss, or with `seed` of the same shape)
    /// with respect to every tensor that requires them, on the tape this tensor was recorded on.
    public func backward(seed: Tensor? = nil) throws {
        try (tape ?? GradientTape.current).backward(from: self, seed: seed)
    }

    /// `backward(seed:)` that calls `final(i)` once for each of `watched` (leaves, e.g. the
    /// trainable parameters) as soon as its gradient is complete for this backward — before
    /// the backward ends when the leaf is read early in the forward's order reversed — so that
    /// a caller can use the gradient (send it to other ranks) while the rest runs. A leaf this
    /// backward does not reach is final at once (its gradient, if any, is from earlier passes).
    public func backward(seed: Tensor? = nil, watching watched: [Tensor], final: (Int) throws -> Void) throws {
        try withoutActuallyEscaping(final) { final in
            try (tape ?? GradientTape.current).backward(from: self, seed: seed, watched: watched, final: final)
        }
    }
}

/// Runs `body` without recording anything (inference, optimizer updates). Scoped to the
/// current task or thread.
public func noGrad<T>(_ body: () throws -> T) rethrows -> T {
    try GradMode.$enabled.withValue(false, operation: body)
}
