// Unit tests of sync-client.js: `node --test gateway/static/`.
// The browser's WebSocket, fetch and timers are replaced by small test doubles.
import test from 'node:test';
import assert from 'node:assert/strict';
import { applyEvent, createSyncClient, snapshotState, tokenExpiry, ApiError } from './sync-client.js';

const tick = async (n = 5) => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

/** A fake clock: timers fire only when the test advances time. */
function fakeClock(start = 1_700_000_000_000) {
  let now = start;
  let nextId = 1;
  const timers = new Map();
  return {
    setTimeout: (fn, ms) => { const id = nextId++; timers.set(id, { at: now + ms, fn }); return id; },
    clearTimeout: (id) => timers.delete(id),
    now: () => now,
    random: () => 0.5,
    pending: () => [...timers.values()].map((t) => t.at - now).sort((a, b) => a - b),
    async advance(ms) {
      const until = now + ms;
      for (;;) {
        const due = [...timers.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
        await tick();
      }
      now = until;
    },
  };
}

/** A fake WebSocket: records what the client sends; the test plays the server. */
function fakeSocketClass() {
  class FakeSocket {
    static instances = [];
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      FakeSocket.instances.push(this);
    }
    send(text) { this.sent.push(JSON.parse(text)); }
    close() { this.readyState = 3; }
    // server side
    open() { this.readyState = 1; this.onopen?.({}); }
    push(frame) { this.onmessage?.({ data: JSON.stringify(frame) }); }
    drop() { this.readyState = 3; this.onclose?.({ code: 1006 }); }
    get last() { return FakeSocket.instances.at(-1); }
  }
  return FakeSocket;
}

/** A fake fetch with a login route whose snapshot the test controls. */
function fakeFetch(routes) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    calls.push({ url, method: init.method, headers: init.headers, body: init.body && JSON.parse(init.body) });
    const path = new URL(url).pathname;
    const route = routes[`${init.method} ${path}`];
    const [status, body] = route ? route(init) : [404, { error: { code: 'not_found', message: 'no route' } }];
    return { ok: status < 400, status, text: async () => JSON.stringify(body) };
  };
  return { fetch, calls };
}

const jwt = (claims) => {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
};

const biz = { id: 'b1', name: 'Bakery', createdAt: '2026-01-01T00:00:00Z' };
const prod = { id: 'p1', businessId: 'b1', name: 'Bread', price: 3, status: 'draft' };
const frame = (seq, event, data) => ({ event, seq, ts: '2026-01-01T00:00:00Z', data });

function setup({ seq = 10, snapshot, token = 'tok-1', expiresAt, options = {} } = {}) {
  const clock = fakeClock();
  const WebSocket = fakeSocketClass();
  let loginSeq = seq;
  const snap = snapshot || { user: { uid: 'alice' }, businesses: [biz], products: [prod] };
  const { fetch, calls } = fakeFetch({
    'POST /auth/login': () => [200, { ...snap, seq: loginSeq }],
    'GET /products/b1': () => [200, [{ ...prod, caption: 'big' }]],
  });
  const events = [];
  const statuses = [];
  const resyncs = [];
  const errors = [];
  let tokens = 0;
  const client = createSyncClient({
    baseUrl: 'http://127.0.0.1:3000',
    getToken: async () => { tokens++; return expiresAt ? { token: `${token}-${tokens}`, expiresAt: expiresAt(clock) } : token; },
    WebSocket, fetch, clock,
    onEvent: (f) => events.push(f),
    onStatus: (s) => statuses.push(s),
    onResync: (s) => resyncs.push(s),
    onError: (e) => errors.push(e),
    ...options,
  });
  return {
    client, clock, WebSocket, calls, events, statuses, resyncs, errors,
    setLoginSeq: (s) => { loginSeq = s; },
    get socket() { return WebSocket.instances.at(-1); },
    get tokenCalls() { return tokens; },
  };
}

test('applyEvent: created, merge-updated, deleted, user', () => {
  let s = snapshotState({ user: { uid: 'u' }, businesses: [biz], products: [] });
  const before = s;
  s = applyEvent(s, frame(1, 'product:created', prod));
  assert.deepEqual(s.products.p1, prod);
  assert.deepEqual(before.products, {}, 'the old state is not mutated');
  s = applyEvent(s, frame(2, 'product:updated', { id: 'p1', businessId: 'b1', status: 'enriched', price: null }));
  assert.equal(s.products.p1.status, 'enriched');
  assert.equal(s.products.p1.name, 'Bread', 'merge keeps other fields');
  assert.ok(!('price' in s.products.p1), 'null clears a field');
  s = applyEvent(s, frame(3, 'business:created', { id: 'b2', name: 'Cafe' }));
  assert.equal(s.businesses.b2.name, 'Cafe');
  s = applyEvent(s, frame(4, 'user:updated', { uid: 'u', displayName: 'Alice' }));
  assert.deepEqual(s.user, { uid: 'u', displayName: 'Alice' });
  s = applyEvent(s, frame(5, 'product:deleted', { id: 'p1', businessId: 'b1' }));
  assert.deepEqual(s.products, {});
  const same = applyEvent(s, frame(6, 'product:updated', { id: 'p9', businessId: 'b1', truncated: true }));
  assert.equal(same, s, 'truncated notices do not change the state');
  assert.equal(applyEvent(s, frame(7, 'ai:progress', { pct: 50 })), s, 'unknown events are ignored');
});

test('tokenExpiry reads the exp claim of a JWT', () => {
  assert.equal(tokenExpiry(jwt({ sub: 'alice', exp: 1234 })), 1234);
  assert.equal(tokenExpiry('not a jwt'), null);
});

test('login bootstraps; connect resumes from the snapshot seq and goes live', async () => {
  const t = setup({ seq: 10 });
  const state = await t.client.login();
  assert.equal(state.businesses.b1.name, 'Bakery');
  assert.equal(state.products.p1.name, 'Bread');
  assert.equal(t.client.lastSeq, 10);
  const login = t.calls[0];
  assert.equal(login.url, 'http://127.0.0.1:3000/auth/login');
  assert.equal(login.method, 'POST');
  assert.equal(login.headers.Authorization, 'Bearer tok-1');

  await t.client.connect();
  assert.equal(t.socket.url, 'ws://127.0.0.1:3000/ws?token=tok-1');
  assert.deepEqual(t.statuses, ['connecting']);
  t.socket.open();
  assert.deepEqual(t.socket.sent, [{ action: 'resume', since: 10 }]);
  t.socket.push({ event: 'resume:done', data: { seq: 10 } });
  assert.equal(t.client.status, 'live');
  assert.deepEqual(t.statuses, ['connecting', 'live']);
});

test('frames apply in seq order; duplicates are dropped; a gap asks to resume', async () => {
  const t = setup({ seq: 10 });
  await t.client.connect();
  t.socket.open();
  t.socket.push({ event: 'resume:done', data: { seq: 10 } });
  t.socket.sent.length = 0;

  t.socket.push(frame(11, 'product:updated', { id: 'p1', businessId: 'b1', status: 'processing' }));
  assert.equal(t.client.state.products.p1.status, 'processing');
  t.socket.push(frame(11, 'product:updated', { id: 'p1', businessId: 'b1', status: 'processing' }));
  assert.equal(t.events.length, 1, 'the duplicate is not applied');

  // 13 arrives before 12: held back, and the client asks for what it missed.
  t.socket.push(frame(13, 'product:updated', { id: 'p1', businessId: 'b1', status: 'enriched' }));
  assert.equal(t.client.state.products.p1.status, 'processing');
  assert.equal(t.client.lastSeq, 11);
  assert.deepEqual(t.socket.sent, [{ action: 'resume', since: 11 }]);
  t.socket.push(frame(14, 'product:deleted', { id: 'p1', businessId: 'b1' }));
  assert.equal(t.socket.sent.length, 1, 'one resume at a time');

  // The server replays 12, 13 and 14; the client applies each exactly once, in order.
  t.socket.push(frame(12, 'business:created', { id: 'b2', name: 'Cafe' }));
  t.socket.push(frame(13, 'product:updated', { id: 'p1', businessId: 'b1', status: 'enriched' }));
  t.socket.push(frame(14, 'product:deleted', { id: 'p1', businessId: 'b1' }));
  t.socket.push({ event: 'resume:done', data: { seq: 14 } });
  assert.deepEqual(t.events.map((f) => f.seq), [11, 12, 13, 14]);
  assert.equal(t.client.lastSeq, 14);
  assert.equal(t.client.state.businesses.b2.name, 'Cafe');
  assert.equal(t.client.state.products.p1, undefined);
  assert.equal(t.client.status, 'live');
});

test('resync:required bootstraps again, calls onResync, and resumes from the new seq', async () => {
  const t = setup({ seq: 10 });
  await t.client.connect();
  t.socket.open();
  t.setLoginSeq(500);
  t.socket.push({ event: 'resync:required', data: { seq: 500 } });
  assert.equal(t.client.status, 'connecting');
  await tick();
  assert.equal(t.calls.filter((c) => c.url.endsWith('/auth/login')).length, 2);
  assert.equal(t.resyncs.length, 1);
  assert.equal(t.client.lastSeq, 500);
  assert.deepEqual(t.socket.sent.at(-1), { action: 'resume', since: 500 });
  t.socket.push({ event: 'resume:done', data: { seq: 500 } });
  assert.equal(t.client.status, 'live');
  t.socket.push(frame(501, 'product:updated', { id: 'p1', businessId: 'b1', name: 'Rye' }));
  assert.equal(t.client.state.products.p1.name, 'Rye');
});

test('a dropped socket reconnects with exponential backoff and resumes where it left off', async () => {
  const t = setup({ seq: 10 });
  await t.client.connect();
  t.socket.open();
  t.socket.push({ event: 'resume:done', data: { seq: 10 } });
  t.socket.push(frame(11, 'product:updated', { id: 'p1', businessId: 'b1', price: 4 }));

  t.socket.drop();
  assert.equal(t.client.status, 'offline');
  assert.equal(t.WebSocket.instances.length, 1);
  // 0.5 s base with random() = 0.5: 0.25 + 0.125 s
  assert.deepEqual(t.clock.pending().slice(0, 1), [375]);
  await t.clock.advance(375);
  assert.equal(t.WebSocket.instances.length, 2);
  assert.equal(t.client.status, 'connecting');
  t.socket.drop(); // refused before opening
  assert.equal(t.clock.pending()[0], 750, 'the delay doubles');
  await t.clock.advance(750);
  t.socket.open();
  assert.deepEqual(t.socket.sent, [{ action: 'resume', since: 11 }]);
  t.socket.push({ event: 'resume:done', data: { seq: 11 } });
  assert.equal(t.client.status, 'live');

  // The delay is capped at 15 s, and resets after a healthy resume.
  for (let i = 0; i < 8; i++) { t.socket.drop(); await t.clock.advance(60_000); }
  t.socket.drop();
  assert.ok(t.clock.pending()[0] <= 15_000);
  assert.ok(t.clock.pending()[0] >= 7_500);
});

test('pings every 5 minutes; a missing pong drops the socket', async () => {
  const t = setup();
  await t.client.connect();
  t.socket.open();
  t.socket.sent.length = 0;
  await t.clock.advance(5 * 60_000);
  assert.deepEqual(t.socket.sent, [{ action: 'ping' }]);
  t.socket.push({ event: 'pong', ts: 'x' });
  await t.clock.advance(5 * 60_000);
  assert.deepEqual(t.socket.sent, [{ action: 'ping' }, { action: 'ping' }]);
  const first = t.socket;
  await t.clock.advance(5 * 60_000); // no pong came back
  assert.equal(first.readyState, 3);
  assert.equal(t.client.status, 'offline');
  await t.clock.advance(1_000);
  assert.equal(t.WebSocket.instances.length, 2);
});

test('refreshes the token before it expires with the auth action, and on auth:expiring', async () => {
  const t = setup({
    expiresAt: (clock) => Math.floor(clock.now() / 1000) + 3600,
    options: { pingIntervalMs: 24 * 3600_000 }, // no pings in this test
  });
  await t.client.connect();
  t.socket.open();
  assert.equal(t.tokenCalls, 1);
  assert.match(t.socket.url, /token=tok-1-1$/);
  t.socket.sent.length = 0;
  await t.clock.advance(3600_000 - 60_000);
  assert.deepEqual(t.socket.sent, [{ action: 'auth', token: 'tok-1-2' }]);
  t.socket.push({ event: 'auth:ok', data: { expiresAt: 0 } });
  t.socket.push({ event: 'auth:expiring' });
  await tick();
  assert.deepEqual(t.socket.sent.at(-1), { action: 'auth', token: 'tok-1-3' });
  // REST calls reuse the cached, fresh token
  await t.client.request('GET', '/products/b1');
  assert.equal(t.calls.at(-1).headers.Authorization, 'Bearer tok-1-3');
  assert.equal(t.tokenCalls, 3);
});

test('a truncated product:updated refetches that product over REST', async () => {
  const t = setup({ seq: 10 });
  await t.client.connect();
  t.socket.open();
  t.socket.push(frame(11, 'product:updated', { id: 'p1', businessId: 'b1', truncated: true }));
  await tick();
  assert.equal(t.calls.at(-1).url, 'http://127.0.0.1:3000/products/b1');
  assert.equal(t.client.state.products.p1.caption, 'big');
  assert.equal(t.events.at(-1).refetched, true);
});

test('request: JSON errors become ApiError with code and message', async () => {
  const t = setup();
  await assert.rejects(t.client.request('DELETE', '/products/b1/nope'), (err) => {
    assert.ok(err instanceof ApiError);
    assert.equal(err.status, 404);
    assert.equal(err.code, 'not_found');
    assert.equal(err.message, 'no route');
    return true;
  });
});

test('close stops reconnecting; the token can go in Sec-WebSocket-Protocol', async () => {
  const t = setup();
  await t.client.connect();
  t.socket.open();
  t.client.close();
  assert.equal(t.client.status, 'offline');
  assert.deepEqual(t.clock.pending(), []);
  await t.clock.advance(60_000);
  assert.equal(t.WebSocket.instances.length, 1);

  const WebSocket = fakeSocketClass();
  const { fetch } = fakeFetch({ 'POST /auth/login': () => [200, { user: null, businesses: [], products: [], seq: 0 }] });
  const c = createSyncClient({ baseUrl: 'https://api.example.test', wsUrl: 'wss://ws.example.test/prod', tokenIn: 'protocol', getToken: async () => 'a.b.c', WebSocket, fetch, clock: fakeClock() });
  await c.connect();
  assert.equal(WebSocket.instances[0].url, 'wss://ws.example.test/prod');
  assert.deepEqual(WebSocket.instances[0].protocols, ['a.b.c']);
  c.close();
});

test('a resume that never catches up with the head ends in a resync', async () => {
  const t = setup({ seq: 10 });
  await t.client.connect();
  t.socket.open();
  t.setLoginSeq(20);
  for (let i = 0; i < 3; i++) t.socket.push({ event: 'resume:done', data: { seq: 20 } });
  await tick();
  assert.equal(t.resyncs.length, 1);
  assert.equal(t.client.lastSeq, 20);
  t.socket.push({ event: 'resume:done', data: { seq: 20 } });
  assert.equal(t.client.status, 'live');
});

test('a frame without seq (not recorded by the server) is applied as is', async () => {
  const t = setup({ seq: 10 });
  await t.client.connect();
  t.socket.open();
  t.socket.push({ event: 'product:updated', ts: 'x', data: { id: 'p1', businessId: 'b1', caption: 'hi' } });
  assert.equal(t.client.state.products.p1.caption, 'hi');
  assert.equal(t.client.lastSeq, 10);
});

test('an error frame answering a resume reconnects; unauthorized forces a fresh token', async () => {
  const t = setup({ seq: 10, expiresAt: (clock) => Math.floor(clock.now() / 1000) + 3600 });
  await t.client.connect();
  t.socket.open();
  t.socket.push({ event: 'error', data: { code: 'unauthorized', message: 'token expired; reconnect with a fresh one' } });
  assert.equal(t.errors.at(-1).code, 'unauthorized');
  assert.equal(t.client.status, 'offline');
  await t.clock.advance(1_000);
  assert.equal(t.WebSocket.instances.length, 2);
  assert.equal(t.tokenCalls, 2, 'a fresh token for the new socket');
  assert.match(t.socket.url, /token=tok-1-2$/);
  t.socket.open();
  assert.deepEqual(t.socket.sent, [{ action: 'resume', since: 10 }]);
});
