package dev.igredge

import java.io.File
import java.nio.file.Files
import org.json.JSONObject
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** Bundle.kt on the real default bundle (igr_edge/bundles/default) and on broken copies of it. org.json is
 *  Android's own (Debian's libandroid-json-java on a JVM). */
class BundleTest {
    private val bundle = File(System.getProperty("igr.bundle", "../../igr_edge/bundles/default"))
    private val tmp: File = Files.createTempDirectory("igr-android-bundle").toFile()

    @After
    fun cleanUp() {
        tmp.deleteRecursively()
    }

    /** A copy of the default bundle whose manifest `edit` may change. */
    private fun copy(name: String, edit: (JSONObject) -> Unit = {}): File {
        val folder = File(tmp, name)
        bundle.copyRecursively(folder)
        val manifest = JSONObject(File(folder, "manifest.json").readText())
        edit(manifest)
        File(folder, "manifest.json").writeText(manifest.toString())
        return folder
    }

    private fun refused(folder: File, message: String) {
        try {
            Bundle.load(folder)
            fail("$folder was loaded")
        } catch (e: BundleException) {
            assertTrue("'${e.message}' lacks '$message'", e.message!!.contains(message))
        }
    }

    private fun studentPath(manifest: JSONObject): String {
        val variant = manifest.getString("default_variant")
        return manifest.getJSONObject("variants").getJSONObject(variant).getJSONObject("files").getString("student")
    }

    @Test
    fun theDefaultBundleLoadsWithItsSizesAndTheCheckedOnnxGraph() {
        val b = Bundle.load(bundle)
        assertEquals(listOf(192, 256), listOf(b.width, b.height))
        assertEquals(listOf(4L, 32L, 24L), b.latentShape.toList())
        val manifest = JSONObject(File(bundle, "manifest.json").readText())
        assertEquals(File(bundle, studentPath(manifest)).canonicalFile, b.studentFile())
    }

    @Test
    fun aVariantsDeclaredIoFixesItsBatch() {
        val variant = JSONObject(File(bundle, "manifest.json").readText()).getString("default_variant")
        assertEquals(null, Bundle.load(bundle).batch(variant))
        val fixed = copy("io-fixed") { m ->
            val io = m.getJSONObject("variants").getJSONObject(variant).getJSONObject("io").getJSONObject("student")
            val inputs = io.getJSONArray("inputs")
            for (i in 0 until inputs.length()) inputs.getJSONObject(i).getJSONArray("shape").put(0, 1)
        }
        assertEquals(1, Bundle.load(fixed).batch(variant))
    }

    @Test
    fun aGraphTheFileListLacksIsNeverRun() {
        val folder = copy("unlisted") { m ->
            val variant = m.getString("default_variant")
            m.getJSONObject("variants").getJSONObject(variant).getJSONObject("files").put("student", "$variant/other.onnx")
        }
        try {
            Bundle.load(folder).studentFile()
            fail("an unlisted graph was returned")
        } catch (e: BundleException) {
            assertTrue(e.message!!.contains("which the file list lacks"))
        }
    }

    @Test
    fun aTamperedOrTruncatedGraphIsRefused() {
        val tampered = copy("tampered")
        val graph = File(tampered, studentPath(JSONObject(File(tampered, "manifest.json").readText())))
        val bytes = graph.readBytes()
        bytes[bytes.size / 2] = (bytes[bytes.size / 2].toInt() xor 1).toByte()
        graph.writeBytes(bytes)
        refused(tampered, "SHA-256")
        graph.writeBytes(bytes.copyOf(1000))
        refused(tampered, "has 1000 bytes")
    }

    @Test
    fun pathsThatLeaveTheBundleAreRefused() {
        for ((i, bad) in listOf("../student.onnx", "a/../../student.onnx", "/etc/passwd", "a\\student.onnx").withIndex()) {
            refused(copy("escape-$i") { m -> m.getJSONArray("files").getJSONObject(0).put("path", bad) }, "leaves the bundle")
        }
    }

    @Test
    fun anotherSchemaOrNoiseGeneratorOrBackendIsRefused() {
        refused(copy("schema2") { m -> m.put("schema", "2.0.0") }, "schema '2.0.0'")
        refused(copy("noise") { m -> m.getJSONObject("noise").put("generator", "philox") }, "noise generator 'philox'")
        refused(copy("requires") { m -> m.put("requires", org.json.JSONArray(listOf("aligned-prior"))) }, "requires [\"aligned-prior\"]")
        refused(tmp, "no manifest.json")
        try {
            Bundle.load(bundle).studentFile(backend = "coreml")
            fail("a cpu-only bundle gave a coreml graph")
        } catch (e: BundleException) {
            assertTrue(e.message!!.contains("no ort/onnx variant for coreml"))
        }
    }
}
