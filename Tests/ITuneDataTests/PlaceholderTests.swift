import XCTest
@testable import ITuneData

final class DataModuleTests: XCTestCase {
    func testModuleLoads() {}
}
