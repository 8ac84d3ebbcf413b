// swift-tools-version:5.9
// IGREdge: run an IGR Edge bundle's Core ML student (.mlpackage) on Apple devices.
// Not built on the machine that wrote it (Linux, no Swift toolchain): see README.md.
import PackageDescription

let package = Package(
    name: "IGREdge",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [.library(name: "IGREdge", targets: ["IGREdge"])],
    targets: [
        .target(name: "IGREdge"),
        .testTarget(name: "IGREdgeTests", dependencies: ["IGREdge"],
                    resources: [.copy("contract")]),
    ]
)
