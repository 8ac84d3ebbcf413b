// Types of @igr-edge/js in Node (the browser entry's are in browser.d.ts).

/** A seed in [0, 2^64): a bigint, a safe non-negative integer, or a decimal string. */
export type Seed = bigint | number | string;

export class IgrEdgeError extends Error {}
export class BundleError extends IgrEdgeError {}

export const GENERATORS: readonly ['splitmix64-boxmuller'];
export const SCHEMA_MAJOR: 1;
export function toSeed(seed: Seed): bigint;
/** The first `n` SplitMix64 outputs from `seed`. */
export function splitmix64(seed: Seed, n: number): BigUint64Array;
/** Standard normal float32 noise (C order) of `shape` (default [4, 32, 24]) from `seed`. */
export function normal(seed: Seed, shape?: number[], options?: { generator?: string }): Float32Array;

export interface Manifest {
  schema: string;
  name: string;
  version: string;
  kind: string;
  default_variant?: string;
  resolution: { width: number; height: number };
  latent: number[];
  files: { path: string; size: number; sha256: string }[];
  variants: Record<string, { format: string; backends: string[]; files: Record<string, string>; [k: string]: unknown }>;
  [k: string]: unknown;
}
export function checkManifest(manifest: unknown, where?: string): Manifest;
export function checkRelativePath(path: string): string;
export function chooseVariant(manifest: Manifest, options?: { backend?: string; format?: string; variant?: string }): string;

/** A loaded, verified bundle: the manifest, the chosen variant, and its graph's verified bytes. */
export interface Bundle {
  readonly source: string;
  readonly manifest: Manifest;
  readonly name: string;
  readonly version: string;
  readonly variant: string;
  readonly format: string;
  readonly width: number;
  readonly height: number;
  readonly latentShape: number[];
  readonly noiseGenerator: string;
  /** 1 where the chosen variant's file fixes the batch (schema 1.3 `io`), null where it is variable */
  readonly batch: 1 | null;
  readonly model: Uint8Array;
}
export interface LoadOptions {
  /** the runtime the variant must list in its backends (default 'cpu') */
  backend?: string;
  /** a variant by name instead of default_variant first */
  variant?: string;
}

/** Pixels: ImageData-like {data, width, height}, or RGB/RGBA bytes with width and height in the options. */
export type Pixels = Uint8Array | Uint8ClampedArray | { data: Uint8Array | Uint8ClampedArray; width: number; height: number };
export interface RestoreOptions {
  width?: number;
  height?: number;
  /** default 0 */
  seed?: Seed;
}
export interface Restored {
  /** RGBA, width × height, alpha 255 */
  garment: Uint8ClampedArray;
  width: number;
  height: number;
  /** milliseconds for this restore (input conversion, noise, ONNX Runtime run) */
  ms: number;
}
export interface CreateOptions {
  /** an onnxruntime module (default: onnxruntime-node) */
  ort?: unknown;
  /** ONNX Runtime session options, merged over {executionProviders, graphOptimizationLevel: 'all'} */
  sessionOptions?: Record<string, unknown>;
  /** default ['cpu'] */
  executionProviders?: string[];
  /** keep int8 weights int8, expanded on every run (ONNX Runtime's constant folding off): far less memory, slower; default false */
  lowMemory?: boolean;
}

/** RGB or RGBA (composited onto white as the Python SDK does) -> uint8 RGB (H, W, 3). */
export function toPerson(pixels: Pixels, size?: { width?: number; height?: number }): Uint8Array;
/** uint8 RGB -> opaque RGBA. */
export function toRGBA(rgb: Uint8Array): Uint8ClampedArray;

/** Load a bundle folder: manifest checked, the chosen variant's files' sizes and SHA-256 verified. */
export function loadBundle(folder: string | URL, options?: LoadOptions): Promise<Bundle>;

export class Restorer {
  readonly bundle: Bundle;
  readonly lowMemory: boolean;
  readonly width: number;
  readonly height: number;
  /** A session on a loaded bundle (or a bundle folder path). */
  static create(bundle: Bundle | string, options?: CreateOptions): Promise<Restorer>;
  /** Which ONNX Runtime runs the graph, e.g. "onnxruntime-node 1.30.0". */
  readonly runtime: string;
  /** The noise fed for `seed`. */
  noise(seed: Seed): Float32Array;
  /** One person at the model's size (RGB or RGBA) -> the garment. */
  restore(pixels: Pixels, options?: RestoreOptions): Promise<Restored>;
  release(): Promise<void>;
}
