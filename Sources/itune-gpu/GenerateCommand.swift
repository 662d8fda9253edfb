import ArgumentParser
import Foundation
import ITune

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Continue a prompt with a Hugging Face model directory, streaming the tokens.")

    @Option(help: "Model directory (config.json, *.safetensors, tokenizer.json).")
    var model: String

    @Option(help: "The prompt text.")
    var prompt: String?

    @Option(help: "Instead of --prompt: a file of prompts, one a line (or a .jsonl of {\"prompt\": …} objects), decoded together as the rows of batches (one read of the weights per step for a batch); one JSON line per prompt (prompt, output, tokens, stop) goes to --output or standard output, a batch's lines as it finishes.")
    var prompts: String?

    @Option(help: "With --prompts: the JSONL file the results are written to (default: standard output).")
    var output: String?

    @Option(help: "With --prompts: prompts decoded together at a time.")
    var batch = 8

    @Option(help: "Most tokens to generate.")
    var maxNewTokens = 128

    @Option(help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(help: "Sample among the k most likely tokens (0: all).")
    var topK = 0

    @Option(help: "Sample among the smallest set of tokens whose probability reaches p.")
    var topP: Float = 1

    @Option(help: "Seed of the sampler.")
    var seed: UInt64 = 0

    @Option(help: "Stop when the text contains this string (repeatable).")
    var stop: [String] = []

    @Option(help: "A PEFT LoRA adapter directory to apply.")
    var adapter: String?

    @Option(help: "Wrap the prompt as an instruction in this template (alpaca, alpaca-ja, llm-jp, chatml, llama3, plain; 'model': the model's own chat_template).")
    var template: String?

    @Option(help: "Storage of the projection and embedding matrices: f32, bf16 or f16 (default: the checkpoint's dtype, so that a bf16 checkpoint is read as bf16).")
    var baseDtype: BaseDType?

    @Option(help: "Store the projections blockwise quantised while loading: nf4 or int8 (blocks of 64 with an absmax each, as train --quantize); decoding streams the codes, a quarter (nf4) or half (int8) of bf16's bytes per token.")
    var quantize: String?

    @Flag(help: "With --quantize: the token embeddings and the head too (the rotary decoders), as llama.cpp and mlx-lm quantise them.")
    var quantizeEmbeddings = false

    @Option(help: "With --template: the start of the answer, which the model continues (the conversation rendered with its final message left open, as transformers' continue_final_message).")
    var responsePrefix: String?

    @OptionGroup var deviceOptions: DeviceOptions

    var options: GenerationOptions {
        GenerationOptions(maxNewTokens: maxNewTokens, sampling: SamplingOptions(temperature: temperature, topK: topK, topP: topP, seed: seed))
    }

    func validate() throws {
        try options.validate()
        if (prompt == nil) == (prompts == nil) { throw ValidationError("give --prompt TEXT or --prompts FILE (one of them)") }
        if output != nil, prompts == nil { throw ValidationError("--output writes the results of --prompts FILE") }
        guard batch >= 1, batch <= 256 else { throw ValidationError("--batch must be in [1, 256], not \(batch)") }
        if responsePrefix != nil, template == nil { throw ValidationError("--response-prefix needs --template: the prefix opens the template's answer") }
        if let quantize, QuantFormat(rawValue: quantize) == nil { throw ValidationError("--quantize must be nf4 or int8, not '\(quantize)'") }
        if quantizeEmbeddings, quantize == nil { throw ValidationError("--quantize-embeddings quantises in the base's format: give it with --quantize nf4 or int8") }
    }

    func run() throws {
        let device = try deviceOptions.resolve(verbose: false)
        if Seq2SeqBundle.holdsModel(URL(fileURLWithPath: model)) { return try runSeq2Seq(device) }
        let dir = URL(fileURLWithPath: model)
        let matrices = try baseDtype?.dtype ?? ModelBundle.inferenceMatrices(dir)
        let setting = quantize.flatMap(QuantFormat.init(rawValue:)).map { QuantizeSetting(format: $0, embeddings: quantizeEmbeddings) }
        let bundle = try QuantizeOnLoad.$setting.withValue(setting) { try ModelBundle(directory: dir, on: device, matrices: matrices) }
        if quantizeEmbeddings, bundle.model.quantizedOutputEmbedding == nil {
            throw ValidationError("--quantize-embeddings is implemented for the rotary decoders (Llama, Qwen2, Mistral, Phi-3), not \(bundle.model.config.architecture.rawValue)")
        }
        if let adapter { try bundle.model.loadAdapter(from: URL(fileURLWithPath: adapter)) }
        var stops = stop
        var addSpecialTokens = true
        var render: (String) throws -> String = { $0 }
        if let name = template {
            let t = try PromptTemplate.resolve(name, tokenizer: bundle.tokenizer).template
            render = { [responsePrefix] text in
                if let responsePrefix {
                    return try t.continuationPrompt(for: Conversation(turns: [Turn(instruction: text, response: responsePrefix)]))
                }
                return try t.generationPrompt(instruction: text)
            }
            stops += t.stopStrings
            addSpecialTokens = !t.writesOwnSpecialTokens
        }
        if let prompts {
            let texts = try PromptFile.read(URL(fileURLWithPath: prompts))
            let outURL = output.map { URL(fileURLWithPath: $0) }
            if let outURL { try OutputFiles.writeAtomically(Data(), to: outURL) }
            let start = Date()
            var tokens = 0, done = 0
            // A batch at a time, its lines written as it finishes: a long file stopped midway
            // keeps what was generated.
            while done < texts.count {
                let chunk = Array(texts[done..<min(texts.count, done + batch)])
                let results = try bundle.generate(prompts: chunk.map(render), options: options, stopStrings: stops,
                                                  addSpecialTokens: addSpecialTokens, batch: batch)
                var lines = Data()
                for (text, r) in zip(chunk, results) {
                    let object: [String: Any] = ["prompt": text, "output": r.text, "tokens": r.result.tokens.count,
                                                 "stop": r.result.stopReason.rawValue]
                    lines += try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                        + Data("\n".utf8)
                    tokens += r.result.tokens.count
                }
                if let outURL {
                    try OutputFiles.append(lines, to: outURL)
                } else {
                    fputs(String(decoding: lines, as: UTF8.self), stdout)
                    fflush(stdout)
                }
                done += chunk.count
            }
            let seconds = Date().timeIntervalSince(start)
            fputs(String(format: "[%d prompts, %d tokens in %.1f s (%.1f tokens/s), batches of %d, device %@, matrices %@]\n",
                         texts.count, tokens, seconds, seconds > 0 ? Double(tokens) / seconds : 0, batch, "\(device)",
                         matrices.rawValue), stderr)
            return
        }
        let prompt = try render(self.prompt ?? "")
        // fputs, not FileHandle.write: a closed pipe or a full disk must not trap.
        fputs(prompt, stdout)
        let (_, result) = try bundle.generate(prompt: prompt, options: options,
                                              stopStrings: stops, addSpecialTokens: addSpecialTokens) { piece in
            fputs(piece, stdout)
            fflush(stdout)
        }
        print()
        let rate = result.decodeSeconds > 0 ? Double(max(result.tokens.count - 1, 0)) / result.decodeSeconds : 0
        fputs(String(format: "[%d tokens, stop: %@, prefill %.0f ms, %.1f tokens/s, device %@, matrices %@]\n",
                     result.tokens.count, result.stopReason.rawValue, result.prefillSeconds * 1000, rate, "\(device)",
                     matrices.rawValue), stderr)
    }

    /// T5-family models: the prompt is the encoder's input; greedy decoding only so far.
    func runSeq2Seq(_ device: Device) throws {
        guard temperature == 0 else { throw ValidationError("--temperature: only greedy decoding (0) is implemented for T5-family models") }
        guard let prompt else { throw ValidationError("--prompts: batches of prompts are for decoder-only models so far; give a T5-family model one --prompt") }
        let bundle = try Seq2SeqBundle(directory: URL(fileURLWithPath: model), on: device)
        if let adapter { try bundle.model.loadAdapter(from: URL(fileURLWithPath: adapter)) }
        let (text, tokens) = try bundle.generate(prompt: prompt, maxNewTokens: maxNewTokens)
        print(text)
        fputs("[\(tokens.count) tokens, encoder-decoder, device \(device)]\n", stderr)
    }
}

extension BaseDType: ExpressibleByArgument {}
