import CoreGraphics
import CoreML
import Foundation

/// Plain settings (as Apple's ml-stable-diffusion does): where the bundle is and what may run it.
public struct Configuration {
    public var bundle: URL
    /// The processors Core ML may use (`.all`, `.cpuAndGPU`, `.cpuAndNeuralEngine`, `.cpuOnly`): the Python SDK's
    /// `compute_units` (all, cpu_and_gpu, cpu_and_ne, cpu_only), set on the model's `MLModelConfiguration`.
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
    // the contract's box: round half to even, at least 1, at most the canvas; top = floor(slack / 2) from the
    // top row (Core Graphics counts y from the bottom, so the bottom gap is the larger half)
    let scale = min(Double(width) / Double(image.width), Double(height) / Double(image.height))
    let w = min(width, max(1, Int((Double(image.width) * scale).rounded(.toNearestOrEven))))
    let h = min(height, max(1, Int((Double(image.height) * scale).rounded(.toNearestOrEven))))
    let top = (height - h) / 2
    context.interpolationQuality = .high
    context.draw(image, in: CGRect(x: (width - w) / 2, y: height - top - h, width: w, height: h))
    guard let out = context.makeImage() else { throw IGREdgeError.image("letterboxing failed") }
    return out
}

/// A copy of a 32BGRA or 32ARGB pixel buffer as a CGImage (the copy outlives Core ML's buffer).
func cgImage(from buffer: CVPixelBuffer) -> CGImage? {
    let format = CVPixelBufferGetPixelFormatType(buffer)
    let info: UInt32
    switch format {
    case kCVPixelFormatType_32BGRA: info = CGImageAlphaInfo.noneSkipFirst.rawValue | CGBitmapInfo.byteOrder32Little.rawValue
    case kCVPixelFormatType_32ARGB: info = CGImageAlphaInfo.noneSkipFirst.rawValue | CGBitmapInfo.byteOrder32Big.rawValue
    default: return nil
    }
    CVPixelBufferLockBaseAddress(buffer, .readOnly)
    defer { CVPixelBufferUnlockBaseAddress(buffer, .readOnly) }
    guard let base = CVPixelBufferGetBaseAddress(buffer) else { return nil }
    let rowBytes = CVPixelBufferGetBytesPerRow(buffer), height = CVPixelBufferGetHeight(buffer)
    guard let provider = CGDataProvider(data: Data(bytes: base, count: rowBytes * height) as CFData) else { return nil }
    return CGImage(width: CVPixelBufferGetWidth(buffer), height: height, bitsPerComponent: 8, bitsPerPixel: 32,
                   bytesPerRow: rowBytes, space: CGColorSpaceCreateDeviceRGB(), bitmapInfo: CGBitmapInfo(rawValue: info),
                   provider: provider, decode: nil, shouldInterpolate: false, intent: .defaultIntent)
}
