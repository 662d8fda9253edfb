import ArgumentParser
import Foundation
import ITune

struct JGLUECommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jglue",
        abstract: "Turn JGLUE's JCommonsenseQA and JNLI into Japanese instruction tasks (several templates each, with choices for rank classification).",
        discussion: "The output directory works as --data for train and as --tasks for eval. JGLUE is CC BY-SA 4.0: keep its licence with what you write.")

    @Option(help: "Directory holding the released JGLUE files (jcommonsenseqa-*-v1.3.json, jnli-valid-v1.3.json).") var source: String
    @Option(help: "Directory to write.") var output: String
    @Option(help: "train (JCommonsenseQA train) or validation (JCommonsenseQA and JNLI validation).") var split = "validation"
    @Option(help: "Keep the first N records of each source file.") var limit: Int?

    func validate() throws { if let limit { try OptionCheck.atLeast(limit, 1, "limit") } }

    func run() throws {
        for (url, n) in try JGLUE.writeTasks(from: source, to: URL(fileURLWithPath: output), split: split, limit: limit) {
            print("\(url.path): \(n) records")
        }
    }
}
