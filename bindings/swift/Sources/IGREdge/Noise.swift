import Foundation

/// The bundle's noise generator, v1 `splitmix64-boxmuller` (bindings/contract/README.md): a SplitMix64 stream
/// (Steele, Lea & Flood 2014) seeded with the seed; each pair of outputs -> u1 in (0, 1], u2 in [0, 1) from their
/// top 53 bits -> Box-Muller in Double (r = sqrt(-2 ln u1); r cos 2πu2, r sin 2πu2) -> Float, in C order.
public enum Noise {
    public static let generator = "splitmix64-boxmuller"

    /// The first `count` outputs of SplitMix64 seeded with `seed`.
    public static func splitmix64(seed: UInt64, count: Int) -> [UInt64] {
        var state = seed
        return (0..<count).map { _ in
            state = state &+ 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Standard normal Float noise of `count` values (a C-order tensor of that many elements) from `seed`.
    public static func normal(seed: UInt64, count: Int) -> [Float] {
        let bits = splitmix64(seed: seed, count: 2 * ((count + 1) / 2))
        let twoPi = 2.0 * Double.pi
        var out = [Float](repeating: 0, count: count)
        var i = 0
        while i < count {
            let u1 = Double((bits[i] >> 11) + 1) / 9_007_199_254_740_992.0   // (0, 1]
            let u2 = Double(bits[i + 1] >> 11) / 9_007_199_254_740_992.0     // [0, 1)
            let r = (-2.0 * log(u1)).squareRoot()
            out[i] = Float(r * cos(twoPi * u2))
            if i + 1 < count { out[i + 1] = Float(r * sin(twoPi * u2)) }
            i += 2
        }
        return out
    }
}
