// The local demo page: sign in as a dev user, then watch the backend push every change.
//
// The page never applies the response of its own mutations: a create, edit, delete or
// generate only sends the request, and the pushed event (which reaches every tab of the
// user, this one included) is what updates the screen, exactly as the real app should.
import { createSyncClient } from './sync-client.js';

const $ = (sel, root = document) => root.querySelector(sel);
const LOG_LIMIT = 50;

let client = null;
let uid = null;

// ---------------------------------------------------------------- DOM helpers

/** h('div', {class: 'x', dataset: {id}}, child, 'text') */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  el.append(...children.filter((c) => c != null));
  return el;
}

const setText = (el, text) => { if (el.textContent !== text) el.textContent = text; };

function showMessage(el, text, kind = 'error') {
  el.textContent = text || '';
  el.dataset.kind = kind;
  el.hidden = !text;
}

/** Puts `nodes` in `container` in this order, moving only what is out of place. */
function syncChildren(container, nodes) {
  nodes.forEach((node, i) => {
    if (container.children[i] !== node) container.insertBefore(node, container.children[i] || null);
  });
  while (container.children.length > nodes.length) container.lastElementChild.remove();
}

const byCreated = (a, b) => String(a.createdAt || '').localeCompare(String(b.createdAt || '')) || String(a.id).localeCompare(String(b.id));

function formatPrice(p) {
  if (typeof p.price !== 'number') return '';
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: p.currency || 'USD' }).format(p.price);
  } catch {
    return `${p.price} ${p.currency || ''}`.trim();
  }
}

// ---------------------------------------------------------------- connection + log

function setConnStatus(status) {
  const el = $('#conn-status');
  el.dataset.status = status;
  setText($('.conn-label', el), status);
}

function logFrame(frame) {
  const log = $('#event-log');
  const data = frame.data === undefined ? '' : JSON.stringify(frame.data);
  const time = new Date().toLocaleTimeString([], { hour12: false });
  const entry = h('li', { class: 'log-entry', dataset: { event: frame.event || '?', ...(typeof frame.seq === 'number' ? { seq: String(frame.seq) } : {}) } },
    h('time', { text: time }),
    h('code', { class: 'log-event', text: frame.event || '?' }),
    typeof frame.seq === 'number' ? h('span', { class: 'log-seq', text: `#${frame.seq}` }) : null,
    data ? h('span', { class: 'log-data', text: data.length > 180 ? `${data.slice(0, 180)}…` : data, title: data }) : null);
  log.prepend(entry);
  while (log.children.length > LOG_LIMIT) log.lastElementChild.remove();
}

// ---------------------------------------------------------------- rendering

function render() {
  if (!client) return;
  const { user, businesses, products } = client.state;
  setText($('#whoami-uid'), uid);
  setText($('#whoami-name'), user && user.displayName ? `(${user.displayName})` : '');

  const productsOf = new Map();
  for (const p of Object.values(products)) {
    if (!productsOf.has(p.businessId)) productsOf.set(p.businessId, []);
    productsOf.get(p.businessId).push(p);
  }
  const container = $('#businesses');
  const sections = Object.values(businesses).sort(byCreated).map((b) => {
    const section = container.querySelector(`:scope > [data-business-id="${CSS.escape(b.id)}"]`) || businessSection(b);
    updateBusiness(section, b, (productsOf.get(b.id) || []).sort(byCreated));
    return section;
  });
  syncChildren(container, sections);
  $('#empty-state').hidden = sections.length > 0;
}

function businessSection(b) {
  return h('section', { class: 'business card', dataset: { businessId: b.id } },
    h('header', { class: 'business-head' },
      h('h2', { class: 'business-name' }),
      h('span', { class: 'business-meta muted' })),
    h('p', { class: 'business-description muted' }),
    h('form', { class: 'product-form', dataset: { businessId: b.id } },
      h('input', { name: 'name', placeholder: 'Product name', required: true, maxlength: 200 }),
      h('input', { name: 'price', type: 'number', min: 0, step: '0.01', placeholder: 'Price' }),
      h('select', { name: 'currency', 'aria-label': 'Currency' },
        ...['USD', 'EUR', 'GBP', 'JPY'].map((c) => h('option', { value: c, text: c }))),
      h('input', { name: 'description', placeholder: 'Description', maxlength: 5000 }),
      h('button', { type: 'submit', class: 'primary', dataset: { action: 'create-product' }, text: 'Add product' }),
      h('p', { class: 'message form-message', role: 'alert', hidden: true })),
    h('div', { class: 'products' }));
}

function updateBusiness(section, b, products) {
  setText($('.business-name', section), b.name || '(unnamed)');
  setText($('.business-meta', section), [b.category, `${products.length} product${products.length === 1 ? '' : 's'}`].filter(Boolean).join(' · '));
  const desc = $('.business-description', section);
  setText(desc, b.description || '');
  desc.hidden = !b.description;
  const list = $('.products', section);
  const cards = products.map((p) => {
    const card = list.querySelector(`:scope > [data-product-id="${CSS.escape(p.id)}"]`) || productCard(p);
    updateCard(card, p);
    return card;
  });
  syncChildren(list, cards);
}

function productCard(p) {
  return h('article', { class: 'product', dataset: { productId: p.id, businessId: p.businessId } },
    h('div', { class: 'product-media' },
      h('img', { class: 'product-image', alt: '', hidden: true }),
      h('div', { class: 'product-placeholder', text: 'no image yet' })),
    h('div', { class: 'product-body' },
      h('header', { class: 'product-head' },
        h('h3', { class: 'product-name' }),
        h('span', { class: 'product-status badge' })),
      h('p', { class: 'product-price' }),
      h('p', { class: 'product-description' }),
      h('p', { class: 'product-caption' }),
      h('p', { class: 'product-error', role: 'status' }),
      h('p', { class: 'message product-message', role: 'alert', hidden: true }),
      h('div', { class: 'product-actions' },
        h('button', { type: 'button', dataset: { action: 'edit' }, text: 'Edit' }),
        h('button', { type: 'button', class: 'primary', dataset: { action: 'generate' }, text: 'Generate' }),
        h('button', { type: 'button', class: 'danger', dataset: { action: 'delete' }, text: 'Delete' })),
      h('form', { class: 'product-edit', hidden: true },
        h('label', {}, 'Name', h('input', { name: 'name', required: true, maxlength: 200 })),
        h('label', {}, 'Price', h('input', { name: 'price', type: 'number', min: 0, step: '0.01' })),
        h('label', {}, 'Description', h('textarea', { name: 'description', rows: 2, maxlength: 5000 })),
        h('div', { class: 'product-actions' },
          h('button', { type: 'submit', class: 'primary', dataset: { action: 'save' }, text: 'Save' }),
          h('button', { type: 'button', dataset: { action: 'cancel' }, text: 'Cancel' })))));
}

function updateCard(card, p) {
  const status = p.status || 'draft';
  card.dataset.status = status;
  setText($('.product-name', card), p.name || '');
  const badge = $('.product-status', card);
  badge.dataset.status = status;
  if (badge.textContent !== status) {
    badge.replaceChildren(...(status === 'processing' ? [h('span', { class: 'spinner', 'aria-hidden': 'true' })] : []), status);
  }
  for (const [cls, text] of [['.product-price', formatPrice(p)], ['.product-description', p.description || ''],
    ['.product-caption', p.caption || ''], ['.product-error', status === 'failed' ? p.error || 'failed' : '']]) {
    const el = $(cls, card);
    setText(el, text);
    el.hidden = !text;
  }
  const img = $('.product-image', card);
  const src = p.generatedImageUrl || p.imageUrl || '';
  if (img.getAttribute('src') !== src) { if (src) img.src = src; else img.removeAttribute('src'); }
  img.alt = p.caption || p.name || '';
  img.hidden = !src;
  $('.product-placeholder', card).hidden = !!src;
  $('[data-action="generate"]', card).disabled = status === 'processing';
}

// ---------------------------------------------------------------- actions

/** Runs a request with `button` disabled; shows the backend's error message in `messageEl`. */
async function act(button, messageEl, run) {
  if (button) button.disabled = true;
  showMessage(messageEl, '');
  try {
    await run();
  } catch (err) {
    showMessage(messageEl, err.message || String(err));
  } finally {
    if (button) button.disabled = false;
    render(); // restores the generate button's processing state
  }
}

const enc = encodeURIComponent;

function onBusinessesClick(ev) {
  const button = ev.target.closest('button[data-action]');
  const card = button && button.closest('[data-product-id]');
  if (!card) return;
  const { productId, businessId } = card.dataset;
  const message = $('.product-message', card);
  const form = $('.product-edit', card);
  switch (button.dataset.action) {
    case 'edit': {
      const p = client.state.products[productId] || {};
      form.elements.name.value = p.name || '';
      form.elements.price.value = typeof p.price === 'number' ? p.price : '';
      form.elements.description.value = p.description || '';
      form.hidden = false;
      card.classList.add('editing');
      form.elements.name.focus();
      break;
    }
    case 'cancel':
      form.hidden = true;
      card.classList.remove('editing');
      break;
    case 'delete':
      act(button, message, () => client.request('DELETE', `/products/${enc(businessId)}/${enc(productId)}`));
      break;
    case 'generate':
      // A provider failure (502/504) is recorded on the product, whose `error` every tab shows;
      // only other failures (409 already running, 404, ...) are this tab's to say.
      act(button, message, () =>
        client.request('POST', '/ai/generate-ad-image', { businessId, productId }).catch((err) => {
          if (err.status !== 502 && err.status !== 504) throw err;
        }));
      break;
  }
}

function onBusinessesSubmit(ev) {
  ev.preventDefault();
  const form = ev.target;
  const button = form.querySelector('button[type="submit"]');
  if (form.classList.contains('product-form')) {
    const { name, price, currency, description } = form.elements;
    const body = { name: name.value.trim(), currency: currency.value };
    if (price.value !== '') body.price = Number(price.value);
    if (description.value.trim()) body.description = description.value.trim();
    act(button, $('.form-message', form), async () => {
      await client.request('POST', `/products/${enc(form.dataset.businessId)}`, body);
      form.reset();
    });
  } else if (form.classList.contains('product-edit')) {
    const card = form.closest('[data-product-id]');
    const { productId, businessId } = card.dataset;
    const current = client.state.products[productId] || {};
    const { name, price, description } = form.elements;
    const patch = {};
    if (name.value.trim() !== (current.name || '')) patch.name = name.value.trim();
    const newPrice = price.value === '' ? null : Number(price.value);
    if (newPrice !== (typeof current.price === 'number' ? current.price : null)) patch.price = newPrice;
    if (description.value !== (current.description || '')) patch.description = description.value || null;
    act(button, $('.product-message', card), async () => {
      if (Object.keys(patch).length) {
        await client.request('PATCH', `/products/update/${enc(businessId)}/${enc(productId)}`, patch);
      }
      form.hidden = true;
      card.classList.remove('editing');
    });
  }
}

function onCreateBusiness(ev) {
  ev.preventDefault();
  const form = ev.target;
  const body = { name: form.elements.name.value.trim() };
  for (const key of ['category', 'description']) {
    const value = form.elements[key].value.trim();
    if (value) body[key] = value;
  }
  act($('#create-business'), $('.form-message', form), async () => {
    await client.request('POST', '/businesses', body);
    form.reset();
  });
}

function onSaveProfile(ev) {
  ev.preventDefault();
  const displayName = $('#display-name').value.trim();
  act($('#save-profile'), $('#login-message'), async () => {
    await client.request('PATCH', `/users/${enc(uid)}`, { displayName: displayName || null });
    $('#display-name').value = '';
  });
}

// ---------------------------------------------------------------- sign in / out

async function devToken(forUid) {
  const res = await fetch(`/dev/token?uid=${enc(forUid)}`);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((body.error && body.error.message) || `GET /dev/token: HTTP ${res.status}`);
  return { token: body.token, expiresAt: body.expiresAt };
}

function signOut() {
  if (client) client.close();
  client = null;
  uid = null;
  $('#businesses').replaceChildren();
  $('#event-log').replaceChildren();
  $('#app').hidden = true;
  $('#whoami').hidden = true;
  document.body.dataset.uid = '';
  setConnStatus('offline');
  history.replaceState(null, '', location.pathname);
}

async function signIn(newUid) {
  signOut();
  uid = newUid;
  $('#uid').value = newUid;
  const login = $('#login');
  login.disabled = true;
  showMessage($('#login-message'), '');
  const c = createSyncClient({
    baseUrl: location.origin,
    getToken: () => devToken(newUid),
    onStatus: (s) => { if (client === c) setConnStatus(s); },
    onEvent: () => { if (client === c) render(); },
    onResync: () => { if (client === c) render(); },
    onFrame: (f) => { if (client === c) logFrame(f); },
    onError: (err) => { if (client === c) console.warn('sync:', err.message || err); },
  });
  client = c;
  try {
    await c.login();
    if (client !== c) return;
    $('#app').hidden = false;
    $('#whoami').hidden = false;
    document.body.dataset.uid = newUid;
    history.replaceState(null, '', `?uid=${enc(newUid)}`);
    render();
    await c.connect();
  } catch (err) {
    if (client !== c) return;
    signOut();
    showMessage($('#login-message'), `Sign-in failed: ${err.message || err}`);
  } finally {
    login.disabled = false;
  }
}

// ---------------------------------------------------------------- wiring

function init() {
  // The signed-in sync client (null when signed out): the browser tests read its state
  // (browser-tests/convergence.test.mjs).
  Object.defineProperty(window, 'syncClient', { get: () => client });
  $('#login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = $('#uid').value.trim();
    if (value) signIn(value);
  });
  for (const button of document.querySelectorAll('[data-uid]')) {
    button.addEventListener('click', () => signIn(button.dataset.uid));
  }
  $('#logout').addEventListener('click', signOut);
  $('#profile-form').addEventListener('submit', onSaveProfile);
  $('#business-form').addEventListener('submit', onCreateBusiness);
  $('#businesses').addEventListener('click', onBusinessesClick);
  $('#businesses').addEventListener('submit', onBusinessesSubmit);
  $('#clear-log').addEventListener('click', () => $('#event-log').replaceChildren());
  // ?uid=alice signs in at once: open a second tab with the same URL to watch both update.
  const fromUrl = new URLSearchParams(location.search).get('uid');
  if (fromUrl) signIn(fromUrl);
}

init();
