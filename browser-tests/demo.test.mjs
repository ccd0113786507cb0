// End-to-end test of the local demo page (issue 3) in headless Debian chromium.
//
// Starts `local-gateway --memory` on a free port, opens the demo page in three tabs (alice,
// alice, bob) and checks through the page's DOM hooks (docs/client.md) that an edit in tab 1
// reaches tab 2 and never tab 3, and that tab 2 survives a dropped connection: the indicator
// leaves `live`, comes back, and the edit made meanwhile arrives through the resume.
//
// Tab 2 loads the page through a small TCP proxy in this process, and the connection is
// dropped by resetting that proxy's sockets (and refusing new ones until it is restored).
// Chromium's offline emulation (Playwright's context.setOffline, CDP
// Network.emulateNetworkConditions) does not close a WebSocket that is already open, so it
// cannot drop the connection; a reset TCP connection is what a real network failure looks like.
//
// Run: cargo build -p local-gateway && npm ci --prefix browser-tests && node --test browser-tests/
// Env: LOCAL_GATEWAY_BIN (default <repo>/target/debug/local-gateway), CHROMIUM_BIN
// (default /usr/bin/chromium). Screenshots and the gateway log stay in a temp dir, logged at the end.

import { after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  CONTEXT_OPTIONS, WAIT_MS, eventually, launchBrowser, log, makeTmp, scenario, startCuttableProxy, startGateway, tabRecorder, use,
} from './helpers.mjs';

const RECOVER_MS = 20_000; // the client's reconnect backoff doubles while the link is down

const BUSINESS = 'Corner Bakery';
const PRODUCT = 'Sourdough';
const RENAMED = 'Sourdough loaf';

const tmp = makeTmp();

// ---------------------------------------------------------------- the scenario

describe('local demo page in headless chromium', { concurrency: 1, timeout: 120_000 }, () => {
  let gateway;
  let proxy;
  let browser;
  const recorder = tabRecorder(tmp);
  const { tabs, pageErrors } = recorder; // tab1, tab2 (alice; tab2 through the proxy), tab3 (bob)
  let businessId;
  let productId;
  const { step, state } = scenario();

  const card = (page, id = productId) => page.locator(`[data-product-id="${id}"]`);
  const status = (page) => page.locator('#conn-status').getAttribute('data-status');
  const text = async (locator) => ((await locator.textContent({ timeout: WAIT_MS })) || '').trim();

  step('start the gateway and chromium; open tabs 1 and 2 as alice, tab 3 as bob', async () => {
    gateway = await startGateway(tmp);
    proxy = await startCuttableProxy(gateway.port);
    log(`gateway ${gateway.base} (log ${gateway.logFile}); tab 2 goes through the proxy on port ${proxy.port}`);
    browser = await launchBrowser();
    const contextOptions = CONTEXT_OPTIONS;
    // Alice's two tabs share a browser context (one window's storage); bob has his own.
    const alice = await browser.newContext(contextOptions);
    const bob = await browser.newContext(contextOptions);
    await recorder.open('tab1', alice, `${gateway.base}/?uid=alice`);
    await recorder.open('tab2', alice, `http://127.0.0.1:${proxy.port}/?uid=alice`);
    await recorder.open('tab3', bob, `${gateway.base}/?uid=bob`);
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

  step('every tab signs in from ?uid= and goes live', async () => {
    for (const [name, uid] of [['tab1', 'alice'], ['tab2', 'alice'], ['tab3', 'bob']]) {
      const page = tabs[name];
      await page.locator('#conn-status[data-status="live"]').waitFor();
      assert.equal(await page.locator('body').getAttribute('data-uid'), uid, `${name} is signed in as ${uid}`);
      assert.equal(await text(page.locator('#whoami-uid')), uid);
      assert.equal(await text(page.locator('#conn-status .conn-label')), 'live');
      await page.locator('#empty-state').waitFor({ state: 'visible' });
    }
  });

  step('a business and a product created in tab 1 appear in tab 2, not in tab 3', async () => {
    const { tab1, tab2, tab3 } = tabs;
    await use(tab1);
    await tab1.locator('#business-name').fill(BUSINESS);
    await tab1.locator('#business-category').fill('bakery');
    await tab1.locator('#business-description').fill('Bread since 1990');
    await tab1.locator('#create-business').click();
    const section = tab1.locator('#businesses > [data-business-id]', {
      has: tab1.locator('.business-name', { hasText: BUSINESS }),
    });
    await section.waitFor();
    businessId = await section.getAttribute('data-business-id');
    assert.ok(businessId, 'the business section has an id');
    await tab1.locator('#empty-state').waitFor({ state: 'hidden' });

    const form = section.locator('.product-form');
    await form.locator('input[name="name"]').fill(PRODUCT);
    await form.locator('input[name="price"]').fill('6.5');
    await form.locator('select[name="currency"]').selectOption('USD');
    await form.locator('input[name="description"]').fill('Naturally leavened');
    await form.locator('[data-action="create-product"]').click();
    const newCard = section.locator('[data-product-id]', { has: tab1.locator('.product-name', { hasText: PRODUCT }) });
    await newCard.waitFor();
    productId = await newCard.getAttribute('data-product-id');
    assert.ok(productId, 'the product card has an id');
    assert.equal(await newCard.getAttribute('data-business-id'), businessId);
    assert.match(await text(newCard.locator('.product-price')), /6\.50/);
    await eventually('the create form is cleared', async () => {
      assert.equal(await form.locator('input[name="name"]').inputValue(), '');
    });
    assert.equal(await form.locator('.form-message').isVisible(), false, 'no error under the product form');

    const section2 = tab2.locator(`#businesses > [data-business-id="${businessId}"]`);
    await section2.waitFor();
    assert.equal(await text(section2.locator('.business-name')), BUSINESS);
    await eventually('tab 2 shows the product', async () => {
      assert.equal(await text(card(tab2).locator('.product-name')), PRODUCT);
      assert.match(await text(card(tab2).locator('.product-price')), /6\.50/);
      assert.equal(await text(card(tab2).locator('.product-description')), 'Naturally leavened');
    });

    assert.equal(await tab3.locator('#businesses > *').count(), 0, 'bob sees no business');
    assert.equal(await tab3.locator('[data-product-id]').count(), 0, 'bob sees no product');
    assert.equal(await tab3.locator('#event-log li[data-seq]').count(), 0, 'bob got no data event');
    assert.ok(await tab3.locator('#empty-state').isVisible(), "bob's page still says he has no business");
  });

  step('an inline edit in tab 1 shows in tab 2 within seconds; tab 3 has no such product', async () => {
    const { tab1, tab2, tab3 } = tabs;
    const card1 = card(await use(tab1));
    await card1.locator('[data-action="edit"]').click();
    const edit = card1.locator('.product-edit');
    await edit.waitFor({ state: 'visible' });
    assert.equal(await edit.locator('input[name="name"]').inputValue(), PRODUCT, 'the edit form starts from the current name');
    await edit.locator('input[name="name"]').fill(RENAMED);
    const started = Date.now();
    await edit.locator('[data-action="save"]').click();
    await edit.waitFor({ state: 'hidden' });
    await eventually('tab 1 shows the new name', async () => {
      assert.equal(await text(card1.locator('.product-name')), RENAMED);
    });
    const inTab1 = Date.now() - started;
    await eventually('tab 2 shows the new name', async () => {
      assert.equal(await text(card(tab2).locator('.product-name')), RENAMED);
    }, 5_000);
    log(`the rename reached tab 1 ${inTab1} ms and tab 2 ${Date.now() - started} ms after Save`);
    assert.equal(await card1.locator('.product-message').isVisible(), false, 'no error in the card');

    assert.equal(await tab3.locator(`[data-product-id="${productId}"]`).count(), 0, 'tab 3 has no such product');
    assert.equal(await tab3.locator('[data-product-id]').count(), 0);
    assert.equal(await tab3.getByText(RENAMED).count(), 0, 'the new name appears nowhere in tab 3');
    assert.equal(await tab3.locator('#event-log li[data-seq]').count(), 0, 'bob got no data event');
    assert.equal(await status(tab3), 'live');
  });

  step('a dropped connection shows in tab 2 and recovers; the edit made meanwhile arrives', async () => {
    const { tab1, tab2 } = tabs;
    // Record every value the indicator takes from now on.
    await tab2.evaluate(() => {
      const el = document.querySelector('#conn-status');
      window.__statusHistory = [el.dataset.status];
      new MutationObserver(() => window.__statusHistory.push(el.dataset.status))
        .observe(el, { attributes: true, attributeFilter: ['data-status'] });
    });
    assert.ok(proxy.open > 0, "tab 2's connections go through the proxy");
    proxy.cut();
    await eventually('tab 2 leaves live', async () => {
      assert.notEqual(await status(tab2), 'live');
    });
    await eventually('tab 2 shows offline', async () => {
      const history = await tab2.evaluate(() => window.__statusHistory);
      assert.ok(history.includes('offline'), `indicator history ${JSON.stringify(history)}`);
    });
    // Let it try to reconnect and be refused at least once, as over a dead network.
    await eventually('tab 2 tries to reconnect and is refused', async () => {
      const history = await tab2.evaluate(() => window.__statusHistory);
      assert.ok(history.filter((s) => s === 'offline').length >= 2, `indicator history ${JSON.stringify(history)}`);
    });
    assert.equal(await status(tab1), 'live', 'tab 1 is unaffected');

    // While tab 2 is cut off, tab 1 edits the price.
    const card1 = card(await use(tab1));
    await card1.locator('[data-action="edit"]').click();
    const edit = card1.locator('.product-edit');
    await edit.waitFor({ state: 'visible' });
    await edit.locator('input[name="price"]').fill('7.25');
    await edit.locator('[data-action="save"]').click();
    await edit.waitFor({ state: 'hidden' });
    await eventually('tab 1 shows the new price', async () => {
      assert.match(await text(card1.locator('.product-price')), /7\.25/);
    });
    const seq = await tab1.locator('#event-log li[data-event="product:updated"]').first().getAttribute('data-seq');
    assert.ok(seq, 'tab 1 logged the update with a seq');
    assert.match(await text(card(tab2).locator('.product-price')), /6\.50/, 'tab 2 cannot have it yet');
    assert.notEqual(await status(tab2), 'live');

    proxy.restore();
    const restoredAt = Date.now();
    await tab2.locator('#conn-status[data-status="live"]').waitFor({ timeout: RECOVER_MS });
    log(`tab 2 was live again ${Date.now() - restoredAt} ms after the link came back`);
    await eventually('tab 2 has the price edited while it was offline', async () => {
      assert.match(await text(card(tab2).locator('.product-price')), /7\.25/);
    });
    await tab2.locator(`#event-log li[data-event="product:updated"][data-seq="${seq}"]`).waitFor({ state: 'attached' });
    assert.equal(await text(card(tab2).locator('.product-name')), RENAMED);
    const history = await tab2.evaluate(() => window.__statusHistory);
    assert.equal(history[0], 'live');
    assert.ok(history.includes('offline'), `indicator history ${JSON.stringify(history)}`);
    assert.equal(history.at(-1), 'live', `indicator history ${JSON.stringify(history)}`);
    assert.equal(await text(tab2.locator('#conn-status .conn-label')), 'live');
    log(`tab 2 indicator went ${history.join(' -> ')}`);
  });

  step('a product deleted in tab 1 leaves tab 2', async () => {
    const { tab1, tab2, tab3 } = tabs;
    const file = path.join(tmp, 'tab1-before-delete.png');
    await tab1.screenshot({ path: file, fullPage: true });
    log(`screenshot of tab 1 before the delete: ${file}`);
    await card(await use(tab1)).locator('[data-action="delete"]').click();
    await card(tab1).waitFor({ state: 'detached' });
    await card(tab2).waitFor({ state: 'detached' });
    for (const page of [tab1, tab2]) {
      const section = page.locator(`#businesses > [data-business-id="${businessId}"]`);
      assert.match(await text(section.locator('.business-meta')), /0 products/);
    }
    assert.equal(await tab3.locator('#event-log li[data-seq]').count(), 0, 'bob got no data event');
    for (const [name, page] of Object.entries(tabs)) assert.equal(await status(page), 'live', `${name} is live`);
  });

  step('no uncaught error in any tab; screenshot of tab 1', async () => {
    const file = path.join(tmp, 'tab1-end.png');
    await tabs.tab1.screenshot({ path: file, fullPage: true });
    log(`screenshot of tab 1 at the end: ${file}`);
    for (const name of ['tab2', 'tab3']) await tabs[name].screenshot({ path: path.join(tmp, `${name}-end.png`), fullPage: true });
    assert.deepEqual(pageErrors, []);
  });
});
