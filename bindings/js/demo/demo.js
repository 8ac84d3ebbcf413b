// The demo page: load the bundle (default /bundle/, or ?bundle=URL), then restore what the user picks or drops.
// Test hooks: window.igrReady (a promise of the bundle's description) and window.igrRestoreUrl(url, seed).
import { decodeImage, letterbox, loadBundle, Restorer } from '../src/browser.js';

const $ = (id) => document.getElementById(id);
const bundleUrl = new URL(new URLSearchParams(location.search).get('bundle') ?? '/bundle/', location.href);
const ortFiles = new URL('../node_modules/onnxruntime-web/dist/', import.meta.url).href;
let restorer;

function status(text, error = false) {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
}

window.igrReady = (async () => {
  const start = performance.now();
  const bundle = await loadBundle(bundleUrl);
  restorer = await Restorer.create(bundle, { wasmPaths: ortFiles, numThreads: 1 });
  for (const id of ['person', 'garment']) Object.assign($(id), { width: bundle.width, height: bundle.height });
  $('file').disabled = false;
  status(`Ready: ${bundle.name} ${bundle.version} (${bundle.variant}, verified) on ${restorer.runtime} (wasm), loaded in ${Math.round(performance.now() - start)} ms.`);
  return { name: bundle.name, variant: bundle.variant, width: bundle.width, height: bundle.height, runtime: restorer.runtime };
})();
window.igrReady.catch((e) => status(`Could not load the bundle from ${bundleUrl}: ${e.message}`, true));

async function show(image, seed) {
  await window.igrReady;
  const person = letterbox(image, restorer.width, restorer.height);
  $('person').getContext('2d').putImageData(person, 0, 0);
  status('Restoring…');
  const { garment, width, height, ms } = await restorer.restore(person, { seed });
  $('garment').getContext('2d').putImageData(new ImageData(garment, width, height), 0, 0);
  $('time').textContent = `${ms.toFixed(0)} ms`;
  status(`Restored with seed ${seed} in ${ms.toFixed(0)} ms (WebAssembly, 1 thread).`);
  return { ms, width, height };
}

async function showFile(file) {
  try {
    await show(await decodeImage(file), $('seed').value.trim() || '0');
  } catch (e) {
    status(e.message, true);
  }
}

/** Test hook: restore the image at `url` with `seed`; resolves to {ms, width, height} once the canvas shows it. */
window.igrRestoreUrl = async (url, seed = 0) => {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return show(await decodeImage(await response.blob()), seed);
};

$('file').addEventListener('change', () => $('file').files[0] && showFile($('file').files[0]));
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const file = [...e.dataTransfer.files].find((f) => f.type.startsWith('image/'));
  if (file) showFile(file);
  else status('Drop an image file.', true);
});
