package dev.igredge

import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.graphics.Rect

/** Android glue: any Bitmap -> the model's letterboxed RGB bytes, and the garment bytes -> a Bitmap. */
object Bitmaps {
    /** Fit [photo] inside width × height keeping its aspect, centred on white (transparency onto white). */
    fun letterbox(photo: Bitmap, width: Int, height: Int): ByteArray {
        val canvasBitmap = Bitmap.createBitmap(width, height, Bitmap.Config.ARGB_8888)
        val canvas = Canvas(canvasBitmap)
        canvas.drawColor(Color.WHITE)
        // the contract's box: round half to even in double, at least 1, at most the canvas
        val scale = minOf(width.toDouble() / photo.width, height.toDouble() / photo.height)
        val w = Math.rint(photo.width * scale).toInt().coerceIn(1, width)
        val h = Math.rint(photo.height * scale).toInt().coerceIn(1, height)
        val left = (width - w) / 2
        val top = (height - h) / 2
        canvas.drawBitmap(photo, null, Rect(left, top, left + w, top + h), Paint(Paint.FILTER_BITMAP_FLAG))
        val pixels = IntArray(width * height)
        canvasBitmap.getPixels(pixels, 0, width, 0, 0, width, height)
        return ByteArray(width * height * 3).also { out ->
            pixels.forEachIndexed { i, p ->
                out[3 * i] = (p shr 16).toByte(); out[3 * i + 1] = (p shr 8).toByte(); out[3 * i + 2] = p.toByte()
            }
        }
    }

    fun toBitmap(rgb: ByteArray, width: Int, height: Int): Bitmap {
        val pixels = IntArray(width * height) { i ->
            Color.rgb(rgb[3 * i].toInt() and 0xFF, rgb[3 * i + 1].toInt() and 0xFF, rgb[3 * i + 2].toInt() and 0xFF)
        }
        return Bitmap.createBitmap(pixels, width, height, Bitmap.Config.ARGB_8888)
    }
}

/** restore(bitmap, seed): the Android-facing call. */
fun Restorer.restore(photo: Bitmap, seed: Long): Bitmap {
    val rgb = restore(Bitmaps.letterbox(photo, bundle.width, bundle.height), seed)
    return Bitmaps.toBitmap(rgb, bundle.width, bundle.height)
}
