// WordPiece (BERT): greedy longest-match-first from the left, continuation pieces spelled with a
// prefix ("##"); a word with any unmatchable rest, or longer than max_input_chars_per_word
// characters, becomes a single unk. And WordLevel: the whole word or unk.

final class WordPieceModel: TokenizerModel {
    private let vocab: Vocabulary
    private let unkID: Int32
    private let prefix: [UInt8]
    private let maxInputChars: Int

    init(_ json: JSONCursor) throws {
        vocab = try Vocabulary(json["vocab"])
        let unk = try json["unk_token"].optionalString() ?? "[UNK]"
        unkID = vocab.id(unk)
        guard unkID >= 0 else { throw json["unk_token"].invalid("'\(unk)' is not in model.vocab") }
        prefix = Array((try json["continuing_subword_prefix"].optionalString() ?? "##").utf8)
        maxInputChars = try json["max_input_chars_per_word"].optionalInt() ?? 100
    }

    var vocabularyCount: Int { vocab.count }
    var maxID: Int { vocab.tokens.count - 1 }

    func id(of token: String) -> Int? {
        let id = vocab.id(token)
        return id >= 0 ? Int(id) : nil
    }

    func token(of id: Int) -> String? {
        id >= 0 && id < vocab.tokens.count ? vocab.tokens[id] : nil
    }

    func tokenize(_ word: UnsafeBufferPointer<UInt8>, scratch: ModelScratch, into ids: inout [Int32]) {
        guard let p = word.baseAddress, word.count > 0 else { return }
        let n = word.count
        var chars = 0
        var k = 0
        while k < n { k += utf8Length(lead: p[k]); chars += 1 }
        if chars > maxInputChars { ids.append(unkID); return }
        let firstNew = ids.count
        var start = 0
        while start < n {
            var end = n
            var found: Int32 = -1
            while start < end {
                if start == 0 {
                    found = vocab.table.find(p, end)
                } else {
                    scratch.text.removeAll(keepingCapacity: true)
                    scratch.text.append(contentsOf: prefix)
                    scratch.text.append(contentsOf: UnsafeBufferPointer(start: p + start, count: end - start))
                    found = vocab.table.find(scratch.text)
                }
                if found >= 0 { break }
                end = previousScalarStart(p, before: end)
            }
            if found < 0 {
                ids.removeSubrange(firstNew...)
                ids.append(unkID)
                return
            }
            ids.append(found)
            start = end
        }
    }
}

final class WordLevelModel: TokenizerModel {
    private let vocab: Vocabulary
    private let unkID: Int32

    init(_ json: JSONCursor) throws {
        vocab = try Vocabulary(json["vocab"])
        let unk = try json["unk_token"].optionalString() ?? "<unk>"
        unkID = vocab.id(unk)
        guard unkID >= 0 else { throw json["unk_token"].invalid("'\(unk)' is not in model.vocab") }
    }

    var vocabularyCount: Int { vocab.count }
    var maxID: Int { vocab.tokens.count - 1 }

    func id(of token: String) -> Int? {
        let id = vocab.id(token)
        return id >= 0 ? Int(id) : nil
    }

    func token(of id: Int) -> String? {
        id >= 0 && id < vocab.tokens.count ? vocab.tokens[id] : nil
    }

    func tokenize(_ word: UnsafeBufferPointer<UInt8>, scratch: ModelScratch, into ids: inout [Int32]) {
        guard let p = word.baseAddress, word.count > 0 else { return }
        let id = vocab.table.find(p, word.count)
        ids.append(id >= 0 ? id : unkID)
    }
}
