import ArgumentParser
import Foundation
import ITune

struct RenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Print data records as the model will see them: the rendered text, and with --ids the token ids with the trained ones marked.",
        discussion: "Reads only the model's tokenizer files. With --ids a trained token is written id*; a line then repeats the trained text.")

    @Option(help: "Model directory (its tokenizer.json and tokenizer_config.json are read).") var model: String
    @Option(help: "Data: .json/.jsonl files or directories (repeatable).") var data: [String]
    @Option(help: "Prompt template: a name, or 'model' (default: the model's own chat_template when it has one, else alpaca).")
    var template: String?
    @Option(help: "Records to print.") var limit = 5
    @Flag(help: "Also print token ids, trained ones marked with *.") var ids = false
    @Flag(help: "Loss on every token, as train --train-on-inputs.") var trainOnInputs = false
    @Flag(help: "Leave each record's final message open, as generation continues it (transformers' continue_final_message): nothing is trained.")
    var continueFinalMessage = false

    func validate() throws { try OptionCheck.atLeast(limit, 1, "limit") }

    func run() throws {
        let tokenizer = try Tokenizer(directory: URL(fileURLWithPath: model))
        let (tpl, why) = try PromptTemplate.resolve(template, tokenizer: tokenizer)
        print("template: \(tpl.name) (\(why))")
        let loaded = try DatasetReader.read(data)
        let options = TokenizeOptions(template: tpl, maxLength: Int.max / 2, trainOnInputs: trainOnInputs)
        for e in loaded.examples.prefix(limit) {
            if continueFinalMessage {
                let text = try tpl.continuationPrompt(for: e.conversation)
                let tokens = tokenizer.encode(text, addSpecialTokens: !tpl.writesOwnSpecialTokens)
                print("── \(e.source) ── \(tokens.count) tokens, final message left open")
                print(text)
                if ids { print(tokens.map(String.init).joined(separator: " ")) }
                continue
            }
            let p = try DatasetTokenizer.preview(e, tokenizer, options)
            print("── \(e.source) ── \(p.ids.count) tokens, \(p.trainedCount) trained")
            print(p.text)
            if ids {
                print(zip(p.ids, p.labels).map { $1 == -100 ? "\($0)" : "\($0)*" }.joined(separator: " "))
                print("trained: \(p.trainedText.debugDescription)")
            }
        }
    }
}
