import Foundation
import XCTest
@testable import ITuneJinja

/// Each construct of the template language against jinja2 3.1.6 under transformers' chat-template
/// environment (scripts/make_jinja_fixtures.py wrote Tests/Fixtures/jinja/constructs.json).
final class JinjaFixtureTests: XCTestCase {
    struct Case {
        let name: String
        let template: String
        let context: [String: JinjaValue]
        let output: String?
        let error: String?
        let errorLine: Int?
        let message: String?
        let generationSpans: [[Int]]?
    }

    static func fixtureURL(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/jinja/\(name)")
    }

    static func loadCases() throws -> [Case] {
        let text = try String(contentsOf: fixtureURL("constructs.json"), encoding: .utf8)
        guard case .dict(let root) = try JinjaValue.parseJSON(text), case .list(let cases)? = root["cases"] else {
            throw JinjaError(message: "constructs.json: expected {cases: [...]}")
        }
        return cases.compactMap { c -> Case? in
            guard case .dict(let d) = c, case .string(let name)? = d["name"], case .string(let template)? = d["template"],
                  case .dict(let ctx)? = d["context"] else { return nil }
            var context: [String: JinjaValue] = [:]
            for (k, v) in ctx.entries { context[k] = v }
            func str(_ k: String) -> String? { if case .string(let s)? = d[k] { return s } else { return nil } }
            var spans: [[Int]]? = nil
            if case .list(let l)? = d["generation_spans"] {
                spans = l.map { if case .list(let p) = $0 { return p.compactMap { if case .int(let i) = $0 { return i } else { return nil } } } else { return [] } }
            }
            var line: Int? = nil
            if case .int(let i)? = d["error_line"] { line = i }
            return Case(name: name, template: template, context: context, output: str("output"), error: str("error"),
                        errorLine: line, message: str("message"), generationSpans: spans)
        }
    }

    func testEveryConstructRendersAsJinja2Does() throws {
        let cases = try Self.loadCases()
        XCTAssertGreaterThan(cases.count, 60)
        var checked = 0
        for c in cases {
            if c.name == "strftime_fixed" { continue } // checked below with a fixed clock
            let rendered: Result<(text: String, generation: [Range<Int>]), Error> = Result {
                try JinjaTemplate(c.template).renderWithGenerationSpans(c.context)
            }
            switch (rendered, c.output) {
            case (.success(let r), let expected?):
                XCTAssertEqual(r.text, expected, "case \(c.name)")
                if let spans = c.generationSpans {
                    // Python reports code-point offsets, we report UTF-8 byte offsets.
                    let ours = r.generation.map { range -> [Int] in
                        let utf8 = Array(r.text.utf8)
                        func scalars(_ n: Int) -> Int { String(decoding: utf8[..<n], as: UTF8.self).unicodeScalars.count }
                        return [scalars(range.lowerBound), scalars(range.upperBound)]
                    }
                    XCTAssertEqual(ours, spans, "case \(c.name): generation spans")
                }
            case (.failure(let e), nil):
                let j = e as? JinjaError
                XCTAssertNotNil(j, "case \(c.name): \(e)")
                if c.error == "raised" {
                    XCTAssertEqual(j?.raised, true, "case \(c.name)")
                    XCTAssertEqual(j?.message, c.message, "case \(c.name)")
                }
                XCTAssertNotNil(j?.line, "case \(c.name): the error names a line")
                if let line = c.errorLine, c.error == "syntax", c.name != "error_unknown_filter" { XCTAssertEqual(j?.line, line, "case \(c.name)") }
            case (.success(let r), nil):
                XCTFail("case \(c.name): jinja2 failed (\(c.error ?? "") \(c.message ?? "")) but we rendered \(r.text.debugDescription)")
            case (.failure(let e), _?):
                XCTFail("case \(c.name): \(e)")
            }
            checked += 1
        }
        XCTAssertEqual(checked, cases.count - 1)
    }

    func testStrftimeNowFormatsTheGivenClock() throws {
        // 2024-07-26 12:00 UTC; the day is the same in every time zone within ±11 h.
        let date = Date(timeIntervalSince1970: 1_721_995_200)
        let out = try JinjaTemplate("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%B %A %y %%') }}").render([:], now: date)
        XCTAssertEqual(out, "26 Jul 2024|July Friday 24 %")
    }

    func testErrorsNameTemplateLineAndColumn() throws {
        XCTAssertThrowsError(try JinjaTemplate("line one\n{% for m in messages %}\n  {{ m.content | nosuch }}\n{% endfor %}").render(["messages": .list([.dict(JinjaDict([("content", .string("x"))]))])])) { e in
            let j = e as? JinjaError
            XCTAssertEqual(j?.line, 3)
            XCTAssertEqual(j?.column, 16)
            XCTAssertTrue("\(e)".contains("template line 3, column 16"), "\(e)")
        }
        XCTAssertThrowsError(try JinjaTemplate("a\n\n   {% if x %}\nno end")) { e in
            let j = e as? JinjaError
            XCTAssertEqual(j?.line, 4, "\(e)")  // where the template ends without endif
            XCTAssertTrue("\(e)".contains("'if' opened at line 3"), "\(e)")
        }
        XCTAssertThrowsError(try JinjaTemplate("{{ 'unterminated }}")) { e in
            XCTAssertEqual((e as? JinjaError)?.line, 1)
        }
    }

    func testPathologicalNestingIsRefusedNotACrash() throws {
        XCTAssertThrowsError(try JinjaTemplate("{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}")) { e in
            XCTAssertTrue("\(e)".contains("nested deeper"), "\(e)")
        }
        XCTAssertThrowsError(try JinjaTemplate("{{ " + String(repeating: "-", count: 5000) + "1 }}"))
        XCTAssertThrowsError(try JinjaTemplate(String(repeating: "{% if x %}", count: 1000) + String(repeating: "{% endif %}", count: 1000)))
        XCTAssertThrowsError(try JinjaTemplate("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").render([:])) { e in
            XCTAssertTrue("\(e)".contains("recursed deeper"), "\(e)")
        }
        // Real templates nest far less: forty levels parse and render.
        XCTAssertEqual(try JinjaTemplate("{{ " + String(repeating: "(", count: 40) + "1" + String(repeating: ")", count: 40) + " }}").render([:]), "1")
    }

    func testRaiseExceptionIsMarkedAsTheTemplatesRefusal() throws {
        XCTAssertThrowsError(try JinjaTemplate("x\n{{ raise_exception('no system role') }}").render([:])) { e in
            XCTAssertEqual((e as? JinjaError)?.raised, true)
            XCTAssertEqual((e as? JinjaError)?.message, "no system role")
            XCTAssertEqual((e as? JinjaError)?.line, 2)
        }
    }
}
