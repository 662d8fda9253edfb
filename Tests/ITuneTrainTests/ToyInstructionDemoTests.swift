import XCTest
import ITuneTrain

final class ToyInstructionDemoTests: XCTestCase {
    func testToyDemoLearnsOnCPU() throws {
        var demo = ToyInstructionDemo()
        demo.steps = 30
        demo.batchSize = 4
        demo.heldOut = 2
        let result = try demo.run(log: { _ in })
        XCTAssertLessThan(result.lastLoss, result.firstLoss * 0.8, "loss should fall within 30 steps")
    }
}
