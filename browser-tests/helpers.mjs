// Helpers shared by the browser tests (demo.test.mjs, generate.test.mjs, convergence.test.mjs):
// the gateway, the browser, a cuttable TCP proxy, condition-based waits. Not a test file itself
// (node --test only runs *.test.mjs and the like).

import { spawn } from 'node:child_process';
import { accessSync, constants, createWriteStream, mkdtempSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('..', import.meta.url));
export const GATEWAY_BIN = process.env.LOCAL_GATEWAY_BIN || path.join(REPO, 'target', 'debug', 'local-gateway');
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
export const WAIT_MS = 10_000; // every wait on a condition

/** A fresh artifacts dir, `adsync-browser-*` under the OS temp dir. */
export const makeTmp = () => mkdtempSync(path.join(os.tmpdir(), 'adsync-browser-'));

export const log = (...args) => console.log('[browser-test]', ...args);

export function mustBeExecutable(file, what, hint) {
  try {
    accessSync(file, constants.X_OK);
  } catch {
    throw new Error(`${what} is not at ${file} (or not executable): ${hint}`);
  }
}

/** A port nobody listens on right now (the gateway binds it a moment later). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` (which throws, typically an assertion, until the condition holds) every 100 ms
 * for up to `timeout` ms; rethrows its last error, prefixed with `what`, if it never holds.
 */
export async function eventually(what, check, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) {
        err.message = `${what} (not within ${timeout} ms): ${err.message}`;
        throw err;
      }
    }
    await sleep(100);
  }
}

/**
 * Starts the gateway in memory on a free port, with `args` added to its command line; its log
 * goes to `<tmp>/gateway.log`. Resolves once GET / answers.
 */
export async function startGateway(tmp, args = []) {
  mustBeExecutable(GATEWAY_BIN, 'The local-gateway binary',
    'build it first with `cargo build -p local-gateway` (or set LOCAL_GATEWAY_BIN to it)');
  const port = await freePort();
  const logFile = path.join(tmp, 'gateway.log');
  const out = createWriteStream(logFile);
  // The embedded stores, unless `args` name others (convergence.test.mjs passes
  // --firestore-emulator and --dynamodb-endpoint), and only the AI settings given in `args`: drop
  // the variables that would point it elsewhere (scripts/test exports FIRESTORE_EMULATOR_HOST
  // and DYNAMODB_ENDPOINT for the Rust suites; an AI_API_KEY would select a real provider).
  const env = { ...process.env };
  for (const key of ['FIRESTORE_EMULATOR_HOST', 'DYNAMODB_ENDPOINT', 'HOST', 'PORT', 'DATA_DIR']) delete env[key];
  for (const key of Object.keys(env)) if (key.startsWith('AI_')) delete env[key];
  const child = spawn(GATEWAY_BIN, ['--memory', '--host', '127.0.0.1', '--port', String(port), ...args], {
    env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  const base = `http://127.0.0.1:${port}`;
  const gateway = {
    base, port, logFile, child,
    log: () => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } },
    async stop() {
      if (exited) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await gone;
      clearTimeout(timer);
    },
  };
  // Never leave it running, even if this process is torn down without `after`.
  process.once('exit', () => { if (!exited) child.kill('SIGKILL'); });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited) {
      throw new Error(`local-gateway exited (${JSON.stringify(exited)}) before answering; its log:\n${gateway.log()}`);
    }
    try {
      const res = await fetch(`${base}/`);
      if (res.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      await gateway.stop();
      throw new Error(`local-gateway did not answer GET ${base}/ within 20 s; its log:\n${gateway.log()}`);
    }
    await sleep(100);
  }
  return gateway;
}

/**
 * A TCP proxy to 127.0.0.1:targetPort whose link can be cut: `cut()` resets every proxied
 * connection and refuses new ones (as a dead network would) until `restore()`.
 */
export async function startCuttableProxy(targetPort) {
  const pairs = new Set();
  let down = false;
  const server = net.createServer((client) => {
    if (down) return client.resetAndDestroy();
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const sock of [client, upstream]) {
      sock.on('error', end);
      sock.on('close', end);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: server.address().port,
    get open() { return pairs.size; },
    cut() {
      down = true;
      for (const { client, upstream } of pairs) {
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      }
      pairs.clear();
    },
    restore() { down = false; },
    close() {
      this.cut();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** playwright-core's `chromium`, after checking that the browser is there. */
export async function loadChromium() {
  mustBeExecutable(CHROMIUM_BIN, "Debian's chromium",
    'install it with `apt-get install -y chromium` (as root; CI\'s .ci/run does), or set CHROMIUM_BIN');
  try {
    return (await import('playwright-core')).chromium;
  } catch (err) {
    throw new Error(`cannot load playwright-core (${err.message}): run \`npm ci --prefix browser-tests\` first`);
  }
}

/** Launches headless chromium (Playwright gives it a fresh temporary profile, removed on close). */
export async function launchBrowser() {
  const chromium = await loadChromium();
  return chromium.launch({ executablePath: CHROMIUM_BIN, headless: true, args: CHROMIUM_ARGS });
}

export const CONTEXT_OPTIONS = { viewport: { width: 1280, height: 900 }, locale: 'en-US', timezoneId: 'UTC' };

/**
 * The steps of one scenario: once a step fails, the later ones are skipped (they build on
 * it) and `state.failed` tells the `after` hook to print the logs.
 */
export function scenario() {
  const state = { failed: false };
  const step = (name, fn) => it(name, async (t) => {
    if (state.failed) return t.skip('an earlier step failed');
    try {
      await fn(t);
    } catch (err) {
      state.failed = true;
      throw err;
    }
  });
  return { step, state };
}

/**
 * Brings a tab to the front before using it, as a person would: a click in a tab that is not
 * in front waited about 2 s (Playwright's actionability checks wait on animation frames, which
 * Chromium holds back in a hidden tab). The other tabs update in the background meanwhile.
 */
export const use = async (page) => { await page.bringToFront(); return page; };

/**
 * The tabs of one scenario: each opened with its uncaught errors collected (`pageErrors`) and
 * its console written to `browser-console.log`; on failure, `close` screenshots every tab and
 * prints the console.
 */
export function tabRecorder(tmp) {
  const tabs = {};
  const pageErrors = [];
  const consoleFile = path.join(tmp, 'browser-console.log');
  const consoleLog = createWriteStream(consoleFile); // what the tabs print (a refused reconnect does)
  return {
    tabs,
    pageErrors,
    async open(name, context, url) {
      const page = await context.newPage();
      page.setDefaultTimeout(WAIT_MS);
      page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
      page.on('console', (msg) => consoleLog.write(`${name} ${msg.type()}: ${msg.text()}\n`));
      await page.goto(url);
      tabs[name] = page;
      return page;
    },
    /** Screenshots of every tab when `failed` (before the browser closes). */
    async screenshotOnFailure(failed) {
      if (!failed) return;
      for (const [name, page] of Object.entries(tabs)) {
        const file = path.join(tmp, `failure-${name}.png`);
        await page.screenshot({ path: file, fullPage: true }).catch(() => {});
        log(`screenshot of ${name} at the failure: ${file}`);
      }
    },
    /** Ends the console log; prints it when `failed`. */
    async close(failed) {
      await new Promise((resolve) => consoleLog.end(resolve));
      if (failed) log(`browser console (${consoleFile}):\n${readFileSync(consoleFile, 'utf8').slice(-4000)}`);
    },
  };
}
