// The local gateway's API pages in headless chromium: /api renders every REST operation of
// /openapi.json (Swagger UI), signs in with ?uid= and runs a route from the page ("Try it
// out"); /api/websocket renders the AsyncAPI document's actions and frames. Every request the
// pages make stays on the gateway (their assets are vendored): the test fails on any other.
//
// Run: cargo build -p local-gateway && npm ci --prefix browser-tests && node --test browser-tests/

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { CONTEXT_OPTIONS, WAIT_MS, launchBrowser, log, makeTmp, startGateway } from './helpers.mjs';

const tmp = makeTmp();

describe('API pages in headless chromium', { concurrency: 1, timeout: 90_000 }, () => {
  let gateway;
  let browser;
  let context;
  const elsewhere = [];
  const pageErrors = [];

  before(async () => {
    gateway = await startGateway(tmp);
    browser = await launchBrowser();
    context = await browser.newContext(CONTEXT_OPTIONS);
    // Offline means: nothing but the gateway is asked for anything.
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(gateway.base) || url.startsWith('data:')) return route.continue();
      elsewhere.push(url);
      return route.abort();
    });
  });

  after(async () => {
    await context?.close();
    await browser?.close();
    await gateway?.stop();
    log(`API pages: artifacts in ${tmp}`);
  });

  it('/api lists every operation of the OpenAPI document and runs one', async () => {
    const doc = await (await fetch(`${gateway.base}/openapi.json`)).json();
    const operations = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0);
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${gateway.base}/api?uid=alice`);
    await page.locator('.opblock').nth(operations - 1).waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('.opblock').count(), operations);
    await page.locator('.information-container .title').getByText(doc.info.title).waitFor({ timeout: WAIT_MS });

    // Signed in as alice by ?uid=: GET /businesses from the page answers 200.
    const block = page.locator('#operations-businesses-listBusinesses');
    await block.locator('.opblock-summary').click();
    await block.getByRole('button', { name: 'Try it out' }).click();
    await block.getByRole('button', { name: 'Execute' }).click();
    try {
      await block.locator('.live-responses-table .response').first().waitFor({ timeout: WAIT_MS });
    } finally {
      await page.screenshot({ path: path.join(tmp, 'api.png'), fullPage: true });
    }
    assert.equal((await block.locator('.live-responses-table .response .response-col_status').first().innerText()).trim(), '200');
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(elsewhere, []);
  });

  it('/api/websocket renders the AsyncAPI document', async () => {
    const doc = await (await fetch(`${gateway.base}/asyncapi.json`)).json();
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${gateway.base}/api/websocket`);
    await page.locator('h1', { hasText: doc.info.title }).waitFor({ state: 'attached', timeout: WAIT_MS });
    // The component shows each message by its name.
    for (const name of ['ping', 'resume', 'product:updated', 'resync:required']) {
      await page.getByText(name, { exact: true }).first().waitFor({ state: 'attached', timeout: WAIT_MS });
    }
    assert.equal(await page.getByText('Error', { exact: true }).count(), 0, 'the component reports no error in the document');
    await page.screenshot({ path: path.join(tmp, 'websocket.png'), fullPage: false });
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(elsewhere, []);
  });
});
