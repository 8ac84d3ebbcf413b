// A tiny static server for the demo and the browser test: nothing but local files, on 127.0.0.1.
//   node bindings/js/demo/serve.js [--port 8080] [--bundle FOLDER]    then open the URL it prints
// /js/demo/, /js/src/ and /js/node_modules/onnxruntime-web/dist/ come from bindings/js; /bundle/ is the bundle
// folder (default: igr_edge/bundles/default); /contract/ is bindings/contract.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REPO = path.resolve(JS, '..', '..');
export const DEFAULT_BUNDLE = path.join(REPO, 'igr_edge', 'bundles', 'default');
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png', '.css': 'text/css; charset=utf-8',
};

function mounts(bundle) {
  return [
    ['/js/demo/', path.join(JS, 'demo')],
    ['/js/src/', path.join(JS, 'src')],
    ['/js/node_modules/onnxruntime-web/dist/', path.join(JS, 'node_modules', 'onnxruntime-web', 'dist')],
    ['/bundle/', path.resolve(bundle)],
    ['/contract/', path.join(REPO, 'bindings', 'contract')],
  ];
}

/** Start serving; resolves to {url, server, close()}. `port` 0 picks a free one. */
export function serve({ port = 0, host = '127.0.0.1', bundle = DEFAULT_BUNDLE } = {}) {
  const table = mounts(bundle);
  const server = http.createServer(async (req, res) => {
    const reply = (code, text) => { res.writeHead(code, { 'content-type': 'text/plain' }); res.end(text); };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'GET only\n');
    let pathname;
    try {
      pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      return reply(400, 'bad path\n');
    }
    if (pathname === '/' || pathname === '/js/demo') {
      res.writeHead(302, { location: '/js/demo/' });
      return res.end();
    }
    const mount = table.find(([prefix]) => pathname.startsWith(prefix));
    const rel = mount && pathname.slice(mount[0].length);
    if (!mount || rel.includes('\0') || rel.includes('\\') || rel.split('/').includes('..')) return reply(404, 'not found\n');
    let file = path.join(mount[1], rel);
    if (!file.startsWith(mount[1] + path.sep) && file !== mount[1]) return reply(404, 'not found\n');
    try {
      let info = await stat(file);
      if (info.isDirectory()) {
        file = path.join(file, 'index.html');
        info = await stat(file);
      }
      if (!info.isFile()) return reply(404, 'not found\n');
      res.writeHead(200, {
        'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        'content-length': info.size,
        'cache-control': 'no-store',
      });
      if (req.method === 'HEAD') return res.end();
      createReadStream(file).pipe(res);
    } catch {
      reply(404, 'not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const url = `http://${host}:${server.address().port}`;
      resolve({ url, server, close: () => new Promise((done) => server.close(done)) });
    });
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : fallback;
  };
  const { url } = await serve({ port: Number(arg('--port', 8080)), bundle: arg('--bundle', DEFAULT_BUNDLE) });
  console.log(`IGR Edge demo: ${url}/js/demo/  (Ctrl-C stops)`);
}
