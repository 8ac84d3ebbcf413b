// The bundle's noise generator, v1 `splitmix64-boxmuller` (bindings/contract/README.md): a SplitMix64 stream
// seeded with the seed; each pair of outputs -> u1 in (0, 1], u2 in [0, 1) from their top 53 bits ->
// Box-Muller in float64 -> float32, in C order. Bit-identical to igr_edge/noise.py.
import { IgrEdgeError } from './errors.js';

export const GENERATORS = Object.freeze(['splitmix64-boxmuller']);
const GOLDEN = 0x9e3779b97f4a7c15n;
const M1 = 0xbf58476d1ce4e5b9n;
const M2 = 0x94d049bb133111ebn;
const TWO53 = 2 ** 53;
const LIMIT = 1n << 64n;

/** A seed (bigint, safe non-negative integer number, or decimal string) as a bigint in [0, 2^64). */
export function toSeed(seed) {
  let s;
  if (typeof seed === 'bigint') s = seed;
  else if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed)) {
      throw new IgrEdgeError(`seed must be an integer in [0, 2**64) (pass seeds above 2**53 as a bigint or decimal string), got ${seed}`);
    }
    s = BigInt(seed);
  } else if (typeof seed === 'string' && /^[0-9]{1,20}$/.test(seed)) s = BigInt(seed);
  else throw new IgrEdgeError(`seed must be a bigint, an integer number or a decimal string, got ${typeof seed === 'string' ? JSON.stringify(seed) : typeof seed}`);
  if (s < 0n || s >= LIMIT) throw new IgrEdgeError(`seed must be in [0, 2**64), got ${s}`);
  return s;
}

/** The first `n` outputs of SplitMix64 seeded with `seed`. */
export function splitmix64(seed, n) {
  const out = new BigUint64Array(n);
  let state = toSeed(seed);
  for (let i = 0; i < n; i++) {
    state = BigInt.asUintN(64, state + GOLDEN);
    let z = state;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * M1);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * M2);
    out[i] = z ^ (z >> 31n);
  }
  return out;
}

/** Standard normal float32 noise of `shape` (default the default bundle's [4, 32, 24]) from `seed`, C order. */
export function normal(seed, shape = [4, 32, 24], { generator = 'splitmix64-boxmuller' } = {}) {
  if (!GENERATORS.includes(generator)) {
    throw new IgrEdgeError(`noise generator ${JSON.stringify(generator)} is unknown to @igr-edge/js (it knows ${GENERATORS.join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new IgrEdgeError(`noise shape must be a list of positive integers, got ${JSON.stringify(shape)}`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  const bits = splitmix64(seed, 2 * Math.ceil(count / 2));
  const out = new Float32Array(count);
  for (let i = 0, k = 0; k < count; i += 2) {
    const u1 = (Number(bits[i] >> 11n) + 1) / TWO53;   // (0, 1]
    const u2 = Number(bits[i + 1] >> 11n) / TWO53;     // [0, 1)
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    out[k++] = r * Math.cos(theta);                     // Float32Array stores round to nearest float32
    if (k < count) out[k++] = r * Math.sin(theta);
  }
  return out;
}
