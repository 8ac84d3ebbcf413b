package dev.igredge

/**
 * The bundle's noise generator, v1 `splitmix64-boxmuller` (bindings/contract/README.md): a SplitMix64 stream
 * (Steele, Lea & Flood 2014) seeded with the seed; each pair of outputs -> u1 in (0, 1], u2 in [0, 1) from their
 * top 53 bits -> Box-Muller in double (r = sqrt(-2 ln u1); r cos 2πu2, r sin 2πu2) -> float, in C order.
 *
 * Seeds are unsigned 64-bit values carried in a Long (bit pattern); [parseSeed] reads a decimal string.
 * Written with Long and `ushr` (no unsigned types) so that it compiles from Kotlin 1.3 on.
 */
object Noise {
    const val GENERATOR = "splitmix64-boxmuller"
    private const val GOLDEN = -0x61c8864680b583ebL          // 0x9E3779B97F4A7C15
    private const val M1 = -0x40a7b892e31b1a47L              // 0xBF58476D1CE4E5B9
    private const val M2 = -0x6b2fb644ecceee15L              // 0x94D049BB133111EB
    private const val TWO53 = 9007199254740992.0             // 2^53
    private const val TWO_PI = 2.0 * Math.PI

    /** The first [n] outputs of SplitMix64 seeded with [seed] (unsigned, as a Long bit pattern). */
    fun splitmix64(seed: Long, n: Int): LongArray {
        var state = seed
        return LongArray(n) {
            state += GOLDEN
            var z = state
            z = (z xor (z ushr 30)) * M1
            z = (z xor (z ushr 27)) * M2
            z xor (z ushr 31)
        }
    }

    /** Standard normal float noise of [count] values (a C-order tensor of that many elements) from [seed]. */
    fun normal(seed: Long, count: Int): FloatArray {
        val bits = splitmix64(seed, 2 * ((count + 1) / 2))
        val out = FloatArray(count)
        var i = 0
        while (i < count) {
            val u1 = ((bits[i] ushr 11) + 1L).toDouble() / TWO53        // (0, 1]; < 2^53 + 1: exact in a double
            val u2 = (bits[i + 1] ushr 11).toDouble() / TWO53            // [0, 1)
            val r = Math.sqrt(-2.0 * Math.log(u1))
            out[i] = (r * Math.cos(TWO_PI * u2)).toFloat()
            if (i + 1 < count) out[i + 1] = (r * Math.sin(TWO_PI * u2)).toFloat()
            i += 2
        }
        return out
    }

    /** A decimal seed in [0, 2^64) as the Long holding its bit pattern. */
    fun parseSeed(text: String): Long = java.lang.Long.parseUnsignedLong(text)
}
