import Foundation
import XCTest
import ITuneModels
import ITuneTensor
@testable import ITuneExport

final class GGUFFormatTests: XCTestCase {
    func testWriterAndReaderRoundTripEveryValueTypeAndTensorType() throws {
        var f = GGUFFile()
        let values: [(String, GGUFValue)] = [
            ("u8", .uint8(200)), ("i8", .int8(-7)), ("u16", .uint16(65000)), ("i16", .int16(-300)), ("u32", .uint32(4_000_000_000)),
            ("i32", .int32(-2_000_000_000)), ("f32", .float32(0.1)), ("bool", .bool(true)), ("str", .string("héllo ▁ <|im_end|>")),
            ("u64", .uint64(1 << 40)), ("i64", .int64(-(1 << 40))), ("f64", .float64(1e-300)),
            ("strings", .array(.string, [.string("a"), .string(""), .string("ü b")])), ("ints", .array(.int32, [.int32(1), .int32(-2)])),
            ("floats", .array(.float32, [.float32(-1000), .float32(0.5)])), ("general.alignment", .uint32(64)),
        ]
        for (k, v) in values { f.set(k, v) }
        let x = (0..<96).map { Float($0) * 0.37 - 11 }
        for type in GGMLType.allCases {
            try f.add(GGUFTensor(name: "t.\(type)", shape: [3, 32], type: type, data: try type.encode(x, rowLength: 32)))
        }
        try f.add(GGUFTensor(name: "vector", shape: [5], type: .f32, data: try GGMLType.f32.encode([1, 2, 3, 4, 5], rowLength: 5)))
        let bytes = try f.serialized()
        let back = try GGUFFile(data: bytes)
        XCTAssertEqual(back.metadata.map(\.key), values.map(\.0))
        for (k, v) in values { XCTAssertEqual(back[k], v, k) }
        XCTAssertEqual(back.tensors, f.tensors)
        XCTAssertEqual(try back.serialized(), bytes, "read then written again gives the same bytes")
        // Every tensor starts on the 64-byte alignment set by general.alignment.
        let header = bytes.count - f.tensors.reduce(0) { $0 + padded($1.data.count, 64) }
        XCTAssertEqual(header % 64, 0)
        XCTAssertEqual(GGMLType.f32.decode(back.tensor("t.f32")!.data), x)
        XCTAssertEqual(GGMLType.bf16.decode(back.tensor("t.bf16")!.data), x.map { bfloat16ToFloat(floatToBFloat16($0)) })
    }

    func testReaderRefusesTruncatedAndForeignFilesWithAReason() throws {
        var f = GGUFFile()
        f.set("general.architecture", .string("llama"))
        try f.add(GGUFTensor(name: "w", shape: [2, 32], type: .q8_0, data: try quantizeQ8_0([Float](repeating: 1, count: 64))))
        let bytes = try f.serialized()
        for cut in [3, 20, 40, bytes.count - 40] {
            XCTAssertThrowsError(try GGUFFile(data: bytes.prefix(cut), file: "cut.gguf")) { e in
                XCTAssertTrue("\(e)".hasPrefix("cut.gguf:"), "\(e)")
            }
        }
        var foreign = bytes
        foreign[0] = 0x50
        XCTAssertThrowsError(try GGUFFile(data: foreign, file: "x.gguf")) { XCTAssertEqual("\($0)", "x.gguf: not a GGUF file (bad magic)") }
        // An array that claims more elements than the file has bytes is refused before allocating.
        var w = ByteWriter()
        w.u32(GGUFFile.magic); w.u32(3); w.u64(0); w.u64(1); w.string("k"); w.u32(9); w.u32(4); w.u64(1 << 40)
        XCTAssertThrowsError(try GGUFFile(data: w.bytes, file: "lie.gguf")) { XCTAssertTrue("\($0)".contains("k"), "\($0)") }
        XCTAssertThrowsError(try f.add(GGUFTensor(name: "odd", shape: [2, 20], type: .q8_0, data: Data(count: 10))))
    }

    func testReaderNeverTrapsOnMutatedFiles() throws {
        var f = GGUFFile()
        f.set("general.architecture", .string("llama"))
        f.set("tokenizer.ggml.tokens", .array(.string, [.string("a"), .string("b")]))
        f.set("tokenizer.ggml.scores", .array(.float32, [.float32(0), .float32(-1)]))
        f.set("general.alignment", .uint32(32))
        try f.add(GGUFTensor(name: "w", shape: [2, 32], type: .q8_0, data: try quantizeQ8_0((0..<64).map { Float($0) })))
        try f.add(GGUFTensor(name: "b", shape: [3], type: .f32, data: try GGMLType.f32.encode([1, 2, 3], rowLength: 3)))
        let valid = [UInt8](try f.serialized())
        var rng = SplitMix(seed: 20)
        var parsed = 0, refused = 0
        for _ in 0..<3000 {
            var bytes = valid
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let i = Int(rng.next() % UInt64(bytes.count))
                bytes[i] = rng.next() % 3 == 0 ? 0xFF : UInt8(truncatingIfNeeded: rng.next())
            }
            if rng.next() % 5 == 0 { bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count)))) }
            do { _ = try GGUFFile(data: Data(bytes), file: "m.gguf"); parsed += 1 } catch { refused += 1 }
        }
        XCTAssertGreaterThan(refused, 100)
        XCTAssertGreaterThan(parsed, 100, "mutations of tensor data still parse")
    }

    func testQ8_0BlocksEqualGGUFPackageQuantiser() throws {
        let golden = try loadGolden()["q8_0_blocks"] as! [[String: String]]
        XCTAssertEqual(golden.count, 5)
        for (i, g) in golden.enumerated() {
            let x = GGMLType.f32.decode(fromHex(g["input_f32_hex"]!))
            XCTAssertEqual(hex(try quantizeQ8_0(x)), g["q8_0_hex"], "block set \(i)")
        }
        // The ties case: 2.5 → 3, −2.5 → −3, 0.5 → 1 (halves away from zero), d = 127/127 = 1.
        let q = try quantizeQ8_0([127, 2.5, -2.5, 0.5] + [Float](repeating: 0, count: 28))
        XCTAssertEqual(Array(q.prefix(6)), [0x00, 0x3C, 127, 3, 0xFD, 1])
        XCTAssertThrowsError(try GGMLType.q8_0.encode([Float](repeating: 0, count: 40), rowLength: 40))
    }

    func testRotaryPermutationMatchesTheConverter() throws {
        // Two heads of four rows (one column): within a head, rows [0 1 | 2 3] (split halves)
        // become [0 2 1 3] (interleaved pairs), as convert_hf_to_gguf.py's permute does.
        let rows: [Float] = [0, 1, 2, 3, 10, 11, 12, 13]
        XCTAssertEqual(try permuteRotaryRows(rows, rows: 8, cols: 1, heads: 2), [0, 2, 1, 3, 10, 12, 11, 13])
        XCTAssertThrowsError(try permuteRotaryRows(rows, rows: 8, cols: 1, heads: 3))
    }
}

final class GGUFGoldenTests: XCTestCase {
    func checkTensors(_ file: GGUFFile, bytes: Data, against g: [String: Any], _ label: String) {
        let tensors = g["tensors"] as! [[Any]]
        XCTAssertEqual(file.tensors.map(\.name), tensors.map { $0[0] as! String }, label)
        // gguf-py's reader reports offsets from the start of the file; ours count from the data section.
        var offset = (tensors.first?[3] as? Int) ?? 0
        for (t, e) in zip(file.tensors, tensors) {
            XCTAssertEqual(Int(t.type.rawValue), e[1] as? Int, "\(label) \(t.name) type")
            XCTAssertEqual(t.shape, e[2] as? [Int], "\(label) \(t.name) shape")
            XCTAssertEqual(offset, e[3] as? Int, "\(label) \(t.name) offset")
            XCTAssertEqual(sha256(t.data), e[4] as? String, "\(label) \(t.name) bytes")
            offset += padded(t.data.count, 32)
        }
        XCTAssertEqual(bytes.count, g["file_size"] as? Int, "\(label) file size")
        XCTAssertEqual(sha256(bytes), g["file_sha256"] as? String, "\(label): byte-identical to gguf-py's file")
    }

    func checkKeys(_ file: GGUFFile, against keys: [[Any]], _ label: String) {
        XCTAssertEqual(file.metadata.map(\.key), keys.map { $0[0] as! String }, label)
        for (kv, e) in zip(file.metadata, keys) {
            let (types, value) = goldenForm(kv.value)
            XCTAssertEqual(types, e[1] as? [Int], "\(label) \(kv.key) type")
            XCTAssertEqual(try JSONSerialization.data(withJSONObject: [value], options: [.sortedKeys]),
                           try JSONSerialization.data(withJSONObject: [e[2]], options: [.sortedKeys]), "\(label) \(kv.key) value")
        }
    }

    func testModelGGUFEqualsGGUFPackageFileForEveryDType() throws {
        let cases = try loadGolden()["cases"] as! [String: [String: Any]]
        XCTAssertEqual(Set(cases.keys), ["llama_spm", "llama3_bpe", "qwen2_bpe", "gpt2_bpe"])
        for (name, c) in cases.sorted(by: { $0.key < $1.key }) {
            let (dir, model) = try fixtureModel(name, tokenizer: c["tokenizer"] as! String)
            defer { try? FileManager.default.removeItem(at: dir) }
            let dtypes = c["dtypes"] as! [String: [String: Any]]
            XCTAssertEqual(Set(dtypes.keys), ["f32", "f16", "bf16", "q8_0"])
            for (dtype, g) in dtypes {
                let file = try ggufModelFile(model, directory: dir, dtype: ExportDType(rawValue: dtype)!.ggml, name: name)
                let bytes = try file.serialized()
                if let keys = g["keys"] as? [[Any]] { checkKeys(file, against: keys, "\(name) \(dtype)") }
                checkTensors(file, bytes: bytes, against: g, "\(name) \(dtype)")
                // Our reader gives back every key and tensor of what we wrote.
                let back = try GGUFFile(data: bytes)
                XCTAssertEqual(back.metadata.map(\.key), file.metadata.map(\.key))
                for kv in file.metadata { XCTAssertEqual(back[kv.key], kv.value, kv.key) }
                XCTAssertEqual(back.tensors, file.tensors)
            }
        }
    }

    func testLlama3RopeFactorsEqualTheConverters() throws {
        let want = try loadGolden()["llama3_rope_freqs"] as! [Double]
        let config = try ModelConfig(configJSON: fixtures.appendingPathComponent("models/llama_tied_headdim20_llama3rope/config.json"))
        let got = try XCTUnwrap(llama3RopeFactors(config))
        XCTAssertEqual(got.count, want.count)
        for (g, w) in zip(got, want) { XCTAssertEqual(Double(g), w, accuracy: 1e-6 * w) }
        XCTAssertTrue(got.contains { $0 > 1 && $0 < 8 }, "the fixture exercises the interpolated band")
        XCTAssertNil(llama3RopeFactors(try ModelConfig(configJSON: exportFixtures.appendingPathComponent("llama_spm/config.json"))))
    }

    func testLoRAGGUFEqualsGGUFPackageFileWithRSLoRAFolded() throws {
        let cases = (try loadGolden()["cases"] as! [String: [String: Any]]).filter { $0.value["lora"] != nil }
        XCTAssertEqual(Set(cases.keys), ["llama_spm", "llama3_bpe"])
        for (name, c) in cases {
            let adapter = try PEFTAdapter(directory: exportFixtures.appendingPathComponent("\(name)/adapter"))
            XCTAssertTrue(adapter.config.useRSLoRA)
            let config = try ModelConfig(configJSON: exportFixtures.appendingPathComponent("\(name)/config.json"))
            for (dtype, g) in c["lora"] as! [String: [String: Any]] {
                let file = try ggufLoRAFile(adapter, baseConfig: config, dtype: ExportDType(rawValue: dtype)!.ggml, name: "adapter")
                checkKeys(file, against: g["keys"] as! [[Any]], "\(name) lora \(dtype)")
                checkTensors(file, bytes: try file.serialized(), against: g, "\(name) lora \(dtype)")
                // llama.cpp's alpha / r equals PEFT's rsLoRA scaling alpha / √r.
                XCTAssertEqual(file["adapter.lora.alpha"]!.float! / Float(adapter.config.rank), adapter.config.scaling, accuracy: 1e-6)
            }
        }
    }
}
