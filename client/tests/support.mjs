// What the adapter tests need besides the gateway helpers of browser-tests/helpers.mjs: the
// packages (with a message saying how to install them), a WebSocket proxy that reorders pushed
// frames, and the truth (a fresh login). Not a test file.

import http from 'node:http';

/** How long the proxy holds a data frame waiting for the next one. */
export const HOLD_MS = 300;

/** `ws` and `@reduxjs/toolkit`, from client/node_modules (installed by `npm ci --prefix client`). */
export async function loadPackages() {
  try {
    const [ws, rtk] = await Promise.all([import('ws'), import('@reduxjs/toolkit')]);
    return { WebSocket: ws.WebSocket, WebSocketServer: ws.WebSocketServer, configureStore: rtk.configureStore };
  } catch (err) {
    throw new Error(`cannot load ws and @reduxjs/toolkit (${err.message}): run \`npm ci --prefix client\` first`);
  }
}

/** A dev token of `uid` from the gateway (`GET /dev/token`). */
export async function devToken(base, uid) {
  const res = await fetch(`${base}/dev/token?uid=${encodeURIComponent(uid)}`);
  if (!res.ok) throw new Error(`GET /dev/token: ${res.status} ${await res.text()}`);
  return res.json();
}

/** REST calls as `uid` (another tab, a service): resolves to `{status, body}`. */
export function restAs(base, token) {
  return async (method, path, body) => {
    const init = { method, headers: { Authorization: `Bearer ${token}` } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(base + path, init);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
}

/** What Firestore holds for the caller, as the client's state (documents keyed by id). */
export async function truth(rest) {
  const { status, body } = await rest('POST', '/auth/login', {});
  if (status !== 200) throw new Error(`login: ${status} ${JSON.stringify(body)}`);
  return {
    user: body.user,
    businesses: Object.fromEntries(body.businesses.map((b) => [b.id, b])),
    products: Object.fromEntries(body.products.map((p) => [p.id, p])),
  };
}

/**
 * A WebSocket proxy in front of the gateway's `/ws` that swaps pushed data frames in pairs: it
 * holds a data frame (one with a `seq`) until the next one arrives, then sends that one first,
 * as pushes from concurrent Lambdas may arrive when deployed; a frame with no successor within
 * HOLD_MS goes on alone. A control frame first releases the held frame (it stays after the data
 * frames sent before it). Client messages go
 * through at once. `refuse()` makes it refuse new connections (503) and close the open ones, as a
 * dead network would; `restore()` undoes it.
 */
export async function startSwappingProxy(WebSocket, WebSocketServer, gatewayPort) {
  const wss = new WebSocketServer({ noServer: true });
  const links = new Set();
  let refusing = false;
  const server = http.createServer((_req, res) => { res.writeHead(404).end(); });
  server.on('upgrade', (req, socket, head) => {
    if (refusing) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const upstream = new WebSocket(`ws://127.0.0.1:${gatewayPort}${req.url}`);
    upstream.once('unexpected-response', (_r, res) => {
      socket.end(`HTTP/1.1 ${res.statusCode} Refused\r\nContent-Length: 0\r\n\r\n`);
    });
    upstream.once('error', () => socket.destroy());
    upstream.once('open', () => {
      wss.handleUpgrade(req, socket, head, (client) => {
        let held = null;
        let timer = null;
        const release = () => {
          clearTimeout(timer);
          if (held !== null && client.readyState === WebSocket.OPEN) client.send(held);
          held = null;
        };
        const link = { client, upstream };
        links.add(link);
        upstream.on('message', (data) => {
          const text = data.toString();
          let frame = null;
          try { frame = JSON.parse(text); } catch { /* passed on as is */ }
          if (frame && typeof frame.seq === 'number' && held === null) {
            held = text;
            timer = setTimeout(release, HOLD_MS);
            return;
          }
          const isData = frame && typeof frame.seq === 'number';
          if (!isData) release(); // a control frame stays after the data frames sent before it
          if (client.readyState === WebSocket.OPEN) client.send(text);
          release(); // a data frame goes before the held one
        });
        client.on('message', (data) => { if (upstream.readyState === WebSocket.OPEN) upstream.send(data.toString()); });
        const end = () => { clearTimeout(timer); links.delete(link); client.terminate(); upstream.terminate(); };
        client.on('close', end);
        upstream.on('close', end);
        client.on('error', end);
        upstream.on('error', end);
      });
    });
  });
  await new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `ws://127.0.0.1:${server.address().port}/ws`,
    get open() { return links.size; },
    refuse() {
      refusing = true;
      for (const { client, upstream } of links) { client.terminate(); upstream.terminate(); }
      links.clear();
    },
    restore() { refusing = false; },
    async close() {
      this.refuse();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
