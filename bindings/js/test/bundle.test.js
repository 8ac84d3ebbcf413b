import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { loadBundle as loadBundleFromUrl } from '../src/browser.js';
import { BundleError, checkRelativePath, loadBundle } from '../src/node.js';
import { serve } from '../demo/serve.js';
import { DEFAULT_BUNDLE, DEFAULT_STUDENT, DEFAULT_VARIANT } from '../testing.js';

let tmp;
before(async () => { tmp = await mkdtemp(path.join(tmpdir(), 'igr-js-bundle-')); });
after(async () => { await rm(tmp, { recursive: true, force: true }); });

const STUDENT = DEFAULT_STUDENT;

/** A copy of the default bundle under tmp; `edit(manifest)` may change its manifest. */
async function copy(name, edit) {
  const folder = path.join(tmp, name);
  await cp(DEFAULT_BUNDLE, folder, { recursive: true });
  if (edit) {
    const file = path.join(folder, 'manifest.json');
    const manifest = JSON.parse(await readFile(file, 'utf8'));
    edit(manifest);
    await writeFile(file, JSON.stringify(manifest));
  }
  return folder;
}

const renamePath = (to) => (m) => {
  m.files[0].path = to;
  m.variants[DEFAULT_VARIANT].files.student = to;
};

test('the default bundle loads: the cpu variant, its sizes, the verified graph bytes', async () => {
  const b = await loadBundle(DEFAULT_BUNDLE);
  assert.equal(b.variant, DEFAULT_VARIANT);
  assert.equal(b.format, 'onnx');
  assert.deepEqual([b.width, b.height, b.latentShape], [192, 256, [4, 32, 24]]);
  assert.equal(b.noiseGenerator, 'splitmix64-boxmuller');
  assert.equal(b.model.byteLength, b.manifest.files[0].size);
});

test('a tampered graph is refused', async () => {
  const folder = await copy('tampered');
  const file = path.join(folder, STUDENT);
  const bytes = await readFile(file);
  bytes[bytes.length >> 1] ^= 0x01;
  await writeFile(file, bytes);
  await assert.rejects(loadBundle(folder), (e) => e instanceof BundleError && /SHA-256/.test(e.message));
});

test('a truncated graph is refused', async () => {
  const folder = await copy('truncated');
  await truncate(path.join(folder, STUDENT), 1000);
  await assert.rejects(loadBundle(folder), (e) => e instanceof BundleError && /1000 bytes, the manifest says/.test(e.message));
});

test('paths that could leave the bundle are refused', async () => {
  for (const [i, bad] of ['../student.onnx', `${DEFAULT_VARIANT}/../../student.onnx`, '/etc/passwd', `${DEFAULT_VARIANT}\\student.onnx`,
    'C:/student.onnx', 'https://example.com/student.onnx'].entries()) {
    const folder = await copy(`escape-${i}`, renamePath(bad));
    await assert.rejects(loadBundle(folder), (e) => e instanceof BundleError && /not a relative path inside the bundle/.test(e.message), bad);
  }
  assert.throws(() => checkRelativePath('a/./b'), BundleError);
  assert.equal(checkRelativePath(STUDENT), STUDENT);
});

test('a graph that is a link out of the folder is refused', async () => {
  const folder = await copy('link');
  await cp(path.join(folder, STUDENT), path.join(tmp, 'outside.onnx'));
  await rm(path.join(folder, STUDENT));
  await symlink(path.join(tmp, 'outside.onnx'), path.join(folder, STUDENT));
  await assert.rejects(loadBundle(folder), (e) => e instanceof BundleError && /leaves the bundle folder/.test(e.message));
});

test('schema 2.0.0 is refused; so are a missing manifest and an unknown backend', async () => {
  const folder = await copy('schema2', (m) => { m.schema = '2.0.0'; });
  await assert.rejects(loadBundle(folder), (e) => e instanceof BundleError && /schema 2\.0\.0/.test(e.message));
  await assert.rejects(loadBundle(tmp), (e) => e instanceof BundleError && /not a bundle/.test(e.message));
  await assert.rejects(loadBundle(DEFAULT_BUNDLE, { backend: 'coreml' }), /no onnx variant for backend coreml/);
  const components = await copy('components', (m) => { m.kind = 'components'; });
  await assert.rejects(loadBundle(components), /single-call/);
  const requires = await copy('requires', (m) => { m.requires = ['aligned-prior']; });
  await assert.rejects(loadBundle(requires), (e) => e instanceof BundleError && /requires \["aligned-prior"\]/.test(e.message));
  await loadBundle(await copy('requires-none', (m) => { m.requires = []; }));
});

test("a variant's declared io is what the binding checks: a fixed batch of 1 is read, a wrong layout refused", async () => {
  const io = (m, batch, layout = 'NHWC') => {
    const [h, w] = [m.resolution.height, m.resolution.width];
    m.variants[DEFAULT_VARIANT].io = { student: {
      inputs: [{ name: 'person', dtype: 'uint8', shape: [batch, h, w, 3], layout },
        { name: 'noise', dtype: 'float32', shape: [batch, ...m.latent], layout: 'NCHW' }],
      outputs: [{ name: 'garment', dtype: 'uint8', shape: [batch, h, w, 3], layout: 'NHWC' }] } };
  };
  assert.equal((await loadBundle(await copy('io-fixed', (m) => io(m, 1)))).batch, 1);
  assert.equal((await loadBundle(await copy('io-variable', (m) => io(m, 'batch')))).batch, null);
  await assert.rejects(loadBundle(await copy('io-layout', (m) => io(m, 1, 'NCHW'))),
    (e) => e instanceof BundleError && /variant .*'s student needs person: uint8 \[batch, 256, 192, 3\] NHWC/.test(e.message));
  await assert.rejects(loadBundle(await copy('io-batch4', (m) => io(m, 4))), /needs person/);
});

test('the browser loader (fetch + crypto.subtle) verifies the same way', async (t) => {
  const ok = await serve({ bundle: DEFAULT_BUNDLE });
  t.after(() => ok.close());
  const b = await loadBundleFromUrl(`${ok.url}/bundle/`);
  assert.equal(b.variant, DEFAULT_VARIANT);
  assert.equal(b.model.byteLength, b.manifest.files[0].size);

  const cases = [
    ['tampered over http', async () => {
      const folder = await copy('http-tampered');
      const bytes = await readFile(path.join(folder, STUDENT));
      bytes[12345] ^= 0xff;
      await writeFile(path.join(folder, STUDENT), bytes);
      return folder;
    }, /SHA-256/],
    ['schema 2 over http', () => copy('http-schema2', (m) => { m.schema = '2.0.0'; }), /schema 2\.0\.0/],
    ['escaping over http', () => copy('http-escape', renamePath('../manifest.json')), /not a relative path/],
    ['encoded dots over http', () => copy('http-encoded', renamePath('%2e%2e/manifest.json')), /cannot be fetched: HTTP 404/],
  ];
  for (const [name, make, why] of cases) {
    const server = await serve({ bundle: await make() });
    try {
      await assert.rejects(loadBundleFromUrl(`${server.url}/bundle/`), (e) => e instanceof BundleError && why.test(e.message), name);
    } finally {
      await server.close();
    }
  }
});
