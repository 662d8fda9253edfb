import Foundation
import ITuneTensor

/// The weights of a Hugging Face model directory: `model.safetensors`, or shards listed by
/// `model.safetensors.index.json` (`{"weight_map": {name: shard file}}`).
public final class Checkpoint {
    public let directory: URL
    private var files: [String: SafetensorsFile] = [:]
    /// Tensor name → the file that holds it.
    public let location: [String: String]

    public init(directory: URL) throws {
        self.directory = directory
        let fm = FileManager.default
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        let single = directory.appendingPathComponent("model.safetensors")
        if fm.fileExists(atPath: index.path) {
            guard let data = fm.contents(atPath: index.path),
                  let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw ModelFileError.malformed(file: index.path, "not a JSON object")
            }
            guard let map = json["weight_map"] as? [String: String] else {
                throw ModelFileError.missingField(file: index.path, field: "weight_map")
            }
            for shard in Set(map.values) where !fm.fileExists(atPath: directory.appendingPathComponent(shard).path) {
                throw ModelFileError.unreadable(file: directory.appendingPathComponent(shard).path,
                                                "listed in \(index.lastPathComponent) but missing")
            }
            location = map
        } else if fm.fileExists(atPath: single.path) {
            let file = try SafetensorsFile(url: single)
            files[single.lastPathComponent] = file
            location = Dictionary(uniqueKeysWithValues: file.names.map { ($0, single.lastPathComponent) })
        } else {
            throw ModelFileError.unreadable(file: directory.path, "no model.safetensors or model.safetensors.index.json")
        }
    }

    public var names: [String] { location.keys.sorted() }

    public func contains(_ name: String) -> Bool { location[name] != nil }

    func file(for name: String) throws -> SafetensorsFile {
        guard let shard = location[name] else {
            throw ModelFileError.missingTensor(name: name, file: directory.path)
        }
        if let f = files[shard] { return f }
        let f = try SafetensorsFile(url: directory.appendingPathComponent(shard))
        files[shard] = f
        return f
    }

    /// The tensor `name` as f32 on `device`, checked against `shape` when given.
    public func tensor(_ name: String, on device: Device, shape: [Int]? = nil) throws -> Tensor {
        try file(for: name).tensor(name, on: device, expectedShape: shape)
    }

    /// The tensor `name` on `device` stored as `dtype` (a 16-bit one kept as the file stores
    /// it when the formats agree), checked against `shape` when given.
    public func tensor(_ name: String, on device: Device, shape: [Int]? = nil, storing dtype: DType) throws -> Tensor {
        try file(for: name).tensor(name, on: device, expectedShape: shape, storing: dtype)
    }

    /// The storage format of the checkpoint's matrices (the 2-D tensors: projections and
    /// embeddings): `.bf16` or `.f16` when most of them are stored so, else `.f32`. What
    /// `--base-dtype` defaults to under LoRA.
    public func matrixDType() throws -> DType {
        var counts: [String: Int] = [:]
        for name in names {
            let e = try file(for: name).entry(name)
            if e.shape.count == 2 { counts[e.dtype, default: 0] += e.count }
        }
        switch counts.max(by: { $0.value < $1.value })?.key {
        case "BF16": return .bf16
        case "F16": return .f16
        default: return .f32
        }
    }

    /// The dtype the checkpoint stores `name` in.
    public func dtype(of name: String) throws -> String { try file(for: name).entry(name).dtype }
}
