import Foundation

/// The fields of one config.json, read strictly: a number that is not a whole number where a
/// size is expected, a size that is not positive, or a field of the wrong type is an error
/// naming the file and the field, never a silent truncation or a trap later.
public struct ConfigFields {
    public let json: [String: Any]
    /// The file the fields came from, for error messages.
    public let file: String

    public init(_ json: [String: Any], file: String) {
        self.json = json
        self.file = file
    }

    /// Whether `key` is present and not null.
    public func has(_ key: String) -> Bool { json[key] != nil && !(json[key] is NSNull) }

    /// An integer field, nil when absent or null; a non-integer value is an error.
    public func int(_ key: String) throws -> Int? {
        guard has(key), let value = json[key] else { return nil }
        guard let i = exactInteger(value) else {
            throw ModelFileError.malformed(file: file, "\(key) must be an integer, got \(value)")
        }
        return i
    }

    /// A size: the first of `key` and its `alternatives` present, which must be a positive
    /// integer (at most Int32.max, what the kernels index with). Absent is an error naming `key`.
    public func size(_ key: String, _ alternatives: String...) throws -> Int {
        for k in [key] + alternatives where has(k) {
            guard let v = try int(k) else { continue }
            try checkSize(v, k)
            return v
        }
        throw ModelFileError.missingField(file: file, field: key)
    }

    /// An optional size: positive when present.
    public func optionalSize(_ key: String) throws -> Int? {
        guard let v = try int(key) else { return nil }
        try checkSize(v, key)
        return v
    }

    func checkSize(_ v: Int, _ key: String) throws {
        guard v > 0, v <= Int(Int32.max) else {
            throw ModelFileError.malformed(file: file, "\(key) must be a positive integer no larger than \(Int32.max), got \(v)")
        }
    }

    /// A finite number, nil when absent or null.
    public func float(_ key: String) throws -> Float? {
        guard has(key), let value = json[key] else { return nil }
        guard let n = value as? NSNumber, n.doubleValue.isFinite else {
            throw ModelFileError.malformed(file: file, "\(key) must be a finite number, got \(value)")
        }
        return n.floatValue
    }

    /// A positive finite number (epsilons may be zero: `allowZero`).
    public func positiveFloat(_ key: String, default value: Float, allowZero: Bool = false) throws -> Float {
        guard let v = try float(key) else { return value }
        guard v > 0 || (allowZero && v == 0) else {
            throw ModelFileError.malformed(file: file, "\(key) must be \(allowZero ? "non-negative" : "positive"), got \(v)")
        }
        return v
    }

    public func bool(_ key: String) throws -> Bool? {
        guard has(key), let value = json[key] else { return nil }
        guard let b = value as? Bool else { throw ModelFileError.malformed(file: file, "\(key) must be true or false, got \(value)") }
        return b
    }

    public func string(_ key: String) throws -> String? {
        guard has(key), let value = json[key] else { return nil }
        guard let s = value as? String else { throw ModelFileError.malformed(file: file, "\(key) must be a string, got \(value)") }
        return s
    }

    /// An error naming `field`: the config asks for maths that this family does not implement.
    public func refuse(_ field: String, _ why: String) -> ModelFileError {
        .malformed(file: file, "\(field) \(why); refusing to load a model that would compute something else than its config says")
    }

    /// `eos_token_id` as one id or a list.
    func eosTokenIDs() throws -> [Int] {
        if let list = json["eos_token_id"] as? [Any] {
            return try list.map { v in
                guard let i = exactInteger(v) else { throw ModelFileError.malformed(file: file, "eos_token_id must hold integers, got \(v)") }
                return i
            }
        }
        return try int("eos_token_id").map { [$0] } ?? []
    }

    /// Refuses the fields that change the maths in ways no family here implements, when they are
    /// set: logit soft-capping (Gemma 2) and partial rotary embeddings (top level or inside
    /// `rope_parameters`).
    func refuseUnimplementedMaths() throws {
        for key in ["final_logit_softcapping", "attn_logit_softcapping"] where has(key) {
            throw refuse(key, "is \(json[key] ?? "set") (logit soft-capping is not implemented)")
        }
        let nested = json["rope_parameters"] as? [String: Any]
        for (key, value) in [("partial_rotary_factor", json["partial_rotary_factor"]),
                             ("rope_parameters.partial_rotary_factor", nested?["partial_rotary_factor"])] {
            guard let value, !(value is NSNull) else { continue }
            guard let f = value as? NSNumber, f.doubleValue == 1 else {
                throw refuse(key, "is \(value) (only full rotary embeddings, factor 1, are implemented)")
            }
        }
    }
}

/// An integral JSON number as Int: 64 and 64.0 are 64; 2.5, 1e30, 2^63 and strings are nil.
func exactInteger(_ value: Any) -> Int? {
    guard let n = value as? NSNumber else { return nil }
    if let i = Int(n.stringValue) { return i }
    let d = n.doubleValue
    guard d.isFinite, d.rounded() == d else { return nil }
    return Int(exactly: d)
}
