import Foundation

/// The prompts of `itune-gpu generate --prompts FILE`: a `.jsonl` file holds one JSON object a
/// line with a string field `prompt` (blank lines skipped); any other file holds one prompt a
/// line (blank lines skipped; "\n", "\r\n" and "\r" end lines). A line that is not what it should be is
/// an error naming the file, the line and the field.
public enum PromptFile {
    public static func read(_ url: URL) throws -> [String] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DataError(source: url.path, field: nil, reason: "cannot read the prompts file: \((error as NSError).localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw DataError(source: url.path, field: nil, reason: "the prompts file is not UTF-8 text")
        }
        let json = url.pathExtension.lowercased() == "jsonl"
        var prompts: [String] = []
        // Lines end at "\n", "\r\n" (one Character in Swift) or "\r".
        for (i, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            if line.allSatisfy(\.isWhitespace) { continue }
            guard json else { prompts.append(String(line)); continue }
            let source = "\(url.path):\(i + 1)"
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw DataError(source: source, field: nil, reason: "not a JSON object")
            }
            guard let value = object["prompt"] else {
                throw DataError(source: source, field: "prompt", reason: "missing (each line needs a string \"prompt\")")
            }
            guard let prompt = value as? String else { throw DataError(source: source, field: "prompt", reason: "not a string") }
            prompts.append(prompt)
        }
        guard !prompts.isEmpty else { throw DataError(source: url.path, field: nil, reason: "holds no prompts") }
        return prompts
    }
}
