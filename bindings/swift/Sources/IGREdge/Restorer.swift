import CoreGraphics
import CoreML
import Foundation

/// Plain settings (as Apple's ml-stable-diffusion does): where the bundle is and what may run it.
public struct Configuration {
    public var bundle: URL
    public var computeUnits: MLComputeUnits = .all

    public init(bundle: URL, computeUnits: MLComputeUnits = .all) {
        self.bundle = bundle
        self.computeUnits = computeUnits
    }
}

/// A bundle's Core ML student: `person` image + `noise` in, `garment` image out (bindings/contract/README.md).
public final class Restorer {
    public let bundle: IGRBundle
    let model: MLModel

    public init(configuration: Configuration) throws {
        bundle = try IGRBundle(folder: configuration.bundle)
        let compiled = try MLModel.compileModel(at: try bundle.coreMLPackage())
        let config = MLModelConfiguration()
        config.computeUnits = configuration.computeUnits
        model = try MLModel(contentsOf: compiled, configuration: config)
    }

    /// The garment worn in `image` (any size: letterboxed on white to the model's size), from `seed`'s noise.
    public func restore(_ image: CGImage, seed: UInt64) throws -> CGImage {
        let person = try letterbox(image, width: bundle.width, height: bundle.height)
        let shape = [1] + bundle.latentShape
        let noise = try MLMultiArray(shape: shape.map { NSNumber(value: $0) }, dataType: .float32)
        let values = Noise.normal(seed: seed, count: bundle.latentShape.reduce(1, *))
        let pointer = noise.dataPointer.bindMemory(to: Float.self, capacity: values.count)
        for (i, v) in values.enumerated() { pointer[i] = v }
        let input = try MLDictionaryFeatureProvider(dictionary: [
            "person": MLFeatureValue(cgImage: person, pixelsWide: bundle.width, pixelsHigh: bundle.height,
                                     pixelFormatType: kCVPixelFormatType_32ARGB, options: nil),
            "noise": MLFeatureValue(multiArray: noise),
        ])
        let output = try model.prediction(from: input)
        guard let buffer = output.featureValue(for: "garment")?.imageBufferValue,
              let garment = cgImage(from: buffer) else {
            throw IGREdgeError.image("the model returned no garment image")
        }
        return garment
    }
}

/// Fit `image` inside width × height keeping its aspect, centred on white (transparency onto white).
func letterbox(_ image: CGImage, width: Int, height: Int) throws -> CGImage {
    guard let context = CGContext(data: nil, width: width, height: height, bitsPerComponent: 8, bytesPerRow: 0,
                                  space: CGColorSpaceCreateDeviceRGB(),
                                  bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else {
        throw IGREdgeError.image("cannot allocate a \(width)×\(height) canvas")
    }
    context.setFillColor(CGColor(red: 1, green: 1, blue: 1, alpha: 1))
    context.fill(CGRect(x: 0, y: 0, width: width, height: height))
    let scale = min(Double(width) / Double(image.width), Double(height) / Double(image.height))
    let w = max(1, Int(Double(image.width) * scale)), h = max(1, Int(Double(image.height) * scale))
    context.interpolationQuality = .high
    context.draw(image, in: CGRect(x: (width - w) / 2, y: (height - h) / 2, width: w, height: h))
    guard let out = context.makeImage() else { throw IGREdgeError.image("letterboxing failed") }
    return out
}

func cgImage(from buffer: CVPixelBuffer) -> CGImage? {
    CVPixelBufferLockBaseAddress(buffer, .readOnly)
    defer { CVPixelBufferUnlockBaseAddress(buffer, .readOnly) }
    guard let context = CGContext(data: CVPixelBufferGetBaseAddress(buffer), width: CVPixelBufferGetWidth(buffer),
                                  height: CVPixelBufferGetHeight(buffer), bitsPerComponent: 8,
                                  bytesPerRow: CVPixelBufferGetBytesPerRow(buffer),
                                  space: CGColorSpaceCreateDeviceRGB(),
                                  bitmapInfo: CGImageAlphaInfo.noneSkipFirst.rawValue |
                                      CGBitmapInfo.byteOrder32Little.rawValue) else { return nil }
    return context.makeImage()
}
