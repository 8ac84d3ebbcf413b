// The demo page in headless Chromium: it loads the default bundle from a local server, restores each contract
// person through its test hook, and the garment canvas matches the Python SDK's garment (PSNR).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { serve } from '../demo/serve.js';
import { CONTRACT, contract, psnr, readPng } from './helpers.js';

const CHROMIUM = process.env.IGR_CHROMIUM ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install -y chromium, or set IGR_CHROMIUM)`;
const { cases } = contract('cases.json');

let server;
let browser;
let page;
const offsite = [];
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

test('the demo page loads and verifies the default bundle', { skip, timeout: 120_000 }, async (t) => {
  const start = Date.now();
  await page.goto(`${server.url}/js/demo/`);
  const ready = await page.evaluate(() => window.igrReady);
  t.diagnostic(`bundle ${ready.name} (${ready.variant}) ready in the page after ${Date.now() - start} ms`);
  assert.deepEqual([ready.variant, ready.width, ready.height], ['onnx-qdq', 192, 256]);
  assert.match(await page.textContent('#status'), /^Ready:/);
});

for (const c of cases) {
  test(`the page restores ${path.basename(c.person)} (seed ${c.seed}) within ${c.min_psnr_db} dB of the Python SDK`, { skip, timeout: 180_000 }, async (t) => {
    const runs = [];
    for (let i = 0; i < 2; i++) {   // the first run of a wasm session includes its warm-up
      runs.push((await page.evaluate(([url, seed]) => window.igrRestoreUrl(url, seed), [`/contract/${c.person}`, c.seed])).ms);
    }
    const pixels = Buffer.from(await page.evaluate(() => {
      const canvas = document.getElementById('garment');
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      let s = '';
      for (let i = 0; i < data.length; i += 8192) s += String.fromCharCode(...data.subarray(i, i + 8192));
      return btoa(s);
    }), 'base64');
    const expected = readPng(path.join(CONTRACT, c.garment));
    assert.equal(pixels.length, expected.data.length);
    const db = psnr(pixels, expected.data);
    t.diagnostic(`psnr ${db === Infinity ? 'inf (identical)' : db.toFixed(2)} dB, ${runs.map((ms) => ms.toFixed(0)).join(' / ')} ms (first / second restore)`);
    assert.ok(db >= c.min_psnr_db, `PSNR ${db} dB < ${c.min_psnr_db}`);
  });
}

test('nothing was fetched from off the local server, and the page logged no errors', { skip }, () => {
  assert.deepEqual(offsite, []);
  assert.deepEqual(problems, []);
});
