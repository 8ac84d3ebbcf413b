package dev.igredge

import java.io.File
import java.security.MessageDigest
import org.json.JSONObject

/** A bundle folder (bindings/contract/README.md): manifest schema 1.x, confined paths, size + SHA-256 checked. */
class Bundle private constructor(val folder: File, val manifest: JSONObject) {
    val name: String get() = manifest.getString("name")
    val width: Int get() = manifest.getJSONObject("resolution").getInt("width")
    val height: Int get() = manifest.getJSONObject("resolution").getInt("height")
    val latentShape: LongArray
        get() = manifest.getJSONObject("noise").getJSONArray("shape").let { a -> LongArray(a.length()) { a.getLong(it) } }

    /** The file of graph `student` in the variant that lists [backend], in the order of [formats] (the `.ort`
     *  model first: ORT Mobile's format), the default variant first within a format. Only listed (checked) files. */
    fun studentFile(backend: String = "cpu", formats: List<String> = listOf("ort", "onnx")): File {
        val variants = manifest.getJSONObject("variants")
        val order = (listOfNotNull(manifest.optString("default_variant", null).takeIf { it.isNotEmpty() }) +
                     variants.keys().asSequence().toList()).distinct()
        for (format in formats) {
            for (name in order) {
                val v = variants.getJSONObject(name)
                val backends = v.getJSONArray("backends").let { a -> (0 until a.length()).map { a.getString(it) } }
                if (backend in backends && v.getString("format") == format) {
                    val relative = v.getJSONObject("files").getString("student")
                    if (relative !in listed) throw BundleException("variant $name runs $relative, which the file list lacks")
                    return confined(relative)
                }
            }
        }
        throw BundleException("bundle $name has no ${formats.joinToString("/")} variant for $backend")
    }

    /** The batch [variant]'s student graph takes: 1 where its declared `io` (schema 1.3) fixes it (the mobile and
     *  Core ML variants: feed them one person a call), null where any batch runs or nothing is declared. */
    fun batch(variant: String): Int? {
        val io = manifest.getJSONObject("variants").getJSONObject(variant).optJSONObject("io")
            ?.optJSONObject("student") ?: return null
        val inputs = io.getJSONArray("inputs")
        val first = (0 until inputs.length()).map { inputs.getJSONObject(it).getJSONArray("shape").opt(0) }
        return if (first.any { it is Number && it.toInt() == 1 }) 1 else null
    }

    private val listed: Set<String>
        get() = manifest.getJSONArray("files").let { a -> (0 until a.length()).map { a.getJSONObject(it).getString("path") }.toSet() }

    private fun confined(relative: String): File {
        if (relative.isEmpty() || relative.startsWith("/") || '\\' in relative || relative.split('/').contains("..")) {
            throw BundleException("bundle path '$relative' leaves the bundle")
        }
        val file = File(folder, relative).canonicalFile
        if (!file.path.startsWith(folder.canonicalPath + File.separator)) {
            throw BundleException("bundle path '$relative' leaves the bundle")
        }
        return file
    }

    companion object {
        /** Read and check [folder]/manifest.json and every file it lists. */
        fun load(folder: File): Bundle {
            val text = File(folder, "manifest.json").takeIf { it.isFile }?.readText()
                ?: throw BundleException("$folder is not a bundle: no manifest.json")
            val manifest = JSONObject(text)
            val schema = manifest.optString("schema", "")
            if (schema.substringBefore('.') != "1") {
                throw BundleException("$folder has schema '$schema'; this binding reads schema 1.x")
            }
            // schema 1.1's `requires` names what a runtime must implement (components bundles); single-call graphs,
            // all this binding runs, carry their whole sampler: it implements none
            val requires = manifest.opt("requires")
            if (requires != null && !(requires is org.json.JSONArray && requires.length() == 0)) {
                throw BundleException("$folder requires $requires, which this binding does not implement")
            }
            val generator = manifest.getJSONObject("noise").optString("generator")
            if (generator != Noise.GENERATOR) {
                throw BundleException("$folder names noise generator '$generator'; this binding implements ${Noise.GENERATOR}")
            }
            val bundle = Bundle(folder.canonicalFile, manifest)
            val files = manifest.getJSONArray("files")
            for (i in 0 until files.length()) {
                val entry = files.getJSONObject(i)
                val file = bundle.confined(entry.getString("path"))
                if (!file.isFile) throw BundleException("$folder: ${entry.getString("path")} is missing")
                if (file.length() != entry.getLong("size")) {
                    throw BundleException("$folder: ${entry.getString("path")} has ${file.length()} bytes, the manifest says ${entry.getLong("size")}")
                }
                if (sha256(file) != entry.getString("sha256")) {
                    throw BundleException("$folder: ${entry.getString("path")} fails its SHA-256 check (tampered or corrupted)")
                }
            }
            return bundle
        }

        private fun sha256(file: File): String {
            val digest = MessageDigest.getInstance("SHA-256")
            file.inputStream().use { input ->
                val buffer = ByteArray(1 shl 16)
                while (true) {
                    val n = input.read(buffer)
                    if (n < 0) break
                    digest.update(buffer, 0, n)
                }
            }
            return digest.digest().joinToString("") { "%02x".format(it) }
        }
    }
}

class BundleException(message: String) : Exception(message)
