import Foundation

/// A compiled Jinja template, interpreted as transformers renders chat templates: jinja2's
/// ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the loopcontrols extension
/// (`break`, `continue`), the globals `raise_exception` and `strftime_now`, a `tojson` that does
/// not escape non-ASCII text, and the `{% generation %}` block of transformers' assistant masks.
///
/// Why our own interpreter: a model's prompt format is the Jinja program in its
/// tokenizer_config.json; guessing it from marker strings trains models on formats they were
/// never taught.
public struct JinjaTemplate {
    let body: [Stmt]
    public let source: String

    /// Parses `source`; a syntax error names the template line and column.
    public init(_ source: String) throws {
        self.source = source
        body = try Parser.parse(source)
    }

    /// The rendered text. `now` is what `strftime_now` reads.
    public func render(_ context: [String: JinjaValue], now: Date = Date()) throws -> String {
        try renderWithGenerationSpans(context, now: now).text
    }

    /// The rendered text and the UTF-8 byte ranges written inside `{% generation %}` blocks.
    public func renderWithGenerationSpans(_ context: [String: JinjaValue], now: Date = Date()) throws -> (text: String, generation: [Range<Int>]) {
        let interpreter = Interpreter(now: now)
        let root = Scope(parent: nil)
        root.vars = context
        var out = ""
        do {
            try interpreter.run(body, scope: root, into: &out, topLevel: true)
        } catch let signal as LoopSignal {
            throw JinjaError(message: signal == .breakLoop ? "'break' outside a loop" : "'continue' outside a loop")
        }
        return (out, interpreter.generationSpans)
    }
}
