// A stand-in for an OpenAI-compatible API on loopback, for generate.test.mjs: it answers
// `POST /v1/images/generations` with a small PNG as `b64_json` and `POST /v1/chat/completions`
// with a caption, the way shared/src/ai/openai.rs expects, and records every request.
//
// The image answer can be held (`hold()`) until the test calls `release()`, so the product's
// `processing` state lasts as long as the test needs to see it; a held answer is given anyway
// after HOLD_CAP_MS, well inside the gateway's AI budget, so nothing can hang. `failImages(n)`
// makes the image answer a 500 with an OpenAI-style error body (still held while holding).

import http from 'node:http';
import { deflateSync } from 'node:zlib';

export const FAKE_CAPTION = 'Fresh from the oven, crackling crust. #sourdough #bakery';
export const FAKE_ERROR = 'stand-in says the image service is down';
const HOLD_CAP_MS = 12_000;

// ---------------------------------------------------------------- a PNG, made here

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/**
 * A `size`×`size` RGB PNG: a diagonal orange-to-purple gradient with a white square in the
 * middle, so it is easy to recognise on a screenshot.
 */
export function makePng(size = 128) {
  const raw = Buffer.alloc(size * (1 + size * 3));
  for (let y = 0; y < size; y++) {
    const row = y * (1 + size * 3);
    raw[row] = 0; // filter: none
    for (let x = 0; x < size; x++) {
      const t = (x + y) / (2 * (size - 1));
      const inner = Math.abs(x - size / 2) < size / 6 && Math.abs(y - size / 2) < size / 6;
      const [r, g, b] = inner ? [255, 255, 255] : [255 - 120 * t, 140 - 100 * t, 40 + 180 * t];
      raw.set([r, g, b].map(Math.round), row + 1 + x * 3);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit, truecolour, deflate, no filter method, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

// ---------------------------------------------------------------- the server

/** Starts the stand-in on 127.0.0.1:<free port>; `base` is its API root (`.../v1`). */
export async function startFakeAi() {
  const png = makePng();
  const requests = []; // {method, path, authorization, body, at}
  let gate = null; // {promise, open} while holding
  let failuresLeft = 0;
  const sockets = new Set();

  const json = (res, status, body) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };

  const server = http.createServer(async (req, res) => {
    let text = '';
    for await (const piece of req) text += piece;
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch { body = text; }
    const entry = { method: req.method, path: req.url, authorization: req.headers.authorization ?? null, body, at: Date.now() };
    requests.push(entry);
    if (req.method === 'POST' && req.url === '/v1/images/generations') {
      const fail = failuresLeft > 0;
      if (fail) failuresLeft -= 1;
      if (gate) {
        const waited = gate.promise;
        await Promise.race([waited, new Promise((resolve) => setTimeout(resolve, HOLD_CAP_MS))]);
      }
      entry.answeredAt = Date.now();
      if (fail) return json(res, 500, { error: { message: FAKE_ERROR, type: 'server_error' } });
      return json(res, 200, { created: Math.floor(Date.now() / 1000), data: [{ b64_json: png.toString('base64') }] });
    }
    if (req.method === 'POST' && req.url === '/v1/chat/completions') {
      entry.answeredAt = Date.now();
      return json(res, 200, {
        id: 'chatcmpl-stand-in', object: 'chat.completion', created: Math.floor(Date.now() / 1000),
        model: body?.model ?? null,
        choices: [{ index: 0, message: { role: 'assistant', content: FAKE_CAPTION }, finish_reason: 'stop' }],
      });
    }
    // Anything else (the provider's warm-up GET of the base URL, say): OpenAI's 404 shape.
    return json(res, 404, { error: { message: `no route ${req.method} ${req.url}` } });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();

  return {
    base: `http://127.0.0.1:${port}/v1`,
    requests,
    png,
    /** The POSTs to `path` (`images/generations` or `chat/completions`) so far. */
    posts(path) { return requests.filter((r) => r.method === 'POST' && r.path === `/v1/${path}`); },
    /** From now on image answers wait for `release()` (at most HOLD_CAP_MS). */
    hold() {
      let open;
      const promise = new Promise((resolve) => { open = resolve; });
      gate = { promise, open };
    },
    /** Gives the held image answers, and answers at once from now on. */
    release() {
      gate?.open();
      gate = null;
    },
    /** The next `n` image requests answer 500. */
    failImages(n = 1) { failuresLeft = n; },
    close() {
      this.release();
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
