// Unit tests of sync-client.js: `node --test client/tests/sync-client.test.mjs` (no packages needed).
// The browser's WebSocket, fetch and timers are replaced by small test doubles.
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  applyChange, applyDocument, applyEvent, createSyncClient, emptyModel, isNewer, snapshotModel, snapshotState, tokenExpiry, ApiError,
} from '../src/sync-client.js';

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

/** Version n: a fixed-width RFC 3339 UTC string, as the server sends (string order = time order). */
const V = (n) => `2026-12-02T01:11:09.${String(n).padStart(9, '0')}Z`;

const biz = { id: 'b1', name: 'Bakery', createdAt: '2026-01-01T00:00:00Z', version: V(1) };
const prod = { id: 'p1', businessId: 'b1', name: 'Bread', price: 3, status: 'draft', version: V(2) };
const user = { uid: 'alice', displayName: 'Alice', version: V(1) };
const frame = (seq, event, data) => ({ event, seq, ts: '2026-01-01T00:00:00Z', data });
const upd = (seq, version, fields, id = 'p1') => frame(seq, 'product:updated', { id, businessId: 'b1', ...fields, updatedAt: version, version });

function setup({ seq = 10, snapshot, token = 'tok-1', expiresAt, options = {}, routes = {} } = {}) {
  const clock = fakeClock();
  const WebSocket = fakeSocketClass();
  let loginSeq = seq;
  let snap = snapshot || { user, businesses: [biz], products: [prod] };
  const { fetch, calls } = fakeFetch({
    'POST /auth/login': () => [200, { ...snap, seq: loginSeq }],
    'GET /products/b1': () => [200, [{ ...prod, caption: 'big', version: V(50) }]],
    ...routes,
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
    setSnapshot: (s) => { snap = s; },
    get socket() { return WebSocket.instances.at(-1); },
    get tokenCalls() { return tokens; },
    /** connect, open the socket, answer its first resume with resume:done, forget what was sent. */
    async live() {
      await client.connect();
      this.socket.open();
      this.socket.push({ event: 'resume:done', data: { seq } });
      this.socket.sent.length = 0;
    },
  };
}

/** A model from a bootstrap snapshot. */
const boot = (snap = { user, businesses: [biz], products: [prod] }) => snapshotModel(emptyModel(), snap);
const applyAll = (model, frames) => frames.reduce(applyEvent, model);

// ------------------------------------------------------------------ the pure core

test('applyEvent: created, merge-updated, deleted, user; the old model is not mutated', () => {
  let m = boot({ user, businesses: [biz], products: [] });
  const before = m;
  m = applyEvent(m, frame(1, 'product:created', prod));
  assert.deepEqual(m.state.products.p1, prod);
  assert.deepEqual(before.state.products, {}, 'the old state is not mutated');
  m = applyEvent(m, upd(2, V(3), { status: 'enriched', price: null }));
  assert.equal(m.state.products.p1.status, 'enriched');
  assert.equal(m.state.products.p1.name, 'Bread', 'merge keeps other fields');
  assert.ok(!('price' in m.state.products.p1), 'null clears a field');
  assert.equal(m.state.products.p1.version, V(3), 'a doc carries the latest version merged into it');
  m = applyEvent(m, frame(3, 'business:created', { id: 'b2', name: 'Cafe', version: V(4) }));
  assert.equal(m.state.businesses.b2.name, 'Cafe');
  m = applyEvent(m, frame(4, 'user:updated', { uid: 'alice', displayName: 'Al', updatedAt: V(5), version: V(5) }));
  assert.deepEqual(m.state.user, { uid: 'alice', displayName: 'Al', updatedAt: V(5), version: V(5) });
  m = applyEvent(m, frame(5, 'product:deleted', { id: 'p1', businessId: 'b1' }));
  assert.deepEqual(m.state.products, {});
  assert.deepEqual(m.deleted.products, { p1: true });
  const same = applyEvent(m, frame(6, 'product:updated', { id: 'p9', businessId: 'b1', truncated: true, version: V(9) }));
  assert.equal(same, m, 'truncated notices do not change the model');
  assert.equal(applyEvent(m, frame(7, 'ai:progress', { pct: 50 })), m, 'broadcasts do not change the model');
});

test('out-of-order updates of one field: the higher version wins whatever the arrival order', () => {
  const a = upd(11, V(5), { name: 'Older' });
  const b = upd(12, V(6), { name: 'Newer' });
  const inOrder = applyAll(boot(), [a, b]);
  const reversed = applyAll(boot(), [b, a]);
  assert.equal(inOrder.state.products.p1.name, 'Newer');
  assert.equal(reversed.state.products.p1.name, 'Newer');
  assert.deepEqual(reversed.state, inOrder.state);
  assert.deepEqual(reversed.versions, inOrder.versions);
  assert.deepEqual(reversed.versions.products.p1, { base: V(2), fields: { name: V(6), updatedAt: V(6) } });
  // The older write arriving last leaves the model object untouched.
  const late = applyEvent(inOrder, a);
  assert.equal(late, inOrder);
});

test('updates of different fields apply in any order', () => {
  const frames = [upd(11, V(5), { name: 'Rye' }), upd(12, V(6), { price: 4 }), upd(13, V(7), { status: 'enriched' })];
  const expected = { ...prod, name: 'Rye', price: 4, status: 'enriched', updatedAt: V(7), version: V(7) };
  for (const order of [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]]) {
    const m = applyAll(boot(), order.map((i) => frames[i]));
    assert.deepEqual(m.state.products.p1, expected, `order ${order}`);
  }
});

test('equal versions change nothing', () => {
  const m = applyEvent(boot(), upd(11, V(5), { name: 'Rye' }));
  assert.equal(applyEvent(m, upd(12, V(5), { name: 'Other' })), m);
  assert.equal(applyDocument(m, 'product', { ...prod, name: 'Other', version: V(2) }), m, 'the base version again');
  assert.equal(applyEvent(m, frame(13, 'product:created', { ...prod, name: 'Other' })), m, 'a replayed create');
});

test('a late update, create or document after a delete is ignored (tombstone)', () => {
  let m = applyEvent(boot(), frame(11, 'product:deleted', { id: 'p1', businessId: 'b1' }));
  const dead = m;
  m = applyEvent(m, upd(12, V(9), { name: 'Zombie' }));
  m = applyEvent(m, frame(13, 'product:created', { ...prod, version: V(10) }));
  m = applyDocument(m, 'product', { ...prod, version: V(11) });
  m = snapshotModel(m, { user, businesses: [biz], products: [{ ...prod, version: V(12) }] });
  assert.equal(m.state.products.p1, undefined);
  assert.deepEqual(m.held.products, {}, 'nothing held for a deleted id');
  assert.equal(applyEvent(dead, upd(12, V(9), { name: 'Zombie' })), dead);
  // A delete of a product never seen still tombstones it.
  let n = applyEvent(boot(), frame(20, 'product:deleted', { id: 'p7', businessId: 'b1' }));
  n = applyEvent(n, frame(19, 'product:created', { id: 'p7', businessId: 'b1', name: 'Late', version: V(20) }));
  assert.equal(n.state.products.p7, undefined);
});

test('a create arriving after its update: held out of sight, then merged', () => {
  const created = { id: 'p2', businessId: 'b1', name: 'Bun', price: 1, status: 'draft', caption: 'old', updatedAt: V(10), version: V(10) };
  let m = boot();
  const before = m.state;
  m = applyEvent(m, frame(12, 'product:updated', { id: 'p2', businessId: 'b1', status: 'processing', caption: null, updatedAt: V(11), version: V(11) }));
  assert.equal(m.state, before, 'the visible state did not change');
  assert.equal(m.state.products.p2, undefined, 'never a half-empty product');
  assert.ok(m.held.products.p2, 'held');
  // An older held write loses to the document, a newer one wins.
  m = applyEvent(m, frame(13, 'product:updated', { id: 'p2', businessId: 'b1', name: 'Ancient', version: V(9) }));
  m = applyEvent(m, frame(11, 'product:created', created));
  assert.deepEqual(m.state.products.p2, {
    id: 'p2', businessId: 'b1', name: 'Bun', price: 1, status: 'processing', updatedAt: V(11), version: V(11),
  });
  assert.deepEqual(m.held.products, {}, 'the partial is gone once merged');
  assert.deepEqual(m.versions.products.p2, { base: V(10), fields: { status: V(11), caption: V(11), updatedAt: V(11) } });
  // Same for a business: the held partial joins the document from a snapshot.
  let b = applyEvent(boot(), frame(14, 'business:updated', { id: 'b2', description: 'Fresh', version: V(8) }));
  assert.equal(b.state.businesses.b2, undefined);
  b = applyDocument(b, 'business', { id: 'b2', name: 'Cafe', version: V(7) });
  assert.deepEqual(b.state.businesses.b2, { id: 'b2', name: 'Cafe', description: 'Fresh', version: V(8) });
  // And for the user (no user in the model yet).
  let u = snapshotModel(emptyModel(), { user: null, businesses: [], products: [] });
  u = applyEvent(u, frame(15, 'user:updated', { uid: 'alice', displayName: 'New', version: V(9) }));
  assert.equal(u.state.user, null);
  u = applyDocument(u, 'user', { uid: 'alice', displayName: 'Old', bio: 'x', version: V(5) });
  assert.deepEqual(u.state.user, { uid: 'alice', displayName: 'New', bio: 'x', version: V(9) });
  assert.equal(u.held.user, null);
});

test('null clears a field only if it is newer', () => {
  let m = applyEvent(boot(), upd(11, V(6), { caption: 'hello' }));
  m = applyEvent(m, upd(12, V(5), { caption: null }));
  assert.equal(m.state.products.p1.caption, 'hello', 'an older null does not clear');
  m = applyEvent(m, upd(13, V(7), { caption: null }));
  assert.ok(!('caption' in m.state.products.p1), 'a newer null clears');
  m = applyEvent(m, upd(14, V(6), { caption: 'resurrected' }));
  assert.ok(!('caption' in m.state.products.p1), 'an older value does not come back after a newer null');
  // A full document: an absent field is a delete at the document's version.
  m = applyDocument(m, 'product', { ...prod, caption: 'from REST', version: V(6) });
  assert.ok(!('caption' in m.state.products.p1), 'the cleared field is newer than the document');
  m = applyDocument(m, 'product', { ...prod, caption: 'from REST', version: V(8) });
  assert.equal(m.state.products.p1.caption, 'from REST');
  m = applyDocument(m, 'product', { id: 'p1', businessId: 'b1', name: 'Bread', version: V(9) });
  assert.deepEqual(m.state.products.p1, { id: 'p1', businessId: 'b1', name: 'Bread', version: V(9) }, 'absent = deleted');
});

test('a snapshot: fresher live fields survive, absent documents go, tombstones filter, partials dropped', () => {
  let m = boot({ user, businesses: [biz], products: [prod, { id: 'p3', businessId: 'b1', name: 'Gone', version: V(2) }] });
  m = applyEvent(m, upd(11, V(8), { name: 'Live rename' }));
  m = applyEvent(m, frame(12, 'product:deleted', { id: 'p4', businessId: 'b1' }));
  m = applyEvent(m, frame(13, 'product:updated', { id: 'p5', businessId: 'b1', name: 'Held', version: V(9) }));
  m = applyEvent(m, frame(14, 'user:updated', { uid: 'alice', displayName: 'Live', version: V(9) }));
  assert.ok(m.held.products.p5);
  m = snapshotModel(m, {
    user: { uid: 'alice', displayName: 'Old', bio: 'hi', version: V(5) },
    businesses: [biz],
    products: [
      { ...prod, name: 'Stale name', price: 5, version: V(6) }, // read before the live rename
      { id: 'p4', businessId: 'b1', name: 'Deleted meanwhile', version: V(3) },
      { id: 'p6', businessId: 'b1', name: 'New', version: V(7) },
    ],
  });
  assert.equal(m.state.products.p1.name, 'Live rename', 'the fresher live field wins');
  assert.equal(m.state.products.p1.price, 5, 'older fields take the snapshot value');
  assert.equal(m.state.products.p1.version, V(8));
  assert.equal(m.state.products.p3, undefined, 'absent from the snapshot: removed');
  assert.equal(m.state.products.p4, undefined, 'tombstoned: filtered');
  assert.equal(m.state.products.p6.name, 'New');
  assert.deepEqual(m.held.products, {}, 'held partials are dropped');
  assert.deepEqual(m.deleted.products, { p4: true }, 'tombstones are kept');
  assert.deepEqual(m.state.user, { uid: 'alice', displayName: 'Live', bio: 'hi', version: V(9) });
  // A snapshot in a fresh model is just the snapshot.
  assert.deepEqual(snapshotState({ user, businesses: [biz], products: [prod] }), { user, businesses: { b1: biz }, products: { p1: prod } });
});

test('data without a version (an old server) is applied unconditionally', () => {
  let m = snapshotModel(emptyModel(), { user: { uid: 'u' }, businesses: [{ id: 'b1', name: 'B' }], products: [] });
  m = applyEvent(m, frame(1, 'product:created', { id: 'p1', businessId: 'b1', name: 'A', price: 1 }));
  m = applyEvent(m, frame(3, 'product:updated', { id: 'p1', businessId: 'b1', name: 'C' }));
  m = applyEvent(m, frame(2, 'product:updated', { id: 'p1', businessId: 'b1', name: 'B', price: null }));
  assert.deepEqual(m.state.products.p1, { id: 'p1', businessId: 'b1', name: 'B' }, 'last applied wins, no version');
  m = applyEvent(m, frame(4, 'user:updated', { uid: 'u', displayName: 'Alice' }));
  assert.deepEqual(m.state.user, { uid: 'u', displayName: 'Alice' });
  assert.equal(isNewer(null, V(1)), true);
  assert.equal(isNewer(V(1), null), true);
  assert.equal(isNewer(V(1), V(1)), false);
  assert.equal(isNewer(V(10), V(9)), true);
});

test('applyDocument merges a REST answer; unknown kinds throw', () => {
  let m = applyDocument(boot(), 'product', { id: 'p2', businessId: 'b1', name: 'Bun', version: V(5) });
  assert.equal(m.state.products.p2.name, 'Bun');
  m = applyDocument(m, 'products', { ...prod, name: 'Rye', version: V(6) });
  assert.equal(m.state.products.p1.name, 'Rye');
  m = applyDocument(m, 'user', { uid: 'alice', displayName: 'A', version: V(7) });
  assert.equal(m.state.user.displayName, 'A');
  assert.throws(() => applyDocument(m, 'order', { id: 'x' }), TypeError);
});

test('business:deleted removes the business and its products for good', () => {
  let m = applyEvent(boot(), frame(11, 'product:updated', { id: 'p9', businessId: 'b1', name: 'held', version: V(3) }));
  m = applyEvent(m, frame(12, 'business:deleted', { id: 'b1' }));
  assert.deepEqual(m.state.businesses, {});
  assert.deepEqual(m.state.products, {});
  assert.deepEqual(m.held.products, {});
  assert.deepEqual(m.deleted, { businesses: { b1: true }, products: { p1: true, p9: true } });
});

/** A deterministic PRNG (mulberry32). */
function prng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A random history of writes by concurrent writers, played against a stand-in Firestore (the
 * truth): every write gets the next version (its commit time). Returns the bootstrap, the
 * items the client may receive (event frames, and full documents read over REST at some
 * point), in commit order, and the final truth.
 */
function randomHistory(rand, steps = 40) {
  let time = 0;
  const ver = () => V(++time);
  const pick = (list) => list[Math.floor(rand() * list.length)];
  const truth = { user: { uid: 'u', displayName: 'U0', version: ver() }, businesses: {}, products: {} };
  const boot = { user: { ...truth.user }, businesses: [], products: [] };
  const items = [];
  const FIELDS = ['name', 'price', 'status', 'caption', 'description'];
  const value = (f) => (f === 'price' ? Math.floor(rand() * 100) : `${f}-${Math.floor(rand() * 1000)}`);
  let n = 0;
  for (let step = 0; step < steps; step++) {
    const r = rand();
    const bizIds = Object.keys(truth.businesses);
    const prodIds = Object.keys(truth.products);
    if (bizIds.length === 0 || r < 0.06) {
      const v = ver();
      const doc = { id: `b${++n}`, name: value('name'), createdAt: v, updatedAt: v, version: v };
      truth.businesses[doc.id] = doc;
      items.push({ event: { event: 'business:created', data: { ...doc } } });
    } else if (prodIds.length === 0 || r < 0.2) {
      const v = ver();
      const doc = { id: `p${++n}`, businessId: pick(bizIds), name: value('name'), createdAt: v, updatedAt: v, version: v };
      for (const f of FIELDS.slice(1)) if (rand() < 0.5) doc[f] = value(f);
      truth.products[doc.id] = doc;
      items.push({ event: { event: 'product:created', data: { ...doc } } });
    } else if (r < 0.78) {
      const p = truth.products[pick(prodIds)];
      const v = ver();
      const changes = {};
      for (const f of FIELDS) if (rand() < 0.4) changes[f] = rand() < 0.25 ? null : value(f);
      for (const [f, x] of Object.entries(changes)) { if (x === null) delete p[f]; else p[f] = x; }
      p.updatedAt = v;
      p.version = v;
      items.push({ event: { event: 'product:updated', data: { id: p.id, businessId: p.businessId, ...changes, updatedAt: v, version: v } } });
    } else if (r < 0.88) {
      const v = ver();
      const changes = rand() < 0.3 ? { displayName: null } : { displayName: value('name') };
      if (rand() < 0.5) changes.bio = rand() < 0.3 ? null : value('bio');
      for (const [f, x] of Object.entries(changes)) { if (x === null) delete truth.user[f]; else truth.user[f] = x; }
      truth.user.updatedAt = v;
      truth.user.version = v;
      items.push({ event: { event: 'user:updated', data: { uid: 'u', ...changes, updatedAt: v, version: v } } });
    } else {
      const p = truth.products[pick(prodIds)];
      delete truth.products[p.id];
      items.push({ event: { event: 'product:deleted', data: { id: p.id, businessId: p.businessId } } });
    }
    // Now and then a REST read (a list, a mutation's answer) of a document as it is now.
    if (rand() < 0.3) {
      const ids = Object.keys(truth.products);
      if (ids.length) items.push({ kind: 'product', doc: structuredClone(truth.products[pick(ids)]) });
      else items.push({ kind: 'business', doc: structuredClone(truth.businesses[pick(Object.keys(truth.businesses))]) });
    }
  }
  return { boot, items, truth };
}

const applyItem = (m, item) => (item.event ? applyEvent(m, item.event) : applyDocument(m, item.kind, item.doc));

test('property: any arrival order (with duplicates) reaches the state of version order, which is Firestore\'s', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const rand = prng(seed);
    const { boot: snap, items, truth } = randomHistory(rand);
    const start = snapshotModel(emptyModel(), snap);
    const ordered = items.reduce(applyItem, start);
    assert.deepEqual(ordered.state, truth, `seed ${seed}: version order gives the truth`);
    // A random permutation (Fisher-Yates), with some items delivered twice.
    const shuffled = [...items, ...items.filter(() => rand() < 0.15)];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
    }
    const got = shuffled.reduce(applyItem, start);
    assert.deepEqual(got.state, ordered.state, `seed ${seed}: same state`);
    assert.deepEqual(got.versions, ordered.versions, `seed ${seed}: same versions`);
    assert.deepEqual(got.held, ordered.held, `seed ${seed}: same held partials`);
    assert.deepEqual(got.deleted, ordered.deleted, `seed ${seed}: same tombstones`);
  }
});

// ------------------------------------------------------------------ the client

test('tokenExpiry reads the exp claim of a JWT', () => {
  assert.equal(tokenExpiry(jwt({ sub: 'alice', exp: 1234 })), 1234);
  assert.equal(tokenExpiry('not a jwt'), null);
});

test('login bootstraps; connect resumes from the snapshot seq and goes live', async () => {
  const t = setup({ seq: 10 });
  const state = await t.client.login();
  assert.equal(state.businesses.b1.name, 'Bakery');
  assert.equal(state.products.p1.name, 'Bread');
  assert.equal(state.products.p1.version, V(2));
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

test('a large state comes in several login answers, each next passed back', async () => {
  const p2 = { ...prod, id: 'p2', name: 'Rolls' };
  const b2 = { ...biz, id: 'b2', name: 'Florist' };
  const answers = [
    { user, businesses: [biz], products: [], seq: 7, next: 'businesses:b1' },
    { businesses: [b2], products: [prod], next: 'products:b1/p1' },
    { businesses: [], products: [p2], next: null },
  ];
  const t = setup({
    routes: { 'POST /auth/login': () => [200, answers.shift()] },
  });
  const state = await t.client.login();
  assert.deepEqual(Object.keys(state.businesses).sort(), ['b1', 'b2']);
  assert.deepEqual(Object.keys(state.products).sort(), ['p1', 'p2']);
  assert.equal(state.user.uid, 'alice');
  assert.equal(t.client.lastSeq, 7, 'the first answer has the seq');
  assert.deepEqual(t.calls.map((c) => c.body), [{}, { after: 'businesses:b1' }, { after: 'products:b1/p1' }]);
});

test('frames apply on arrival; duplicates are ignored; the mark advances over what was received', async () => {
  const t = setup({ seq: 10 });
  await t.live();

  t.socket.push(upd(11, V(5), { status: 'processing' }));
  assert.equal(t.client.state.products.p1.status, 'processing');
  assert.equal(t.client.lastSeq, 11);
  t.socket.push(upd(11, V(5), { status: 'processing' }));
  assert.equal(t.events.length, 1, 'a duplicate (seq <= mark) is not passed on');

  // 13 before 12: applied at once, but the mark waits for 12.
  t.socket.push(upd(13, V(7), { status: 'enriched' }));
  assert.equal(t.client.state.products.p1.status, 'enriched');
  assert.equal(t.client.lastSeq, 11);
  t.socket.push(upd(13, V(7), { status: 'enriched' }));
  assert.equal(t.events.length, 2, 'a duplicate above the mark is not passed on either');
  // 12 is the older write of the same field: it arrives last and loses.
  t.socket.push(upd(12, V(6), { status: 'processing', price: 4 }));
  assert.equal(t.events.length, 3);
  assert.equal(t.client.state.products.p1.status, 'enriched', 'the higher version wins');
  assert.equal(t.client.state.products.p1.price, 4);
  assert.equal(t.client.lastSeq, 13);
  await t.clock.advance(5_000);
  assert.deepEqual(t.socket.sent.filter((m) => m.action === 'resume'), [], 'the gap closed by itself: no resume');
  assert.equal(t.client.model.state, t.client.state);
});

test('concurrent writers out of order over the socket: the client holds what Firestore holds', async () => {
  const t = setup({ seq: 10 });
  await t.live();
  // Firestore commit order: create p2 (V10), rename p2 (V11), price p2 (V12), rename p2 (V13), delete p1.
  const frames = [
    frame(11, 'product:created', { id: 'p2', businessId: 'b1', name: 'Bun', price: 1, version: V(10) }),
    upd(12, V(11), { name: 'Bun 2' }, 'p2'),
    upd(14, V(13), { name: 'Bun 3' }, 'p2'),
    upd(13, V(12), { price: 2 }, 'p2'),
    frame(15, 'product:deleted', { id: 'p1', businessId: 'b1' }),
    upd(16, V(14), { name: 'late write to a deleted product' }, 'p1'),
  ];
  const arrival = [5, 2, 1, 4, 3, 0];
  const seen = [];
  for (const i of arrival) {
    t.socket.push(frames[i]);
    seen.push(t.client.state.products.p2 ? { ...t.client.state.products.p2 } : null);
  }
  assert.ok(seen.every((p) => p === null || p.price !== undefined), 'never a half-empty product');
  assert.deepEqual(t.client.state.products, {
    p2: { id: 'p2', businessId: 'b1', name: 'Bun 3', price: 2, updatedAt: V(13), version: V(13) },
  });
  assert.equal(t.client.lastSeq, 16);
});

test('a gap waits gapWaitMs, then resumes from the mark; one resume at a time', async () => {
  const t = setup({ seq: 10 });
  await t.live();
  t.socket.push(upd(12, V(6), { price: 4 }));
  assert.equal(t.client.state.products.p1.price, 4, 'applied at once');
  assert.equal(t.client.lastSeq, 10);
  await t.clock.advance(999);
  assert.deepEqual(t.socket.sent, [], 'still waiting for 11');
  await t.clock.advance(1);
  assert.deepEqual(t.socket.sent, [{ action: 'resume', since: 10 }]);
  t.socket.push(upd(14, V(8), { price: 6 }));
  await t.clock.advance(2_000);
  assert.deepEqual(t.socket.sent, [{ action: 'resume', since: 10 }], 'one resume in flight at a time');

  // The answer: the events after 10 in seq order (12 and 14 are duplicates), then done.
  t.socket.push(upd(11, V(5), { name: 'Rye' }));
  t.socket.push(upd(12, V(6), { price: 4 }));
  t.socket.push(upd(13, V(7), { status: 'enriched' }));
  t.socket.push(upd(14, V(8), { price: 6 }));
  t.socket.push({ event: 'resume:done', data: { seq: 14 } });
  assert.deepEqual(t.events.map((f) => f.seq), [12, 14, 11, 13]);
  assert.equal(t.client.lastSeq, 14);
  assert.deepEqual(t.client.state.products.p1, { ...prod, name: 'Rye', price: 6, status: 'enriched', updatedAt: V(8), version: V(8) });
  assert.equal(t.client.status, 'live');
  await t.clock.advance(10_000);
  assert.equal(t.socket.sent.length, 1, 'nothing more to ask');
});

test('resume:done marks seqs that carry nothing; a gap that remains restarts the gap timer', async () => {
  const t = setup({ seq: 10 });
  await t.live();
  t.socket.push(upd(13, V(6), { price: 4 }));
  t.socket.push(upd(16, V(9), { price: 7 }));
  await t.clock.advance(1_000);
  assert.deepEqual(t.socket.sent, [{ action: 'resume', since: 10 }]);
  // 11 and 12 carry nothing (failed writes): the server's done covers them, 13 was received.
  t.socket.push({ event: 'resume:done', data: { seq: 12 } });
  assert.equal(t.client.lastSeq, 13);
  await t.clock.advance(999);
  assert.equal(t.socket.sent.length, 1);
  await t.clock.advance(1);
  assert.deepEqual(t.socket.sent.at(-1), { action: 'resume', since: 13 }, '16 is still above a gap');
  t.socket.push({ event: 'resume:done', data: { seq: 16 } });
  assert.equal(t.client.lastSeq, 16);
});

test('resume:partial with retryAfterMs 0 asks again at once; status is live only after resume:done', async () => {
  const t = setup({ seq: 10 });
  await t.client.connect();
  t.socket.open();
  assert.deepEqual(t.socket.sent, [{ action: 'resume', since: 10 }]);
  t.socket.push(upd(11, V(5), { name: 'Rye' }));
  t.socket.push(upd(12, V(6), { price: 4 }));
  t.socket.push({ event: 'resume:partial', data: { seq: 12, head: 20, retryAfterMs: 0 } });
  assert.equal(t.client.lastSeq, 12);
  assert.deepEqual(t.socket.sent.at(-1), { action: 'resume', since: 12 });
  assert.equal(t.client.status, 'connecting');
  t.socket.push({ event: 'resume:done', data: { seq: 20 } });
  assert.equal(t.client.lastSeq, 20);
  assert.equal(t.client.status, 'live');
});

test('resume:partial with retryAfterMs > 0 waits that long (a write in flight), and nothing else asks meanwhile', async () => {
  const t = setup({ seq: 10 });
  await t.live();
  t.socket.push(upd(13, V(7), { price: 5 }));
  await t.clock.advance(1_000);
  assert.deepEqual(t.socket.sent, [{ action: 'resume', since: 10 }]);
  t.socket.push(upd(11, V(5), { name: 'Rye' }));
  // 12 is still being written by another instance.
  t.socket.push({ event: 'resume:partial', data: { seq: 11, head: 13, retryAfterMs: 1_500 } });
  assert.equal(t.client.lastSeq, 11);
  assert.equal(t.socket.sent.length, 1, 'not yet');
  t.socket.push({ event: 'pong', data: { seq: 13 } }); // a head check meanwhile asks nothing
  await t.clock.advance(1_499);
  assert.equal(t.socket.sent.length, 1, 'not before retryAfterMs, whatever the gap timer');
  await t.clock.advance(1);
  assert.deepEqual(t.socket.sent.at(-1), { action: 'resume', since: 11 });
  t.socket.push(upd(12, V(6), { status: 'enriched' }));
  t.socket.push({ event: 'resume:done', data: { seq: 13 } });
  assert.equal(t.client.lastSeq, 13);
  assert.equal(t.client.state.products.p1.status, 'enriched');
});

test('a resume with no answer is sent again after resumeTimeoutMs; 3 timeouts reconnect', async () => {
  const t = setup({ seq: 10 });
  await t.client.connect();
  t.socket.open();
  const first = t.socket;
  assert.deepEqual(first.sent, [{ action: 'resume', since: 10 }]);
  await t.clock.advance(9_999);
  assert.equal(first.sent.length, 1);
  await t.clock.advance(1);
  assert.deepEqual(first.sent, [{ action: 'resume', since: 10 }, { action: 'resume', since: 10 }]);
  await t.clock.advance(10_000);
  assert.equal(first.sent.length, 3);
  assert.equal(first.readyState, 1);
  await t.clock.advance(10_000); // the third timeout in a row
  assert.equal(first.readyState, 3, 'the socket is dropped');
  assert.equal(t.client.status, 'offline');
  assert.equal(first.sent.length, 3);
  await t.clock.advance(1_000);
  assert.equal(t.WebSocket.instances.length, 2);
  t.socket.open();
  assert.deepEqual(t.socket.sent, [{ action: 'resume', since: 10 }]);
  // An answer resets the count.
  t.socket.push({ event: 'resume:done', data: { seq: 10 } });
  assert.equal(t.client.status, 'live');
});

test('an error frame answering a resume retries after a backoff; 3 in a row reconnect', async () => {
  const t = setup({ seq: 10 });
  await t.client.connect();
  t.socket.open();
  const first = t.socket;
  first.push({ event: 'error', data: { code: 'internal', message: 'store unavailable' } });
  assert.equal(t.errors.at(-1).code, 'internal');
  assert.equal(first.sent.length, 1);
  await t.clock.advance(375); // backoff 0.5 s, jitter random() = 0.5
  assert.equal(first.sent.length, 2, 'retried');
  first.push({ event: 'error', data: { code: 'internal', message: 'store unavailable' } });
  await t.clock.advance(750);
  assert.equal(first.sent.length, 3, 'retried after a doubled backoff');
  assert.equal(first.readyState, 1);
  first.push({ event: 'error', data: { code: 'internal', message: 'store unavailable' } });
  assert.equal(first.readyState, 3, 'the third failure in a row drops the socket');
  await t.clock.advance(1_000);
  assert.equal(t.WebSocket.instances.length, 2);
  // An error frame when no resume is in flight (e.g. a refused auth) does not touch the socket.
  t.socket.open();
  t.socket.push({ event: 'resume:done', data: { seq: 10 } });
  t.socket.push({ event: 'error', data: { code: 'bad_request', message: 'unknown action' } });
  assert.equal(t.client.status, 'live');
});

test('an unauthorized error answering a resume reconnects at once with a fresh token', async () => {
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
  t.socket.push(upd(501, V(9), { name: 'Rye' }));
  assert.equal(t.client.state.products.p1.name, 'Rye');
});

test('a resync keeps tombstones, drops held partials, and clears the received set', async () => {
  const t = setup({ seq: 10 });
  await t.live();
  t.socket.push(frame(11, 'product:deleted', { id: 'p1', businessId: 'b1' }));
  t.socket.push(frame(13, 'product:updated', { id: 'p8', businessId: 'b1', name: 'held', version: V(9) }));
  assert.ok(t.client.model.held.products.p8);
  assert.equal(t.client.lastSeq, 11);
  // The snapshot was read from a replica that still had p1 (or p1's delete is after its seq).
  t.setLoginSeq(12);
  t.setSnapshot({ user, businesses: [biz], products: [prod, { id: 'p2', businessId: 'b1', name: 'Bun', version: V(8) }] });
  t.socket.push({ event: 'resync:required', data: { seq: 12 } });
  await tick();
  assert.equal(t.client.state.products.p1, undefined, 'the tombstone filters the snapshot');
  assert.equal(t.client.state.products.p2.name, 'Bun');
  assert.deepEqual(t.client.model.held.products, {});
  assert.equal(t.client.lastSeq, 12);
  assert.deepEqual(t.socket.sent.at(-1), { action: 'resume', since: 12 });
  // 13 is not a duplicate any more (the received set was cleared): the replay applies it.
  const seen = t.events.length;
  t.socket.push(frame(13, 'product:updated', { id: 'p8', businessId: 'b1', name: 'held', version: V(9) }));
  assert.equal(t.events.length, seen + 1);
  assert.ok(t.client.model.held.products.p8, 'held again, out of sight');
  t.socket.push({ event: 'resume:done', data: { seq: 13 } });
  assert.equal(t.client.lastSeq, 13);
  assert.equal(t.client.status, 'live');
});

test('pings every 2 minutes; the pong head check resumes when the server is ahead; a missing pong drops the socket', async () => {
  const t = setup({ seq: 10 });
  await t.live();
  await t.clock.advance(2 * 60_000);
  assert.deepEqual(t.socket.sent, [{ action: 'ping' }]);
  t.socket.push({ event: 'pong', data: { seq: 10 } });
  assert.deepEqual(t.socket.sent, [{ action: 'ping' }], 'head = mark: nothing to ask');
  await t.clock.advance(2 * 60_000);
  // Event 11 was lost just before a quiet period: the head says so.
  t.socket.push({ event: 'pong', data: { seq: 11 } });
  assert.deepEqual(t.socket.sent.at(-1), { action: 'resume', since: 10 });
  t.socket.push({ event: 'pong', data: { seq: 11 } });
  assert.equal(t.socket.sent.filter((m) => m.action === 'resume').length, 1, 'not while a resume is in flight');
  t.socket.push(upd(11, V(5), { name: 'Rye' }));
  t.socket.push({ event: 'resume:done', data: { seq: 11 } });
  assert.equal(t.client.state.products.p1.name, 'Rye');
  t.socket.push({ event: 'pong' }); // an old server's pong: no head
  await t.clock.advance(2 * 60_000);
  assert.deepEqual(t.socket.sent.at(-1), { action: 'ping' });
  const first = t.socket;
  await t.clock.advance(2 * 60_000); // no pong came back
  assert.equal(first.readyState, 3);
  assert.equal(t.client.status, 'offline');
  await t.clock.advance(1_000);
  assert.equal(t.WebSocket.instances.length, 2);
});

test('a dropped socket reconnects with exponential backoff and resumes where it left off', async () => {
  const t = setup({ seq: 10 });
  await t.live();
  t.socket.push(upd(11, V(5), { price: 4 }));

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

test('refreshes the token before it expires with the auth action, and on auth:expiring', async () => {
  const t = setup({
    expiresAt: (clock) => Math.floor(clock.now() / 1000) + 3600,
    options: { pingIntervalMs: 24 * 3600_000 }, // no pings in this test
  });
  await t.live();
  assert.equal(t.tokenCalls, 1);
  assert.match(t.socket.url, /token=tok-1-1$/);
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

test('a truncated product event refetches the list and merges the fresh document by version', async () => {
  const t = setup({ seq: 10 });
  await t.live();
  t.socket.push(frame(11, 'product:updated', { id: 'p1', businessId: 'b1', truncated: true, version: V(50) }));
  // A fresher small update arrives while the refetch is under way... (V(60) > the list's V(50))
  t.socket.push(upd(12, V(60), { name: 'Newest' }));
  await tick();
  assert.equal(t.calls.at(-1).url, 'http://127.0.0.1:3000/products/b1');
  assert.equal(t.client.state.products.p1.caption, 'big');
  assert.equal(t.client.state.products.p1.name, 'Newest', '...and survives the refetched document');
  assert.equal(t.client.state.products.p1.version, V(60));
  assert.equal(t.events.at(-1).refetched, true);
  assert.equal(t.events.at(-1).event, 'product:updated');
});

test('a truncated event of a product missing from the refetched list tombstones it; a truncated user event bootstraps for the user', async () => {
  const t = setup({
    seq: 10,
    routes: { 'GET /products/b1': () => [200, []] },
  });
  await t.live();
  t.socket.push(frame(11, 'product:updated', { id: 'p1', businessId: 'b1', truncated: true, version: V(50) }));
  await tick();
  assert.equal(t.client.state.products.p1, undefined);
  assert.deepEqual(t.client.model.deleted.products, { p1: true });
  assert.deepEqual(t.events.at(-1), { event: 'product:deleted', data: { id: 'p1', businessId: 'b1' }, refetched: true });
  t.socket.push(frame(12, 'product:created', { ...prod, version: V(51) }));
  assert.equal(t.client.state.products.p1, undefined, 'deleted for good');

  t.setSnapshot({ user: { uid: 'alice', displayName: 'A very long name', version: V(70) }, businesses: [biz], products: [] });
  t.setLoginSeq(99);
  t.socket.push(frame(13, 'user:updated', { uid: 'alice', truncated: true, version: V(70) }));
  await tick();
  assert.equal(t.calls.at(-1).url, 'http://127.0.0.1:3000/auth/login');
  assert.equal(t.client.state.user.displayName, 'A very long name');
  assert.equal(t.client.lastSeq, 13, 'a user refetch does not move the mark');
  assert.equal(t.resyncs.length, 0, 'nor is it a resync');
});

test('client.applyDocument merges a mutation\'s answer; the later pushed event changes nothing', async () => {
  const t = setup({ seq: 10 });
  await t.live();
  const answer = { ...prod, name: 'Rye', updatedAt: V(7), version: V(7) };
  const state = t.client.applyDocument('product', answer);
  assert.equal(state, t.client.state);
  assert.equal(state.products.p1.name, 'Rye');
  t.socket.push(upd(11, V(7), { name: 'Rye' }));
  assert.equal(t.client.state, state, 'same version: no change');
  t.socket.push(upd(12, V(6), { name: 'Older' }));
  assert.equal(t.client.state.products.p1.name, 'Rye');
});

test('onChange reports every change of the model: a model following it with applyChange holds what the client holds', async () => {
  const changes = [];
  const t = setup({
    seq: 10,
    routes: { 'GET /products/b1': () => [200, [{ ...prod, caption: 'big', version: V(50) }]] },
    options: { onChange: (c) => changes.push(c) },
  });
  let follower = emptyModel();
  const follow = () => { while (changes.length) follower = applyChange(follower, changes.shift()); };
  await t.live();
  follow();
  assert.deepEqual(follower, t.client.model, 'after the login snapshot');
  t.socket.push(upd(12, V(9), { price: 4 })); // out of order
  t.socket.push(upd(11, V(8), { price: 5, caption: 'x' }));
  t.socket.push(upd(11, V(8), { price: 5, caption: 'x' })); // a duplicate: not a change
  t.socket.push(upd(13, V(10), { id: 'p9' }, 'p9')); // held: p9 is unknown
  t.socket.push(frame(14, 'product:updated', { id: 'p1', businessId: 'b1', truncated: true, version: V(50) }));
  await tick();
  t.client.applyDocument('business', { ...biz, name: 'Bakery & Co', version: V(60) });
  t.socket.push(frame(15, 'product:deleted', { id: 'p1', businessId: 'b1' }));
  t.socket.push(frame(16, 'ai:progress', { step: 2 }));
  follow();
  assert.deepEqual(follower, t.client.model);
  assert.equal(follower.state.products.p1, undefined);
  assert.ok(follower.held.products.p9, 'the held partial is followed too');
  assert.equal(applyChange(follower, { type: 'other' }), follower, 'an unknown change changes nothing');
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

test('a frame without seq (not recorded by the server) is applied as is; broadcasts only reach onEvent', async () => {
  const t = setup({ seq: 10 });
  await t.live();
  t.socket.push({ event: 'product:updated', ts: 'x', data: { id: 'p1', businessId: 'b1', caption: 'hi', version: V(5) } });
  assert.equal(t.client.state.products.p1.caption, 'hi');
  assert.equal(t.client.lastSeq, 10);
  const before = t.client.state;
  t.socket.push(frame(11, 'ai:progress', { productId: 'p1', pct: 50 }));
  assert.equal(t.client.state, before);
  assert.deepEqual(t.events.at(-1).data, { productId: 'p1', pct: 50 });
  assert.equal(t.client.lastSeq, 11);
});
