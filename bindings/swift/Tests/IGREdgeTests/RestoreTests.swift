import CoreGraphics
import Foundation
import ImageIO
import XCTest
@testable import IGREdge

/// The contract's restore cases (bindings/contract/cases.json) through Core ML, on a bundle with a `coreml-*`
/// variant named by IGR_COREML_BUNDLE (e.g. bundles/student-2 from scripts/convert-bundles.sh); skipped
/// without one. The contract's garments come from the ONNX `onnx-w8` variant in float32; Core ML computes in
/// fp16 (and the ANE in its own way), so the PSNR printed here is the figure to record, and the contract's
/// `min_psnr_db` may be out of reach for fp16: IGR_MIN_PSNR_DB overrides it. Never run where it was written.
final class RestoreTests: XCTestCase {
    struct Case: Decodable { let person: String; let seed: String; let garment: String; let min_psnr_db: Double }
    struct Cases: Decodable { let cases: [Case] }

    func contractURL(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.resourceURL?.appendingPathComponent("contract").appendingPathComponent(name))
    }

    /// RGB bytes (row-major, top row first) of a PNG, drawn into an sRGB RGBX context of its own size.
    func rgb(_ image: CGImage) throws -> [UInt8] {
        let w = image.width, h = image.height
        var rgbx = [UInt8](repeating: 0, count: w * h * 4)
        try rgbx.withUnsafeMutableBytes { raw in
            guard let context = CGContext(data: raw.baseAddress, width: w, height: h, bitsPerComponent: 8,
                                          bytesPerRow: w * 4, space: CGColorSpace(name: CGColorSpace.sRGB)!,
                                          bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else {
                throw IGREdgeError.image("cannot allocate a \(w)×\(h) context")
            }
            context.draw(image, in: CGRect(x: 0, y: 0, width: w, height: h))
        }
        return stride(from: 0, to: rgbx.count, by: 4).flatMap { rgbx[$0..<$0 + 3] }
    }

    func png(_ url: URL) throws -> CGImage {
        let source = try XCTUnwrap(CGImageSourceCreateWithURL(url as CFURL, nil))
        return try XCTUnwrap(CGImageSourceCreateImageAtIndex(source, 0, nil))
    }

    func testContractCasesThroughCoreML() throws {
        guard let folder = ProcessInfo.processInfo.environment["IGR_COREML_BUNDLE"] else {
            throw XCTSkip("set IGR_COREML_BUNDLE to a bundle folder with a coreml-* variant")
        }
        let restorer = try Restorer(configuration: Configuration(bundle: URL(fileURLWithPath: folder)))
        let cases = try JSONDecoder().decode(Cases.self, from: Data(contentsOf: try contractURL("cases.json")))
        for c in cases.cases {
            let garment = try restorer.restore(try png(try contractURL(c.person)), seed: try XCTUnwrap(UInt64(c.seed)))
            let got = try rgb(garment), expected = try rgb(try png(try contractURL(c.garment)))
            XCTAssertEqual(got.count, expected.count, c.person)
            let mse = zip(got, expected).reduce(0.0) { $0 + pow(Double($1.0) - Double($1.1), 2) } / Double(got.count)
            let psnr = mse == 0 ? Double.infinity : 10 * log10(255 * 255 / mse)
            let bound = Double(ProcessInfo.processInfo.environment["IGR_MIN_PSNR_DB"] ?? "") ?? c.min_psnr_db
            print("\(c.person) seed \(c.seed): PSNR \(psnr) dB vs the Python SDK (bound \(bound) dB)")
            XCTAssertGreaterThanOrEqual(psnr, bound, c.person)
        }
    }
}
