// End-to-end test of AI generation on the local demo page (issue 4) in headless Debian chromium:
// "clicks Generate and sees the spinner, then the image, in a second tab too".
//
// The built-in offline provider answers at once, so `processing` could be too brief to see.
// Instead the gateway talks to a stand-in OpenAI-compatible API in this process
// (fake-ai.mjs: `--ai-base-url http://127.0.0.1:<port>/v1 --ai-api-key test-key`), which holds
// the image answer until the test has seen the spinner in both of alice's tabs, then releases
// it. The stand-in records what it was asked (models, key, prompts) and the test checks that.
// A second generation gets a 500 from the stand-in: both tabs show `failed` and the stored error, once.
// Tab 3 (bob) sees none of it.
//
// Run and env: as demo.test.mjs (see README.md). Screenshots, the gateway log and the browser
// console stay in a temp dir, logged at the end.

import { after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { FAKE_CAPTION, FAKE_ERROR, startFakeAi } from './fake-ai.mjs';
import {
  CONTEXT_OPTIONS, WAIT_MS, eventually, launchBrowser, log, makeTmp, scenario, startGateway, tabRecorder, use,
} from './helpers.mjs';

const BUSINESS = 'Harbour Roasters';
const PRODUCT = 'Midnight Espresso Blend';
const API_KEY = 'test-key';
const IMAGE_MODEL = 'stand-in-image-model';
const CHAT_MODEL = 'stand-in-chat-model';

const tmp = makeTmp();

describe('AI generation on the local demo page in headless chromium', { concurrency: 1, timeout: 120_000 }, () => {
  let ai;
  let gateway;
  let browser;
  const recorder = tabRecorder(tmp);
  const { tabs, pageErrors } = recorder; // tab1, tab2 (alice), tab3 (bob)
  let businessId;
  let productId;
  const { step, state } = scenario();

  const card = (page) => page.locator(`[data-product-id="${productId}"]`);
  const text = async (locator) => ((await locator.textContent({ timeout: WAIT_MS })) || '').trim();

  /** Records, in the page, every value the card's `data-status` takes from now on. */
  const recordStatus = (page) => page.evaluate((id) => {
    const el = document.querySelector(`[data-product-id="${CSS.escape(id)}"]`);
    const history = [el.dataset.status];
    window.__statusHistory = history;
    new MutationObserver(() => {
      if (el.dataset.status !== history.at(-1)) history.push(el.dataset.status);
    }).observe(el, { attributes: true, attributeFilter: ['data-status'] });
  }, productId);
  const statusHistory = (page) => page.evaluate(() => window.__statusHistory);

  /** The card shows `processing`: badge with a visible spinner, Generate disabled. */
  async function assertProcessing(name, page) {
    const c = card(page);
    await eventually(`${name} shows the product processing`, async () => {
      assert.equal(await c.getAttribute('data-status'), 'processing');
    });
    const badge = c.locator('.product-status');
    assert.equal(await badge.getAttribute('data-status'), 'processing');
    assert.ok(await badge.locator('.spinner').isVisible(), `${name}: the spinner is visible`);
    assert.match(await text(badge), /processing/);
    assert.ok(await c.locator('[data-action="generate"]').isDisabled(), `${name}: Generate is disabled while processing`);
  }

  step('start the stand-in AI API, the gateway pointed at it, and chromium; open the tabs', async () => {
    ai = await startFakeAi();
    gateway = await startGateway(tmp, [
      '--ai-base-url', ai.base, '--ai-api-key', API_KEY,
      '--ai-image-model', IMAGE_MODEL, '--ai-chat-model', CHAT_MODEL,
    ]);
    log(`gateway ${gateway.base} (log ${gateway.logFile}); stand-in AI API at ${ai.base}`);
    assert.match(gateway.log(), /AI provider/, 'the start-up banner names the AI provider');
    browser = await launchBrowser();
    const alice = await browser.newContext(CONTEXT_OPTIONS);
    const bob = await browser.newContext(CONTEXT_OPTIONS);
    for (const [name, context, uid] of [['tab1', alice, 'alice'], ['tab2', alice, 'alice'], ['tab3', bob, 'bob']]) {
      await recorder.open(name, context, `${gateway.base}/?uid=${uid}`);
    }
    for (const [name, page] of Object.entries(tabs)) {
      await page.locator('#conn-status[data-status="live"]').waitFor();
      assert.equal(await page.locator('body').getAttribute('data-uid'), name === 'tab3' ? 'bob' : 'alice');
    }
  });

  after(async () => {
    await recorder.screenshotOnFailure(state.failed);
    await browser?.close().catch(() => {});
    await gateway?.stop();
    await ai?.close();
    await recorder.close(state.failed);
    if (state.failed && gateway) log(`gateway log (${gateway.logFile}):\n${gateway.log().slice(-4000)}`);
    if (state.failed && ai) log(`stand-in AI requests: ${JSON.stringify(ai.requests.map(({ method, path: p, at, answeredAt }) => ({ method, p, at, answeredAt })))}`);
    log(`artifacts in ${tmp}`);
  });

  step('a business and a product created in tab 1 appear in tab 2', async () => {
    const { tab1, tab2 } = tabs;
    await use(tab1);
    await tab1.locator('#business-name').fill(BUSINESS);
    await tab1.locator('#business-category').fill('coffee');
    await tab1.locator('#create-business').click();
    const section = tab1.locator('#businesses > [data-business-id]', {
      has: tab1.locator('.business-name', { hasText: BUSINESS }),
    });
    await section.waitFor();
    businessId = await section.getAttribute('data-business-id');
    const form = section.locator('.product-form');
    await form.locator('input[name="name"]').fill(PRODUCT);
    await form.locator('input[name="price"]').fill('14');
    await form.locator('select[name="currency"]').selectOption('EUR');
    await form.locator('input[name="description"]').fill('Dark roast with notes of cocoa');
    await form.locator('[data-action="create-product"]').click();
    const newCard = section.locator('[data-product-id]', { has: tab1.locator('.product-name', { hasText: PRODUCT }) });
    await newCard.waitFor();
    productId = await newCard.getAttribute('data-product-id');
    assert.ok(productId, 'the product card has an id');
    await eventually('tab 2 shows the product', async () => {
      assert.equal(await text(card(tab2).locator('.product-name')), PRODUCT);
    });
    for (const page of [tab1, tab2]) {
      assert.notEqual(await card(page).getAttribute('data-status'), 'processing');
      assert.equal(await card(page).locator('.product-image').isVisible(), false, 'no image yet');
      assert.ok(await card(page).locator('[data-action="generate"]').isEnabled());
    }
  });

  step('Generate in tab 1: both of alice\'s tabs show the spinner while the AI answer is held', async () => {
    const { tab1, tab2 } = tabs;
    for (const page of [tab1, tab2]) await recordStatus(page);
    ai.hold();
    await card(await use(tab1)).locator('[data-action="generate"]').click();
    const clicked = Date.now();
    await eventually('the stand-in gets the image request', async () => {
      assert.equal(ai.posts('images/generations').length, 1);
    });
    await assertProcessing('tab 1', tab1);
    await assertProcessing('tab 2', tab2);
    log(`both tabs showed the spinner ${Date.now() - clicked} ms after the click`);
    const file = path.join(tmp, 'tab2-processing.png');
    await card(tab2).screenshot({ path: file });
    log(`screenshot of tab 2's card while processing: ${file}`);
    assert.equal(ai.posts('images/generations')[0].answeredAt, undefined, 'seen while the image answer was still held');
    assert.equal(await card(tab1).locator('.product-message').isVisible(), false, 'no error in tab 1 meanwhile');
  });

  step('released: both tabs show the image and the caption; the stand-in was asked properly', async () => {
    const { tab1, tab2 } = tabs;
    ai.release();
    const released = Date.now();
    for (const [name, page] of [['tab 1', tab1], ['tab 2', tab2]]) {
      const c = card(page);
      await eventually(`${name} shows the product enriched`, async () => {
        assert.equal(await c.getAttribute('data-status'), 'enriched');
      });
      assert.equal(await c.locator('.product-status').getAttribute('data-status'), 'enriched');
      assert.equal(await c.locator('.product-status .spinner').count(), 0, `${name}: no spinner any more`);
      await eventually(`${name}'s image has loaded`, async () => {
        const img = await c.locator('.product-image').evaluate((el) => ({
          src: el.currentSrc || el.src, complete: el.complete, width: el.naturalWidth, hidden: el.hidden,
        }));
        assert.equal(img.hidden, false);
        assert.ok(img.complete && img.width > 0, `image ${JSON.stringify(img)}`);
        assert.equal(img.width, 128, 'the stand-in\'s 128x128 PNG');
        assert.ok(img.src.startsWith(`${gateway.base}/media/`) && img.src.endsWith('.png'), `src ${img.src}`);
      });
      assert.ok(await c.locator('.product-image').isVisible(), `${name}: the image is visible`);
      assert.equal(await c.locator('.product-placeholder').isVisible(), false);
      assert.equal(await text(c.locator('.product-caption')), FAKE_CAPTION);
      assert.equal(await c.locator('.product-error').isVisible(), false);
      assert.ok(await c.locator('[data-action="generate"]').isEnabled(), `${name}: Generate is enabled again`);
      const history = await statusHistory(page);
      assert.deepEqual(history.slice(-2), ['processing', 'enriched'], `${name}: status went ${history.join(' -> ')}`);
      log(`${name}: ${history.join(' -> ')}, enriched ${Date.now() - released} ms after the release`);
    }
    assert.equal(await card(tab1).locator('.product-message').isVisible(), false, 'no HTTP error in tab 1');

    // The stored image is the stand-in's PNG, served by the gateway.
    const src = await card(tab2).locator('.product-image').getAttribute('src');
    const res = await fetch(src);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(ai.png), 'the stored image is the stand-in\'s bytes');

    const file = path.join(tmp, 'tab2-enriched.png');
    await tab2.screenshot({ path: file, fullPage: true });
    log(`screenshot of tab 2 with the generated ad: ${file}`);

    // What the stand-in was asked.
    const [image] = ai.posts('images/generations');
    const chats = ai.posts('chat/completions');
    assert.equal(chats.length, 1, 'one caption request');
    const [chat] = chats;
    for (const r of [image, chat]) assert.equal(r.authorization, `Bearer ${API_KEY}`);
    assert.equal(image.body.model, IMAGE_MODEL);
    assert.equal(image.body.n, 1);
    assert.equal(image.body.size, '1024x1024');
    assert.ok(image.body.prompt.includes(`"${PRODUCT}"`), `the image prompt names the product: ${image.body.prompt}`);
    assert.ok(image.body.prompt.includes('cocoa'), 'the image prompt has the description');
    assert.equal(chat.body.model, CHAT_MODEL);
    const user = chat.body.messages.find((m) => m.role === 'user');
    assert.ok(chat.body.messages.some((m) => m.role === 'system'), 'a system message asks for a caption');
    assert.ok(user.content.includes(`Product: ${PRODUCT}`), `the caption request names the product: ${user.content}`);
    assert.ok(chat.at < image.answeredAt, 'the caption was asked while the image was held (both at once)');
  });

  step('tab 3 (bob) sees nothing of it', async () => {
    const { tab3 } = tabs;
    assert.equal(await tab3.locator('#businesses > *').count(), 0, 'bob sees no business');
    assert.equal(await tab3.locator('[data-product-id]').count(), 0, 'bob sees no product');
    assert.equal(await tab3.locator('#event-log li[data-seq]').count(), 0, 'bob got no data event');
    assert.equal(await tab3.getByText(PRODUCT).count(), 0);
    assert.equal(await tab3.getByText(FAKE_CAPTION).count(), 0);
    assert.equal(await tab3.locator('img[src*="/media/"]').count(), 0, 'no generated image in bob\'s page');
    assert.equal(await tab3.locator('#conn-status').getAttribute('data-status'), 'live');
  });

  step('a second Generate that the AI API answers with a 500: both tabs show failed and the error, once', async () => {
    const { tab1, tab2, tab3 } = tabs;
    for (const page of [tab1, tab2]) await recordStatus(page);
    ai.failImages(1);
    ai.hold();
    await card(await use(tab1)).locator('[data-action="generate"]').click();
    await eventually('the stand-in gets the second image request', async () => {
      assert.equal(ai.posts('images/generations').length, 2);
    });
    await assertProcessing('tab 1', tab1);
    await assertProcessing('tab 2', tab2);
    ai.release();
    for (const [name, page] of [['tab 1', tab1], ['tab 2', tab2]]) {
      const c = card(page);
      await eventually(`${name} shows the product failed`, async () => {
        assert.equal(await c.getAttribute('data-status'), 'failed');
      });
      assert.equal(await c.locator('.product-status').getAttribute('data-status'), 'failed');
      assert.equal(await c.locator('.product-status .spinner').count(), 0, `${name}: no spinner any more`);
      const error = await text(c.locator('.product-error'));
      assert.ok(await c.locator('.product-error').isVisible(), `${name}: the stored error is shown`);
      assert.match(error, /HTTP 500/);
      assert.ok(error.includes(FAKE_ERROR), `${name}: error ${error}`);
      assert.ok(!error.includes(API_KEY), 'the key is never shown');
      await eventually(`${name}: Generate is enabled again`, async () => {
        assert.ok(await c.locator('[data-action="generate"]').isEnabled());
      });
      const history = await statusHistory(page);
      assert.deepEqual(history.slice(-2), ['processing', 'failed'], `${name}: status went ${history.join(' -> ')}`);
    }
    // The error shows once: on the product (every tab), not again as the click's HTTP error.
    for (const page of [tab1, tab2]) {
      assert.equal(await card(page).locator('.product-message').isVisible(), false, 'the 502 is not shown twice');
    }
    assert.equal(ai.posts('images/generations').length, 2, 'a 500 is not retried');
    assert.equal(await tab3.locator('[data-product-id]').count(), 0, 'bob still sees no product');
    assert.equal(await tab3.locator('#event-log li[data-seq]').count(), 0, 'bob got no data event');
  });

  step('no uncaught error in any tab; end screenshots', async () => {
    for (const [name, page] of Object.entries(tabs)) {
      await (await use(page)).screenshot({ path: path.join(tmp, `${name}-end.png`), fullPage: true });
    }
    assert.deepEqual(pageErrors, []);
  });
});
