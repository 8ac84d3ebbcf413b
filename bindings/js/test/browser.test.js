// The demo page in headless Chromium: it loads the default bundle from a local server, restores each contract
// person through its test hook, and the garment canvas matches the Python SDK's garment (PSNR).
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import pngjs from 'pngjs';

import { serve } from '../demo/serve.js';
import { CONTRACT, contract, DEFAULT_VARIANT, psnr, readPng, REPO } from '../testing.js';

const CHROMIUM = process.env.IGR_CHROMIUM ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install -y chromium, or set IGR_CHROMIUM)`;
const { cases } = contract('cases.json');

let server;
let browser;
let page;
const offsite = [];
const shown = new Map();   // contract person -> the garment canvas the hook produced
const problems = [];

before(async () => {
  if (skip) return;
  const { chromium } = await import('playwright-core');
  server = await serve();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run'],
  });
  page = await browser.newPage();
  await page.route('**/*', (route) => {   // nothing may come from anywhere but the local server
    if (route.request().url().startsWith(`${server.url}/`)) return route.continue();
    offsite.push(route.request().url());
    return route.abort();
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** The RGBA pixels of a canvas in the page. */
async function canvasPixels(id) {
  return Buffer.from(await page.evaluate((canvasId) => {
    const canvas = document.getElementById(canvasId);
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    let s = '';
    for (let i = 0; i < data.length; i += 8192) s += String.fromCharCode(...data.subarray(i, i + 8192));
    return btoa(s);
  }, id), 'base64');
}

/** Wait until the page reports the restore it started (or fails). */
async function restored() {
  await page.waitForFunction(() => /^(Restored|Could not|the file)/.test(document.getElementById('status').textContent)
    || document.getElementById('status').className === 'error', null, { timeout: 120_000 });
  return page.textContent('#status');
}

test('the demo page loads and verifies the default bundle', { skip, timeout: 120_000 }, async (t) => {
  const start = Date.now();
  await page.goto(`${server.url}/js/demo/`);
  const ready = await page.evaluate(() => window.igrReady);
  t.diagnostic(`bundle ${ready.name} (${ready.variant}) on ${ready.runtime} ready in the page after ${Date.now() - start} ms`);
  assert.deepEqual([ready.variant, ready.width, ready.height], [DEFAULT_VARIANT, 192, 256]);
  assert.match(await page.textContent('#status'), /^Ready:/);
});

for (const c of cases) {
  test(`the page restores ${path.basename(c.person)} (seed ${c.seed}) within ${c.min_psnr_db} dB of the Python SDK`, { skip, timeout: 180_000 }, async (t) => {
    const runs = [];
    for (let i = 0; i < 2; i++) {   // the first run of a wasm session includes its warm-up
      runs.push((await page.evaluate(([url, seed]) => window.igrRestoreUrl(url, seed), [`/contract/${c.person}`, c.seed])).ms);
    }
    const pixels = await canvasPixels('garment');
    shown.set(c.person, pixels);
    const expected = readPng(path.join(CONTRACT, c.garment));
    assert.equal(pixels.length, expected.data.length);
    const db = psnr(pixels, expected.data);
    t.diagnostic(`psnr ${db === Infinity ? 'inf (identical)' : db.toFixed(2)} dB, ${runs.map((ms) => ms.toFixed(0)).join(' / ')} ms (first / second restore)`);
    assert.ok(db >= c.min_psnr_db, `PSNR ${db} dB < ${c.min_psnr_db}`);
  });
}

test('a picked photo is turned upright by its EXIF orientation and restored', { skip, timeout: 180_000 }, async () => {
  await page.fill('#seed', '0');
  await page.evaluate(() => { document.getElementById('status').textContent = ''; });
  await page.setInputFiles('#file', path.join(REPO, 'samples', 'persons', 'test-04.jpg'));   // 512 × 384 stored, EXIF 6
  assert.match(await restored(), /^Restored with seed 0 in \d+ ms/);
  const person = await canvasPixels('person');   // upright it is 384 × 512: it fills 192 × 256 exactly
  assert.ok(person.every((v, i) => i % 4 !== 3 || v === 255), 'no padding: the photo was turned upright');
  const garment = await canvasPixels('garment');
  assert.ok(new Set(garment.filter((_, i) => i % 4 === 0)).size > 16, 'the garment is not blank');
});

test('a photo of another aspect is letterboxed: centred, padding composited onto white', { skip, timeout: 180_000 }, async () => {
  const wide = new pngjs.PNG({ width: 300, height: 100 });   // scale 0.64: a 192 × 64 box, 96 rows above and below
  for (let i = 0; i < wide.data.length; i += 4) wide.data.set([200, 30, 30, 255], i);
  await page.evaluate(() => { document.getElementById('status').textContent = ''; });
  await page.setInputFiles('#file', { name: 'wide.png', mimeType: 'image/png', buffer: pngjs.PNG.sync.write(wide) });
  assert.match(await restored(), /^Restored with seed 0 in/);
  const person = await canvasPixels('person');
  const alphaRow = (y) => [...new Set(person.subarray(y * 192 * 4, (y + 1) * 192 * 4).filter((_, i) => i % 4 === 3))];
  assert.deepEqual([alphaRow(0), alphaRow(95), alphaRow(97), alphaRow(158), alphaRow(161), alphaRow(255)],
    [[0], [0], [255], [255], [0], [0]]);
});

test('a dropped photo is restored with the seed typed in, the same as through the hook', { skip, timeout: 180_000 }, async () => {
  const c = cases[1];
  await page.fill('#seed', c.seed);
  await page.evaluate(() => { document.getElementById('status').textContent = ''; });
  const png = readFileSync(path.join(CONTRACT, c.person)).toString('base64');
  await page.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], 'person.png', { type: 'image/png' }));
    document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
  }, png);
  assert.match(await restored(), new RegExp(`^Restored with seed ${c.seed} in`));
  assert.deepEqual(await canvasPixels('garment'), shown.get(c.person));
});

test('nothing was fetched from off the local server, and the page logged no errors', { skip }, () => {
  assert.deepEqual(offsite, []);
  assert.deepEqual(problems, []);
});
