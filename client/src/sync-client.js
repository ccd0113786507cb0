/**
 * sync-client.js: the browser side of the real-time sync backend (docs/api.md, docs/client.md),
 * the main module of the `@adsync/client` package (types in sync-client.d.ts; a Redux Toolkit
 * adapter in redux.js). The local gateway serves this very file to its demo page.
 *
 * Bootstrap once with `POST /auth/login` ({user, businesses, products, seq}, in several
 * answers when large), then keep the state current from pushed WebSocket frames only: no
 * polling. Every data frame is applied as soon as it arrives; convergence comes from versions,
 * not from order: each document and each field carries the Firestore `updateTime` of the write
 * that set it, and a write only wins over an older one (per-field last-writer-wins). Deleted ids are remembered (tombstones); updates of
 * a document not known yet are held out of sight until the document arrives. `seq` is only
 * bookkeeping: a mark below which everything was received, a gap timer, and `resume` to fetch
 * what is missing. The socket reconnects with exponential backoff and jitter, pings every
 * 2 minutes (API Gateway drops a socket idle for 10; the pong also tells the head `seq`), and
 * refreshes its token in place before it expires. No dependencies; WebSocket, fetch and the
 * clock can be injected.
 *
 *   import { createSyncClient } from './sync-client.js';
 *   const client = createSyncClient({ baseUrl, getToken, onEvent: render, onStatus });
 *   render(await client.login());
 *   await client.connect();
 *
 * The state is `{ user, businesses: {id: business}, products: {id: product} }`; every change
 * makes new objects (the old state is never mutated), so `client.state` can be compared by
 * reference. The pure core (`emptyModel`, `snapshotModel`, `applyEvent`, `applyDocument`)
 * works on a model that holds this state plus its metadata, so another store (Redux, ...)
 * can reuse it: every change the client makes to its model is reported to `onChange`, and
 * `applyChange` makes the same change to another model. See docs/client.md.
 */

/** Frames that carry no `seq` and are not data. */
export const CONTROL_EVENTS = ['pong', 'resume:done', 'resume:partial', 'resync:required', 'auth:expiring', 'auth:ok', 'error'];

// ---------------------------------------------------------------------------------------------
// The pure core: versions, tombstones, held partials.
//
// model = {
//   state:    { user: doc | null, businesses: {id: doc}, products: {id: doc} },  // what to render
//   versions: { user: Meta | null, businesses: {id: Meta}, products: {id: Meta} },
//   held:     { user: Entry | null, businesses: {id: Entry}, products: {id: Entry} }, // hidden partials
//   deleted:  { businesses: {id: true}, products: {id: true} },                      // tombstones
// }
// Meta  = { base: version | null, fields: {field: version} }: a field not in `fields` has `base`;
//         every version in `fields` is greater than `base`.
// Entry = { doc, meta }
// A version is a fixed-width RFC 3339 UTC string (string order is time order); null means
// "unknown" (an old server sent no version): such writes are applied unconditionally.
// A doc's own `version` is the greatest version merged into it (its latest known updateTime).

/** Keys of event data and documents that are identity or metadata, never versioned fields. */
const NOT_FIELDS = new Set(['id', 'businessId', 'uid', 'version', 'truncated']);
const IDENTITY = ['id', 'businessId', 'uid'];
const EMPTY_META = Object.freeze({ base: null, fields: Object.freeze({}) });
const hasOwn = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);
const COLLECTIONS = { product: 'products', products: 'products', business: 'businesses', businesses: 'businesses', user: 'user' };

/** Whether a write at version `v` wins over what was written at `current` (null = unknown). */
export function isNewer(v, current) {
  return v == null || current == null || v > current;
}

const fieldVersion = (meta, field) => (hasOwn(meta.fields, field) ? meta.fields[field] : meta.base);

function latestVersion(meta) {
  let best = meta.base;
  for (const v of Object.values(meta.fields)) if (best == null || v > best) best = v;
  return best;
}

function stamp(doc, meta) {
  const v = latestVersion(meta);
  if (v == null) delete doc.version;
  else doc.version = v;
  return doc;
}

const copyMeta = (meta) => ({ base: meta.base, fields: { ...meta.fields } });

/**
 * An entry after a partial write (event data: changed fields, `null` = cleared). A field is set
 * only if the write's version is greater than the field's; equal versions change nothing.
 */
function patchEntry(entry, data) {
  const v = data.version ?? null;
  const doc = entry ? { ...entry.doc } : {};
  const meta = copyMeta(entry ? entry.meta : EMPTY_META);
  for (const key of IDENTITY) if (data[key] != null && doc[key] == null) doc[key] = data[key];
  let changed = !entry;
  for (const [field, value] of Object.entries(data)) {
    if (NOT_FIELDS.has(field) || !isNewer(v, fieldVersion(meta, field))) continue;
    changed = true;
    if (value === null || value === undefined) delete doc[field];
    else doc[field] = value;
    if (v != null) meta.fields[field] = v;
  }
  return changed ? { doc: stamp(doc, meta), meta } : entry;
}

/**
 * An entry after a full document (its version is the version of every field, absent ones
 * included): each field whose version is older takes the document's value (absent = deleted).
 */
function mergeEntry(entry, full) {
  const v = full.version ?? null;
  // Every field is at least as new as the base: a document no newer than the base changes nothing.
  if (entry && v != null && entry.meta.base != null && !(v > entry.meta.base)) return entry;
  const doc = entry ? { ...entry.doc } : {};
  const meta = copyMeta(entry ? entry.meta : EMPTY_META);
  for (const key of IDENTITY) if (full[key] != null && doc[key] == null) doc[key] = full[key];
  for (const field of new Set([...Object.keys(full), ...Object.keys(doc)])) {
    if (NOT_FIELDS.has(field) || !isNewer(v, fieldVersion(meta, field))) continue;
    const value = hasOwn(full, field) ? full[field] : null;
    if (value === null || value === undefined) delete doc[field];
    else doc[field] = value;
  }
  if (v != null && isNewer(v, meta.base)) {
    meta.base = v;
    for (const [field, fv] of Object.entries(meta.fields)) if (!(fv > v)) delete meta.fields[field];
  }
  return { doc: stamp(doc, meta), meta };
}

/** A model with nothing in it. */
export function emptyModel() {
  return {
    state: { user: null, businesses: {}, products: {} },
    versions: { user: null, businesses: {}, products: {} },
    held: { user: null, businesses: {}, products: {} },
    deleted: { businesses: {}, products: {} },
  };
}

function getEntry(model, coll, id) {
  const doc = coll === 'user' ? model.state.user : model.state[coll][id];
  if (!doc) return null;
  const meta = coll === 'user' ? model.versions.user : model.versions[coll][id];
  return { doc, meta: meta || EMPTY_META };
}

const getHeld = (model, coll, id) => (coll === 'user' ? model.held.user : model.held[coll][id]) || null;

const setKey = (map, id, value) => {
  const out = { ...map };
  if (value == null) delete out[id];
  else out[id] = value;
  return out;
};

/** The model with the visible entry `coll`/`id` replaced (null removes it). */
function putEntry(model, coll, id, entry) {
  if (coll === 'user') {
    return {
      ...model,
      state: { ...model.state, user: entry ? entry.doc : null },
      versions: { ...model.versions, user: entry ? entry.meta : null },
    };
  }
  return {
    ...model,
    state: { ...model.state, [coll]: setKey(model.state[coll], id, entry && entry.doc) },
    versions: { ...model.versions, [coll]: setKey(model.versions[coll], id, entry && entry.meta) },
  };
}

function putHeld(model, coll, id, entry) {
  if (coll === 'user') return model.held.user === entry ? model : { ...model, held: { ...model.held, user: entry } };
  if (!entry && !hasOwn(model.held[coll], id)) return model;
  return { ...model, held: { ...model.held, [coll]: setKey(model.held[coll], id, entry) } };
}

const idOf = (coll, data) => (coll === 'user' ? '' : data.id);
const isDeleted = (model, coll, id) => coll !== 'user' && hasOwn(model.deleted[coll], id);

/** A full document: merged into what is known (a held partial becomes visible with it). */
function upsertDocument(model, coll, full) {
  const id = idOf(coll, full);
  if (id == null || (id === '' && coll !== 'user') || isDeleted(model, coll, id)) return model;
  const current = getEntry(model, coll, id);
  if (current) {
    const next = mergeEntry(current, full);
    return next === current ? model : putEntry(model, coll, id, next);
  }
  const held = getHeld(model, coll, id);
  return putEntry(putHeld(model, coll, id, null), coll, id, mergeEntry(held, full));
}

/** A partial write: merged into the document, or held out of sight until the document arrives. */
function patchDocument(model, coll, data) {
  const id = idOf(coll, data);
  if (id == null || (id === '' && coll !== 'user') || isDeleted(model, coll, id)) return model;
  const current = getEntry(model, coll, id);
  if (current) {
    const next = patchEntry(current, data);
    return next === current ? model : putEntry(model, coll, id, next);
  }
  const held = getHeld(model, coll, id);
  const next = patchEntry(held, data);
  return next === held ? model : putHeld(model, coll, id, next);
}

/** Removes a document for good: its id is remembered and anything later about it is ignored. */
function deleteDocument(model, coll, id) {
  if (id == null || id === '') return model;
  let m = model;
  if (getEntry(m, coll, id)) m = putEntry(m, coll, id, null);
  m = putHeld(m, coll, id, null);
  if (!hasOwn(m.deleted[coll], id)) m = { ...m, deleted: { ...m.deleted, [coll]: { ...m.deleted[coll], [id]: true } } };
  return m;
}

/**
 * Pure reducer: the model after one event frame. Deletes are final (tombstones); `*:created`
 * is a full document, `*:updated` a partial one (per-field last-writer-wins by `version`).
 * Unknown events (broadcasts) and `truncated` notices (which only say "refetch this") return
 * the model unchanged. Returns the same model object when nothing changed.
 */
export function applyEvent(model, frame) {
  const d = frame && frame.data;
  if (!d || typeof d !== 'object' || d.truncated) return model;
  switch (frame.event) {
    case 'business:created': return upsertDocument(model, 'businesses', d);
    case 'business:updated': return patchDocument(model, 'businesses', d);
    case 'business:deleted': {
      // Not emitted by the backend today: the business and its products go.
      let m = deleteDocument(model, 'businesses', d.id);
      for (const [pid, p] of [...Object.entries(m.state.products), ...Object.entries(m.held.products).map(([k, e]) => [k, e.doc])]) {
        if (p.businessId === d.id) m = deleteDocument(m, 'products', pid);
      }
      return m;
    }
    case 'product:created': return upsertDocument(model, 'products', d);
    case 'product:updated': return patchDocument(model, 'products', d);
    case 'product:deleted': return deleteDocument(model, 'products', d.id);
    case 'user:updated': return patchDocument(model, 'user', d);
    default: return model;
  }
}

/**
 * Pure: the model after a full document read over REST (a list, a create or update answer, a
 * refetch). `kind` is 'user', 'business' or 'product' (plurals accepted). A tombstoned id is
 * ignored; a held partial of it is merged in (its fields win where their version is greater).
 */
export function applyDocument(model, kind, doc) {
  const coll = COLLECTIONS[kind];
  if (!coll) throw new TypeError(`applyDocument: unknown kind ${kind}`);
  if (!doc || typeof doc !== 'object') return model;
  return upsertDocument(model, coll, doc);
}

const byId = (items) =>
  Array.isArray(items) ? Object.fromEntries(items.filter((i) => i && i.id != null).map((i) => [i.id, i])) : { ...(items || {}) };

/**
 * Pure: the model replaced by a bootstrap snapshot `{user, businesses, products}` (arrays or
 * objects keyed by id). Documents absent from the snapshot go; each document in it is merged
 * with what is known by the full-document rule (fresher fields already applied survive).
 * Tombstones are kept and filter the snapshot; held partials are dropped.
 */
export function snapshotModel(model, snapshot = {}) {
  const prev = model || emptyModel();
  const next = emptyModel();
  next.deleted = prev.deleted;
  for (const coll of ['businesses', 'products']) {
    for (const [id, doc] of Object.entries(byId(snapshot[coll]))) {
      if (!doc || typeof doc !== 'object' || hasOwn(prev.deleted[coll], id)) continue;
      const entry = mergeEntry(getEntry(prev, coll, id), { ...doc, id });
      next.state[coll][id] = entry.doc;
      next.versions[coll][id] = entry.meta;
    }
  }
  if (snapshot.user && typeof snapshot.user === 'object') {
    const entry = mergeEntry(getEntry(prev, 'user', ''), snapshot.user);
    next.state.user = entry.doc;
    next.versions.user = entry.meta;
  }
  return next;
}

/**
 * Pure: the model after one change, as the client reports them to `onChange` (so that another
 * store applying them in order holds what the client holds):
 * `{type: 'snapshot', snapshot}` (a login, every answer joined), `{type: 'event', frame}` (a
 * new data frame; duplicates are not changes) or `{type: 'document', kind, doc}` (a full
 * document read over REST). Anything else returns the model unchanged.
 */
export function applyChange(model, change) {
  switch (change && change.type) {
    case 'snapshot': return snapshotModel(model, change.snapshot);
    case 'event': return applyEvent(model, change.frame);
    case 'document': return applyDocument(model, change.kind, change.doc);
    default: return model;
  }
}

/** The state (no metadata) from a login response. */
export function snapshotState(snapshot) {
  return snapshotModel(emptyModel(), snapshot).state;
}

// ---------------------------------------------------------------------------------------------
// The client.

/** The `exp` claim (unix seconds) of a JWT, or null. */
export function tokenExpiry(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(payload)).exp;
    return typeof exp === 'number' ? exp : null;
  } catch {
    return null;
  }
}

/** An HTTP error from the backend: `code` and `message` from its `{error: {code, message}}`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

const noop = () => {};
const OPEN = 1; // WebSocket.OPEN

/**
 * @param {object} o
 * @param {string} [o.baseUrl]  REST origin, e.g. 'http://127.0.0.1:3000' (default: the page's origin)
 * @param {string} [o.wsUrl]    WebSocket URL (default: baseUrl with ws(s): and '/ws')
 * @param {(opts: {forceRefresh: boolean}) => Promise<string | {token: string, expiresAt?: number}>} o.getToken
 * @param {'query'|'protocol'} [o.tokenIn]  how the socket carries the token (default 'query')
 * @param {(frame, state) => void} [o.onEvent]   after each new data frame is applied
 * @param {(change) => void} [o.onChange]  after each change of the model (see applyChange)
 * @param {(status: 'connecting'|'live'|'offline') => void} [o.onStatus]
 * @param {(state) => void} [o.onResync]  after a fresh bootstrap replaced the state
 * @param {(frame) => void} [o.onFrame]   every frame received, control frames and duplicates included
 * @param {(error) => void} [o.onError]
 * @param {number} [o.pingIntervalMs=120000] [o.gapWaitMs=1000] [o.resumeTimeoutMs=10000]
 * @param {number} [o.backoffInitialMs=500] [o.backoffMaxMs=15000] [o.refreshBeforeMs=60000]
 */
export function createSyncClient(o) {
  const {
    getToken, wsUrl, tokenIn = 'query',
    onEvent = noop, onChange = noop, onStatus = noop, onResync = noop, onFrame = noop, onError = noop,
    pingIntervalMs = 120_000, gapWaitMs = 1_000, resumeTimeoutMs = 10_000,
    backoffInitialMs = 500, backoffMaxMs = 15_000, refreshBeforeMs = 60_000,
  } = o;
  const baseUrl = (o.baseUrl ?? globalThis.location?.origin ?? '').replace(/\/$/, '');
  const WS = o.WebSocket || globalThis.WebSocket;
  const doFetch = o.fetch || ((...args) => globalThis.fetch(...args));
  const clock = {
    setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (t) => clearTimeout(t),
    now: () => Date.now(), random: Math.random, ...o.clock,
  };

  let model = emptyModel();
  let mark = null; // every seq <= mark was received or carries nothing; null until the first login
  const received = new Set(); // seqs > mark received
  let status = 'offline';
  let ws = null;
  let started = false; // connect() called and not closed since
  let attempt = 0; // reconnect attempts since the last resume:done
  let forceToken = false; // the next token must be fresh (the last one was refused)
  let token = null;
  let tokenExp = null; // ms
  let resumeInFlight = false;
  let resumeTimeouts = 0; // resumes in a row that got no answer in time
  let resumeFailures = 0; // resumes in a row answered with `error`
  let resyncing = false;
  let awaitingPong = false;
  const timers = {}; // refresh, ping, reconnect, gap, resumeTimeout, resumeRetry
  const refetchTimers = new Set();

  /** Applies a change to the model and reports it. */
  const commit = (change) => { model = applyChange(model, change); onChange(change); };
  const setStatus = (s) => { if (s !== status) { status = s; onStatus(s); } };
  const clearTimer = (name) => { if (timers[name] != null) clock.clearTimeout(timers[name]); timers[name] = null; };
  const send = (msg) => { if (ws && ws.readyState === OPEN) { ws.send(JSON.stringify(msg)); return true; } return false; };
  const backoff = (n) => {
    const base = Math.min(backoffMaxMs, backoffInitialMs * 2 ** n);
    return base / 2 + (clock.random() * base) / 2;
  };

  async function currentToken(force = false) {
    if (!force && !forceToken && token && tokenExp != null && tokenExp - clock.now() > refreshBeforeMs) return token;
    const got = await getToken({ forceRefresh: force || forceToken });
    token = typeof got === 'string' ? got : got.token;
    const exp = (typeof got === 'object' && got.expiresAt) || tokenExpiry(token);
    tokenExp = exp ? exp * 1000 : null;
    forceToken = false;
    scheduleRefresh();
    return token;
  }

  function scheduleRefresh() {
    clearTimer('refresh');
    if (!started || tokenExp == null) return;
    const delay = Math.max(5_000, tokenExp - refreshBeforeMs - clock.now());
    timers.refresh = clock.setTimeout(refreshToken, delay);
  }

  /** Gets a fresh token and hands it to the open socket (`auth` action). */
  async function refreshToken() {
    try {
      send({ action: 'auth', token: await currentToken(true) });
    } catch (err) {
      onError(err);
      if (started) timers.refresh = clock.setTimeout(refreshToken, 30_000);
    }
  }

  /** An authorized REST call; resolves to the parsed JSON body, rejects with an ApiError. */
  async function request(method, path, body, retried = false) {
    const headers = { Authorization: `Bearer ${await currentToken()}` };
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await doFetch(baseUrl + path, init);
    if (res.status === 401 && !retried) {
      forceToken = true;
      return request(method, path, body, true);
    }
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    if (!res.ok) {
      const e = (json && json.error) || {};
      throw new ApiError(res.status, e.code || 'http_error', e.message || `HTTP ${res.status}`);
    }
    return json;
  }

  /**
   * `POST /auth/login`: the state is replaced by the snapshot (tombstones kept, held partials
   * dropped), the mark becomes the snapshot's seq and the received set is cleared. A large
   * state comes in several answers: each `next` is passed back until there is none.
   */
  async function login() {
    const snap = (await request('POST', '/auth/login', {})) || {};
    const whole = { ...snap, businesses: [...(snap.businesses || [])], products: [...(snap.products || [])] };
    for (let next = snap.next; next; ) {
      const more = (await request('POST', '/auth/login', { after: next })) || {};
      whole.businesses.push(...(more.businesses || []));
      whole.products.push(...(more.products || []));
      next = more.next;
    }
    commit({ type: 'snapshot', snapshot: whole });
    mark = Number(snap && snap.seq) || 0;
    received.clear();
    clearTimer('gap');
    return model.state;
  }

  /** Bootstraps again (the server cannot replay what we miss), then resumes from the new mark. */
  async function resync() {
    if (resyncing) return;
    resyncing = true;
    setStatus('connecting');
    stopResume();
    clearTimer('gap');
    try {
      await login();
    } catch (err) {
      resyncing = false;
      onError(err);
      drop(); // the reconnect resumes, and is told to resync again if still needed
      return;
    }
    resyncing = false;
    onResync(model.state);
    requestResume(); // the events after the snapshot's seq
  }

  /** Applies a new data frame to the model and tells the app. */
  function apply(frame) {
    commit({ type: 'event', frame });
    onEvent(frame, model.state);
    if (frame.data && typeof frame.data === 'object' && frame.data.truncated && /^(product|business|user):/.test(frame.event || '')) refetch(frame);
  }

  /**
   * A frame too big for the socket arrived as `{id, businessId, truncated, version}` (or
   * `{uid, truncated, version}`): read the document over REST and merge it as a full document;
   * a product or business missing from its list is deleted.
   */
  async function refetch(frame, tries = 0) {
    const d = frame.data;
    const event = String(frame.event || '');
    const isUser = event.startsWith('user:') || (d.uid != null && d.id == null);
    const coll = isUser ? 'user' : event.startsWith('business:') ? 'businesses' : 'products';
    if (!isUser && (d.id == null || hasOwn(model.deleted[coll], d.id))) return;
    try {
      if (isUser) {
        const snap = await request('POST', '/auth/login', {});
        if (!snap || !snap.user) return;
        commit({ type: 'document', kind: 'user', doc: snap.user });
        onEvent({ event: 'user:updated', data: model.state.user, refetched: true }, model.state);
        return;
      }
      let list = null;
      if (coll === 'businesses') list = await request('GET', '/businesses');
      else if (d.businessId == null) return resync();
      else {
        try {
          list = await request('GET', `/products/${encodeURIComponent(d.businessId)}`);
        } catch (err) {
          if (!(err instanceof ApiError && err.status === 404)) throw err;
          list = []; // the business is gone, and its products with it
        }
      }
      const items = Array.isArray(list) ? list : (list && list[coll]) || [];
      const fresh = items.find((item) => item && item.id === d.id);
      const noun = coll === 'businesses' ? 'business' : 'product';
      if (fresh) {
        commit({ type: 'document', kind: noun, doc: fresh });
        onEvent({ event: `${noun}:updated`, data: fresh, refetched: true }, model.state);
      } else {
        const gone = { event: `${noun}:deleted`, data: coll === 'products' ? { id: d.id, businessId: d.businessId } : { id: d.id }, refetched: true };
        commit({ type: 'event', frame: gone }); // a tombstone, like a pushed delete
        onEvent(gone, model.state);
      }
    } catch (err) {
      onError(err);
      if (started && tries < 2) {
        const t = clock.setTimeout(() => { refetchTimers.delete(t); refetch(frame, tries + 1); }, backoff(tries + 1));
        refetchTimers.add(t);
      }
    }
  }

  /** Moves the mark up over every seq received just above it. */
  function advance() {
    for (const seq of received) if (seq <= mark) received.delete(seq);
    while (received.delete(mark + 1)) mark += 1;
  }

  const resumeBusy = () => resumeInFlight || timers.resumeRetry != null || resyncing;

  /** A gap above the mark: give the missing frames `gapWaitMs` to arrive, then resume. */
  function checkGap() {
    if (received.size === 0) return clearTimer('gap');
    if (timers.gap != null || resumeBusy()) return;
    timers.gap = clock.setTimeout(() => {
      timers.gap = null;
      if (received.size > 0) requestResume();
    }, gapWaitMs);
  }

  function requestResume() {
    if (resumeInFlight || resyncing || mark === null) return;
    clearTimer('gap');
    clearTimer('resumeRetry');
    if (!send({ action: 'resume', since: mark })) return; // the next open() resumes
    resumeInFlight = true;
    clearTimer('resumeTimeout');
    timers.resumeTimeout = clock.setTimeout(onResumeTimeout, resumeTimeoutMs);
  }

  function stopResume() {
    resumeInFlight = false;
    clearTimer('resumeTimeout');
    clearTimer('resumeRetry');
  }

  function onResumeTimeout() {
    timers.resumeTimeout = null;
    resumeInFlight = false;
    resumeTimeouts += 1;
    if (resumeTimeouts >= 3) {
      resumeTimeouts = 0;
      onError(new Error('resume: no answer, reconnecting'));
      drop();
    } else {
      requestResume();
    }
  }

  /** resume:done, resume:partial or resync:required arrived: the resume is over. */
  function resumeAnswered() {
    resumeInFlight = false;
    clearTimer('resumeTimeout');
    resumeTimeouts = 0;
    resumeFailures = 0;
  }

  function onResumeDone(seq) {
    resumeAnswered();
    if (resyncing || mark === null) return;
    if (typeof seq === 'number' && seq > mark) mark = seq;
    advance();
    attempt = 0;
    setStatus('live');
    checkGap();
  }

  function onResumePartial({ seq, retryAfterMs } = {}) {
    resumeAnswered();
    if (resyncing || mark === null) return;
    if (typeof seq === 'number' && seq > mark) mark = seq;
    advance();
    const wait = Math.max(0, Number(retryAfterMs) || 0);
    clearTimer('resumeRetry');
    if (wait === 0) return requestResume();
    timers.resumeRetry = clock.setTimeout(() => { timers.resumeRetry = null; requestResume(); }, wait);
  }

  /** An `error` frame while a resume is in flight: retry after a backoff, reconnect after 3. */
  function onResumeError(code) {
    stopResume();
    resumeFailures += 1;
    if (code === 'unauthorized' || resumeFailures >= 3) {
      resumeFailures = 0;
      drop(); // a new socket (with a fresh token if it was refused) resumes
      return;
    }
    timers.resumeRetry = clock.setTimeout(() => { timers.resumeRetry = null; requestResume(); }, backoff(resumeFailures - 1));
  }

  function onPong(head) {
    awaitingPong = false;
    // The head check: an event after the mark that never reached us (e.g. just before a quiet period).
    if (typeof head === 'number' && mark !== null && head > mark && !resumeBusy()) requestResume();
  }

  function onData(frame) {
    const { seq } = frame;
    if (mark !== null) {
      if (seq <= mark || received.has(seq)) return; // duplicate
      received.add(seq);
      advance();
    }
    apply(frame);
    if (mark !== null) checkGap();
  }

  function onMessage(raw) {
    let frame;
    try { frame = JSON.parse(raw); } catch { return; }
    if (!frame || typeof frame !== 'object') return;
    onFrame(frame);
    if (typeof frame.seq === 'number') return onData(frame);
    const data = (frame.data && typeof frame.data === 'object') ? frame.data : {};
    switch (frame.event) {
      case 'pong': onPong(data.seq); break;
      case 'resume:done': onResumeDone(data.seq); break;
      case 'resume:partial': onResumePartial(data); break;
      case 'resync:required': resumeAnswered(); resync(); break;
      case 'auth:expiring': refreshToken(); break;
      case 'auth:ok': break;
      case 'error':
        onError(new ApiError(0, data.code || 'error', data.message || 'server error'));
        if (data.code === 'unauthorized') forceToken = true;
        if (resumeInFlight) onResumeError(data.code);
        break;
      default: apply(frame); // an event the server could not record: no seq, apply as is
    }
  }

  function schedulePing() {
    clearTimer('ping');
    timers.ping = clock.setTimeout(() => {
      timers.ping = null;
      if (!ws) return;
      if (awaitingPong) return drop(); // no answer to the last ping: a dead socket
      awaitingPong = send({ action: 'ping' });
      schedulePing();
    }, pingIntervalMs);
  }

  /** Forgets the current socket and, unless closed, reconnects after a backoff. */
  function drop() {
    const sock = ws;
    ws = null;
    stopResume();
    clearTimer('ping');
    clearTimer('gap');
    if (sock) { sock.onopen = sock.onmessage = sock.onclose = sock.onerror = null; try { sock.close(); } catch { /* already closed */ } }
    if (!started) return;
    setStatus('offline');
    clearTimer('reconnect');
    timers.reconnect = clock.setTimeout(open, backoff(attempt++));
  }

  async function open() {
    clearTimer('reconnect');
    if (!started || ws) return;
    setStatus('connecting');
    let t;
    try {
      t = await currentToken();
    } catch (err) {
      onError(err);
      return drop();
    }
    if (!started || ws) return;
    const base = wsUrl || `${baseUrl.replace(/^http/, 'ws')}/ws`;
    const sock = tokenIn === 'protocol'
      ? new WS(base, [t])
      : new WS(`${base}${base.includes('?') ? '&' : '?'}token=${encodeURIComponent(t)}`);
    ws = sock;
    let opened = false;
    sock.onopen = () => {
      opened = true;
      awaitingPong = false;
      stopResume();
      resumeTimeouts = 0;
      resumeFailures = 0;
      requestResume();
      schedulePing();
    };
    sock.onmessage = (ev) => onMessage(ev.data);
    sock.onclose = () => {
      if (!opened) forceToken = true; // refused: maybe the token
      if (ws === sock) drop();
    };
    sock.onerror = noop; // a close event follows
  }

  /** Opens the socket (bootstrapping first if login() was never called). */
  async function connect() {
    if (started) return;
    started = true;
    try {
      if (mark === null) await login();
    } catch (err) {
      started = false;
      throw err;
    }
    scheduleRefresh();
    await open();
  }

  /** Closes the socket and stops every timer; connect() may be called again later. */
  function close() {
    started = false;
    for (const name of Object.keys(timers)) clearTimer(name);
    for (const t of refetchTimers) clock.clearTimeout(t);
    refetchTimers.clear();
    drop();
    received.clear();
    setStatus('offline');
  }

  return {
    login, connect, close, request, resync,
    /** Merges a full document a REST call returned (e.g. a mutation's answer); returns the state. */
    applyDocument(kind, doc) {
      commit({ type: 'document', kind, doc });
      return model.state;
    },
    get state() { return model.state; },
    get model() { return model; },
    get lastSeq() { return mark; },
    get status() { return status; },
  };
}
