// A bundle's single-call graph on an ONNX Runtime (onnxruntime-node or onnxruntime-web, passed in as `ort`):
// RGBA/RGB pixels at the model's size + a seed -> the garment as RGBA pixels.
import { IgrEdgeError } from './errors.js';
import { normal, toSeed } from './noise.js';

const now = () => globalThis.performance.now();
// ONNX Runtime session config (`extra.optimization.*`): no constant folding, so int8 weights are not expanded at load
const LOW_MEMORY_CONFIG = { disable_specified_optimizers: 'ConstantFolding' };

/**
 * Pixels at width × height -> the model's `person` input: uint8 RGB, row-major (H, W, 3). `pixels` is an
 * ImageData-like {data, width, height} or a Uint8Array/Uint8ClampedArray of RGB or RGBA with width and height
 * given. Alpha is composited onto white exactly as the Python SDK does: round((c·a + 255·(255 − a)) / 255).
 */
export function toPerson(pixels, { width, height } = {}) {
  const data = pixels?.data ?? pixels;
  width = pixels?.data ? pixels.width : width;
  height = pixels?.data ? pixels.height : height;
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) {
    throw new IgrEdgeError('pixels must be ImageData, or a Uint8Array/Uint8ClampedArray of RGB or RGBA with width and height');
  }
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
    throw new IgrEdgeError(`width and height must be positive integers, got ${width} × ${height}`);
  }
  const n = width * height;
  const channels = data.length / n;
  if (channels !== 3 && channels !== 4) {
    throw new IgrEdgeError(`${data.length} values are neither RGB nor RGBA for ${width} × ${height}`);
  }
  if (channels === 3) return Uint8Array.from(data);
  const rgb = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n * 4; i += 4, j += 3) {
    const a = data[i + 3];
    if (a === 255) {
      rgb[j] = data[i]; rgb[j + 1] = data[i + 1]; rgb[j + 2] = data[i + 2];
    } else {
      const white = 255 * (255 - a) + 127;
      rgb[j] = Math.floor((data[i] * a + white) / 255);
      rgb[j + 1] = Math.floor((data[i + 1] * a + white) / 255);
      rgb[j + 2] = Math.floor((data[i + 2] * a + white) / 255);
    }
  }
  return rgb;
}

/** uint8 RGB (H, W, 3) -> opaque RGBA Uint8ClampedArray. */
export function toRGBA(rgb) {
  const n = rgb.length / 3;
  const out = new Uint8ClampedArray(n * 4);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    out[4 * i] = rgb[j]; out[4 * i + 1] = rgb[j + 1]; out[4 * i + 2] = rgb[j + 2]; out[4 * i + 3] = 255;
  }
  return out;
}

export class Restorer {
  /** Use `Restorer.create`. */
  constructor(bundle, ort, session, lowMemory = false) {
    this.bundle = bundle;
    this.ort = ort;
    this.session = session;
    this.lowMemory = lowMemory;
    this.width = bundle.width;
    this.height = bundle.height;
    this._queue = Promise.resolve();   // one run at a time (onnxruntime-web refuses concurrent runs on a session)
  }

  /** A session on `bundle.model` (the verified bytes). options: ort (required here; the entries supply it),
   * sessionOptions (merged over {executionProviders: [the entry's default], graphOptimizationLevel: 'all'}),
   * lowMemory (default false): keep int8 weights int8, expanded on every run instead of once at load, as the
   * Python SDK's low_memory does (ONNX Runtime's constant folding off: far less memory, slower runs). */
  static async create(bundle, { ort, sessionOptions = {}, executionProviders = ['cpu'], lowMemory = false } = {}) {
    if (!ort?.InferenceSession) throw new IgrEdgeError('Restorer.create needs {ort}: onnxruntime-node or onnxruntime-web');
    if (!bundle?.model) throw new IgrEdgeError('Restorer.create needs a loaded bundle (loadBundle)');
    if (typeof lowMemory !== 'boolean') throw new IgrEdgeError(`lowMemory must be true or false, got ${String(lowMemory)}`);
    const options = { executionProviders, graphOptimizationLevel: 'all', ...sessionOptions };
    if (lowMemory) {
      const extra = options.extra ?? {};
      options.extra = { ...extra, optimization: { ...extra.optimization, ...LOW_MEMORY_CONFIG } };
    }
    let session;
    try {
      session = await ort.InferenceSession.create(bundle.model, options);
    } catch (e) {
      throw new IgrEdgeError(`ONNX Runtime could not load ${bundle.source} (${bundle.variant}): ${e.message}`);
    }
    const missing = ['person', 'noise'].filter((n) => !session.inputNames.includes(n))
      .concat(session.outputNames.includes('garment') ? [] : ['garment']);
    if (missing.length) {
      await session.release?.();
      throw new IgrEdgeError(`${bundle.source}: the graph lacks ${missing.join(', ')}`);
    }
    return new this(bundle, ort, session, lowMemory);
  }

  /** Which ONNX Runtime runs the graph, e.g. "onnxruntime-node 1.30.0". */
  get runtime() {
    const v = this.ort.env?.versions ?? {};
    return v.node ? `onnxruntime-node ${v.node}` : v.web ? `onnxruntime-web ${v.web}` : `onnxruntime ${v.common ?? '?'}`;
  }

  /** The noise the graph gets for `seed` (Float32Array of the bundle's latent shape). */
  noise(seed) {
    return normal(seed, this.bundle.latentShape, { generator: this.bundle.noiseGenerator });
  }

  /**
   * Restore one person at the model's size (ImageData, or RGB/RGBA bytes with width and height).
   * Returns {garment: RGBA Uint8ClampedArray of width × height, width, height, ms}: ms covers the input
   * conversion, the noise and the ONNX Runtime run.
   */
  async restore(pixels, { width, height, seed = 0 } = {}) {
    const s = toSeed(seed);
    const start = now();
    const w = pixels?.data ? pixels.width : width;
    const h = pixels?.data ? pixels.height : height;
    if (w !== this.width || h !== this.height) {
      throw new IgrEdgeError(`pixels are ${w} × ${h}; this bundle takes ${this.width} × ${this.height} (letterbox first)`);
    }
    const person = toPerson(pixels, { width: w, height: h });
    const run = this._queue.then(() => this._run(person, s));
    this._queue = run.catch(() => {});
    const rgb = await run;
    return { garment: toRGBA(rgb), width: this.width, height: this.height, ms: now() - start };
  }

  async _run(person, seed) {
    const { ort } = this;
    const feeds = {
      person: new ort.Tensor('uint8', person, [1, this.height, this.width, 3]),
      noise: new ort.Tensor('float32', this.noise(seed), [1, ...this.bundle.latentShape]),
    };
    let out;
    try {
      out = await this.session.run(feeds, ['garment']);
    } catch (e) {
      throw new IgrEdgeError(`ONNX Runtime failed to run ${this.bundle.source}: ${e.message}`);
    }
    const garment = out.garment;
    const expected = this.height * this.width * 3;
    if (garment.type !== 'uint8' || garment.data.length !== expected) {
      throw new IgrEdgeError(`the graph returned garment ${garment.type} ${JSON.stringify(garment.dims)}, expected uint8 [1, ${this.height}, ${this.width}, 3]`);
    }
    const data = new Uint8Array(garment.data);   // a copy: the tensor is released below
    garment.dispose?.();
    return data;
  }

  /** Free the session. */
  async release() {
    await this._queue;
    await this.session.release?.();
  }
}
