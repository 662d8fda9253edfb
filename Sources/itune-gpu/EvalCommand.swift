import ArgumentParser
import Foundation
import ITune

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Mean loss and perplexity of a model over a dataset (text records, or instruction records scored on their answers).")

    @Option(help: "Model directory.") var model: String
    @Option(help: "Data: .json/.jsonl files or directories (repeatable).") var data: [String] = []
    @Option(help: "Held-out tasks: a directory of task files, scored per task by exact match, answer log-likelihood and rank classification.")
    var tasks: String?
    @Option(help: "With --tasks: examples per task.") var examplesPerTask = 50
    @Option(help: "With --tasks: exemplars of the task put before each question (FLAN's few-shot; 0 is zero-shot).") var shots = 0
    @Option(help: "With --tasks: seed of the question and exemplar choice.") var seed: UInt64 = 0
    @Option(help: "With --tasks: the start of every answer, left open for the model to continue (transformers' continue_final_message); what follows it is matched and scored.")
    var responsePrefix: String?
    @Option(help: "A PEFT LoRA adapter directory to apply.") var adapter: String?
    @Option(help: "Prompt template for instruction records: a name, or 'model' (default: the model's own chat_template when it has one, else alpaca).")
    var template: String?
    @Option(help: "Longest sequence in tokens (default: the model's context, at most 2048).") var maxLength: Int?
    @Option(help: "Sequences per forward pass.") var batchSize = 8
    @Flag(help: "Score every token of instruction records, not only the answers.") var trainOnInputs = false
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var deviceOptions: DeviceOptions

    func validate() throws {
        try OptionCheck.atLeast(batchSize, 1, "batch-size")
        try OptionCheck.atLeast(examplesPerTask, 1, "examples-per-task")
        try OptionCheck.atLeast(shots, 0, "shots")
        if let maxLength { try OptionCheck.atLeast(maxLength, 1, "max-length") }
    }

    func run() throws {
        let device = try deviceOptions.resolve(verbose: !json)
        let directory = URL(fileURLWithPath: model)
        if let tasks {
            let answering = try loadTaskModel(directory: directory, on: device, adapter: adapter.map { URL(fileURLWithPath: $0) },
                                              template: template, maxLength: maxLength ?? 512, responsePrefix: responsePrefix)
            let results = try TaskEvaluator.evaluate(tasks: TaskPool.examples(tasks), model: answering,
                                                     maxExamples: examplesPerTask, seed: seed, shots: shots,
                                                     progress: json ? { _ in } : { print($0) })
            let n = Double(max(results.count, 1))
            var overall: [String: Any] = [
                "exact_match": results.reduce(0) { $0 + $1.exactMatch } / n,
                "answer_log_likelihood": results.reduce(0) { $0 + $1.answerLogLikelihood } / n,
            ]
            let ranked = results.compactMap(\.rankAccuracy)
            if !ranked.isEmpty { overall["rank_accuracy"] = ranked.reduce(0, +) / Double(ranked.count) }
            if json {
                let rows = try results.map { try JSONSerialization.jsonObject(with: JSONEncoder().encode($0)) }
                let data = try JSONSerialization.data(withJSONObject: ["model": model, "adapter": adapter ?? NSNull(), "tasks": rows,
                                                                       "overall": overall], options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("task                          examples  exact match  answer LL/token  rank accuracy")
                for r in results {
                    print(String(format: "%@ %8d  %10.1f%%  %15.3f  %@", r.task.padding(toLength: 28, withPad: " ", startingAt: 0),
                                 r.examples, r.exactMatch * 100, r.answerLogLikelihood,
                                 r.rankAccuracy.map { String(format: "%.1f%% (%d options)", $0 * 100, r.options!) } ?? "—"))
                }
                print(String(format: "overall (mean over %d tasks): exact match %.1f%%, answer log-likelihood %.3f/token%@", results.count,
                             (overall["exact_match"] as! Double) * 100, overall["answer_log_likelihood"] as! Double,
                             ranked.isEmpty ? "" : String(format: ", rank accuracy %.1f%% (over %d tasks)",
                                                          ranked.reduce(0, +) / Double(ranked.count) * 100, ranked.count)))
            }
            return
        }
        guard !data.isEmpty else { throw ValidationError("give --data FILE (loss and perplexity) or --tasks DIR (per-task scores)") }
        if T5Model.holdsModel(directory) { return try runSeq2Seq(directory, device) }
        let bundle = try ModelBundle(directory: directory, on: device)
        if let adapter { try bundle.model.loadAdapter(from: URL(fileURLWithPath: adapter)) }
        let tpl = try PromptTemplate.resolve(template, tokenizer: bundle.tokenizer).template
        let loaded = try DatasetReader.read(data)
        let length = maxLength ?? min(bundle.model.config.maxPositions, 2048)
        let (examples, stats) = try DatasetTokenizer.tokenize(loaded.examples, bundle.tokenizer,
                                                             TokenizeOptions(template: tpl, maxLength: length, trainOnInputs: trainOnInputs))
        let r = try evaluate(bundle.model, sequences: examples.map { ($0.ids, $0.labels) }, batchSize: batchSize)
        if json {
            var obj: [String: Any] = ["model": model, "data": data, "mean_loss": jsonNumber(r.meanLoss), "perplexity": jsonNumber(r.perplexity),
                                      "tokens": r.tokens, "sequences": r.sequences, "truncated": stats.truncated,
                                      "seconds": r.seconds, "device": "\(device)", "template": tpl.name]
            if let adapter { obj["adapter"] = adapter }
            let out = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: out, as: UTF8.self))
        } else {
            print(String(format: "mean loss %.4f, perplexity %.3f over %d tokens of %d sequences (%d truncated to %d) in %.2f s",
                         r.meanLoss, r.perplexity, r.tokens, r.sequences, stats.truncated, length, r.seconds))
        }
    }

    /// Encoder-decoder models: each record's target scored given its input (FLAN's layout), each
    /// side cut to --max-length (default 512).
    func runSeq2Seq(_ directory: URL, _ device: Device) throws {
        if template != nil { throw ValidationError("--template: an encoder-decoder model reads the instruction as its encoder input, not through a template") }
        if trainOnInputs { throw ValidationError("--train-on-inputs: an encoder-decoder model scores only its targets (the input is the encoder's)") }
        let bundle = try Seq2SeqBundle(directory: directory, on: device)
        if let adapter { try bundle.model.loadAdapter(from: URL(fileURLWithPath: adapter)) }
        let length = maxLength ?? 512
        let loaded = try DatasetReader.read(data)
        let examples = try Seq2SeqData.tokenize(loaded.examples, tokenizer: bundle.tokenizer, maxInputLength: length,
                                                maxTargetLength: length)
        let r = try evaluate(bundle.model, examples: examples, batchSize: batchSize)
        if json {
            var obj: [String: Any] = ["model": model, "data": data, "mean_loss": jsonNumber(r.meanLoss), "perplexity": jsonNumber(r.perplexity),
                                      "tokens": r.tokens, "sequences": r.sequences, "seconds": r.seconds, "device": "\(device)",
                                      "template": "encoder-decoder"]
            if let adapter { obj["adapter"] = adapter }
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "mean loss %.4f, perplexity %.3f over %d target tokens of %d examples (inputs and targets cut to %d) in %.2f s",
                         r.meanLoss, r.perplexity, r.tokens, r.sequences, length, r.seconds))
        }
    }
}

/// A number for JSON: JSON has no NaN or infinity (a diverged model's loss, an overflowing
/// perplexity), so those are written as null and the text output shows them as they are.
func jsonNumber(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
