// Bundle manifests (schema v1, DESIGN.md §5): the checks every loader makes, independent of where the bytes come
// from. The node entry reads a folder with fs, the browser entry a base URL with fetch; both go through
// `loadBundleWith`, which refuses an unknown schema major, paths that could leave the bundle, and any file of
// the chosen variant whose size or SHA-256 differs from the manifest's.
import { BundleError } from './errors.js';
import { GENERATORS } from './noise.js';

export const SCHEMA_MAJOR = 1;
export const MAX_MANIFEST_BYTES = 4 * 2 ** 20;
export const MANIFEST = 'manifest.json';

const SHA256 = /^[0-9a-f]{64}$/;
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v) => Number.isSafeInteger(v) && v >= 0;
const isSide = (v) => Number.isSafeInteger(v) && v > 0;

/** Refuse a bundle path that is not plainly relative: empty, absolute, a drive or URL, a backslash, `..`. */
export function checkRelativePath(rel) {
  const bad = typeof rel !== 'string' || rel === '' || rel.startsWith('/') || rel.includes('\\') || rel.includes('\0')
    || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(rel) || rel.split('/').some((part) => part === '..' || part === '.')
    || rel.includes('..');
  if (bad) throw new BundleError(`bundle path ${JSON.stringify(rel)} is not a relative path inside the bundle`);
  return rel;
}

/** Check a parsed manifest.json (what this binding relies on); returns it. `where` names it in messages. */
export function checkManifest(manifest, where = MANIFEST) {
  const fail = (why) => { throw new BundleError(`${where}: ${why}`); };
  if (!isObject(manifest) || typeof manifest.schema !== 'string') fail('has no schema version');
  const major = manifest.schema.split('.', 1)[0];
  if (major !== String(SCHEMA_MAJOR)) {
    fail(`has schema ${manifest.schema}; @igr-edge/js reads schema ${SCHEMA_MAJOR}.x (upgrade it, or convert the model again)`);
  }
  if (manifest.requires !== undefined && (!Array.isArray(manifest.requires) || manifest.requires.length > 0)) {
    // schema 1.1: what a runtime must implement (components bundles: zero-snr, aligned-prior); this binding runs
    // single-call graphs, which carry their whole sampler, and implements none of them
    fail(`requires ${JSON.stringify(manifest.requires)}, which @igr-edge/js does not implement (it runs single-call bundles)`);
  }
  if (!Array.isArray(manifest.files) || manifest.files.length === 0) fail('has no file list');
  const listed = new Set();
  for (const f of manifest.files) {
    if (!isObject(f) || typeof f.path !== 'string' || !isCount(f.size) || typeof f.sha256 !== 'string' || !SHA256.test(f.sha256)) {
      fail(`file entry ${JSON.stringify(f)} needs path, size and a lowercase hex sha256`);
    }
    checkRelativePath(f.path);
    if (listed.has(f.path)) fail(`lists ${f.path} twice`);
    listed.add(f.path);
  }
  if (!isObject(manifest.variants) || Object.keys(manifest.variants).length === 0) fail('has no variants');
  if ('default_variant' in manifest && !Object.hasOwn(manifest.variants, manifest.default_variant)) {
    fail(`default_variant ${JSON.stringify(manifest.default_variant)} is not one of the variants`);
  }
  for (const [name, spec] of Object.entries(manifest.variants)) {
    if (!isObject(spec) || typeof spec.format !== 'string' || !Array.isArray(spec.backends) || !isObject(spec.files)) {
      fail(`variant ${name} needs format, backends and files`);
    }
    for (const rel of Object.values(spec.files)) {
      checkRelativePath(rel);
      const folder = rel.replace(/\/+$/, '') + '/';
      if (!listed.has(rel) && ![...listed].some((p) => p.startsWith(folder))) {
        fail(`variant ${name} names ${rel}, which the file list lacks`);
      }
    }
  }
  const res = manifest.resolution;
  if (!isObject(res) || !isSide(res.width) || !isSide(res.height)) fail('needs resolution.width and .height');
  if (!Array.isArray(manifest.latent) || !manifest.latent.every(isSide)) fail('needs latent, a list of positive sizes');
  const noise = manifest.noise;
  if (!isObject(noise) || !GENERATORS.includes(noise.generator)) {
    fail(`noise generator ${JSON.stringify(noise?.generator)} is unknown to @igr-edge/js (it knows ${GENERATORS.join(', ')})`);
  }
  return manifest;
}

/** The single-call graph's contract from the manifest: sizes and the tensors this binding feeds and reads, as the
 * chosen variant's `io` declares them (schema 1.3), else the manifest's `graphs`. `batch`: 1 where the variant's
 * file fixes it (this binding feeds one person a call either way), null where it is variable. */
export function graphContract(manifest, where = MANIFEST, variant = undefined) {
  const fail = (why) => { throw new BundleError(`${where}: ${why}`); };
  if (manifest.kind !== 'single-call') {
    fail(`is a ${JSON.stringify(manifest.kind)} bundle; @igr-edge/js runs single-call bundles (convert with the single-call graph)`);
  }
  const { width, height } = manifest.resolution;
  const latent = [...manifest.latent];
  const declared = variant !== undefined ? manifest.variants?.[variant]?.io?.student : undefined;
  const student = declared ?? manifest.graphs?.student;
  const what = declared ? `variant ${variant}'s student` : 'graph student';
  const find = (list, name) => (Array.isArray(list) ? list.find((t) => isObject(t) && t.name === name) : undefined);
  const batches = new Set();
  const expect = (list, name, dtype, shape, layout) => {
    const t = find(list, name);
    const ok = t && t.dtype === dtype && Array.isArray(t.shape) && t.shape.length === shape.length + 1
      && (t.shape[0] === 'batch' || t.shape[0] === 1) && shape.every((d, i) => t.shape[i + 1] === d)
      && (t.layout === undefined || t.layout === layout);
    if (!ok) fail(`${what} needs ${name}: ${dtype} [batch, ${shape.join(', ')}] ${layout}, got ${JSON.stringify(t ?? null)}`);
    batches.add(t.shape[0]);
  };
  expect(student?.inputs, 'person', 'uint8', [height, width, 3], 'NHWC');
  expect(student?.inputs, 'noise', 'float32', latent, 'NCHW');
  expect(student?.outputs, 'garment', 'uint8', [height, width, 3], 'NHWC');
  if (batches.size > 1) fail(`${what} mixes a fixed and a variable batch`);
  if (Array.isArray(manifest.noise.shape) && manifest.noise.shape.join() !== latent.join()) {
    fail(`noise.shape ${JSON.stringify(manifest.noise.shape)} differs from latent ${JSON.stringify(latent)}`);
  }
  return { width, height, latentShape: latent, noiseGenerator: manifest.noise.generator, batch: batches.has(1) ? 1 : null };
}

/** The variant to run: `variant` if named, else default_variant first, then the others in manifest order; the
 * first whose format is `format` and whose backends include `backend`. Returns its name. */
export function chooseVariant(manifest, { backend = 'cpu', format = 'onnx', variant } = {}) {
  const names = Object.keys(manifest.variants);
  const ordered = variant !== undefined ? [variant]
    : [manifest.default_variant, ...names].filter((v, i, all) => v !== undefined && all.indexOf(v) === i);
  for (const name of ordered) {
    const spec = manifest.variants[name];
    if (!spec) throw new BundleError(`bundle ${manifest.name} has no variant ${JSON.stringify(name)} (it has ${names.join(', ')})`);
    if (spec.format === format && spec.backends.includes(backend) && typeof spec.files.student === 'string') return name;
    if (variant !== undefined) {
      throw new BundleError(`variant ${name} is ${spec.format} for ${spec.backends.join(', ')}, not ${format} for ${backend}`);
    }
  }
  throw new BundleError(`bundle ${manifest.name} has no ${format} variant for backend ${backend} (variants: ${names.join(', ')})`);
}

/** The manifest's file entries a variant uses (its files, or every file under a folder it names). */
export function variantEntries(manifest, variant) {
  const rels = Object.values(manifest.variants[variant].files);
  return manifest.files.filter((f) => rels.some((rel) => f.path === rel || f.path.startsWith(rel.replace(/\/+$/, '') + '/')));
}

export const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');

/**
 * Load a bundle through `io`:
 *   io.where                       a name for messages (the folder or URL)
 *   io.readManifest()              -> Promise<string> (the caller enforces MAX_MANIFEST_BYTES)
 *   io.readFile(path, size)        -> Promise<Uint8Array> (path already checked by checkRelativePath)
 *   io.sha256(bytes)               -> Promise<string> (lowercase hex)
 * Every file of the chosen variant is read, its size and SHA-256 checked, and kept in memory: the session is
 * created from exactly the bytes that were verified.
 */
export async function loadBundleWith(io, { backend = 'cpu', variant } = {}) {
  const where = `${io.where}/${MANIFEST}`;
  const text = await io.readManifest();
  let manifest;
  try {
    manifest = JSON.parse(text);
  } catch (e) {
    throw new BundleError(`${where} is not valid JSON: ${String(e.message).slice(0, 200)}`);
  }
  checkManifest(manifest, where);
  graphContract(manifest, where);                       // the bundle's graphs, whatever the variant
  const chosen = chooseVariant(manifest, { backend, variant });
  const contract = graphContract(manifest, where, chosen);
  const files = {};
  for (const entry of variantEntries(manifest, chosen)) {
    const bytes = await io.readFile(entry.path, entry.size);
    if (bytes.byteLength !== entry.size) {
      throw new BundleError(`${io.where}: ${entry.path} has ${bytes.byteLength} bytes, the manifest says ${entry.size} (tampered or truncated)`);
    }
    if ((await io.sha256(bytes)) !== entry.sha256) {
      throw new BundleError(`${io.where}: ${entry.path} fails its SHA-256 check (tampered or corrupted)`);
    }
    files[entry.path] = bytes;
  }
  const model = files[manifest.variants[chosen].files.student];
  return Object.freeze({
    source: io.where, manifest, name: manifest.name, version: manifest.version, variant: chosen,
    format: manifest.variants[chosen].format, ...contract, model,
  });
}
