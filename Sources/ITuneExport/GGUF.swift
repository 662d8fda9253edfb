import Foundation

// GGUF v3, the file format of llama.cpp (ggml's docs/gguf.md):
//   "GGUF" magic (u32 0x46554747, little-endian), version u32 = 3, tensor count u64, metadata
//   count u64; metadata as key (u64 length + UTF-8) · value type u32 · value; tensor infos as
//   name · n_dims u32 · dims u64 (innermost first, the reverse of PyTorch's shape) · ggml type
//   u32 · offset u64 (from the start of the data section); padding to the alignment; the data,
//   every tensor padded to the alignment (the last one too, as gguf-py writes it).

/// A GGUF metadata value. Arrays hold one element type; nested arrays are not written here.
public enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    /// An array of values of `type` (every element must be of that type).
    case array(GGUFValueType, [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }

    /// The value as a string, nil for other types.
    public var string: String? { if case let .string(s) = self { return s } else { return nil } }
    /// The value as an integer, for any integer type.
    public var integer: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(v)
        default: return nil
        }
    }
    public var float: Float? { if case let .float32(v) = self { return v } else { return nil } }
    public var array: [GGUFValue]? { if case let .array(_, a) = self { return a } else { return nil } }
}

/// GGUF's value type codes.
public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7, string = 8
    case array = 9, uint64 = 10, int64 = 11, float64 = 12
}

/// The ggml tensor types this package writes and reads.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q8_0 = 8, bf16 = 30

    /// Elements per block and bytes per block.
    public var blockSize: Int { self == .q8_0 ? 32 : 1 }
    public var typeSize: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q8_0: return 34
        }
    }

    /// Bytes of a row of `n` elements, nil when `n` is not a whole number of blocks.
    public func rowBytes(_ n: Int) -> Int? {
        guard n % blockSize == 0 else { return nil }
        let (b, o) = (n / blockSize).multipliedReportingOverflow(by: typeSize)
        return o ? nil : b
    }
}

/// One tensor of a GGUF file: `shape` in PyTorch's order (outermost first), its ggml type and
/// its stored bytes.
public struct GGUFTensor: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var type: GGMLType
    public var data: Data

    public init(name: String, shape: [Int], type: GGMLType, data: Data) {
        self.name = name
        self.shape = shape
        self.type = type
        self.data = data
    }
}

public enum GGUFError: Error, CustomStringConvertible, Equatable {
    case malformed(file: String, String)
    case invalid(String)

    public var description: String {
        switch self {
        case let .malformed(file, why): return "\(file): \(why)"
        case let .invalid(why): return why
        }
    }
}

/// A GGUF file in memory: metadata in the order it is written, tensors in order.
public struct GGUFFile: Sendable {
    public static let magic: UInt32 = 0x4655_4747
    public static let version: UInt32 = 3
    public static let defaultAlignment = 32

    public private(set) var metadata: [(key: String, value: GGUFValue)] = []
    public private(set) var tensors: [GGUFTensor] = []

    public init() {}

    /// The value of `key`, nil when absent.
    public subscript(key: String) -> GGUFValue? { metadata.first { $0.key == key }?.value }

    /// Appends `key` (or replaces its value in place, keeping its position, as gguf-py's writer does).
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.key == key }) { metadata[i].value = value } else {
            metadata.append((key, value))
        }
    }

    public mutating func add(_ tensor: GGUFTensor) throws {
        guard !tensors.contains(where: { $0.name == tensor.name }) else { throw GGUFError.invalid("tensor \(tensor.name) added twice") }
        guard let last = tensor.shape.last, let row = tensor.type.rowBytes(last) else {
            throw GGUFError.invalid("tensor \(tensor.name): shape \(tensor.shape) is not whole \(tensor.type) blocks")
        }
        let rows = tensor.shape.dropLast().reduce(1, *)
        guard rows * row == tensor.data.count else {
            throw GGUFError.invalid("tensor \(tensor.name): \(tensor.type) \(tensor.shape) needs \(rows * row) bytes, got \(tensor.data.count)")
        }
        tensors.append(tensor)
    }

    public func tensor(_ name: String) -> GGUFTensor? { tensors.first { $0.name == name } }

    /// The data alignment: `general.alignment` when present, else 32.
    public var alignment: Int { self["general.alignment"]?.integer ?? Self.defaultAlignment }

    // MARK: - Writing

    /// The file's bytes.
    public func serialized() throws -> Data {
        let align = alignment
        guard align > 0, align <= 1 << 20, align % 8 == 0 else { throw GGUFError.invalid("general.alignment \(align) must be a positive multiple of 8") }
        var w = ByteWriter()
        w.u32(Self.magic)
        w.u32(Self.version)
        w.u64(UInt64(tensors.count))
        w.u64(UInt64(metadata.count))
        for (key, value) in metadata {
            w.string(key)
            w.u32(value.type.rawValue)
            try w.value(value, key: key)
        }
        var offset = 0
        for t in tensors {
            w.string(t.name)
            w.u32(UInt32(t.shape.count))
            for d in t.shape.reversed() { w.u64(UInt64(d)) }
            w.u32(t.type.rawValue)
            w.u64(UInt64(offset))
            offset += padded(t.data.count, align)
        }
        w.pad(to: align)
        for t in tensors {
            w.bytes.append(t.data)
            w.pad(to: align)
        }
        return w.bytes
    }

    // MARK: - Reading

    /// Parses a GGUF file. Every length and offset is checked against the file: a truncated or
    /// lying file is an error naming the file and the key or tensor, never a crash.
    public init(data: Data, file: String = "(gguf)") throws {
        var r = ByteReader(bytes: [UInt8](data), file: file)
        guard try r.u32("magic") == Self.magic else { throw GGUFError.malformed(file: file, "not a GGUF file (bad magic)") }
        let version = try r.u32("version")
        guard version == 2 || version == 3 else { throw GGUFError.malformed(file: file, "GGUF version \(version) is not supported (2 or 3)") }
        let nTensors = try r.count("tensor count")
        let nKV = try r.count("metadata count")
        for _ in 0..<nKV {
            let key = try r.string("metadata key")
            guard let type = GGUFValueType(rawValue: try r.u32(key)) else { throw GGUFError.malformed(file: file, "\(key): unknown value type") }
            set(key, try r.value(type, key: key))
        }
        var infos: [(String, [Int], GGMLType, Int)] = []
        for _ in 0..<nTensors {
            let name = try r.string("tensor name")
            let nDims = Int(try r.u32(name))
            guard nDims >= 1, nDims <= 4 else { throw GGUFError.malformed(file: file, "tensor \(name): \(nDims) dimensions") }
            var dims: [Int] = []
            for _ in 0..<nDims { dims.append(try r.count("tensor \(name) dimension")) }
            let rawType = try r.u32(name)
            guard let type = GGMLType(rawValue: rawType) else {
                throw GGUFError.malformed(file: file, "tensor \(name): ggml type \(rawType) is not supported (f32, f16, bf16, q8_0)")
            }
            infos.append((name, dims.reversed(), type, try r.count("tensor \(name) offset")))
        }
        let align = alignment
        guard align > 0, align <= 1 << 20 else { throw GGUFError.malformed(file: file, "general.alignment is \(align) (expected 1 to 2^20)") }
        let dataStart = padded(r.position, align)
        for (name, shape, type, offset) in infos {
            let elements = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            guard !elements.1, let last = shape.last, let row = type.rowBytes(last) else {
                throw GGUFError.malformed(file: file, "tensor \(name): shape \(shape) is not whole \(type) blocks")
            }
            let (size, o1) = (elements.0 / max(last, 1)).multipliedReportingOverflow(by: row)
            let (begin, o2) = dataStart.addingReportingOverflow(offset)
            guard !o1, !o2, offset % align == 0, begin + size <= r.bytes.count else {
                throw GGUFError.malformed(file: file, "tensor \(name): \(size) bytes at offset \(offset) lie outside the file or are misaligned")
            }
            tensors.append(GGUFTensor(name: name, shape: shape, type: type, data: Data(r.bytes[begin..<(begin + size)])))
        }
    }

    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw GGUFError.malformed(file: url.path, "cannot read: \(error.localizedDescription)") }
        try self.init(data: data, file: url.path)
    }
}

func padded(_ n: Int, _ align: Int) -> Int { (n + align - 1) / align * align }

struct ByteWriter {
    var bytes = Data()
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u64(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }
    mutating func pad(to align: Int) {
        let n = padded(bytes.count, align) - bytes.count
        if n > 0 { bytes.append(contentsOf: [UInt8](repeating: 0, count: n)) }
    }

    mutating func value(_ v: GGUFValue, key: String) throws {
        switch v {
        case let .uint8(x): bytes.append(x)
        case let .int8(x): bytes.append(UInt8(bitPattern: x))
        case let .uint16(x): withUnsafeBytes(of: x.littleEndian) { bytes.append(contentsOf: $0) }
        case let .int16(x): withUnsafeBytes(of: x.littleEndian) { bytes.append(contentsOf: $0) }
        case let .uint32(x): u32(x)
        case let .int32(x): u32(UInt32(bitPattern: x))
        case let .float32(x): u32(x.bitPattern)
        case let .bool(x): bytes.append(x ? 1 : 0)
        case let .string(s): string(s)
        case let .uint64(x): u64(x)
        case let .int64(x): u64(UInt64(bitPattern: x))
        case let .float64(x): u64(x.bitPattern)
        case let .array(type, items):
            guard type != .array else { throw GGUFError.invalid("\(key): nested arrays are not written") }
            guard items.allSatisfy({ $0.type == type }) else { throw GGUFError.invalid("\(key): array elements are not all \(type)") }
            u32(type.rawValue)
            u64(UInt64(items.count))
            for item in items { try value(item, key: key) }
        }
    }
}

struct ByteReader {
    let bytes: [UInt8]
    let file: String
    var position = 0

    init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    mutating func take(_ n: Int, _ what: String) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - position else {
            throw GGUFError.malformed(file: file, "\(what): needs \(n) bytes at offset \(position), the file has \(bytes.count): truncated?")
        }
        defer { position += n }
        return bytes[position..<(position + n)]
    }

    mutating func uint<T: FixedWidthInteger>(_ type: T.Type, _ what: String) throws -> T {
        let s = try take(MemoryLayout<T>.size, what)
        return s.reversed().reduce(T(0)) { ($0 << 8) | T($1) }
    }
    mutating func u32(_ what: String) throws -> UInt32 { try uint(UInt32.self, what) }
    mutating func u64(_ what: String) throws -> UInt64 { try uint(UInt64.self, what) }

    /// A u64 count or offset that must fit the file.
    mutating func count(_ what: String) throws -> Int {
        let v = try u64(what)
        guard v <= UInt64(Int32.max) * 64 else { throw GGUFError.malformed(file: file, "\(what) \(v) is implausibly large") }
        return Int(v)
    }

    mutating func string(_ what: String) throws -> String {
        let n = try count("\(what) length")
        let s = try take(n, what)
        guard let str = String(bytes: s, encoding: .utf8) else { throw GGUFError.malformed(file: file, "\(what) is not UTF-8") }
        return str
    }

    mutating func value(_ type: GGUFValueType, key: String) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try uint(UInt8.self, key))
        case .int8: return .int8(Int8(bitPattern: try uint(UInt8.self, key)))
        case .uint16: return .uint16(try uint(UInt16.self, key))
        case .int16: return .int16(Int16(bitPattern: try uint(UInt16.self, key)))
        case .uint32: return .uint32(try u32(key))
        case .int32: return .int32(Int32(bitPattern: try u32(key)))
        case .float32: return .float32(Float(bitPattern: try u32(key)))
        case .bool:
            let b = try uint(UInt8.self, key)
            guard b <= 1 else { throw GGUFError.malformed(file: file, "\(key): bool byte \(b)") }
            return .bool(b == 1)
        case .string: return .string(try string(key))
        case .uint64: return .uint64(try u64(key))
        case .int64: return .int64(Int64(bitPattern: try u64(key)))
        case .float64: return .float64(Double(bitPattern: try u64(key)))
        case .array:
            guard let elementType = GGUFValueType(rawValue: try u32(key)), elementType != .array else {
                throw GGUFError.malformed(file: file, "\(key): unknown or nested array element type")
            }
            let n = try count("\(key) array length")
            // Each element takes at least one byte: a count beyond the file is a lie, not an allocation.
            guard n <= bytes.count - position else { throw GGUFError.malformed(file: file, "\(key): array of \(n) elements runs past the end of the file") }
            var items: [GGUFValue] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try value(elementType, key: key)) }
            return .array(elementType, items)
        }
    }
}
