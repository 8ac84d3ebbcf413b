package dev.igredge

import ai.onnxruntime.OnnxJavaType
import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.FloatBuffer

/** Plain settings, like the Swift package's `Configuration`. */
/** [lowMemory]: keep int8 weights int8, expanded on every run (ONNX Runtime's constant folding off), as the Python
 * SDK's low_memory: far less memory, slower runs. */
data class Configuration(val bundle: File, val threads: Int = 0, val useNnapi: Boolean = false,
                         val lowMemory: Boolean = false)

/**
 * A bundle's single-call student on ONNX Runtime (ai.onnxruntime, the `.ort` variant on Android): RGB bytes of the
 * model's size in, the garment's RGB bytes out. One instance is safe to call from many threads (OrtSession.run is).
 */
class Restorer(configuration: Configuration) : AutoCloseable {
    val bundle: Bundle = Bundle.load(configuration.bundle)
    private val env: OrtEnvironment = OrtEnvironment.getEnvironment()
    private val session: OrtSession

    init {
        val options = OrtSession.SessionOptions()
        if (configuration.threads > 0) options.setIntraOpNumThreads(configuration.threads)
        if (configuration.useNnapi) options.addNnapi()
        if (configuration.lowMemory) options.addConfigEntry("optimization.disable_specified_optimizers", "ConstantFolding")
        session = env.createSession(bundle.studentFile().path, options)
    }

    /** [rgb]: height × width × 3 bytes (the model's size, already letterboxed on white) -> the garment, same layout. */
    fun restore(rgb: ByteArray, seed: Long): ByteArray {
        val (w, h) = bundle.width to bundle.height
        require(rgb.size == w * h * 3) { "expected ${w}x${h} RGB (${w * h * 3} bytes), got ${rgb.size}" }
        val shape = bundle.latentShape
        val noise = Noise.normal(seed, shape.fold(1L) { a, b -> a * b }.toInt())
        val person = OnnxTensor.createTensor(env, ByteBuffer.wrap(rgb), longArrayOf(1, h.toLong(), w.toLong(), 3),
                                             OnnxJavaType.UINT8)
        val noiseTensor = OnnxTensor.createTensor(env, FloatBuffer.wrap(noise), longArrayOf(1) + shape)
        person.use { p ->
            noiseTensor.use { n ->
                session.run(mapOf("person" to p, "noise" to n)).use { result ->
                    val garment = result.get("garment").get() as OnnxTensor
                    val bytes = garment.byteBuffer.order(ByteOrder.nativeOrder())
                    return ByteArray(bytes.remaining()).also { bytes.get(it) }
                }
            }
        }
    }

    override fun close() = session.close()
}
