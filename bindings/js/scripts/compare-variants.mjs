// Latency of a bundle's variants in onnxruntime-node (CPU) and onnxruntime-web (wasm, run in Node), interleaved
// in one run on one contract person: the ratios are the figures to compare (absolute ms move with the load).
//
//   node bindings/js/scripts/compare-variants.mjs [BUNDLE] [VARIANT,...] [RUNS]
//   default: bundles/student-2 (python -m convert bundle ...), onnx-qdq,onnx-w8, 8 runs
import path from 'node:path';

import * as ortWeb from 'onnxruntime-web';

import { loadBundle, Restorer } from '../src/node.js';
import { CONTRACT, contract, readPng, REPO } from '../testing.js';

const [folder = path.join(REPO, 'bundles', 'student-2'), list = 'onnx-qdq,onnx-w8', n = '8'] = process.argv.slice(2);
const runs = Number(n);
const c = contract('cases.json').cases[1];
const person = readPng(path.join(CONTRACT, c.person));
const restorers = {};
for (const variant of list.split(',')) {
  const bundle = await loadBundle(folder, { variant });
  restorers[`node ${variant}`] = await Restorer.create(bundle);
  restorers[`wasm ${variant}`] = await Restorer.create(bundle, { ort: ortWeb, executionProviders: ['wasm'] });
}
const times = Object.fromEntries(Object.keys(restorers).map((k) => [k, []]));
for (const r of Object.values(restorers)) await r.restore(person, { seed: c.seed });   // warm-up
for (let i = 0; i < runs; i++) {
  for (const [k, r] of Object.entries(restorers)) times[k].push((await r.restore(person, { seed: c.seed })).ms);
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
console.log(`${path.basename(c.person)} seed ${c.seed}, median of ${runs} after a warm-up, interleaved`);
for (const [k, xs] of Object.entries(times)) console.log(`${k.padEnd(24)} ${median(xs).toFixed(0).padStart(6)} ms`);
for (const r of Object.values(restorers)) await r.release();
