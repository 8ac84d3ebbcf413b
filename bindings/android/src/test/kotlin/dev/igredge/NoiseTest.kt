package dev.igredge

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.security.MessageDigest
import org.junit.Assert.assertEquals
import org.junit.Test

/** The noise generator against bindings/contract/noise.json, value for value (the Python SDK wrote it). */
class NoiseTest {
    private val contract = File(System.getProperty("igr.contract", "../contract"), "noise.json").readText()

    /** The contract's vectors: (seed, splitmix64 outputs, first values, sha256 of the float32 LE bytes). */
    private fun vectors(): List<List<String>> =
        Regex("\"seed\": \"(\\d+)\",\\s*\"splitmix64_first\": \\[([^\\]]*)\\],\\s*\"first\": \\[([^\\]]*)\\],[^}]*?" +
              "\"sha256_le_float32\": \"([0-9a-f]+)\"")
            .findAll(contract).map { it.groupValues.drop(1) }.toList()

    @Test
    fun splitmix64MatchesTheContract() {
        val all = vectors()
        assertEquals(7, all.size)
        for ((seed, outputs, _, _) in all) {
            val expected = outputs.split(",").map { it.trim().trim('"') }
            val got = Noise.splitmix64(Noise.parseSeed(seed), 4).map { java.lang.Long.toUnsignedString(it) }
            assertEquals("seed $seed", expected, got)
        }
    }

    @Test
    fun normalMatchesTheContractBitForBit() {
        assertEquals(7, vectors().size)
        for ((seed, _, first, sha) in vectors()) {
            val z = Noise.normal(Noise.parseSeed(seed), 4 * 32 * 24)
            val expected = first.split(",").map { it.trim().toDouble().toFloat() }
            assertEquals("seed $seed", expected, z.take(8))
            val bytes = ByteBuffer.allocate(4 * z.size).order(ByteOrder.LITTLE_ENDIAN)
            z.forEach { bytes.putFloat(it) }
            val digest = MessageDigest.getInstance("SHA-256").digest(bytes.array()).joinToString("") { "%02x".format(it) }
            assertEquals("seed $seed", sha, digest)
        }
    }

    @Test
    fun anOddCountDropsTheLastValueOfThePair() {
        val seven = Noise.normal(42L, 7)
        assertEquals(Noise.normal(42L, 8).take(7), seven.toList())
    }
}
