import Foundation
import XCTest
import ITuneData
import ITuneModels
import ITuneTensor
@testable import ITuneTrain

/// DPO, conservative DPO, IPO and ORPO against TRL 1.16's own trainers
/// (scripts/make_preference_fixtures.py): loss, the metrics TRL logs, and the gradients of the
/// LoRA factors or (full fine-tuning) of some weights, on the tiny Llama fixture.
final class PreferenceLossTests: XCTestCase {
    static let fixtures = TrainerFixtures.fixtures

    struct Case: Decodable {
        var name: String
        var method: String
        var mode: String
        var loss_type: String?
        var beta: Double?
        var label_smoothing: Double
        var lam: Double?
        var rows: [Row]
        var loss: Double
        var metrics: [String: Double]
        var grads: [String: [Float]]
        struct Row: Decodable { var ids: [Int32]; var labels: [Int32] }
    }

    struct Fixture: Decodable { var pad_id: Int32; var cases: [Case] }

    static let fixture: Fixture = {
        let url = fixtures.appendingPathComponent("preference/cases.json")
        return try! JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }()

    func objective(_ c: Case) -> PreferenceObjective {
        c.method == "orpo" ? PreferenceObjective(method: .orpo, lambda: c.lam ?? 0)
            : PreferenceObjective(method: .dpo, beta: c.beta ?? 0, labelSmoothing: c.label_smoothing,
                                  lossType: PreferenceLossType(rawValue: c.loss_type ?? "") ?? .sigmoid)
    }

    func pairs(_ c: Case) -> [TrainingRow] {
        stride(from: 0, to: c.rows.count, by: 2).map {
            TrainingRow(chosen: (c.rows[$0].ids, c.rows[$0].labels), rejected: (c.rows[$0 + 1].ids, c.rows[$0 + 1].labels))
        }
    }

    /// The policy, its trainable tensors by name, and DPO's reference, as the fixture built them.
    func setUp(_ c: Case, on device: Device) throws -> (any CausalLM, [String: Tensor], PreferenceReference?) {
        let base = Self.fixtures.appendingPathComponent("models/llama_gqa_untied")
        if c.mode == "lora" {
            let model = try loadPretrained(base, on: device)
            try model.loadAdapter(from: Self.fixtures.appendingPathComponent("preference/lora_adapter"), trainable: true)
            return (model, Dictionary(uniqueKeysWithValues: model.loraParameters), .adaptersOff)
        }
        let model = try loadPretrained(Self.fixtures.appendingPathComponent("preference/full_policy"), on: device)
        model.setTrainable(true)
        let reference = try loadPretrained(base, on: device)
        return (model, Dictionary(uniqueKeysWithValues: model.namedParameters()), .frozen(reference))
    }

    /// `tolerance`: of each gradient tensor's largest entry (at least absolute): 1e-5 on the CPU
    /// path; 2e-5 on OpenCL, whose reductions run in another order (DESIGN: OpenCL matches the
    /// CPU path to 1e-4 for reductions and matmul).
    func check(_ c: Case, on device: Device, tolerance: Float = 1e-5, file: StaticString = #filePath, line: UInt = #line) throws {
        let (model, params, reference) = try setUp(c, on: device)
        let (loss, metrics) = try preferenceLoss(model: model, reference: reference, rows: pairs(c), objective: objective(c),
                                                 padID: Self.fixture.pad_id)
        try loss.backward()
        let what = "\(c.name) on \(device)"
        XCTAssertEqual(Double(try loss.item()), c.loss, accuracy: 1e-5, what, file: file, line: line)
        let means = metrics.means
        for (k, v) in c.metrics {
            guard let got = means[k] else { XCTFail("\(what): no metric \(k)", file: file, line: line); continue }
            XCTAssertEqual(got, v, accuracy: 1e-5 * max(1, abs(v)), "\(what): \(k)", file: file, line: line)
        }
        XCTAssertEqual(Set(means.keys), Set(c.metrics.keys), what, file: file, line: line)
        XCTAssertFalse(c.grads.isEmpty)
        for (name, expected) in c.grads {
            guard let t = params[name], let g = t.grad else { XCTFail("\(what): no gradient for \(name)", file: file, line: line); continue }
            let got = try g.toArray()
            XCTAssertEqual(got.count, expected.count, name, file: file, line: line)
            let scale = max(expected.map { abs($0) }.max() ?? 0, 1e-3)
            XCTAssertGreaterThan(scale, 1e-6, "\(what): \(name) has a gradient to compare", file: file, line: line)
            // 1e-5 of the tensor's largest gradient (at least 1e-5 absolute): f32 sums over the
            // sequence put a few ulps of the largest entries on every entry.
            let worst = zip(got, expected).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, tolerance * max(1, scale), "\(what): \(name) gradient, worst |Δ| \(worst) (largest |g| \(scale))",
                                     file: file, line: line)
        }
    }

    func testLossesMetricsAndGradientsEqualTRLsOnTheCPUPath() throws {
        XCTAssertEqual(Self.fixture.cases.count, 8)
        for c in Self.fixture.cases { try check(c, on: .cpu) }
    }

    func testLossesMetricsAndGradientsEqualTRLsOnOpenCL() throws {
        let device = try TrainerFixtures.openCLDevice()
        for c in Self.fixture.cases { try check(c, on: device, tolerance: 2e-5) }
    }

    /// With B = 0 the adapted model is the base, bit for bit: Δ = 0 and the loss is −log σ(0) = ln 2.
    func testDPOLossAtInitialisationIsExactlyLn2() throws {
        for device in [Device.cpu] + ((try? TrainerFixtures.openCLDevice()).map { [$0] } ?? []) {
            let model = try loadPretrained(Self.fixtures.appendingPathComponent("models/llama_gqa_untied"), on: device)
            try model.addLoRA(LoRAConfig(rank: 4, alpha: 8, dropout: 0), seed: 7)
            let c = Self.fixture.cases[0]
            for type in PreferenceLossType.allCases where type == .sigmoid {
                let (loss, m) = try preferenceLoss(model: model, reference: .adaptersOff, rows: pairs(c),
                                                   objective: PreferenceObjective(method: .dpo, beta: 0.1, lossType: type), padID: 0)
                XCTAssertEqual(try loss.item(), Float(log(2.0)), "on \(device)")
                XCTAssertEqual(m.means["rewards/margins"], 0)
                try loss.backward()
                // Gradients flow to B (A's are zero while B is).
                let bNorm = try model.loraAdapters.map { try $0.b.grad!.toArray().map { $0 * $0 }.reduce(0, +) }.reduce(0, +)
                XCTAssertGreaterThan(bNorm, 0)
            }
        }
    }

    /// A quantised base under LoRA: the reference is the nf4 base itself, so at B = 0 the loss
    /// is again exactly ln 2, and the gradients reach the adapters.
    func testDPOOnAQuantisedBaseStartsAtLn2() throws {
        let model = try loadPretrained(Self.fixtures.appendingPathComponent("models/llama_gqa_untied"), on: .cpu)
        try model.addLoRA(LoRAConfig(rank: 4, alpha: 8, dropout: 0), seed: 7)
        XCTAssertGreaterThan(try model.quantizeBase(.nf4, doubleQuant: true), 0)
        let (loss, _) = try preferenceLoss(model: model, reference: .adaptersOff, rows: pairs(Self.fixture.cases[0]),
                                           objective: PreferenceObjective(method: .dpo), padID: 0)
        XCTAssertEqual(try loss.item(), Float(log(2.0)))
        try loss.backward()
        XCTAssertNotNil(model.loraAdapters[0].b.grad)
    }

    /// The host formulas' derivatives against central differences (double precision).
    func testHostLossDerivativesMatchFiniteDifferences() {
        let pc = [-12.5, -3.25], pr = [-11.0, -4.5], rc = [-12.0, -3.0], rr = [-11.5, -4.0], nc = [3, 5], nr = [2, 4]
        let objectives = [PreferenceObjective(method: .dpo, beta: 0.3), PreferenceObjective(method: .dpo, beta: 0.3, labelSmoothing: 0.2),
                          PreferenceObjective(method: .dpo, beta: 0.3, lossType: .ipo), PreferenceObjective(method: .orpo, lambda: 0.4)]
        for o in objectives {
            func f(_ c: [Double], _ r: [Double]) -> (Double, [Double], [Double]) {
                if o.method == .orpo {
                    let x = PreferenceLoss.orpo(o, chosen: c, rejected: r, chosenCounts: nc, rejectedCounts: nr, nll: 0)
                    return (x.loss, x.dChosen, x.dRejected)
                }
                let x = PreferenceLoss.dpo(o, chosen: c, rejected: r, refChosen: rc, refRejected: rr, chosenCounts: nc, rejectedCounts: nr)
                return (x.loss, x.dChosen, x.dRejected)
            }
            let (_, dc, dr) = f(pc, pr)
            let h = 1e-6
            for i in 0..<2 {
                var up = pc, down = pc
                up[i] += h
                down[i] -= h
                XCTAssertEqual(dc[i], (f(up, pr).0 - f(down, pr).0) / (2 * h), accuracy: 1e-7, "\(o) chosen \(i)")
                var upR = pr, downR = pr
                upR[i] += h
                downR[i] -= h
                XCTAssertEqual(dr[i], (f(pc, upR).0 - f(pc, downR).0) / (2 * h), accuracy: 1e-7, "\(o) rejected \(i)")
            }
        }
    }
}
