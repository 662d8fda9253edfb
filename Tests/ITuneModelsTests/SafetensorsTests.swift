import Foundation
import XCTest
@testable import ITuneModels
@testable import ITuneTensor

final class SafetensorsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-st-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A file built byte by byte: header JSON text and data.
    func rawFile(_ header: String, data: [UInt8], lengthOverride: UInt64? = nil) throws -> URL {
        let url = dir.appendingPathComponent("raw-\(UUID().uuidString).safetensors")
        var bytes = Data()
        withUnsafeBytes(of: (lengthOverride ?? UInt64(header.utf8.count)).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(Data(header.utf8))
        bytes.append(contentsOf: data)
        try bytes.write(to: url)
        return url
    }

    func testWriteThenReadRoundTripsF32F16AndBF16() throws {
        let a = try Tensor([1, -2, 3.5, 0.1, 65504, -0.0], shape: [2, 3])
        let b = try Tensor([42], shape: [])
        let e = try Tensor([], shape: [0, 4])
        for dtype in ["F32", "F16", "BF16"] {
            let url = dir.appendingPathComponent("m-\(dtype).safetensors")
            try SafetensorsFile.write([("a", a), ("scalar", b), ("empty", e)], metadata: ["format": "pt"], dtype: dtype, to: url)
            let f = try SafetensorsFile(url: url)
            XCTAssertEqual(f.metadata, ["format": "pt"])
            XCTAssertEqual(f.entries["a"]?.shape, [2, 3])
            XCTAssertEqual(f.entries["a"]?.dtype, dtype)
            XCTAssertEqual(f.entries["scalar"]?.shape, [])
            XCTAssertEqual(try f.floats("empty"), [])
            let got = try f.floats("a")
            let expect: [Float] = dtype == "F32" ? [1, -2, 3.5, 0.1, 65504, -0.0]
                : dtype == "F16" ? [1, -2, 3.5, halfToFloat(floatToHalf(0.1)), 65504, 0]
                : [1, -2, 3.5, bfloat16ToFloat(floatToBFloat16(0.1)), 65536, 0]
            XCTAssertEqual(got, expect, dtype)
            XCTAssertEqual(try f.tensor("scalar", on: .cpu).item(), 42)
        }
    }

    func testHeaderIsPaddedToEightBytesAndDataStartsAligned() throws {
        let url = dir.appendingPathComponent("pad.safetensors")
        try SafetensorsFile.write([("x", try Tensor([1], shape: [1]))], to: url)
        let data = try Data(contentsOf: url)
        let n = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual(n % 8, 0)
        XCTAssertEqual(data.count, 8 + Int(n) + 4)
    }

    func testHeaderPaddedWithSpacesIsAccepted() throws {
        let url = try rawFile(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}     "#, data: [0, 0, 128, 63])
        XCTAssertEqual(try SafetensorsFile(url: url).floats("w"), [1])
    }

    func testMalformedFilesAreErrorsNamingFileAndTensor() throws {
        func expectError(_ url: URL, _ needle: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try SafetensorsFile(url: url), file: file, line: line) { e in
                let text = "\(e)"
                XCTAssertTrue(text.contains(url.path), "names the file: \(text)", file: file, line: line)
                XCTAssertTrue(text.contains(needle), "\(needle) in: \(text)", file: file, line: line)
            }
        }
        let w = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        expectError(try rawFile(w, data: [0, 0, 0, 0]), "tensor w")                         // truncated data
        expectError(try rawFile(w, data: Array(repeating: 0, count: 8), lengthOverride: 1 << 40), "exceeds 100 MB")
        expectError(try rawFile(w, data: [], lengthOverride: 4000), "past the end")
        expectError(try rawFile(#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)), "needs 12 bytes")
        expectError(try rawFile(#"{"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#, data: [0]), "unknown dtype Q4")
        expectError(try rawFile(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: Array(repeating: 0, count: 8)), "hole")
        expectError(try rawFile(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: Array(repeating: 0, count: 4)), "overlap")
        expectError(try rawFile("not json", data: []), "not a JSON object")
        let short = dir.appendingPathComponent("short.safetensors")
        try Data([1, 2, 3]).write(to: short)
        expectError(short, "too short")
    }

    /// Issue 12: lengths and sizes that trapped (a header length of 2^63 or more, element count
    /// × dtype size past Int.max) or were not integers are errors naming the file and tensor.
    func testHugeLengthsAndSizesAreErrorsNotTraps() throws {
        func expectError(_ url: URL, _ needles: String..., line: UInt = #line) {
            XCTAssertThrowsError(try SafetensorsFile(url: url), line: line) { e in
                let text = "\(e)"
                XCTAssertTrue(text.contains(url.path), "names the file: \(text)", line: line)
                for n in needles { XCTAssertTrue(text.contains(n), "\(n) in: \(text)", line: line) }
            }
        }
        let w = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        expectError(try rawFile(w, data: Array(repeating: 0, count: 8), lengthOverride: 1 << 63), "exceeds 100 MB")
        expectError(try rawFile(w, data: Array(repeating: 0, count: 8), lengthOverride: UInt64.max), "exceeds 100 MB")
        let data = Array(repeating: UInt8(0), count: 8)
        // 2^62 F32 elements: 2^64 bytes.
        expectError(try rawFile(#"{"big":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}}"#, data: data), "tensor big", "more bytes")
        // The element count itself overflows.
        expectError(try rawFile(#"{"big":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, data: data), "tensor big")
        expectError(try rawFile(#"{"n":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: data), "tensor n", "bad shape")
        expectError(try rawFile(#"{"n":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#, data: data), "tensor n", "bad shape")
        expectError(try rawFile(#"{"n":{"dtype":"F32","shape":[1e30],"data_offsets":[0,8]}}"#, data: data), "tensor n", "bad shape")
        expectError(try rawFile(#"{"o":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}"#, data: data), "tensor o", "data_offsets")
        expectError(try rawFile(#"{"o":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: data), "tensor o", "data_offsets")
        expectError(try rawFile(#"{"o":{"dtype":"F32","shape":[2],"data_offsets":[0,9223372036854775807]}}"#, data: data), "tensor o", "data_offsets")
        expectError(try rawFile(#"{"o":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551616]}}"#, data: data), "tensor o", "data_offsets")
        expectError(try rawFile(#"{"o":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, data: data), "tensor o", "data_offsets")
    }

    /// A file that cannot be written (here: its folder is a file) is one error naming it and
    /// the system's cause, and no temporary is left behind.
    func testUnwritableDestinationIsOneErrorNamingTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("itune-unwritable-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let notADirectory = dir.appendingPathComponent("file")
        try Data("x".utf8).write(to: notADirectory)
        let target = notADirectory.appendingPathComponent("adapter_model.safetensors")
        XCTAssertThrowsError(try SafetensorsFile.write([(name: "w", tensor: Tensor([1, 2], shape: [2]))], to: target)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(target.path) && text.contains("cannot write") && text.contains("Not a directory"), text)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["file"])
    }

    func testMissingTensorAndUnsupportedDTypeAreNamed() throws {
        let url = try rawFile(#"{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8))
        let f = try SafetensorsFile(url: url)
        XCTAssertThrowsError(try f.floats("ids")) { e in XCTAssertTrue("\(e)".contains("ids has dtype I64"), "\(e)") }
        XCTAssertThrowsError(try f.floats("lm_head.weight")) { e in
            XCTAssertEqual(e as? ModelFileError, .missingTensor(name: "lm_head.weight", file: url.path))
        }
        XCTAssertThrowsError(try f.tensor("ids", on: .cpu, expectedShape: [2])) { e in XCTAssertTrue("\(e)".contains("[1], expected [2]"), "\(e)") }
    }

    /// Golden bytes: what the reference `safetensors` library writes for
    /// `save_file({"a": torch.tensor([[1., 2.]])}, f)` (header sorted, padded to 8).
    func testReadsTheReferenceLayout() throws {
        let header = #"{"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}"#
        let padded = header + String(repeating: " ", count: (8 - header.utf8.count % 8) % 8)
        let url = try rawFile(padded, data: [0, 0, 128, 63, 0, 0, 0, 64])
        let f = try SafetensorsFile(url: url)
        XCTAssertEqual(try f.floats("a"), [1, 2])
        XCTAssertEqual(f.names, ["a"])
    }
}
