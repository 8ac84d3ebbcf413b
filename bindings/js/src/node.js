// @igr-edge/js in Node: bundles from a folder (fs + crypto), ONNX Runtime from onnxruntime-node (CPU EP).
import { createHash } from 'node:crypto';
import { open, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

import { loadBundleWith, MANIFEST, MAX_MANIFEST_BYTES } from './bundle.js';
import { BundleError, IgrEdgeError } from './errors.js';
import { Restorer as CoreRestorer } from './restorer.js';

export { BundleError, IgrEdgeError } from './errors.js';
export { GENERATORS, normal, splitmix64, toSeed } from './noise.js';
export { checkManifest, checkRelativePath, chooseVariant, SCHEMA_MAJOR } from './bundle.js';
export { toPerson, toRGBA } from './restorer.js';

// Read a whole regular file after `sizeError(size)` (a message, or null) accepted its size.
async function readChecked(file, what, sizeError) {
  const handle = await open(file, 'r');
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new BundleError(`${what} is not a file`);
    const why = sizeError(info.size);
    if (why) throw new BundleError(`${what} has ${info.size} bytes, ${why}`);
    const bytes = new Uint8Array(info.size);
    let read = 0;
    while (read < info.size) {
      const { bytesRead } = await handle.read(bytes, read, info.size - read, read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    return bytes.subarray(0, read);
  } finally {
    await handle.close();
  }
}

/** Load and verify the bundle in `folder` (options: backend 'cpu', variant). */
export async function loadBundle(folder, options = {}) {
  if (typeof folder !== 'string' && !(folder instanceof URL)) throw new BundleError('loadBundle takes a folder path');
  const root = await realpath(folder).catch(() => { throw new BundleError(`${folder} is not a bundle: no such folder`); });
  if (!(await stat(root)).isDirectory()) throw new BundleError(`${folder} is not a bundle: not a folder`);
  const confined = async (rel) => {
    const target = await realpath(path.join(root, rel)).catch(() => { throw new BundleError(`${folder}: ${rel} is missing`); });
    if (!target.startsWith(root + path.sep)) throw new BundleError(`bundle path ${JSON.stringify(rel)} leaves the bundle folder`);
    return target;
  };
  const io = {
    where: String(folder),
    async readManifest() {
      const bytes = await readChecked(path.join(root, MANIFEST), `${folder}/${MANIFEST}`,
        (n) => (n > MAX_MANIFEST_BYTES ? `a manifest is at most ${MAX_MANIFEST_BYTES}` : null),
      ).catch((e) => {
        throw e instanceof BundleError ? e : new BundleError(`${folder} is not a bundle: no readable ${MANIFEST} (${e.code ?? e.message})`);
      });
      try {
        return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      } catch {
        throw new BundleError(`${folder}/${MANIFEST} is not UTF-8`);
      }
    },
    async readFile(rel, size) {
      return readChecked(await confined(rel), `${folder}: ${rel}`,
        (n) => (n !== size ? `the manifest says ${size} (tampered or truncated)` : null),
      ).catch((e) => {
        throw e instanceof BundleError ? e : new BundleError(`${folder}: ${rel} cannot be read (${e.code ?? e.message})`);
      });
    },
    async sha256(bytes) {
      return createHash('sha256').update(bytes).digest('hex');
    },
  };
  return loadBundleWith(io, options);
}

let ortNode;
async function onnxruntimeNode() {
  if (!ortNode) {
    const mod = await import('onnxruntime-node').catch((e) => {
      throw new IgrEdgeError(`onnxruntime-node is not installed (npm install onnxruntime-node): ${e.message}`);
    });
    ortNode = mod.InferenceSession ? mod : mod.default;
  }
  return ortNode;
}

export class Restorer extends CoreRestorer {
  /** `bundle`: a loaded bundle or a folder path. options: ort (default onnxruntime-node), sessionOptions,
   * executionProviders (default ['cpu']). */
  static async create(bundle, options = {}) {
    const loaded = typeof bundle === 'string' ? await loadBundle(bundle) : bundle;
    return super.create(loaded, { ...options, ort: options.ort ?? await onnxruntimeNode() });
  }
}
