import Foundation
import ITuneTokenizers

// A built-in FLAN-style instruction mixture: task families whose answers can be checked
// exactly, each phrased by several instruction templates in English and in Japanese, so that
// a model must follow the instruction, not memorise one wording. It needs nothing from outside,
// which is why the embedded demo trains on it.

public enum SyntheticTasks {
    /// A family: a name and a generator of (English phrasings, Japanese phrasings, answer, Japanese answer).
    struct Family {
        let name: String
        let make: (inout Generator) -> (en: [String], ja: [String], answer: String, answerJA: String)
    }

    /// Draws for the task generators, over ITuneData's SplitMix64.
    public struct Generator {
        var rng: SplitMix64
        public init(seed: UInt64) { rng = SplitMix64(seed: seed) }
        mutating func next() -> UInt64 { rng.next() }
        mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
        mutating func pick<T>(_ xs: [T]) -> T { xs[Int(next() % UInt64(xs.count))] }
        mutating func word() -> String {
            String((0..<int(3...5)).map { _ in pick(Array("abcdefghijklmnoprstuvwy")) })
        }
    }

    static let commands: [(en: String, ja: String, cmd: String)] = [
        ("list the files in a directory", "ディレクトリのファイルを一覧表示する", "ls"),
        ("print the current working directory", "現在のディレクトリを表示する", "pwd"),
        ("create a new directory", "新しいディレクトリを作る", "mkdir"),
        ("remove a file", "ファイルを削除する", "rm"),
        ("copy a file", "ファイルをコピーする", "cp"),
        ("move or rename a file", "ファイルを移動または名前を変更する", "mv"),
        ("show the contents of a file", "ファイルの中身を表示する", "cat"),
        ("search for text in files", "ファイルの中の文字列を検索する", "grep"),
        ("show running processes", "実行中のプロセスを表示する", "ps"),
        ("count the lines of a file", "ファイルの行数を数える", "wc -l"),
        ("show disk usage of a directory", "ディレクトリのディスク使用量を表示する", "du"),
        ("change the permissions of a file", "ファイルの権限を変更する", "chmod"),
    ]

    static let families: [Family] = [
        Family(name: "addition") { g in
            let (a, b) = (g.int(0...49), g.int(0...49))
            return (["What is \(a) + \(b)?", "Add \(a) and \(b).", "Compute the sum of \(a) and \(b)."],
                    ["\(a) + \(b) はいくつですか？", "\(a)と\(b)を足してください。", "\(a)と\(b)の和を求めてください。"], "\(a + b)", "\(a + b)")
        },
        Family(name: "subtraction") { g in
            let a = g.int(10...60), b = g.int(0...a)
            return (["What is \(a) - \(b)?", "Subtract \(b) from \(a).", "Compute \(a) minus \(b)."],
                    ["\(a) - \(b) はいくつですか？", "\(a)から\(b)を引いてください。", "\(a)引く\(b)を計算してください。"], "\(a - b)", "\(a - b)")
        },
        Family(name: "multiplication") { g in
            let (a, b) = (g.int(2...9), g.int(2...9))
            return (["What is \(a) times \(b)?", "Multiply \(a) by \(b).", "Compute \(a) * \(b)."],
                    ["\(a) × \(b) はいくつですか？", "\(a)に\(b)を掛けてください。", "\(a)かける\(b)を計算してください。"], "\(a * b)", "\(a * b)")
        },
        Family(name: "reverse") { g in
            let w = g.word()
            return (["Reverse the word '\(w)'.", "Write '\(w)' backwards.", "Spell '\(w)' in reverse order."],
                    ["「\(w)」を逆から書いてください。", "「\(w)」を逆順にしてください。", "単語「\(w)」を反転させてください。"],
                    String(w.reversed()), String(w.reversed()))
        },
        Family(name: "uppercase") { g in
            let w = g.word()
            return (["Convert '\(w)' to uppercase.", "Write '\(w)' in capital letters.", "Make '\(w)' upper case."],
                    ["「\(w)」を大文字にしてください。", "「\(w)」を大文字で書いてください。", "単語「\(w)」を大文字に変換してください。"],
                    w.uppercased(), w.uppercased())
        },
        Family(name: "sort-digits") { g in
            let d = (0..<g.int(3...5)).map { _ in g.int(0...9) }
            let list = d.map(String.init).joined(separator: " ")
            let sorted = d.sorted().map(String.init).joined(separator: " ")
            return (["Sort these numbers: \(list)", "Put \(list) in ascending order.", "Order from smallest to largest: \(list)"],
                    ["次の数を小さい順に並べてください: \(list)", "\(list) を昇順に並べてください。", "小さい順に並べ替えてください: \(list)"],
                    sorted, sorted)
        },
        Family(name: "count-letters") { g in
            let w = g.word()
            return (["How many letters are in '\(w)'?", "Count the letters of '\(w)'.", "What is the length of the word '\(w)'?"],
                    ["「\(w)」は何文字ですか？", "「\(w)」の文字数を数えてください。", "単語「\(w)」の長さはいくつですか？"],
                    "\(w.count)", "\(w.count)")
        },
        Family(name: "first-letter") { g in
            let w = g.word()
            return (["What is the first letter of '\(w)'?", "Give the first character of '\(w)'.", "Which letter does '\(w)' start with?"],
                    ["「\(w)」の最初の文字は何ですか？", "「\(w)」の先頭の文字を答えてください。", "「\(w)」は何の文字で始まりますか？"],
                    String(w.first!), String(w.first!))
        },
        Family(name: "maximum") { g in
            let xs = (0..<g.int(3...4)).map { _ in g.int(0...99) }
            let list = xs.map(String.init).joined(separator: ", ")
            return (["Which is the largest: \(list)?", "Find the maximum of \(list).", "What is the biggest number among \(list)?"],
                    ["\(list) の中で一番大きい数は？", "\(list) の最大値を答えてください。", "次の中で最も大きい数はどれですか: \(list)"],
                    "\(xs.max()!)", "\(xs.max()!)")
        },
        Family(name: "parity") { g in
            let n = g.int(0...99)
            return (["Is \(n) even or odd?", "Tell me whether \(n) is odd or even.", "Answer even or odd: \(n)"],
                    ["\(n)は偶数ですか、奇数ですか？", "\(n)が偶数か奇数か答えてください。", "偶数か奇数で答えてください: \(n)"],
                    n % 2 == 0 ? "even" : "odd", n % 2 == 0 ? "偶数" : "奇数")
        },
        Family(name: "linux-command") { g in
            let c = g.pick(commands)
            return (["Which Linux command would you use to \(c.en)?", "Name the shell command to \(c.en).", "In a Linux terminal, how do you \(c.en)?"],
                    ["Linuxで\(c.ja)コマンドは何ですか？", "\(c.ja)ためのシェルコマンドを答えてください。", "ターミナルで\(c.ja)にはどのコマンドを使いますか？"],
                    c.cmd, c.cmd)
        },
        Family(name: "compare") { g in
            var (a, b) = (g.int(0...99), g.int(0...99))
            if a == b { b = (b + 7) % 100 }
            return (["Which is larger, \(a) or \(b)?", "Pick the bigger number: \(a) or \(b).", "Of \(a) and \(b), which is greater?"],
                    ["\(a)と\(b)ではどちらが大きいですか？", "大きい方の数を選んでください: \(a) と \(b)", "\(a)と\(b)のうち大きいのはどちらですか？"],
                    "\(max(a, b))", "\(max(a, b))")
        },
    ]

    /// The family names, in order.
    public static var familyNames: [String] { families.map(\.name) }

    /// A wrong answer close to the right one, for preference pairs: a number off by a little
    /// (±1, ±2, ±10, never negative when the answer is not), or text with two neighbouring
    /// characters swapped (or one changed where all are alike). Never equal to `answer`.
    public static func plausibleWrongAnswer(_ answer: String, seed: UInt64) -> String {
        var g = Generator(seed: seed)
        if let n = Int(answer) {
            let options = [-2, -1, 1, 2, 10, -10].filter { n + $0 >= 0 || n < 0 }
            return String(n + g.pick(options))
        }
        var chars = Array(answer)
        let swappable = chars.indices.dropLast().filter { chars[$0] != chars[$0 + 1] }
        if !swappable.isEmpty {
            let i = g.pick(Array(swappable))
            chars.swapAt(i, i + 1)
            return String(chars)
        }
        guard let first = chars.first else { return "?" }
        chars[0] = first == "x" ? "y" : "x"
        return String(chars)
    }

    /// `count` examples, families and languages in turn, phrasings drawn from the seed. Each
    /// `Example` carries its family as the task and a "/en" or "/ja" language suffix.
    public static func examples(count: Int, seed: UInt64, japanese: Bool = true) -> [Example] {
        var g = Generator(seed: seed)
        return (0..<count).map { i in
            let family = families[i % families.count]
            let ja = japanese && (i / families.count) % 2 == 1
            let made = family.make(&g)
            let instruction = g.pick(ja ? made.ja : made.en)
            return Example(conversation: Conversation(turns: [Turn(instruction: instruction, response: ja ? made.answerJA : made.answer)]),
                           rawPrompt: false,
                           source: .init(file: "(built-in mixture)", line: nil, index: i, task: family.name + (ja ? "/ja" : "/en")))
        }
    }

    /// Writes the mixture as a task pool: one Alpaca JSONL file per family × phrasing template
    /// (`<family>_en0.jsonl` … `<family>_ja2.jsonl`), `perFile` examples each, the shape of
    /// FLAN/T0 pools (`itune-gpu select --pool`, `eval --tasks`). Returns the files written.
    @discardableResult
    public static func writePool(to directory: URL, perFile: Int, seed: UInt64, families names: [String]? = nil) throws -> [URL] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var g = Generator(seed: seed)
        var written: [URL] = []
        for family in families where names?.contains(family.name) ?? true {
            for lang in ["en", "ja"] {
                for template in 0..<3 {
                    var lines: [String] = []
                    for _ in 0..<perFile {
                        let made = family.make(&g)
                        let instruction = (lang == "ja" ? made.ja : made.en)[template]
                        let record = ["instruction": instruction, "input": "", "output": lang == "ja" ? made.answerJA : made.answer]
                        let data = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .withoutEscapingSlashes])
                        lines.append(String(decoding: data, as: UTF8.self))
                    }
                    let url = directory.appendingPathComponent("\(family.name)_\(lang)\(template).jsonl")
                    try OutputFiles.writeAtomically(Data((lines.joined(separator: "\n") + "\n").utf8), to: url)
                    written.append(url)
                }
            }
        }
        return written
    }
}
