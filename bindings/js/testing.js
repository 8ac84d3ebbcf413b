// Shared by the tests (kept out of test/, where node --test would run it as a test file): where things are, the contract files, PNG decoding and PSNR.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import pngjs from 'pngjs';

export const JS = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(JS, '..', '..');
export const CONTRACT = path.join(REPO, 'bindings', 'contract');
export const DEFAULT_BUNDLE = path.join(REPO, 'igr_edge', 'bundles', 'default');

export const contract = (name) => JSON.parse(readFileSync(path.join(CONTRACT, name), 'utf8'));

/** The default bundle's manifest, its default variant and that variant's graph path. */
export const DEFAULT_MANIFEST = JSON.parse(readFileSync(path.join(DEFAULT_BUNDLE, 'manifest.json'), 'utf8'));
export const DEFAULT_VARIANT = DEFAULT_MANIFEST.default_variant;
export const DEFAULT_STUDENT = DEFAULT_MANIFEST.variants[DEFAULT_VARIANT].files.student;

/** A PNG file -> {width, height, data: RGBA Uint8Array}. */
export function readPng(file) {
  const png = pngjs.PNG.sync.read(readFileSync(file));
  return { width: png.width, height: png.height, data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length) };
}

/** PSNR in dB over the RGB channels of two RGBA arrays (Infinity when equal). */
export function psnr(a, b) {
  if (a.length !== b.length) throw new Error(`sizes differ: ${a.length} vs ${b.length}`);
  let sum = 0;
  let n = 0;
  for (let i = 0; i < a.length; i += 4) {
    for (let c = 0; c < 3; c++) {
      const d = a[i + c] - b[i + c];
      sum += d * d;
    }
    n += 3;
  }
  return sum === 0 ? Infinity : 10 * Math.log10((255 * 255) / (sum / n));
}
