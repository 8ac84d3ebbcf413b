// @igr-edge/js in the browser: bundles from a base URL (fetch + crypto.subtle), ONNX Runtime from
// onnxruntime-web's wasm backend (single thread by default), photos of any size letterboxed with a canvas.
import { hex, loadBundleWith, MANIFEST, MAX_MANIFEST_BYTES } from './bundle.js';
import { BundleError, IgrEdgeError } from './errors.js';
import { Restorer as CoreRestorer } from './restorer.js';

export { BundleError, IgrEdgeError } from './errors.js';
export { GENERATORS, normal, splitmix64, toSeed } from './noise.js';
export { checkManifest, checkRelativePath, chooseVariant, SCHEMA_MAJOR } from './bundle.js';
export { toPerson, toRGBA } from './restorer.js';

async function fetchBytes(url, what, limit) {
  let response;
  try {
    response = await fetch(url, { credentials: 'same-origin', redirect: 'error' });
  } catch (e) {
    throw new BundleError(`${what} cannot be fetched: ${e.message}`);
  }
  if (!response.ok) throw new BundleError(`${what} cannot be fetched: HTTP ${response.status}`);
  const declared = Number(response.headers.get('content-length'));
  if (limit !== undefined && declared > limit) throw new BundleError(`${what} has ${declared} bytes, more than ${limit}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Load and verify the bundle at `baseUrl` (a folder URL, relative to the page; options: backend, variant). */
export async function loadBundle(baseUrl, options = {}) {
  const base = new URL(String(baseUrl).replace(/\/*$/, '/'), globalThis.location?.href);
  const inside = (rel) => {
    const url = new URL(rel.split('/').map(encodeURIComponent).join('/'), base);
    if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname) || url.search || url.hash) {
      throw new BundleError(`bundle path ${JSON.stringify(rel)} leaves the bundle ${base.href}`);
    }
    return url;
  };
  const io = {
    where: base.href.replace(/\/$/, ''),
    async readManifest() {
      const bytes = await fetchBytes(inside(MANIFEST), `${base.href}${MANIFEST}`, MAX_MANIFEST_BYTES);
      if (bytes.byteLength > MAX_MANIFEST_BYTES) throw new BundleError(`${base.href}${MANIFEST}: a manifest is at most ${MAX_MANIFEST_BYTES} bytes`);
      return new TextDecoder().decode(bytes);
    },
    async readFile(rel, size) {
      return fetchBytes(inside(rel), `${base.href}${rel}`, size);
    },
    async sha256(bytes) {
      if (!globalThis.crypto?.subtle) {
        throw new BundleError('crypto.subtle is unavailable (serve the page over https or from localhost) so the bundle cannot be verified');
      }
      return hex(await globalThis.crypto.subtle.digest('SHA-256', bytes));
    },
  };
  return loadBundleWith(io, options);
}

const roundHalfEven = (x) => {   // Python's round(), as igr_edge.images.letterbox uses
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** The content box of a w × h photo letterboxed into width × height, as igr_edge.images.letterbox computes it. */
export function letterboxBox(w, h, width, height) {
  const scale = Math.min(width / w, height / h);
  const boxW = Math.min(width, Math.max(1, roundHalfEven(w * scale)));
  const boxH = Math.min(height, Math.max(1, roundHalfEven(h * scale)));
  return { x: Math.floor((width - boxW) / 2), y: Math.floor((height - boxH) / 2), width: boxW, height: boxH };
}

const sizeOf = (src) => ({
  w: src.naturalWidth ?? src.videoWidth ?? src.displayWidth ?? src.width,
  h: src.naturalHeight ?? src.videoHeight ?? src.displayHeight ?? src.height,
});

function canvas(width, height) {
  if (typeof OffscreenCanvas !== 'undefined') return new OffscreenCanvas(width, height);
  return Object.assign(document.createElement('canvas'), { width, height });
}

/**
 * Any image -> ImageData of width × height: the photo fitted inside keeping its aspect, centred; the padding is
 * transparent, so that `toPerson` composites it and any transparency of the photo onto white alike. `source` is
 * ImageData or anything drawImage takes (ImageBitmap, HTMLImageElement, canvas, VideoFrame...).
 */
export function letterbox(source, width, height) {
  let src = source;
  if (typeof ImageData !== 'undefined' && source instanceof ImageData) {
    if (source.width === width && source.height === height) return source;
    src = canvas(source.width, source.height);
    src.getContext('2d').putImageData(source, 0, 0);
  }
  const { w, h } = sizeOf(src);
  if (!(w > 0 && h > 0)) throw new IgrEdgeError('the image has no pixels (not loaded yet?)');
  const box = letterboxBox(w, h, width, height);
  const out = canvas(width, height);
  const ctx = out.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(src, box.x, box.y, box.width, box.height);
  return ctx.getImageData(0, 0, width, height);
}

/** Decode a Blob/File (a photo the user picked or dropped) for `restore`, without colour conversion. */
export async function decodeImage(blob) {
  try {
    return await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
  } catch (e) {
    throw new IgrEdgeError(`the file is not an image this browser can decode: ${e.message}`);
  }
}

let ortWeb;
async function onnxruntimeWeb() {
  if (!ortWeb) {
    const mod = await import('onnxruntime-web/wasm').catch((e) => {
      throw new IgrEdgeError(`onnxruntime-web cannot be imported (install it, or map "onnxruntime-web/wasm" in an import map): ${e.message}`);
    });
    ortWeb = mod.InferenceSession ? mod : mod.default;
  }
  return ortWeb;
}

export class Restorer extends CoreRestorer {
  /** `bundle`: a loaded bundle or its base URL. options: ort (default onnxruntime-web/wasm), wasmPaths (where
   * its .wasm/.mjs files are served; default: next to ort's module), numThreads (default 1), sessionOptions. */
  static async create(bundle, { ort, wasmPaths, numThreads = 1, ...options } = {}) {
    const runtime = ort ?? await onnxruntimeWeb();
    if (runtime.env?.wasm) {
      runtime.env.wasm.numThreads = numThreads;
      if (wasmPaths !== undefined) runtime.env.wasm.wasmPaths = wasmPaths;
    }
    const loaded = typeof bundle === 'string' || bundle instanceof URL ? await loadBundle(bundle) : bundle;
    return super.create(loaded, { executionProviders: ['wasm'], ...options, ort: runtime });
  }

  /** Restore a photo of any size: ImageData, a Blob/File, anything drawImage takes, or RGB/RGBA bytes at
   * the model's size with {width, height}. Photos of another size are letterboxed onto white first. */
  async restore(image, { width, height, seed = 0 } = {}) {
    const start = globalThis.performance.now();
    if (typeof Blob !== 'undefined' && image instanceof Blob) image = await decodeImage(image);
    let pixels = image;
    const atModelSize = image?.data && image.width === this.width && image.height === this.height;
    if (!(image instanceof Uint8Array || image instanceof Uint8ClampedArray || atModelSize)) {
      pixels = letterbox(image, this.width, this.height);
    }
    const result = await super.restore(pixels, { width, height, seed });
    return { ...result, ms: globalThis.performance.now() - start };
  }
}
