// The browser client converges with Firestore under concurrent writers, on the real stores
// (docs/client.md, "Convergence: the rules"), in headless Debian chromium.
//
// The gateway runs on the Firestore emulator and the one-request-at-a-time moto that
// scripts/test starts (FIRESTORE_EMULATOR_HOST, DYNAMODB_SERIAL_ENDPOINT), with its own table
// and project; without those variables the test fails, saying to run it through scripts/test.
// Two tabs of alice open the demo page and go live: tab 1 talks to the gateway directly, tab 2
// through a proxy in this process that reorders the data frames pushed to it (each held a random
// 0-300 ms; control frames keep their place after the data frames sent before them), as pushes
// from concurrent Lambdas may arrive when deployed. Then this process (Node's fetch, with a dev
// token) runs 8 rounds of concurrent writers: 8 renames of one product at a time, updates of
// other fields (a number, a string cleared with null, a list) and of other products and of the
// user's profile, creates followed at once by updates of the new product (whose update may
// reach a tab before its create), a delete of a product while updates of it are in flight, and
// a reload of tab 2 in round 6 (it bootstraps again and resumes while writes are in flight).
// After each round, once every request is answered, a fresh `POST /auth/login` says what
// Firestore holds, and each tab's client state (`window.syncClient.state`, a hook of app.js)
// must equal it field by field, `version` included, within 15 s (the client's gap timer may
// have to fetch a last frame). At the end both pages must also show it. A client that let the
// last frame to arrive win (ignoring versions) fails in the first rounds.
//
// Run: through scripts/test (it starts the emulator and moto and exports the variables), or by
// hand with FIRESTORE_EMULATOR_HOST and DYNAMODB_SERIAL_ENDPOINT set (see README.md).

import { after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import {
  CONTEXT_OPTIONS, WAIT_MS, eventually, launchBrowser, log, makeTmp, scenario, startGateway, tabRecorder, use,
} from './helpers.mjs';

const UID = 'alice';
const ROUNDS = 8;
const HOT_WRITERS = 8; // concurrent renames of the hot product per round
const CONVERGE_MS = 15_000;
const SHUFFLE_MS = 300; // tab 2's data frames are held up to this long (the client's gap timer waits 1 s)

const tmp = makeTmp();
const unique = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;

/** The login answer (arrays) as the client's state (objects keyed by id). */
const keyed = ({ user, businesses, products }) => ({
  user: user ?? null,
  businesses: Object.fromEntries((businesses || []).map((b) => [b.id, b])),
  products: Object.fromEntries((products || []).map((p) => [p.id, p])),
});

/** Every difference between what Firestore holds and a tab's state, one line each. */
function differences(truth, state) {
  if (!state) return ['the tab has no client state (window.syncClient is null)'];
  const out = [];
  const doc = (where, want, got) => {
    if (!want || !got) {
      if (want || got) out.push(`${where}: ${want ? 'in Firestore, missing in the tab' : 'in the tab, not in Firestore'}`);
      return;
    }
    for (const key of new Set([...Object.keys(want), ...Object.keys(got)])) {
      if (!isDeepStrictEqual(want[key], got[key])) {
        out.push(`${where}.${key}: Firestore ${JSON.stringify(want[key])}, tab ${JSON.stringify(got[key])}`);
      }
    }
  };
  doc('user', truth.user, state.user);
  for (const coll of ['businesses', 'products']) {
    for (const id of new Set([...Object.keys(truth[coll]), ...Object.keys(state[coll] || {})])) {
      doc(`${coll}/${id}`, truth[coll][id], (state[coll] || {})[id]);
    }
  }
  return out;
}

/**
 * A TCP proxy to the gateway that reorders what the server sends on WebSockets, as concurrent
 * writers pushing from different Lambdas would: each data frame (one with a `seq`) is held for
 * a random 0 to `maxDelayMs` ms; any other frame (a control frame such as `resume:done` or
 * `pong`, a close) first releases every frame still held, so the tab receives a permutation of
 * the data frames with each control frame still after the data frames sent before it, as on
 * one socket. Everything else (the page, REST calls, what the tab sends) passes unchanged.
 * `stats.overtaken` counts the data frames delivered after a frame the server sent later.
 */
async function startReorderingProxy(targetPort, maxDelayMs) {
  const stats = { frames: 0, overtaken: 0 };
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const destroy = () => {
      clearTimeout(timer);
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', destroy);
    client.on('close', destroy);
    upstream.on('error', destroy);
    client.pipe(upstream);

    let mode = 'head'; // until the response head is in: then 'ws' (a 101) or 'raw'
    let buf = Buffer.alloc(0);
    let held = []; // {raw, due, order}, by due
    let arrived = 0;
    let newestReleased = -1;
    let timer = null;
    const release = (entry) => {
      if (entry.order < newestReleased) stats.overtaken += 1;
      newestReleased = Math.max(newestReleased, entry.order);
      client.write(entry.raw);
    };
    const releaseDue = () => {
      clearTimeout(timer);
      timer = null;
      const now = Date.now();
      while (held.length && held[0].due <= now) release(held.shift());
      if (held.length) timer = setTimeout(releaseDue, held[0].due - now);
    };
    const releaseAll = () => {
      clearTimeout(timer);
      timer = null;
      for (const entry of held) release(entry);
      held = [];
    };
    const isDataFrame = (first, payload) => {
      if (first !== 0x81) return false; // a whole, uncompressed text frame
      try { return typeof JSON.parse(payload.toString('utf8')).seq === 'number'; } catch { return false; }
    };
    const frames = () => {
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (buf[1] & 0x80) off += 4; // masked: never from a server
        if (buf.length < off + len) return;
        const raw = buf.subarray(0, off + len);
        buf = buf.subarray(off + len);
        if (isDataFrame(raw[0], raw.subarray(off))) {
          stats.frames += 1;
          held.push({ raw, due: Date.now() + Math.random() * maxDelayMs, order: arrived++ });
          held.sort((a, b) => a.due - b.due);
          releaseDue();
        } else {
          releaseAll();
          client.write(raw);
        }
      }
    };
    upstream.on('data', (chunk) => {
      if (mode === 'raw') return client.write(chunk);
      buf = Buffer.concat([buf, chunk]);
      if (mode === 'head') {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end + 4);
        mode = /^HTTP\/1\.1 101 /.test(head.toString('latin1')) ? 'ws' : 'raw';
        if (mode === 'raw') {
          client.write(buf);
          buf = Buffer.alloc(0);
          return;
        }
        client.write(head);
        buf = buf.subarray(end + 4);
      }
      frames();
    });
    upstream.on('end', () => {
      releaseAll();
      client.end();
    });
    upstream.on('close', () => { if (!client.writableEnded) destroy(); });
  });
  await new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: server.address().port,
    stats,
    close() {
      for (const sock of sockets) sock.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('the browser client converges with Firestore under concurrent writers (emulator + moto)', { concurrency: 1, timeout: 120_000 }, () => {
  let gateway;
  let proxy; // tab 2's way to the gateway: its data frames reordered
  let browser;
  let token;
  const recorder = tabRecorder(tmp);
  const { tabs, pageErrors } = recorder; // tab1, tab2: both alice
  const { step, state } = scenario();
  const ids = {}; // businesses b0, b1; products hot, misc, doomed, other
  const created = []; // products created during the rounds
  const frames = { tab1: [], tab2: [] }; // data frames as they arrived, per tab
  let requests = 0;

  /** A REST call as alice from this process: `{status, body}`. */
  async function api(method, route, body) {
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(gateway.base + route, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    requests += 1;
    return { status: res.status, body: json, text };
  }

  /** A REST call that must answer one of `ok` (default 200 or 201); resolves to the body. */
  async function must(method, route, body, ok = [200, 201]) {
    const res = await api(method, route, body);
    if (!ok.includes(res.status)) {
      throw new Error(`${method} ${route} ${JSON.stringify(body ?? null)}: HTTP ${res.status} ${res.text.slice(0, 300)}`);
    }
    return res.body;
  }

  const patchProduct = (key, fields, ok) => must('PATCH', `/products/update/${ids[`${key}Biz`]}/${ids[key]}`, fields, ok);
  const truth = async () => keyed(await must('POST', '/auth/login', {}));
  const clientState = (page) => page.evaluate(() => (window.syncClient ? window.syncClient.state : null));

  /**
   * Reads what Firestore holds (a fresh login) and waits until each tab's client state equals
   * it; returns it. Also counts, per tab, the documents (not deleted) whose last frame since
   * the previous check was older than another frame of theirs: where a client that let the
   * last arrival win, ignoring versions, would now be wrong.
   */
  const seen = { tab1: 0, tab2: 0 };
  const staleLast = { tab1: 0, tab2: 0 };
  async function converged(label) {
    const want = await truth();
    for (const [name, page] of Object.entries(tabs)) {
      await eventually(`${label}: ${name} holds what Firestore holds`, async () => {
        const diff = differences(want, await clientState(page));
        assert.ok(diff.length === 0, `${diff.length} differences:\n  ${diff.slice(0, 20).join('\n  ')}`);
      }, CONVERGE_MS);
      const newest = new Map();
      const last = new Map();
      for (const { event, data } of frames[name].slice(seen[name])) {
        if (!data || typeof data.version !== 'string') continue;
        const kind = event.split(':')[0];
        const key = kind === 'user' ? 'user' : `${kind === 'product' ? 'products' : 'businesses'}/${data.id}`;
        if (key !== 'user' && !want[key.split('/')[0]][data.id]) continue; // deleted: its tombstone decides
        if (!(newest.get(key) >= data.version)) newest.set(key, data.version);
        last.set(key, data.version);
      }
      for (const [key, v] of last) if (v < newest.get(key)) staleLast[name] += 1;
      seen[name] = frames[name].length;
    }
    return want;
  }

  step('start the gateway on the Firestore emulator and moto, with its own table and project', async () => {
    const { FIRESTORE_EMULATOR_HOST: firestore, DYNAMODB_SERIAL_ENDPOINT: dynamodb } = process.env;
    assert.ok(firestore && dynamodb,
      'FIRESTORE_EMULATOR_HOST and DYNAMODB_SERIAL_ENDPOINT are not set: this test runs on the Firestore emulator ' +
      'and the one-request-at-a-time moto; run it through scripts/test, which starts both and exports them ' +
      `(FIRESTORE_EMULATOR_HOST=${firestore ?? '(unset)'}, DYNAMODB_SERIAL_ENDPOINT=${dynamodb ?? '(unset)'})`);
    // moto takes any credentials, but the AWS SDK wants some (scripts/test exports these).
    for (const [key, value] of [['AWS_ACCESS_KEY_ID', 'test'], ['AWS_SECRET_ACCESS_KEY', 'test'], ['AWS_REGION', 'us-east-1'],
      ['AWS_EC2_METADATA_DISABLED', 'true']]) process.env[key] ??= value;
    gateway = await startGateway(tmp, [
      '--firestore-emulator', firestore, '--dynamodb-endpoint', dynamodb,
      '--table', `browser-convergence-${unique}`, '--project-id', `demo-bc-${unique}`,
      // The rounds make a few hundred writes a minute as one user, above the per-user budget
      // that production keeps (the budget has its own scenarios).
      '--mutations-per-minute', '100000',
    ]);
    proxy = await startReorderingProxy(gateway.port, SHUFFLE_MS);
    log(`gateway ${gateway.base} on Firestore ${firestore} (project demo-bc-${unique}) and DynamoDB ${dynamodb} (log ${gateway.logFile}); ` +
      `tab 2 goes through a proxy on port ${proxy.port} that reorders its data frames`);
    const res = await fetch(`${gateway.base}/dev/token?uid=${UID}`);
    assert.equal(res.status, 200, 'GET /dev/token');
    ({ token } = await res.json());
  });

  after(async () => {
    await recorder.screenshotOnFailure(state.failed);
    await browser?.close().catch(() => {});
    await proxy?.close().catch(() => {});
    await gateway?.stop();
    await recorder.close(state.failed);
    if (state.failed && gateway) log(`gateway log (${gateway.logFile}):\n${gateway.log().slice(-4000)}`);
    log(`artifacts in ${tmp}`);
  });

  step('seed two businesses and four products; open two tabs of alice; both go live with what Firestore holds', async () => {
    await must('POST', '/auth/login', {});
    ids.b0 = (await must('POST', '/businesses', { name: 'Corner Bakery', category: 'bakery' })).id;
    ids.b1 = (await must('POST', '/businesses', { name: 'Harbour Roasters' })).id;
    for (const [key, biz, fields] of [
      ['hot', 'b0', { name: 'Sourdough', price: 6.5, currency: 'USD' }],
      ['misc', 'b0', { name: 'Rye', price: 5, description: 'Dark', tags: ['bread'] }],
      ['doomed', 'b0', { name: 'Baguette', price: 3 }],
      ['other', 'b1', { name: 'Espresso', price: 2.5, currency: 'EUR' }],
    ]) {
      ids[key] = (await must('POST', `/products/${ids[biz]}`, fields)).id;
      ids[`${key}Biz`] = ids[biz];
    }

    browser = await launchBrowser();
    const alice = await browser.newContext(CONTEXT_OPTIONS);
    // Each tab records every data frame it receives, in arrival order (the reload opens a new
    // socket). Tab 1 talks to the gateway directly, tab 2 through the reordering proxy.
    for (const [name, base] of [['tab1', gateway.base], ['tab2', `http://127.0.0.1:${proxy.port}`]]) {
      const page = await recorder.open(name, alice, 'about:blank');
      page.on('websocket', (ws) => ws.on('framereceived', ({ payload }) => {
        try {
          const frame = JSON.parse(payload);
          if (typeof frame.seq === 'number') frames[name].push(frame);
        } catch { /* not JSON */ }
      }));
      await page.goto(`${base}/?uid=${UID}`);
    }
    for (const page of Object.values(tabs)) await page.locator('#conn-status[data-status="live"]').waitFor();
    const seeded = await converged('after the seed');
    assert.equal(Object.keys(seeded.products).length, 4);
  });

  step(`${ROUNDS} rounds of concurrent writers (a delete among updates, creates, a reload of tab 2)`, async () => {
    const started = Date.now();
    const waits = [];
    let reload = null;
    for (let r = 1; r <= ROUNDS; r += 1) {
      const writes = [];
      for (let w = 0; w < HOT_WRITERS; w += 1) writes.push(patchProduct('hot', { name: `Sourdough r${r} w${w}` }));
      writes.push(
        patchProduct('misc', { price: r * 10 + 1 }),
        patchProduct('misc', { price: r * 10 + 2 }),
        patchProduct('misc', { description: r % 2 ? null : `Dark r${r}` }),
        patchProduct('misc', { description: `Rye r${r}` }),
        patchProduct('misc', { tags: ['bread', `r${r}`] }),
        patchProduct('other', { name: `Espresso r${r}`, price: r }),
        patchProduct('other', { price: r + 0.5 }),
        must('PATCH', `/users/${UID}`, { displayName: `Alice r${r} a` }),
        must('PATCH', `/users/${UID}`, { displayName: r === 7 ? null : `Alice r${r} b` }),
      );
      if (r === 3 || r === 4) {
        // Round 3 deletes it while six updates of it are in flight; round 4's updates come late.
        const n = r === 3 ? 6 : 2;
        for (let w = 0; w < n; w += 1) {
          writes.push(patchProduct('doomed', { name: `Baguette r${r} w${w}`, price: w }, r === 3 ? [200, 404] : [404]));
          if (r === 3 && w === 2) writes.push(must('DELETE', `/products/${ids.b0}/${ids.doomed}`));
        }
      }
      if (r === 2 || r === 5) {
        // A create, then at once updates of the new product: their frames may reach a tab
        // before the create's (the client holds them out of sight until it comes).
        writes.push(must('POST', `/products/${ids.b1}`, { name: `New r${r}`, price: 1 }).then(async (p) => {
          created.push(p.id);
          await Promise.all([0, 1, 2, 3].map((w) =>
            must('PATCH', `/products/update/${ids.b1}/${p.id}`, w % 2 ? { name: `New r${r} w${w}` } : { price: w, caption: `c${w}` })));
        }));
      }
      if (r === 4) {
        writes.push(must('POST', '/businesses', { name: 'Night Market', description: 'late' }).then(async (b) => {
          const p = await must('POST', `/products/${b.id}`, { name: 'Dumplings', price: 8 });
          created.push(p.id);
          await Promise.all([
            must('PATCH', `/products/update/${b.id}/${p.id}`, { name: 'Pork dumplings' }),
            must('PATCH', `/products/update/${b.id}/${p.id}`, { price: 9 }),
          ]);
        }));
      }
      if (r === 6) reload = tabs.tab2.reload(); // bootstraps again while writes are in flight
      const results = await Promise.allSettled(writes);
      const failed = results.filter((x) => x.status === 'rejected').map((x) => x.reason.message);
      assert.deepEqual(failed, [], `round ${r}: every request answered as expected`);
      if (reload) {
        await reload;
        reload = null;
        await tabs.tab2.locator('#conn-status[data-status="live"]').waitFor();
      }
      // Every answer is in: both tabs must now hold what Firestore holds.
      const waited = Date.now();
      await converged(`after round ${r}`);
      waits.push(Date.now() - waited);
    }
    log(`${requests} requests in ${Date.now() - started} ms (${ROUNDS} rounds, ${HOT_WRITERS} renames of one product at a time); ` +
      `the tabs matched Firestore ${waits.join(', ')} ms after each round's last answer`);
    for (const [name, list] of Object.entries(frames)) {
      log(`${name}: ${list.length} data frames; ${staleLast[name]} times a document's last frame of a round was not its newest`);
    }
    log(`the proxy held tab 2's ${proxy.stats.frames} data frames up to ${SHUFFLE_MS} ms each; ${proxy.stats.overtaken} were overtaken by a later one`);
    assert.ok(proxy.stats.overtaken > 0, 'the proxy reordered some of tab 2\'s data frames (else this test shows nothing about order)');
  });

  step('the end state is what the writers made; both pages show it; no uncaught error', async () => {
    const want = await converged('at the end');
    assert.match(want.products[ids.hot].name, new RegExp(`^Sourdough r${ROUNDS} w\\d$`));
    assert.equal(want.products[ids.doomed], undefined, 'the deleted product is gone');
    for (const id of created) assert.ok(want.products[id], `created product ${id} is there`);
    assert.equal(Object.keys(want.products).length, 3 + created.length);
    assert.equal(Object.keys(want.businesses).length, 3);
    assert.match(want.user.displayName, /^Alice r8 [ab]$/);
    assert.match(want.products[ids.hot].version, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/, 'versions are fixed-width updateTimes');
    for (const [name, page] of Object.entries(tabs)) {
      await eventually(`${name} shows every product with its Firestore name`, async () => {
        const shown = await page.locator('[data-product-id]').evaluateAll((cards) =>
          Object.fromEntries(cards.map((c) => [c.dataset.productId, c.querySelector('.product-name').textContent])));
        assert.deepEqual(shown, Object.fromEntries(Object.values(want.products).map((p) => [p.id, p.name])));
      });
      await (await use(page)).screenshot({ path: path.join(tmp, `${name}-end.png`), fullPage: true });
    }
    assert.deepEqual(pageErrors, []);
  });
});
