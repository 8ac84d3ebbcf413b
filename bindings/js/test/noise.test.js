import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';

import { IgrEdgeError, normal, splitmix64, toSeed } from '../src/node.js';
import { contract } from '../testing.js';

const { generator, vectors } = contract('noise.json');

function littleEndianBytes(values) {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return new Uint8Array(view.buffer);
}

test('the contract names the generator this package implements', () => {
  assert.equal(generator, 'splitmix64-boxmuller');
  assert.ok(vectors.length >= 5);
});

for (const v of vectors) {
  test(`noise for seed ${v.seed} matches the Python SDK bit for bit`, () => {
    assert.deepEqual([...splitmix64(v.seed, 4)].map(String), v.splitmix64_first);
    const z = normal(v.seed, v.shape);
    assert.equal(z.length, v.shape.reduce((a, b) => a * b, 1));
    assert.deepEqual([...z.subarray(0, 8)], v.first);
    const sum = z.reduce((acc, x) => acc + x, 0);   // float64 sum of the float32 values
    assert.ok(Math.abs(sum - v.sum) < 1e-9, `sum ${sum} vs ${v.sum}`);
    assert.equal(createHash('sha256').update(littleEndianBytes(z)).digest('hex'), v.sha256_le_float32);
  });
}

test('a seed may be a bigint, a safe integer or a decimal string; the noise is the same', () => {
  assert.deepEqual(normal(42n), normal(42));
  assert.deepEqual(normal('42'), normal(42));
  assert.equal(toSeed('18446744073709551615'), 2n ** 64n - 1n);
  assert.deepEqual(normal(7, [5]), normal(7, [6]).subarray(0, 5));   // an odd count is a prefix
});

test('seeds outside [0, 2^64) or not integers are refused', () => {
  for (const bad of [-1, -1n, 2n ** 64n, '18446744073709551616', 1.5, NaN, 2 ** 53 + 2, '0x10', '-3', '', ' 1', null, undefined, {}]) {
    assert.throws(() => toSeed(bad), IgrEdgeError, String(bad));
  }
  assert.throws(() => normal(0, [4, 32, 24], { generator: 'philox' }), /unknown/);
});
