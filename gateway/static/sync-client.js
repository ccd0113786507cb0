/**
 * sync-client.js: the browser side of the real-time sync backend (SPEC sections 4 and 5).
 *
 * Bootstrap once with `POST /auth/login` ({user, businesses, products, seq}), then keep the
 * state current from pushed WebSocket frames only: no polling. Frames are applied in `seq`
 * order; duplicates are dropped, a gap asks the server to `resume`, `resync:required`
 * bootstraps again. The socket reconnects with exponential backoff and jitter, pings every
 * 5 minutes (API Gateway drops a socket idle for 10), and refreshes its token in place
 * before it expires. No dependencies; WebSocket, fetch and the clock can be injected.
 *
 *   import { createSyncClient } from './sync-client.js';
 *   const client = createSyncClient({ baseUrl, getToken, onEvent: render, onStatus });
 *   render(await client.login());
 *   await client.connect();
 *
 * The state is `{ user, businesses: {id: business}, products: {id: product} }`; every change
 * makes new objects (the old state is never mutated), so `client.state` can be compared by
 * reference. See docs/client.md.
 */

/** Frames that carry no `seq` and are not data. */
export const CONTROL_EVENTS = ['pong', 'resume:done', 'resync:required', 'auth:expiring', 'auth:ok', 'error'];

const byId = (items) =>
  Array.isArray(items) ? Object.fromEntries(items.map((item) => [item.id, item])) : { ...(items || {}) };

/** State from a login response (arrays or objects keyed by id are both accepted). */
export function snapshotState({ user = null, businesses, products } = {}) {
  return { user, businesses: byId(businesses), products: byId(products) };
}

/** Shallow merge where `null` clears a field (the backend sends cleared fields as null). */
function merge(base, patch) {
  const out = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = value;
  }
  return out;
}

const without = (obj, key) => {
  const { [key]: _gone, ...rest } = obj;
  return rest;
};

/**
 * Pure reducer: the state after one event frame. Unknown events and `truncated` notices
 * (which only say "refetch this") return the state unchanged.
 */
export function applyEvent(state, frame) {
  const d = frame && frame.data;
  if (!d || typeof d !== 'object' || d.truncated) return state;
  switch (frame.event) {
    case 'business:created':
    case 'business:updated':
      if (!d.id) return state;
      return { ...state, businesses: { ...state.businesses, [d.id]: merge(state.businesses[d.id] || {}, d) } };
    case 'business:deleted': {
      if (!d.id) return state;
      const products = Object.fromEntries(Object.entries(state.products).filter(([, p]) => p.businessId !== d.id));
      return { ...state, businesses: without(state.businesses, d.id), products };
    }
    case 'product:created':
    case 'product:updated':
      if (!d.id) return state;
      return { ...state, products: { ...state.products, [d.id]: merge(state.products[d.id] || {}, d) } };
    case 'product:deleted':
      return d.id in state.products ? { ...state, products: without(state.products, d.id) } : state;
    case 'user:updated':
      return { ...state, user: merge(state.user || {}, d) };
    default:
      return state;
  }
}

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
 * @param {(frame, state) => void} [o.onEvent]   after each data frame is applied
 * @param {(status: 'connecting'|'live'|'offline') => void} [o.onStatus]
 * @param {(state) => void} [o.onResync]  after a fresh bootstrap replaced the state
 * @param {(frame) => void} [o.onFrame]   every frame received, control frames included
 * @param {(error) => void} [o.onError]
 */
export function createSyncClient(o) {
  const {
    getToken, wsUrl, tokenIn = 'query',
    onEvent = noop, onStatus = noop, onResync = noop, onFrame = noop, onError = noop,
    pingIntervalMs = 5 * 60_000, backoffInitialMs = 500, backoffMaxMs = 15_000, refreshBeforeMs = 60_000,
  } = o;
  const baseUrl = (o.baseUrl ?? globalThis.location?.origin ?? '').replace(/\/$/, '');
  const WS = o.WebSocket || globalThis.WebSocket;
  const doFetch = o.fetch || ((...args) => globalThis.fetch(...args));
  const clock = {
    setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (t) => clearTimeout(t),
    now: () => Date.now(), random: Math.random, ...o.clock,
  };

  let state = snapshotState();
  let lastSeq = null; // null until the first login
  let status = 'offline';
  let ws = null;
  let started = false; // connect() called and not closed since
  let attempt = 0; // reconnect attempts since the last healthy resume
  let forceToken = false; // the next token must be fresh (the last one was refused)
  let token = null;
  let tokenExp = null; // ms
  const pending = new Map(); // seq -> frame received ahead of a gap
  let resumeInFlight = false;
  let resumeFrom = 0;
  let stalls = 0; // resumes in a row that brought nothing while the server was ahead
  let resyncing = false;
  let awaitingPong = false;
  const timers = {};

  const setStatus = (s) => { if (s !== status) { status = s; onStatus(s); } };
  const clearTimer = (name) => { if (timers[name] != null) clock.clearTimeout(timers[name]); timers[name] = null; };
  const send = (msg) => { if (ws && ws.readyState === OPEN) { ws.send(JSON.stringify(msg)); return true; } return false; };

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

  /** `POST /auth/login`: replaces the state with the snapshot and remembers its seq. */
  async function login() {
    const snap = await request('POST', '/auth/login', {});
    state = snapshotState(snap);
    lastSeq = Number(snap.seq) || 0;
    drain();
    return state;
  }

  /** Bootstraps again (the server no longer has the events we missed), then catches up. */
  async function resync() {
    if (resyncing) return;
    resyncing = true;
    setStatus('connecting');
    try {
      await login();
      onResync(state);
      resumeInFlight = false;
      requestResume(); // closes the gap between the snapshot and the socket
    } catch (err) {
      onError(err);
      drop(); // the reconnect resumes, and is told to resync again if still needed
    } finally {
      resyncing = false;
    }
  }

  function apply(frame) {
    state = applyEvent(state, frame);
    onEvent(frame, state);
    if (frame.data && frame.data.truncated) refetch(frame.data);
  }

  /** A frame too big for the socket arrived as `{id, businessId, truncated}`: read it over REST. */
  async function refetch({ id, businessId }) {
    try {
      if (!businessId) return resync();
      const list = await request('GET', `/products/${encodeURIComponent(businessId)}`);
      const fresh = (Array.isArray(list) ? list : list.products || []).find((p) => p.id === id);
      const products = fresh ? { ...state.products, [id]: fresh } : without(state.products, id);
      state = { ...state, products };
      onEvent({ event: fresh ? 'product:updated' : 'product:deleted', data: fresh || { id, businessId }, refetched: true }, state);
    } catch (err) {
      onError(err);
    }
  }

  /** Applies every buffered frame that is next in line; forgets those already applied. */
  function drain() {
    if (lastSeq === null) return;
    while (pending.has(lastSeq + 1)) {
      const frame = pending.get(lastSeq + 1);
      pending.delete(lastSeq + 1);
      lastSeq = frame.seq;
      apply(frame);
    }
    for (const seq of pending.keys()) if (seq <= lastSeq) pending.delete(seq);
  }

  function requestResume() {
    if (resumeInFlight || lastSeq === null) return;
    if (send({ action: 'resume', since: lastSeq })) {
      resumeInFlight = true;
      resumeFrom = lastSeq;
    }
  }

  function onResumeDone(head) {
    resumeInFlight = false;
    if (resyncing) return;
    drain();
    if (typeof head === 'number' && head < lastSeq) return resync(); // the server's history restarted
    const behind = pending.size > 0 || (typeof head === 'number' && head > lastSeq);
    if (!behind) {
      stalls = 0;
      attempt = 0;
      return setStatus('live');
    }
    stalls = lastSeq > resumeFrom ? 0 : stalls + 1;
    if (stalls >= 3) resync();
    else requestResume();
  }

  function onMessage(raw) {
    let frame;
    try { frame = JSON.parse(raw); } catch { return; }
    if (!frame || typeof frame !== 'object') return;
    onFrame(frame);
    if (typeof frame.seq === 'number') {
      if (lastSeq !== null && frame.seq <= lastSeq) return; // duplicate
      pending.set(frame.seq, frame);
      if (resyncing || lastSeq === null) return;
      drain();
      if (pending.size) requestResume(); // gap: seq > lastSeq + 1
      return;
    }
    const data = frame.data || {};
    switch (frame.event) {
      case 'pong': awaitingPong = false; break;
      case 'resume:done': onResumeDone(data.seq); break;
      case 'resync:required': resumeInFlight = false; resync(); break;
      case 'auth:expiring': refreshToken(); break;
      case 'auth:ok': break;
      case 'error':
        onError(new ApiError(0, data.code || 'error', data.message || 'server error'));
        if (data.code === 'unauthorized') forceToken = true;
        if (resumeInFlight) { resumeInFlight = false; drop(); } // the resume failed: reconnect and retry
        break;
      default: apply(frame); // an event the server could not record: no seq, apply as is
    }
  }

  function schedulePing() {
    clearTimer('ping');
    timers.ping = clock.setTimeout(() => {
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
    resumeInFlight = false;
    clearTimer('ping');
    if (sock) { sock.onopen = sock.onmessage = sock.onclose = sock.onerror = null; try { sock.close(); } catch { /* already closed */ } }
    if (!started) return;
    setStatus('offline');
    const base = Math.min(backoffMaxMs, backoffInitialMs * 2 ** attempt++);
    clearTimer('reconnect');
    timers.reconnect = clock.setTimeout(open, base / 2 + (clock.random() * base) / 2);
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
      resumeInFlight = false;
      stalls = 0;
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
      if (lastSeq === null) await login();
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
    drop();
    pending.clear();
    setStatus('offline');
  }

  return {
    login, connect, close, request, resync,
    get state() { return state; },
    get lastSeq() { return lastSeq; },
    get status() { return status; },
  };
}
