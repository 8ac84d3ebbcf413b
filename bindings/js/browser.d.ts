// Types of @igr-edge/js in the browser.
import type { Bundle, CreateOptions, LoadOptions, Pixels, Restored, RestoreOptions, Seed } from './index.js';

export type { Bundle, CreateOptions, LoadOptions, Manifest, Pixels, Restored, RestoreOptions, Seed } from './index.js';
export {
  BundleError, checkManifest, checkRelativePath, chooseVariant, GENERATORS, IgrEdgeError, normal, SCHEMA_MAJOR,
  splitmix64, toPerson, toRGBA, toSeed,
} from './index.js';

/** A photo: ImageData (any size), a Blob/File, anything drawImage takes, or RGB/RGBA bytes at the model's size. */
export type ImageInput = Pixels | ImageData | Blob | CanvasImageSource | ImageBitmap;

/** Load a bundle from its base URL: manifest checked, the chosen variant's files' sizes and SHA-256 verified. */
export function loadBundle(baseUrl: string | URL, options?: LoadOptions): Promise<Bundle>;
/** The letterbox content box igr_edge.images.letterbox uses for a w × h photo. */
export function letterboxBox(w: number, h: number, width: number, height: number): { x: number; y: number; width: number; height: number };
/** Any image -> width × height ImageData, aspect kept, centred, transparent padding (composited to white later). */
export function letterbox(source: ImageData | CanvasImageSource, width: number, height: number): ImageData;
/** Decode a picked or dropped file, without colour conversion. */
export function decodeImage(blob: Blob): Promise<ImageBitmap>;

export interface BrowserCreateOptions extends CreateOptions {
  /** where onnxruntime-web's .wasm/.mjs files are served (default: next to its module) */
  wasmPaths?: string | Record<string, string>;
  /** wasm threads (default 1; more need cross-origin isolation) */
  numThreads?: number;
}

export class Restorer {
  readonly bundle: Bundle;
  readonly lowMemory: boolean;
  readonly width: number;
  readonly height: number;
  /** A session on a loaded bundle (or its base URL), onnxruntime-web's wasm backend by default. */
  static create(bundle: Bundle | string | URL, options?: BrowserCreateOptions): Promise<Restorer>;
  readonly runtime: string;
  noise(seed: Seed): Float32Array;
  /** A photo of any size (letterboxed onto white) -> the garment at the model's size. */
  restore(image: ImageInput, options?: RestoreOptions): Promise<Restored>;
  release(): Promise<void>;
}
