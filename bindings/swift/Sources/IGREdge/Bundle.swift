import CryptoKit
import Foundation

public enum IGREdgeError: Error, CustomStringConvertible {
    case bundle(String)
    case image(String)

    public var description: String {
        switch self {
        case .bundle(let why): return "BundleError: \(why)"
        case .image(let why): return "InvalidImageError: \(why)"
        }
    }
}

/// A bundle folder (bindings/contract/README.md): manifest schema 1.x, confined paths, size + SHA-256 checked.
public struct IGRBundle {
    public let folder: URL
    public let name: String
    public let width: Int
    public let height: Int
    public let latentShape: [Int]
    let variants: [String: [String: Any]]
    let defaultVariant: String?
    let listed: Set<String>

    public init(folder: URL) throws {
        let manifestURL = folder.appendingPathComponent("manifest.json")
        guard let data = try? Data(contentsOf: manifestURL),
              let manifest = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw IGREdgeError.bundle("\(folder.path) is not a bundle: no readable manifest.json")
        }
        guard let schema = manifest["schema"] as? String, schema.split(separator: ".").first == "1" else {
            throw IGREdgeError.bundle("\(folder.path) has schema \(manifest["schema"] ?? "none"); this package reads 1.x")
        }
        // schema 1.1's `requires` names what a runtime must implement (components bundles); single-call graphs,
        // all this package runs, carry their whole sampler: it implements none
        if let requires = manifest["requires"], (requires as? [Any])?.isEmpty != true {
            throw IGREdgeError.bundle("\(folder.path) requires \(requires), which this package does not implement")
        }
        guard let noise = manifest["noise"] as? [String: Any], noise["generator"] as? String == Noise.generator else {
            throw IGREdgeError.bundle("\(folder.path) names another noise generator; this package implements \(Noise.generator)")
        }
        self.folder = folder.resolvingSymlinksInPath().standardizedFileURL
        name = manifest["name"] as? String ?? "?"
        let resolution = manifest["resolution"] as? [String: Int] ?? [:]
        width = resolution["width"] ?? 0
        height = resolution["height"] ?? 0
        latentShape = (manifest["noise"] as? [String: Any])?["shape"] as? [Int] ?? []
        variants = manifest["variants"] as? [String: [String: Any]] ?? [:]
        defaultVariant = manifest["default_variant"] as? String
        var listed = Set<String>()
        for entry in manifest["files"] as? [[String: Any]] ?? [] {
            guard let path = entry["path"] as? String, let size = entry["size"] as? Int,
                  let sha = entry["sha256"] as? String else { throw IGREdgeError.bundle("a malformed files entry") }
            let url = try confined(path)
            guard let bytes = try? Data(contentsOf: url) else { throw IGREdgeError.bundle("\(path) is missing") }
            guard bytes.count == size else { throw IGREdgeError.bundle("\(path) has \(bytes.count) bytes, not \(size)") }
            let digest = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
            guard digest == sha else { throw IGREdgeError.bundle("\(path) fails its SHA-256 check") }
            listed.insert(path)
        }
        self.listed = listed
    }

    /// `folder/relative`, refused when it leaves the folder.
    func confined(_ relative: String) throws -> URL {
        if relative.isEmpty || relative.hasPrefix("/") || relative.contains("\\") ||
            relative.split(separator: "/").contains("..") {
            throw IGREdgeError.bundle("bundle path \(relative) leaves the bundle")
        }
        let url = folder.appendingPathComponent(relative).resolvingSymlinksInPath().standardizedFileURL
        guard url.path.hasPrefix(folder.path + "/") else {
            throw IGREdgeError.bundle("bundle path \(relative) leaves the bundle")
        }
        return url
    }

    /// The Core ML student: the first `mlpackage` variant listing the `coreml` backend (default variant first).
    public func coreMLPackage() throws -> URL {
        let order = ([defaultVariant].compactMap { $0 }) + variants.keys.sorted()
        for name in order {
            guard let v = variants[name], v["format"] as? String == "mlpackage",
                  (v["backends"] as? [String] ?? []).contains("coreml"),
                  let student = (v["files"] as? [String: String])?["student"] else { continue }
            guard listed.contains(where: { $0.hasPrefix(student + "/") }) else {
                throw IGREdgeError.bundle("variant \(name) runs \(student), whose files the file list lacks")
            }
            return try confined(student)
        }
        throw IGREdgeError.bundle("bundle \(name) has no Core ML (mlpackage) variant: convert it with coreml-8bit")
    }
}
