import Foundation
import ITuneTensor

/// A `.safetensors` file, memory-mapped: an 8-byte little-endian header length N, N bytes of
/// JSON naming each tensor's dtype, shape and `[begin, end)` byte range in the data that
/// follows, and an optional `__metadata__` map of strings.
///
/// Everything in the header is checked against the file before any tensor is read: a
/// truncated or lying file is an error naming the file and the tensor, never a crash.
public final class SafetensorsFile {
    public struct Entry: Sendable {
        public let name: String
        /// The dtype as the file spells it: F32, F16, BF16, I64, …
        public let dtype: String
        public let shape: [Int]
        /// Byte range relative to the start of the data section.
        public let range: Range<Int>
        public var count: Int { shape.reduce(1, *) }
    }

    public let url: URL
    public let entries: [String: Entry]
    public let metadata: [String: String]
    /// Names in file order (by offset).
    public let names: [String]

    private let mapping: UnsafeMutableRawPointer
    private let fileSize: Int
    private let dataStart: Int

    /// The reference reader refuses headers over 100 MB; so do we.
    public static let maxHeaderBytes = 100 * 1024 * 1024

    static let byteSizes: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
        "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
    ]

    public init(url: URL) throws {
        self.url = url
        let path = url.path
        func fail(_ msg: String) -> ModelFileError { .malformed(file: path, msg) }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ModelFileError.unreadable(file: path, String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ModelFileError.unreadable(file: path, String(cString: strerror(errno))) }
        let fileSize = Int(st.st_size)
        self.fileSize = fileSize
        guard fileSize >= 8 else { throw fail("file is \(fileSize) bytes, too short for the 8-byte header length") }
        guard let m = mmap(nil, fileSize, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
            throw ModelFileError.unreadable(file: path, "mmap: \(String(cString: strerror(errno)))")
        }
        mapping = m
        var ok = false
        defer { if !ok { munmap(m, fileSize) } }

        // Compared as UInt64: a length of 2^63 or more does not fit an Int.
        let rawLength = m.loadUnaligned(as: UInt64.self).littleEndian
        guard rawLength <= UInt64(Self.maxHeaderBytes) else { throw fail("header length \(rawLength) exceeds 100 MB") }
        let headerLength = Int(rawLength)
        guard headerLength <= fileSize - 8 else {
            throw fail("header length \(headerLength) runs past the end of the file (\(fileSize) bytes): truncated?")
        }
        let dataStart = 8 + headerLength
        self.dataStart = dataStart
        let headerData = Data(bytes: m + 8, count: headerLength)
        guard let json = try? JSONSerialization.jsonObject(with: headerData), let header = json as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        let dataSize = fileSize - dataStart
        for (name, value) in header {
            if name == "__metadata__" {
                guard let meta = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in meta {
                    guard let s = v as? String else { throw fail("__metadata__.\(k) is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any] else { throw fail("tensor \(name): entry is not an object") }
            guard let dtype = info["dtype"] as? String else { throw fail("tensor \(name): missing dtype") }
            guard let size = Self.byteSizes[dtype] else { throw fail("tensor \(name): unknown dtype \(dtype)") }
            guard let shapeAny = info["shape"] as? [Any] else { throw fail("tensor \(name): missing shape") }
            let shape = shapeAny.compactMap(exactInteger)
            guard shape.count == shapeAny.count, shape.allSatisfy({ $0 >= 0 }) else {
                throw fail("tensor \(name): bad shape \(shapeAny) (dimensions must be non-negative integers)")
            }
            guard let offs = info["data_offsets"] as? [Any], offs.count == 2,
                  let begin = exactInteger(offs[0]), let end = exactInteger(offs[1]) else {
                throw fail("tensor \(name): data_offsets must be two integers [begin, end]")
            }
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw fail("tensor \(name): data_offsets [\(begin), \(end)) lie outside the \(dataSize) data bytes: truncated?")
            }
            // Checked: a shape like [2^62] must be an error, not an overflow trap.
            let (count, overflow) = shape.reduce((1, false)) { acc, d in
                let (r, o) = acc.0.multipliedReportingOverflow(by: d)
                return (r, acc.1 || o)
            }
            let (bytes, bytesOverflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow, !bytesOverflow else {
                throw fail("tensor \(name): \(dtype) \(shape) has more bytes than a file can hold")
            }
            guard bytes == end - begin else {
                throw fail("tensor \(name): \(dtype) \(shape) needs \(bytes) bytes, data_offsets give \(end - begin)")
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape, range: begin..<end)
        }
        // The data must be covered without holes or overlaps, as the reference reader demands.
        let ordered = entries.values.sorted { ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound) }
        var cursor = 0
        for e in ordered {
            guard e.range.lowerBound == cursor else {
                throw fail("tensor \(e.name): starts at \(e.range.lowerBound), expected \(cursor) (\(e.range.lowerBound > cursor ? "hole" : "overlap") in the data)")
            }
            cursor = e.range.upperBound
        }
        guard cursor == dataSize else { throw fail("\(dataSize - cursor) bytes after the last tensor are not described by the header") }
        self.entries = entries
        self.metadata = metadata
        self.names = ordered.map(\.name)
        ok = true
    }

    deinit { munmap(mapping, fileSize) }

    /// The entry of `name`, or an error naming the tensor and the file.
    public func entry(_ name: String) throws -> Entry {
        guard let e = entries[name] else { throw ModelFileError.missingTensor(name: name, file: url.path) }
        return e
    }

    /// The values of a F32, F16 or BF16 tensor as f32.
    public func floats(_ name: String) throws -> [Float] {
        let e = try entry(name)
        let base = UnsafeRawPointer(mapping + dataStart + e.range.lowerBound)
        switch e.dtype {
        case "F32":
            return [Float](unsafeUninitializedCapacity: e.count) { buf, n in
                for i in 0..<e.count { buf[i] = Float(bitPattern: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian) }
                n = e.count
            }
        case "F16", "BF16":
            let half = e.dtype == "F16"
            return [Float](unsafeUninitializedCapacity: e.count) { buf, n in
                for i in 0..<e.count {
                    let bits = base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian
                    buf[i] = half ? halfToFloat(bits) : bfloat16ToFloat(bits)
                }
                n = e.count
            }
        default:
            throw ModelFileError.unsupportedDType(name: name, dtype: e.dtype, file: url.path)
        }
    }

    /// The tensor `name` on `device`, converted to f32; `expectedShape` is checked when given.
    public func tensor(_ name: String, on device: Device, expectedShape: [Int]? = nil) throws -> Tensor {
        let e = try entry(name)
        if let expectedShape, expectedShape != e.shape {
            throw ModelFileError.shapeMismatch(name: name, file: url.path, expected: expectedShape, found: e.shape)
        }
        return try Tensor(floats(name), shape: e.shape, on: device)
    }

    /// The tensor `name` on `device` stored as `dtype`: a 16-bit tensor of the same format is
    /// copied as it is (no f32 copy is made); any other pair is converted, rounding to nearest
    /// even into a 16-bit format.
    public func tensor(_ name: String, on device: Device, expectedShape: [Int]? = nil, storing dtype: DType) throws -> Tensor {
        guard dtype.isHalfFloat else { return try tensor(name, on: device, expectedShape: expectedShape) }
        let e = try entry(name)
        if let expectedShape, expectedShape != e.shape {
            throw ModelFileError.shapeMismatch(name: name, file: url.path, expected: expectedShape, found: e.shape)
        }
        if e.dtype == (dtype == .bf16 ? "BF16" : "F16") {
            let base = UnsafeRawPointer(mapping + dataStart + e.range.lowerBound)
            let bits = [UInt16](unsafeUninitializedCapacity: e.count) { buf, n in
                for i in 0..<e.count { buf[i] = base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian }
                n = e.count
            }
            return try Tensor(storing: bits, dtype: dtype, shape: e.shape, on: device)
        }
        let values = try floats(name)
        let bits = values.map { dtype == .bf16 ? floatToBFloat16($0) : floatToHalf($0) }
        return try Tensor(storing: bits, dtype: dtype, shape: e.shape, on: device)
    }

    /// Writes tensors (converted from f32 to `dtype`: F32, F16 or BF16) and metadata, to a
    /// temporary name first and then renamed, so an interrupted write leaves no half file.
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = ["format": "pt"],
                             dtype: String = "F32", to url: URL) throws {
        guard ["F32", "F16", "BF16"].contains(dtype) else {
            throw ModelFileError.unsupportedDType(name: "(writing)", dtype: dtype, file: url.path)
        }
        let size = byteSizes[dtype]!
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for (name, t) in tensors {
            guard header[name] == nil else { throw ModelFileError.malformed(file: url.path, "tensor \(name) given twice") }
            header[name] = ["dtype": dtype, "shape": t.shape, "data_offsets": [offset, offset + t.count * size]] as [String: Any]
            offset += t.count * size
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // The data section starts 8-byte aligned; the header is padded with spaces.
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for (_, t) in tensors {
            let values = try t.toArray()
            switch dtype {
            case "F32": values.withUnsafeBytes { out.append(contentsOf: $0) }
            case "F16": values.map { floatToHalf($0).littleEndian }.withUnsafeBytes { out.append(contentsOf: $0) }
            default: values.map { floatToBFloat16($0).littleEndian }.withUnsafeBytes { out.append(contentsOf: $0) }
            }
        }
        try writeAtomically(out, to: url)
    }
}

/// Writes to a temporary file beside `url`, flushes it to disk and renames it over `url`, so
/// that a reader never sees half a file. A failure (a full disk, a read-only directory) is one
/// `ModelFileError.unwritable` naming the file and the system's cause, and leaves no temporary.
public func writeAtomically(_ data: Data, to url: URL) throws {
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".tmp-\(url.lastPathComponent)-\(getpid())")
    func failure(_ code: Int32) -> ModelFileError { .unwritable(file: url.path, String(cString: strerror(code))) }
    let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw failure(errno) }
    var code: Int32 = 0
    data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
        guard let base = buffer.baseAddress else { return }
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, base + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                code = errno
                return
            }
            offset += n
        }
    }
    if code == 0, fsync(fd) != 0 { code = errno }
    if close(fd) != 0, code == 0 { code = errno }
    if code == 0, rename(tmp.path, url.path) != 0 { code = errno }
    if code != 0 {
        unlink(tmp.path)
        throw failure(code)
    }
}

public enum ModelFileError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, String)
    case malformed(file: String, String)
    case missingTensor(name: String, file: String)
    case unsupportedDType(name: String, dtype: String, file: String)
    case shapeMismatch(name: String, file: String, expected: [Int], found: [Int])
    case unsupportedArchitecture(file: String, found: String, supported: [String])
    case missingField(file: String, field: String)
    /// The directory holds an encoder-decoder model (T5 family) where a decoder-only one is needed.
    case encoderDecoder(file: String, found: String)
    /// The file could not be written (the system's cause: no space left, read-only, …).
    case unwritable(file: String, String)

    public var description: String {
        switch self {
        case let .unreadable(file, why): return "\(file): cannot read: \(why)"
        case let .unwritable(file, why): return "\(file): cannot write: \(why)"
        case let .malformed(file, why): return "\(file): \(why)"
        case let .missingTensor(name, file): return "\(file): tensor \(name) is missing"
        case let .unsupportedDType(name, dtype, file):
            return "\(file): tensor \(name) has dtype \(dtype); supported: F32, F16, BF16"
        case let .shapeMismatch(name, file, expected, found):
            return "\(file): tensor \(name) has shape \(found), expected \(expected)"
        case let .unsupportedArchitecture(file, found, supported):
            return "\(file): architecture \(found) is not supported; supported: \(supported.joined(separator: ", "))"
        case let .missingField(file, field): return "\(file): field \(field) is missing"
        case let .encoderDecoder(file, found):
            return "\(file): \(found) is an encoder-decoder (T5-family) model; this needs a decoder-only model "
                + "(encoder-decoders train, generate and evaluate; merge, export, select --model and tune --model take decoder-only models)"
        }
    }
}
