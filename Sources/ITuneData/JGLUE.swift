import Foundation

// JGLUE's JCommonsenseQA and JNLI (Kurihara et al., LREC 2022; CC BY-SA 4.0) as instruction
// tasks, FLAN-style: each task phrased by several Japanese templates (the question asked
// differently, the choices listed or not), one file per template, `choices` kept on every record
// so that evaluation ranks the five answers (or three labels) by likelihood.

public enum JGLUE {
    /// A template: how one source record becomes an instruction, an input, an answer and the
    /// answers to rank.
    struct Template<Record> {
        let name: String
        let make: (Record) -> (instruction: String, input: String, output: String, choices: [String])
    }

    struct CommonsenseQA {
        let question: String
        let choices: [String]
        let label: Int
    }

    struct NLI {
        let premise: String
        let hypothesis: String
        /// entailment, contradiction or neutral.
        let label: String
    }

    static let commonsenseQATemplates: [Template<CommonsenseQA>] = [
        Template(name: "t1") { r in
            ("次の質問に、選択肢の中から最も適切な答えを一つ選んで答えてください。",
             "質問：\(r.question)\n選択肢：\(r.choices.joined(separator: "、"))", r.choices[r.label], r.choices)
        },
        Template(name: "t2") { r in
            ("以下の質問の答えとして正しいものを選択肢から選び、その語句だけを書いてください。",
             "\(r.question)\n" + r.choices.map { "- \($0)" }.joined(separator: "\n"), r.choices[r.label], r.choices)
        },
        // The choices not listed: the model must answer from common sense; ranking still uses the five.
        Template(name: "t3") { r in
            ("常識に基づいて、次の質問に一語で答えてください。", r.question, r.choices[r.label], r.choices)
        },
        Template(name: "t4") { r in
            let numbers = (1...r.choices.count).map(String.init)
            return ("質問に対する答えを選択肢の番号で答えてください。",
                    "\(r.question)\n" + r.choices.enumerated().map { "\($0.offset + 1). \($0.element)" }.joined(separator: "\n"),
                    numbers[r.label], numbers)
        },
        Template(name: "t5") { r in
            ("「\(r.question)」という問いの答えはどれですか。\(r.choices.joined(separator: "・"))の中から選んでください。", "",
             r.choices[r.label], r.choices)
        },
    ]

    static let nliTemplates: [Template<NLI>] = [
        Template(name: "t1") { r in
            let words = ["entailment": "含意", "contradiction": "矛盾", "neutral": "中立"]
            return ("前提と仮説の関係を「含意」「矛盾」「中立」のいずれかで答えてください。",
                    "前提：\(r.premise)\n仮説：\(r.hypothesis)", words[r.label]!, ["含意", "矛盾", "中立"])
        },
        Template(name: "t2") { r in
            let words = ["entailment": "はい", "contradiction": "いいえ", "neutral": "どちらとも言えない"]
            return ("文1が正しいとき、文2も正しいと言えますか。「はい」「いいえ」「どちらとも言えない」のいずれかで答えてください。",
                    "文1：\(r.premise)\n文2：\(r.hypothesis)", words[r.label]!, ["はい", "いいえ", "どちらとも言えない"])
        },
        Template(name: "t3") { r in
            let words = ["entailment": "推論できる", "contradiction": "矛盾する", "neutral": "どちらとも言えない"]
            return ("「\(r.premise)」という文から「\(r.hypothesis)」と推論できますか。「推論できる」「矛盾する」「どちらとも言えない」で答えてください。", "",
                    words[r.label]!, ["推論できる", "矛盾する", "どちらとも言えない"])
        },
        Template(name: "t4") { r in
            let words = ["entailment": "含意", "contradiction": "矛盾", "neutral": "中立"]
            return ("次の二つの文の関係は、含意・矛盾・中立のどれですか。", "\(r.premise)\n\(r.hypothesis)", words[r.label]!, ["含意", "矛盾", "中立"])
        },
    ]

    /// The records of a JGLUE file (JSON lines as released), each checked.
    static func lines(_ path: String) throws -> [(line: Int, record: [String: Any])] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw DataError(source: path, field: nil, reason: "cannot read: \(error.localizedDescription)")
        }
        var out: [(Int, [String: Any])] = []
        for (i, line) in data.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() where !line.allSatisfy(DatasetReader.isSpace) {
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] else {
                throw DataError(source: "\(path):\(i + 1)", field: nil, reason: "not a JSON object")
            }
            out.append((i + 1, obj))
        }
        return out
    }

    static func commonsenseQA(_ path: String) throws -> [CommonsenseQA] {
        try lines(path).map { line, r in
            func fail(_ field: String, _ why: String) -> DataError { DataError(source: "\(path):\(line)", field: field, reason: why) }
            guard let q = r["question"] as? String, !q.isEmpty else { throw fail("question", "missing or not a string") }
            let choices = try (0..<5).map { k -> String in
                guard let c = r["choice\(k)"] as? String else { throw fail("choice\(k)", "missing or not a string") }
                return c
            }
            guard let label = r["label"] as? Int, choices.indices.contains(label) else { throw fail("label", "must be an integer 0…4") }
            return CommonsenseQA(question: q, choices: choices, label: label)
        }
    }

    static func nli(_ path: String) throws -> [NLI] {
        try lines(path).map { line, r in
            func fail(_ field: String, _ why: String) -> DataError { DataError(source: "\(path):\(line)", field: field, reason: why) }
            guard let p = r["sentence1"] as? String else { throw fail("sentence1", "missing or not a string") }
            guard let h = r["sentence2"] as? String else { throw fail("sentence2", "missing or not a string") }
            guard let label = r["label"] as? String, ["entailment", "contradiction", "neutral"].contains(label) else {
                throw fail("label", "must be entailment, contradiction or neutral")
            }
            return NLI(premise: p, hypothesis: h, label: label)
        }
    }

    /// Writes the tasks of `split` (`train`: JCommonsenseQA train; `validation`: JCommonsenseQA and
    /// JNLI validation) from the released files in `source` as Alpaca JSONL files with `choices`,
    /// one per template (`jcommonsenseqa_t1.jsonl`…, grouped into one task by `TaskPool`). Record i
    /// goes to template i mod the number of templates, so each question appears once. `limit`
    /// keeps the first records of each source file.
    public static func writeTasks(from source: String, to directory: URL, split: String, limit: Int? = nil) throws -> [(URL, Int)] {
        let s = (source as NSString)
        let jobs: [(String, [(instruction: String, input: String, output: String, choices: [String])], [String])]
        switch split {
        case "train":
            let qa = Array(try commonsenseQA(s.appendingPathComponent("jcommonsenseqa-train-v1.3.json")).prefix(limit ?? .max))
            jobs = [("jcommonsenseqa", assign(qa, commonsenseQATemplates), commonsenseQATemplates.map(\.name))]
        case "validation":
            let qa = Array(try commonsenseQA(s.appendingPathComponent("jcommonsenseqa-valid-v1.3.json")).prefix(limit ?? .max))
            let nl = Array(try nli(s.appendingPathComponent("jnli-valid-v1.3.json")).prefix(limit ?? .max))
            jobs = [("jcommonsenseqa", assign(qa, commonsenseQATemplates), commonsenseQATemplates.map(\.name)),
                    ("jnli", assign(nl, nliTemplates), nliTemplates.map(\.name))]
        default:
            throw DataError(source: source, field: nil, reason: "unknown split '\(split)' (train, validation)")
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var written: [(URL, Int)] = []
        for (task, rows, names) in jobs {
            for (k, name) in names.enumerated() {
                var lines: [String] = []
                for (i, r) in rows.enumerated() where i % names.count == k {
                    let record: [String: Any] = ["instruction": r.instruction, "input": r.input, "output": r.output, "choices": r.choices]
                    let data = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .withoutEscapingSlashes])
                    lines.append(String(decoding: data, as: UTF8.self))
                }
                let url = directory.appendingPathComponent("\(task)_\(name).jsonl")
                try OutputFiles.writeAtomically(Data((lines.joined(separator: "\n") + "\n").utf8), to: url)
                written.append((url, lines.count))
            }
        }
        return written
    }

    private static func assign<R>(_ records: [R], _ templates: [Template<R>]) -> [(instruction: String, input: String, output: String, choices: [String])] {
        records.enumerated().map { i, r in templates[i % templates.count].make(r) }
    }
}
