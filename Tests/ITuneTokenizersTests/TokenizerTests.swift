import XCTest
@testable import ITuneTokenizers

final class TokenizerPlaceholderTests: XCTestCase {
    func testModuleLoads() {}
}
