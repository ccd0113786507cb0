// The Redux Toolkit adapter (src/redux.js) with the real @reduxjs/toolkit against a real local
// gateway process, over real WebSocket connections (the `ws` package: Node 20 has no global
// WebSocket without --experimental-websocket).
//
// Two stores of alice: A talks to the gateway directly; B's socket goes through a proxy that
// swaps pushed data frames in pairs (tests/support.mjs), so an update reaches it before its
// create, a clear before the older set, a delete before the update that preceded it. Writes come
// from this process over REST, as another tab or a service would. Throughout, every store
// change is checked: no product or business without its required fields and server stamps (never
// a half-empty document), and the store's slices equal the client's own model. After each step
// both stores must hold what a fresh login returns (what Firestore holds), field by field with
// `version`. Then: the connection state through a refused reconnect and a failing token, and a
// resync after the retention window.
//
// Run: `scripts/test`, or by hand: cargo build -p local-gateway && npm ci --prefix client &&
// node --test client/tests/redux.test.mjs (LOCAL_GATEWAY_BIN names another gateway binary).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { eventually, makeTmp, startGateway } from '../../browser-tests/helpers.mjs';
import { devToken, loadPackages, restAs, startSwappingProxy, truth } from './support.mjs';

const { WebSocket, WebSocketServer, configureStore } = await loadPackages();
const { createReduxSyncClient, syncActions, syncReducer, syncSelectors } = await import('../src/redux.js');

const UID = 'alice';
const tmp = makeTmp();
const gateways = [];
const proxies = [];
const clients = [];

after(async () => {
  for (const c of clients) c.close();
  for (const p of proxies) await p.close();
  for (const g of gateways) await g.stop();
});

/**
 * A store as an app makes it, with Redux Toolkit's development checks on (they fail a dispatch
 * that mutates the state or puts something unserializable in it); only their slowness warning
 * is raised, for a 2-core machine.
 */
const newStore = () => configureStore({
  reducer: { sync: syncReducer },
  middleware: (defaults) => defaults({ immutableCheck: { warnAfter: 500 }, serializableCheck: { warnAfter: 500 } }),
});

/** A store with a sync client, every change checked (see the file's comment). */
function makeStore(base, { wsUrl, getToken } = {}) {
  const store = newStore();
  const frames = [];
  const statuses = [];
  const violations = [];
  const client = createReduxSyncClient({
    dispatch: store.dispatch,
    baseUrl: base,
    wsUrl,
    WebSocket,
    getToken: getToken || (async () => devToken(base, UID)),
    onFrame: (f) => frames.push(f),
  });
  clients.push(client);
  let last = store.getState().sync;
  store.subscribe(() => {
    const s = store.getState().sync;
    if (s.connection.status !== last.connection.status) statuses.push(s.connection.status);
    last = s;
    for (const [coll, required] of [['products', ['id', 'businessId', 'name', 'createdAt', 'version']], ['businesses', ['id', 'name', 'createdAt', 'version']]]) {
      for (const doc of Object.values(s[coll].entities)) {
        const missing = required.filter((k) => doc[k] === undefined);
        if (missing.length) violations.push(`${coll} ${doc.id} shown without ${missing.join(', ')}: ${JSON.stringify(doc)}`);
      }
      const sorted = Object.values(s[coll].entities)
        .sort((a, b) => String(a.createdAt).localeCompare(String(b.createdAt)) || a.id.localeCompare(b.id)).map((d) => d.id);
      if (!isDeepStrictEqual(s[coll].ids, sorted)) violations.push(`${coll} ids ${s[coll].ids} are not the entities oldest first`);
    }
    const m = client.model;
    const mirrors = isDeepStrictEqual(s.user.profile, m.state.user) && isDeepStrictEqual(s.user.held, m.held.user)
      && ['businesses', 'products'].every((coll) => isDeepStrictEqual(s[coll].entities, m.state[coll])
        && isDeepStrictEqual(s[coll].versions, m.versions[coll]) && isDeepStrictEqual(s[coll].held, m.held[coll])
        && isDeepStrictEqual(s[coll].deleted, m.deleted[coll]));
    if (!mirrors) violations.push(`the store is not the client's model after ${frames.length} frames`);
  });
  const state = () => {
    const s = store.getState();
    return {
      user: syncSelectors.selectUser(s),
      businesses: Object.fromEntries(syncSelectors.selectBusinesses(s).map((b) => [b.id, b])),
      products: Object.fromEntries(syncSelectors.selectProducts(s).map((p) => [p.id, p])),
    };
  };
  return { store, client, frames, statuses, violations, state };
}

/** Both stores hold what a fresh login returns, and no change broke the rules. */
async function converged(what, rest, ...stores) {
  const expected = await truth(rest);
  for (const [i, s] of stores.entries()) {
    await eventually(`${what}: store ${i === 0 ? 'A' : 'B'} holds what Firestore holds`, () => assert.deepEqual(s.state(), expected));
    assert.deepEqual(s.violations, [], `${what}: store ${i === 0 ? 'A' : 'B'}`);
  }
  return expected;
}

/** The order in which a store received the data frames about product `id`. */
const framesAbout = (s, id) => s.frames.filter((f) => typeof f.seq === 'number' && f.data && f.data.id === id).map((f) => f.event);

describe('the Redux adapter on a live gateway', () => {
  let gateway;
  let rest;
  let proxy;
  let A;
  let B;
  let business;

  before(async () => {
    gateway = await startGateway(tmp, ['--mutations-per-minute', '100000']);
    gateways.push(gateway);
    rest = restAs(gateway.base, (await devToken(gateway.base, UID)).token);
    proxy = await startSwappingProxy(WebSocket, WebSocketServer, gateway.port);
    proxies.push(proxy);
  });

  it('bootstraps into the slices and exposes the connection going live', async () => {
    const created = await rest('POST', '/businesses', { name: 'Corner bakery', category: 'food' });
    assert.equal(created.status, 201);
    business = created.body;
    assert.equal((await rest('POST', `/products/${business.id}`, { name: 'Baguette', price: 2, description: 'crusty' })).status, 201);
    A = makeStore(gateway.base);
    B = makeStore(gateway.base, { wsUrl: proxy.url });
    assert.equal(syncSelectors.selectConnectionStatus(A.store.getState()), 'offline');
    await Promise.all([A.client.connect(), B.client.connect()]);
    for (const s of [A, B]) {
      await eventually('live', () => assert.equal(syncSelectors.selectConnectionStatus(s.store.getState()), 'live'));
      assert.deepEqual(s.statuses, ['connecting', 'live']);
      assert.equal(syncSelectors.selectConnection(s.store.getState()).error, null);
    }
    const expected = await converged('after the bootstrap', rest, A, B);
    assert.equal(Object.keys(expected.products).length, 1);
    assert.equal(syncSelectors.selectUser(A.store.getState()).uid, UID);
  });

  it('a create, then partial updates that merge, null that clears, a profile update, a delete', async () => {
    const p = (await rest('POST', `/products/${business.id}`, { name: 'Croissant', price: 1.2, description: 'butter', tags: ['pastry'] })).body;
    await converged('after the creates', rest, A, B);

    const priced = (await rest('PATCH', `/products/update/${business.id}/${p.id}`, { price: 1.5 })).body;
    await converged('after a partial update', rest, A, B);
    const inA = syncSelectors.selectProductById(A.store.getState(), p.id);
    assert.equal(inA.price, 1.5);
    assert.equal(inA.name, 'Croissant', 'the partial update merged into the product');
    assert.deepEqual(inA.tags, ['pastry']);
    assert.equal(inA.version, priced.version);

    await rest('PATCH', `/products/update/${business.id}/${p.id}`, { description: null });
    await rest('PATCH', `/users/${UID}`, { displayName: 'Alice B.' });
    await converged('after null and a profile update', rest, A, B);
    assert.equal('description' in syncSelectors.selectProductById(B.store.getState(), p.id), false, 'null cleared the field');
    assert.equal(syncSelectors.selectUser(B.store.getState()).displayName, 'Alice B.');

    await rest('DELETE', `/products/${business.id}/${p.id}`);
    await converged('after the delete', rest, A, B);
    for (const s of [A, B]) {
      assert.equal(syncSelectors.selectProductById(s.store.getState(), p.id), undefined);
      assert.equal(syncSelectors.selectIsProductDeleted(s.store.getState(), p.id), true);
    }
    assert.deepEqual(
      syncSelectors.selectProductsOfBusiness(A.store.getState(), business.id).map((x) => x.name),
      ['Baguette'],
    );
  });

  it('out of order (store B): an update before its create is held out of sight, never shown half-empty', async () => {
    const p = (await rest('POST', `/products/${business.id}`, { name: 'Brioche', price: 3 })).body;
    let heldSeen = false;
    const unsubscribe = B.store.subscribe(() => {
      const s = B.store.getState().sync.products;
      if (s.held[p.id] && !s.entities[p.id]) heldSeen = true;
    });
    await rest('PATCH', `/products/update/${business.id}/${p.id}`, { caption: 'Fresh every morning' });
    const expected = await converged('after a create and its update', rest, A, B);
    unsubscribe();
    assert.deepEqual(framesAbout(B, p.id), ['product:updated', 'product:created'], 'the proxy delivered the update first');
    assert.ok(heldSeen, 'the update was held while the product was unknown');
    const shown = syncSelectors.selectProductById(B.store.getState(), p.id);
    assert.equal(shown.caption, 'Fresh every morning');
    assert.equal(shown.name, 'Brioche');
    assert.deepEqual(B.store.getState().sync.products.held, {});
    assert.deepEqual(shown, expected.products[p.id]);
  });

  it('out of order (store B): versions decide, not arrival: an older set after a newer clear, an older name after a newer one', async () => {
    const p = (await rest('POST', `/products/${business.id}`, { name: 'Tart' })).body;
    await converged('after the creates', rest, A, B);
    B.frames.length = 0;

    await rest('PATCH', `/products/update/${business.id}/${p.id}`, { caption: 'first' });
    await rest('PATCH', `/products/update/${business.id}/${p.id}`, { caption: null });
    await converged('after a set then a clear', rest, A, B);
    assert.equal('caption' in syncSelectors.selectProductById(B.store.getState(), p.id), false, 'the older set arrived last and lost');

    await rest('PATCH', `/products/update/${business.id}/${p.id}`, { name: 'Tart (old)' });
    await rest('PATCH', `/products/update/${business.id}/${p.id}`, { name: 'Lemon tart' });
    await converged('after two renames', rest, A, B);
    assert.equal(syncSelectors.selectProductById(B.store.getState(), p.id).name, 'Lemon tart');

    const versions = B.frames.filter((f) => f.data && f.data.id === p.id).map((f) => f.data.version);
    assert.equal(versions.length, 4);
    assert.ok(versions[0] > versions[1] && versions[2] > versions[3], `B got each newer write first: ${versions.join(' ')}`);
  });

  it('out of order (store B): a delete that arrives before an earlier update is not undone', async () => {
    const p = (await rest('POST', `/products/${business.id}`, { name: 'Eclair' })).body;
    await converged('after the creates', rest, A, B);
    await rest('PATCH', `/products/update/${business.id}/${p.id}`, { price: 4 });
    await rest('DELETE', `/products/${business.id}/${p.id}`);
    await converged('after an update and a delete', rest, A, B);
    assert.deepEqual(framesAbout(B, p.id).slice(-2), ['product:deleted', 'product:updated']);
    assert.equal(syncSelectors.selectProductById(B.store.getState(), p.id), undefined, 'the late update did not bring it back');
    assert.equal(syncSelectors.selectIsProductDeleted(B.store.getState(), p.id), true);
  });

  it('concurrent writers: both stores converge', async () => {
    const ids = Object.keys((await truth(rest)).products);
    const writes = [];
    for (let i = 0; i < 8; i++) writes.push(rest('PATCH', `/products/update/${business.id}/${ids[0]}`, { name: `Baguette ${i}`, price: i }));
    for (let i = 0; i < 3; i++) {
      writes.push(rest('POST', `/products/${business.id}`, { name: `New ${i}` }).then((r) => rest('PATCH', `/products/update/${business.id}/${r.body.id}`, { tags: [`t${i}`] })));
    }
    writes.push(rest('POST', '/businesses', { name: 'Second shop' }));
    writes.push(rest('PATCH', `/users/${UID}`, { locale: 'fr-FR' }));
    const answers = await Promise.all(writes);
    assert.ok(answers.every((a) => a.status < 300), JSON.stringify(answers.filter((a) => a.status >= 300)));
    await converged('after concurrent writers', rest, A, B);
  });

  it('exposes the connection state: offline while refused, an error from the token, live again with what was missed', async () => {
    let failToken = false;
    const C = makeStore(gateway.base, {
      wsUrl: proxy.url,
      getToken: async () => {
        if (failToken) throw new Error('token service down');
        return devToken(gateway.base, UID);
      },
    });
    await C.client.connect();
    await eventually('C live', () => assert.equal(syncSelectors.selectConnectionStatus(C.store.getState()), 'live'));
    C.statuses.length = 0;

    proxy.refuse();
    await eventually('C offline', () => assert.equal(syncSelectors.selectConnectionStatus(C.store.getState()), 'offline'));
    failToken = true; // a refused socket asks for a fresh token, which fails
    const p = (await rest('POST', `/products/${business.id}`, { name: 'Made while offline' })).body;
    await eventually('the token error is in the store', () => assert.equal(syncSelectors.selectConnection(C.store.getState()).error?.message, 'token service down'));
    assert.notEqual(syncSelectors.selectConnectionStatus(C.store.getState()), 'live');
    assert.equal(syncSelectors.selectProductById(C.store.getState(), p.id), undefined);

    failToken = false;
    proxy.restore();
    await eventually('C live again', () => assert.equal(syncSelectors.selectConnectionStatus(C.store.getState()), 'live'), 20_000);
    assert.equal(C.statuses[0], 'offline');
    assert.equal(C.statuses.at(-1), 'live');
    assert.ok(C.statuses.includes('connecting'));
    assert.equal(syncSelectors.selectConnection(C.store.getState()).error, null, 'live again clears the error');
    await converged('after the reconnect', rest, C);
    assert.equal(syncSelectors.selectProductById(C.store.getState(), p.id).name, 'Made while offline', 'the resume brought what was missed');
    C.client.close();
    await eventually('closed', () => assert.equal(syncSelectors.selectConnectionStatus(C.store.getState()), 'offline'));
  });

  it('reset empties the slices', () => {
    const store = newStore();
    const frame = { event: 'product:created', seq: 1, ts: '2026-01-01T00:00:00.000Z', data: { id: 'p', businessId: 'b', name: 'x', createdAt: '2026-01-01T00:00:00.000Z', version: '2026-01-01T00:00:00.000000000Z' } };
    store.dispatch(syncActions.eventReceived(frame));
    assert.equal(syncSelectors.selectProducts(store.getState()).length, 1);
    store.dispatch(syncActions.reset());
    assert.deepEqual(syncSelectors.selectProducts(store.getState()), []);
  });
});

describe('a resync after the retention window', () => {
  it('replaces the slices by a fresh bootstrap, tombstones kept', async () => {
    // Events expire after 2 s; a missing seq is known lost once no writer can still record it,
    // after the writer lease (at least 3 s: the gateway gives each request the lease less a second).
    const gateway = await startGateway(tmp, ['--retention-secs', '2', '--writer-lease-secs', '3']);
    gateways.push(gateway);
    const rest = restAs(gateway.base, (await devToken(gateway.base, UID)).token);
    const proxy = await startSwappingProxy(WebSocket, WebSocketServer, gateway.port);
    proxies.push(proxy);
    const business = (await rest('POST', '/businesses', { name: 'Shop' })).body;
    const gone = (await rest('POST', `/products/${business.id}`, { name: 'Gone' })).body;
    const S = makeStore(gateway.base, { wsUrl: proxy.url });
    await S.client.connect();
    await eventually('live', () => assert.equal(syncSelectors.selectConnectionStatus(S.store.getState()), 'live'));
    await rest('DELETE', `/products/${business.id}/${gone.id}`);
    await eventually('the delete arrived', () => assert.equal(syncSelectors.selectIsProductDeleted(S.store.getState(), gone.id), true));

    proxy.refuse();
    await eventually('offline', () => assert.equal(syncSelectors.selectConnectionStatus(S.store.getState()), 'offline'));
    const kept = (await rest('POST', `/products/${business.id}`, { name: 'Made while away' })).body;
    await rest('PATCH', `/products/update/${business.id}/${kept.id}`, { price: 8 });
    await new Promise((resolve) => setTimeout(resolve, 3_500)); // past the retention window and the lease
    const snapshots = () => S.frames.filter((f) => f.event === 'resync:required').length;
    proxy.restore();
    await eventually('resync:required and live again', () => {
      assert.ok(snapshots() >= 1, 'the server asked for a resync');
      assert.equal(syncSelectors.selectConnectionStatus(S.store.getState()), 'live');
    }, 20_000);
    await converged('after the resync', rest, S);
    assert.equal(syncSelectors.selectProductById(S.store.getState(), kept.id).price, 8);
    assert.equal(syncSelectors.selectIsProductDeleted(S.store.getState(), gone.id), true, 'the tombstone survived the resync');
  });
});
