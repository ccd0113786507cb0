// The workflow of n8n/generate-ad-image.workflow.json, imported into a real n8n (the version
// n8n/test/package.json pins, N8N_BIN) with `n8n import:credentials` and `n8n import:workflow`,
// activated, and called through its webhooks, against the local gateway (the real backend, in
// memory) and the OpenAI-compatible stand-in of the browser tests. Between n8n and the gateway
// sits a small proxy that makes one user's calls to one route fail, the way a backend in trouble
// answers; the 429s come from the gateway's own per-user budget. Run by scripts/test-n8n.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { FAKE_CAPTION, FAKE_ERROR, startFakeAi } from '../../browser-tests/fake-ai.mjs';
import { REPO, eventually, freePort, makeTmp, mustBeExecutable, sleep, startGateway } from '../../browser-tests/helpers.mjs';

const N8N_BIN = process.env.N8N_BIN ?? '';
const SERVICE_KEY = 'n8n-test-service-key';
/** Broadcasts one user may receive per minute: a run sends three. */
const BROADCASTS_PER_MINUTE = 3;
/** How long one run may take: the failure paths wait out n8n's retries (Mark failed: 5 × 5 s). */
const RUN_MS = 60_000;

let tmp;
let gateway;
let ai;
let proxy;
let n8n;

/**
 * A proxy to the gateway that answers `status` instead, for the calls made on behalf of `uid`
 * whose path matches `route`, `times` times (Infinity: always). Everything else goes through.
 */
async function startFaultProxy(target) {
  const faults = [];
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const uid = req.headers['x-on-behalf-of'];
    const fault = faults.find((f) => f.uid === uid && f.route.test(req.url) && f.times > 0);
    if (fault) {
      fault.times -= 1;
      fault.hits += 1;
      res.writeHead(fault.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'unavailable', message: `injected ${fault.status}` } }));
      return;
    }
    const headers = { ...req.headers };
    delete headers.host;
    const upstream = await fetch(`${target}${req.url}`, {
      method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined,
    });
    res.writeHead(upstream.status, Object.fromEntries(upstream.headers));
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    fail(uid, route, status, times = Infinity) {
      const fault = { uid, route, status, times, hits: 0 };
      faults.push(fault);
      return fault;
    },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

function n8nEnv(port) {
  return {
    PATH: process.env.PATH,
    HOME: tmp,
    N8N_USER_FOLDER: path.join(tmp, 'n8n'),
    N8N_PORT: String(port),
    N8N_LISTEN_ADDRESS: '127.0.0.1',
    N8N_ENCRYPTION_KEY: 'adsync-n8n-test-encryption-key',
    N8N_DIAGNOSTICS_ENABLED: 'false',
    N8N_VERSION_NOTIFICATIONS_ENABLED: 'false',
    N8N_TEMPLATES_ENABLED: 'false',
    N8N_PERSONALIZATION_ENABLED: 'false',
    N8N_RUNNERS_ENABLED: 'false',
    N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS: 'false',
  };
}

/** `n8n <args>` to completion; throws with its output if it fails. */
function n8nCli(port, ...args) {
  const run = spawnSync(N8N_BIN, args, { env: n8nEnv(port), encoding: 'utf8', timeout: 120_000 });
  const output = `${run.stdout}\n${run.stderr}`;
  // n8n reports a failed import with an error line and exit status 0.
  if (run.status !== 0 || /An error occurred/.test(output)) {
    throw new Error(`n8n ${args.join(' ')} failed (${run.status}):\n${output}`);
  }
  return output;
}

/** `n8n start`, resolved once its REST API answers; `rest` calls it as the owner. */
async function startN8n(workflowFile, credentialsFile) {
  const port = await freePort();
  n8nCli(port, 'import:credentials', `--input=${credentialsFile}`);
  n8nCli(port, 'import:workflow', `--input=${workflowFile}`);
  const log = createWriteStream(path.join(tmp, 'n8n.log'));
  const child = spawn(N8N_BIN, ['start'], { env: n8nEnv(port), stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  process.once('exit', () => { if (!exited) child.kill('SIGKILL'); });
  const base = `http://127.0.0.1:${port}`;
  const readLog = () => readFileSync(path.join(tmp, 'n8n.log'), 'utf8');
  await eventually('n8n answers /healthz/readiness', async () => {
    if (exited) throw new Error(`n8n exited ${JSON.stringify(exited)}:\n${readLog()}`);
    const r = await fetch(`${base}/healthz/readiness`);
    assert.equal(r.status, 200);
    // The REST routes come a moment after readiness.
    const setup = await fetch(`${base}/rest/owner/setup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(setup.status, 400);
  }, 120_000);
  let cookie = '';
  const rest = async (method, route, body) => {
    const r = await fetch(`${base}/rest${route}`, {
      method, headers: { 'content-type': 'application/json', cookie }, body: body && JSON.stringify(body),
    });
    const set = r.headers.get('set-cookie');
    if (set) cookie = set.split(';')[0];
    const text = await r.text();
    assert.ok(r.ok, `${method} /rest${route}: ${r.status} ${text}`);
    return JSON.parse(text).data;
  };
  await rest('POST', '/owner/setup', { email: 'owner@example.com', firstName: 'Test', lastName: 'Owner', password: 'Owner-passw0rd' });
  return {
    base, child, rest, readLog,
    async stop() {
      if (exited) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    },
  };
}

before(async () => {
  assert.ok(N8N_BIN, 'N8N_BIN must name the n8n binary: run this test with scripts/test-n8n, which installs n8n');
  mustBeExecutable(N8N_BIN, 'n8n', 'run scripts/test-n8n, which installs the version n8n/test/package.json pins');
  tmp = makeTmp();
  process.env.SERVICE_KEY = SERVICE_KEY;
  gateway = await startGateway(tmp, ['--broadcasts-per-minute', String(BROADCASTS_PER_MINUTE)]);
  ai = await startFakeAi();
  proxy = await startFaultProxy(gateway.base);

  // The workflow as shipped, pointed at the proxy and the stand-in, with its two credentials.
  const workflow = JSON.parse(readFileSync(path.join(REPO, 'n8n', 'generate-ad-image.workflow.json'), 'utf8'));
  const config = workflow.nodes.find((n) => n.name === 'Config').parameters.assignments.assignments;
  config.find((a) => a.name === 'backendUrl').value = proxy.base;
  config.find((a) => a.name === 'aiBaseUrl').value = ai.base;
  const workflowFile = path.join(tmp, 'workflow.json');
  writeFileSync(workflowFile, JSON.stringify(workflow));
  const credentialsFile = path.join(tmp, 'credentials.json');
  const credential = (node) => Object.values(workflow.nodes.find((n) => n.name === node).credentials)[0];
  writeFileSync(credentialsFile, JSON.stringify([
    { ...credential('Mark processing'), type: 'httpHeaderAuth', data: { name: 'X-Service-Key', value: SERVICE_KEY } },
    { ...credential('Write caption'), type: 'httpHeaderAuth', data: { name: 'Authorization', value: 'Bearer sk-stand-in' } },
  ]));
  n8n = await startN8n(workflowFile, credentialsFile);
  // A workflow imported from a file has no saved version yet; saving it makes one to activate.
  const stored = await n8n.rest('GET', `/workflows/${workflow.id}`);
  const saved = await n8n.rest('PATCH', `/workflows/${workflow.id}`, stored);
  await n8n.rest('POST', `/workflows/${workflow.id}/activate`, { versionId: saved.versionId });
});

after(async () => {
  await n8n?.stop();
  await proxy?.close();
  await ai?.close();
  await gateway?.stop();
});

async function api(method, route, { token, uid, body } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (uid) Object.assign(headers, { 'x-service-key': SERVICE_KEY, 'x-on-behalf-of': uid });
  const r = await fetch(`${gateway.base}${route}`, { method, headers, body: body && JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

/** A user with a token, a business and a product. */
async function productOf(uid, name) {
  const { token } = await (await fetch(`${gateway.base}/dev/token?uid=${uid}`)).json();
  const business = await api('POST', '/businesses', { token, body: { name: `${name} shop` } });
  assert.equal(business.status, 201, JSON.stringify(business.body));
  const product = await api('POST', `/products/${business.body.id}`, { token, body: { name, description: `A fine ${name}.` } });
  assert.equal(product.status, 201, JSON.stringify(product.body));
  return { uid, token, businessId: business.body.id, productId: product.body.id };
}

async function generate(p, { webhook = 'generate-ad-image', body } = {}) {
  const r = await fetch(`${n8n.base}/webhook/${webhook}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${p.token}` },
    body: JSON.stringify(body ?? { businessId: p.businessId, productId: p.productId }),
  });
  return { status: r.status, body: await r.json() };
}

/** The product once it is no longer `processing` (or `draft`, before the run marks it). */
async function settled(p) {
  return eventually(`${p.uid}'s product leaves processing`, async () => {
    const list = await api('GET', `/products/${p.businessId}`, { token: p.token });
    const product = list.body.find((x) => x.id === p.productId);
    assert.ok(['enriched', 'failed'].includes(product.status), `still ${product.status}`);
    return product;
  }, RUN_MS);
}

/** The user's recorded events, as `progress:<stage>`, `product:updated:<status or fields>`, or the name. */
async function events(p) {
  const r = await api('GET', '/events?since=0', { token: p.token });
  const managed = ['id', 'businessId', 'updatedAt', 'version'];
  return r.body.events.map(({ event, data }) => {
    if (event === 'ai:progress') return `progress:${data.stage}`;
    if (event !== 'product:updated') return event;
    return `${event}:${data.status ?? Object.keys(data).filter((k) => !managed.includes(k)).join(',')}`;
  });
}

test('a run marks the product processing, then stores the ad and marks it enriched', async () => {
  const p = await productOf('alice', 'Sourdough');
  const r = await generate(p);
  assert.equal(r.status, 202, JSON.stringify(r.body));
  assert.deepEqual(r.body, { accepted: true, businessId: p.businessId, productId: p.productId });
  const product = await settled(p);
  assert.equal(product.status, 'enriched', product.error);
  assert.equal(product.caption, FAKE_CAPTION);
  assert.match(product.generatedImageUrl, /\/media\//);
  assert.equal(product.error, undefined);
  const image = await fetch(product.generatedImageUrl);
  assert.equal(image.headers.get('content-type'), 'image/png');
  assert.deepEqual(Buffer.from(await image.arrayBuffer()), ai.png);
  await eventually('the done progress', async () => assert.deepEqual(await events(p), [
    'business:created', 'product:created', 'product:updated:processing', 'progress:caption',
    'progress:image', 'product:updated:generatedImageUrl', 'product:updated:enriched', 'progress:done',
  ]));
  // The prompt is the product's, as the PATCH answered it: no login bootstrap, no read.
  const chat = ai.posts('chat/completions').at(-1);
  assert.match(chat.body.messages[1].content, /Product: Sourdough\nDescription: A fine Sourdough\./);
  assert.equal(chat.authorization, 'Bearer sk-stand-in');
});

test('the seed\'s enrich-product call runs the same workflow (its userId is not trusted)', async () => {
  const p = await productOf('bob', 'Croissant');
  const r = await generate(p, {
    webhook: 'enrich-product',
    body: { userId: 'mallory', businessId: p.businessId, productId: p.productId, name: 'Croissant', description: 'x' },
  });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const product = await settled(p);
  assert.equal(product.status, 'enriched', product.error);
});

test('an AI error ends in failed, with the provider\'s message', async () => {
  const p = await productOf('carol', 'Baguette');
  ai.failImages(2); // both tries of Generate image
  const r = await generate(p);
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const product = await settled(p);
  assert.equal(product.status, 'failed');
  assert.match(product.error, new RegExp(`^Generate image: ${FAKE_ERROR}`));
  await eventually('the failed progress', async () => assert.deepEqual((await events(p)).slice(-3), [
    'progress:image', 'product:updated:failed', 'progress:failed',
  ]));
});

test('a backend 5xx on the upload ends in failed, after n8n\'s retries', async () => {
  const p = await productOf('dave', 'Brioche');
  const fault = proxy.fail('dave', /\/image\?/, 503);
  const r = await generate(p);
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const product = await settled(p);
  assert.equal(product.status, 'failed');
  assert.match(product.error, /^Store image: injected 503/);
  assert.equal(fault.hits, 3, 'Store image tries three times');
});

test('a backend 429 on a progress broadcast ends in failed', async () => {
  const p = await productOf('erin', 'Bagel');
  // Spend erin's broadcast budget: every progress of the run is then a real 429. The budget
  // counts per clock minute: start early in one, so the run ends before the next.
  const second = new Date().getUTCSeconds();
  if (second > 40) await sleep((61 - second) * 1000);
  for (let i = 0; i < BROADCASTS_PER_MINUTE; i += 1) {
    const b = await api('POST', '/broadcast', { uid: 'erin', body: { event: 'warm-up', data: {} } });
    assert.equal(b.status, 202, JSON.stringify(b.body));
  }
  const r = await generate(p);
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const product = await settled(p);
  assert.equal(product.status, 'failed');
  assert.equal(product.error, 'Progress: caption: HTTP 429 (too many requests)');
  assert.equal(ai.posts('chat/completions').filter((c) => c.body.messages[1].content.includes('Bagel')).length, 0, 'no AI call after the failure');
});

test('a transient 503 is retried and the run still succeeds', async () => {
  const p = await productOf('frank', 'Pretzel');
  const fault = proxy.fail('frank', /^\/broadcast/, 503, 1);
  const r = await generate(p);
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const product = await settled(p);
  assert.equal(product.status, 'enriched', product.error);
  assert.equal(fault.hits, 1);
});

test('a refused token is 401 and a missing product 404; nothing is marked', async () => {
  const p = await productOf('grace', 'Muffin');
  const refused = await generate({ ...p, token: 'not-a-token' });
  assert.equal(refused.status, 401, JSON.stringify(refused.body));
  assert.equal(refused.body.error.code, 'unauthorized');
  const missing = await generate(p, { body: { businessId: p.businessId, productId: 'no-such-product' } });
  assert.equal(missing.status, 404, JSON.stringify(missing.body));
  assert.equal(missing.body.error.code, 'not_found');
  const list = await api('GET', `/products/${p.businessId}`, { token: p.token });
  assert.deepEqual(list.body.map((x) => x.status), ['draft']);
});

test('a backend that fails the processing mark answers 502 and marks the product failed', async () => {
  const p = await productOf('heidi', 'Scone');
  proxy.fail('heidi', /^\/products\/update\//, 503, 3); // the three tries of Mark processing
  const r = await generate(p);
  assert.equal(r.status, 502, JSON.stringify(r.body));
  assert.equal(r.body.error.code, 'bad_gateway');
  const product = await settled(p);
  assert.equal(product.status, 'failed');
  assert.match(product.error, /^Mark processing: injected 503/);
});
