import Foundation
import ITuneData
import ITuneModels
import ITuneTensor

// checkpoints/step-N: the trainable tensors, the optimizer's moments and state.json (step, loss
// history, options). A checkpoint is written under a temporary name and renamed, holds only
// finite numbers, and is checked whole before anything is restored from it: a damaged one is
// named and the previous one used.

/// What state.json of a checkpoint holds, checked.
struct CheckpointState {
    var step: Int
    var optimizerStep: Int
    var history: [(Int, Double)]
    var validation: [(Int, Double)]
    /// Steps skipped by `NaNPolicy.skipStep` so far.
    var skippedSteps: Int

    /// Parses state.json, naming the file and the field at fault.
    init(contentsOf url: URL) throws {
        func damaged(_ why: String) -> TrainError { TrainError.invalid("\(url.path): \(why)") }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw damaged("cannot read (\(OutputError.from(error, path: url.path)))")
        }
        guard !data.isEmpty else { throw damaged("empty file (a save was interrupted?)") }
        guard let object = try? JSONSerialization.jsonObject(with: data), let state = object as? [String: Any] else {
            throw damaged("not a JSON object (a save was interrupted?)")
        }
        func count(_ key: String) throws -> Int {
            guard let n = state[key] as? Int, n >= 0 else { throw damaged("field '\(key)': missing or not a non-negative integer") }
            return n
        }
        step = try count("step")
        optimizerStep = try count("optimizer_step")
        skippedSteps = state["skipped_steps"] == nil ? 0 : try count("skipped_steps")
        func pairs(_ key: String) throws -> [(Int, Double)] {
            // Losses are read from their bit patterns where present: JSON's decimal round trip
            // may change the last bit, and a resumed run must report the same curve exactly.
            if let raw = state[key + "_bits"] {
                guard let list = raw as? [[String]] else { throw damaged("field '\(key)_bits': not a list of [step, bits] pairs") }
                return try list.enumerated().map { i, p in
                    guard p.count == 2, let s = Int(p[0]), let b = UInt64(p[1], radix: 16) else {
                        throw damaged("field '\(key)_bits[\(i)]': not a [step, hex bits] pair")
                    }
                    return (s, Double(bitPattern: b))
                }
            }
            guard let raw = state[key] else { return [] }
            guard let list = raw as? [[NSNumber]] else { throw damaged("field '\(key)': not a list of [step, loss] pairs") }
            return try list.enumerated().map { i, p in
                guard p.count == 2 else { throw damaged("field '\(key)[\(i)]': not a [step, loss] pair") }
                return (p[0].intValue, p[1].doubleValue)
            }
        }
        history = try pairs("history")
        validation = try pairs("validation")
    }

    init(step: Int, optimizerStep: Int, history: [(Int, Double)], validation: [(Int, Double)], skippedSteps: Int) {
        self.step = step
        self.optimizerStep = optimizerStep
        self.history = history
        self.validation = validation
        self.skippedSteps = skippedSteps
    }

    func json(options: TrainerOptions, totalSteps: Int) throws -> Data {
        func hex(_ list: [(Int, Double)]) -> [[String]] { list.map { [String($0.0), String($0.1.bitPattern, radix: 16)] } }
        // Decimal losses for people reading the file; JSON has no NaN, so a non-finite one is null.
        func decimal(_ list: [(Int, Double)]) -> [[Any]] { list.map { [$0.0, $0.1.isFinite ? $0.1 : NSNull()] } }
        let object: [String: Any] = [
            "step": step, "optimizer_step": optimizerStep, "total_steps": totalSteps, "skipped_steps": skippedSteps,
            "history": decimal(history), "validation": decimal(validation),
            "history_bits": hex(history), "validation_bits": hex(validation),
            "options": try JSONSerialization.jsonObject(with: JSONEncoder().encode(options)),
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }
}

extension Trainer {
    public var checkpointsDirectory: URL { outputDirectory.appendingPathComponent("checkpoints") }

    /// Writes checkpoints/step-N. Refuses (with a divergence error) to write parameters or
    /// moments that are not finite. Written under a temporary name and renamed, so a crash
    /// mid-write leaves the previous checkpoint as the latest; the newest `keepCheckpoints` stay.
    func saveCheckpoint(_ state: CheckpointState) throws -> URL {
        let fm = FileManager.default
        try OutputFiles.prepareDirectory(checkpointsDirectory)
        var moments: [(name: String, tensor: Tensor)] = []
        for ((name, _), m) in zip(trainable, optimizer.moments) {
            moments += [("m." + name, m.m), ("v." + name, m.v)]
        }
        let tensors = trainable.map { (name: $0.0, tensor: $0.1) }
        if let bad = try firstNonFinite(tensors + moments) {
            throw TrainError.diverged(step: state.step, what: "\(bad) holds NaN or infinite values after the update",
                                      lastCheckpoint: lastCheckpointPath())
        }
        let final = checkpointsDirectory.appendingPathComponent("step-\(state.step)")
        let tmp = checkpointsDirectory.appendingPathComponent("\(OutputFiles.temporaryPrefix)step-\(state.step)-\(getpid())")
        do {
            try? fm.removeItem(at: tmp)
            try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
            for (file, list) in [("trainable.safetensors", tensors), ("optimizer.safetensors", moments)] {
                let url = tmp.appendingPathComponent(file)
                try OutputFiles.checkFault(url)
                do { try SafetensorsFile.write(list, to: url) } catch { throw OutputError.from(error, path: url.path) }
            }
            try OutputFiles.writeAtomically(state.json(options: options, totalSteps: totalSteps), to: tmp.appendingPathComponent("state.json"))
            // Replacing a checkpoint of the same step (a run resumed from an earlier one): the old
            // one is moved aside first, so that at every instant one whole step-N exists or none.
            let aside = checkpointsDirectory.appendingPathComponent("\(OutputFiles.temporaryPrefix)old-step-\(state.step)-\(getpid())")
            if fm.fileExists(atPath: final.path) { try fm.moveItem(at: final, to: aside) }
            guard rename(tmp.path, final.path) == 0 else { throw OutputError(path: final.path, errno: errno) }
            try? fm.removeItem(at: aside)
        } catch {
            try? fm.removeItem(at: tmp)
            throw OutputError.from(error, path: final.path)
        }
        for old in checkpointSteps().dropLast(max(1, options.keepCheckpoints)) {
            try? fm.removeItem(at: checkpointsDirectory.appendingPathComponent("step-\(old)"))
        }
        return final
    }

    /// The steps of the checkpoints present, ascending.
    func checkpointSteps() -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsDirectory.path)) ?? []
        return names.compactMap { $0.hasPrefix("step-") ? Int($0.dropFirst(5)) : nil }.filter { $0 >= 0 }.sorted()
    }

    /// The path of the newest checkpoint, for messages.
    func lastCheckpointPath() -> String? {
        checkpointSteps().last.map { checkpointsDirectory.appendingPathComponent("step-\($0)").path }
    }

    /// Restores the newest usable checkpoint; a damaged one is named in `onEvent` and the one
    /// before it tried. nil when there is none; an error naming each when none is usable.
    func loadLatestCheckpoint(onEvent: (TrainerEvent) -> Void) throws -> CheckpointState? {
        let steps = checkpointSteps()
        guard !steps.isEmpty else { return nil }
        var problems: [String] = []
        for step in steps.reversed() {
            let dir = checkpointsDirectory.appendingPathComponent("step-\(step)")
            do {
                return try loadCheckpoint(dir, step: step)
            } catch {
                problems.append("\(error)")
                onEvent(.info("skipping damaged checkpoint \(dir.path): \(error)"))
            }
        }
        throw TrainError.invalid("no usable checkpoint in \(checkpointsDirectory.path) to resume from: " + problems.joined(separator: "; ")
                                 + " (remove the directory to start afresh)")
    }

    /// Reads and checks a whole checkpoint, then restores it: nothing is changed unless all of
    /// it is usable.
    func loadCheckpoint(_ dir: URL, step: Int) throws -> CheckpointState {
        let state = try CheckpointState(contentsOf: dir.appendingPathComponent("state.json"))
        guard state.step == step else {
            throw TrainError.invalid("\(dir.appendingPathComponent("state.json").path): field 'step' is \(state.step), the directory says \(step)")
        }
        let tensorsURL = dir.appendingPathComponent("trainable.safetensors")
        let momentsURL = dir.appendingPathComponent("optimizer.safetensors")
        let file = try SafetensorsFile(url: tensorsURL)
        let opt = try SafetensorsFile(url: momentsURL)
        var values: [[Float]] = []
        var moments: [(m: [Float], v: [Float])] = []
        for (name, t) in trainable {
            func read(_ f: SafetensorsFile, _ key: String, _ url: URL) throws -> [Float] {
                let v = try f.floats(key)
                guard v.count == t.count else {
                    throw TrainError.invalid("\(url.path): tensor \(key) has \(v.count) values, the model's \(name) has \(t.count)")
                }
                guard v.allSatisfy(\.isFinite) else { throw TrainError.invalid("\(url.path): tensor \(key) holds NaN or infinite values") }
                return v
            }
            values.append(try read(file, name, tensorsURL))
            moments.append((try read(opt, "m." + name, momentsURL), try read(opt, "v." + name, momentsURL)))
        }
        for ((_, t), v) in zip(trainable, values) { try t.assign(v) }
        try optimizer.restore(step: state.optimizerStep, moments: moments)
        return state
    }

    /// The name of the first tensor holding a NaN or infinity, or nil.
    func firstNonFinite(_ tensors: [(name: String, tensor: Tensor)]) throws -> String? {
        for (name, t) in tensors where !(try t.toArray().allSatisfy(\.isFinite)) { return name }
        return nil
    }
}
