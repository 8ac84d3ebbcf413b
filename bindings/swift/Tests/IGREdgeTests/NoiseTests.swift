import CryptoKit
import XCTest
@testable import IGREdge

/// The noise generator against bindings/contract/noise.json (Tests/IGREdgeTests/contract links to it and is
/// copied in as a test resource), value for value.
final class NoiseTests: XCTestCase {
    struct Vector: Decodable {
        let seed: String
        let splitmix64_first: [String]
        let first: [Double]
        let shape: [Int]
        let sha256_le_float32: String
    }
    struct Vectors: Decodable { let generator: String; let vectors: [Vector] }

    func vectors() throws -> Vectors {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "noise", withExtension: "json", subdirectory: "contract"))
        return try JSONDecoder().decode(Vectors.self, from: Data(contentsOf: url))
    }

    func testSplitMix64MatchesTheContract() throws {
        for v in try vectors().vectors {
            let got = Noise.splitmix64(seed: try XCTUnwrap(UInt64(v.seed)), count: 4).map { String($0) }
            XCTAssertEqual(got, v.splitmix64_first, "seed \(v.seed)")
        }
    }

    func testNormalMatchesTheContractBitForBit() throws {
        for v in try vectors().vectors {
            let z = Noise.normal(seed: try XCTUnwrap(UInt64(v.seed)), count: v.shape.reduce(1, *))
            XCTAssertEqual(Array(z.prefix(8)), v.first.map { Float($0) }, "seed \(v.seed)")
            var bytes = Data()
            for x in z { withUnsafeBytes(of: x.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
            let digest = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
            XCTAssertEqual(digest, v.sha256_le_float32, "seed \(v.seed)")
        }
    }
}
