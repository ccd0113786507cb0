// A typed app over the client and its Redux Toolkit adapter, as the app's front end would write
// it. `scripts/test` type-checks it (`tsc --noEmit -p client`): it is the proof that the
// declarations fit together and say what the backend does. The `@ts-expect-error` lines are
// mistakes the types must catch (tsc fails if one of them compiles).

import { configureStore } from '@reduxjs/toolkit';
import {
  ApiError, applyEvent, emptyModel,
  type NewBusiness, type NewProduct, type Product, type ProductPatch, type ServerFrame, type SyncClient,
} from '@adsync/client';
import { createReduxSyncClient, syncReducer, syncSelectors, type SyncError } from '@adsync/client/redux';
import type { ClientMessage, DocEventFrame, ProductStatus, ProductUpdatedFrame, UserPatch } from '@adsync/client/types';

export const store = configureStore({ reducer: { sync: syncReducer } });
export type RootState = ReturnType<typeof store.getState>;
export type AppDispatch = typeof store.dispatch;

/** Firebase's `user.getIdToken(forceRefresh)`, or the local gateway's dev token. */
declare function getIdToken(forceRefresh: boolean): Promise<string>;

export const client: SyncClient = createReduxSyncClient({
  dispatch: store.dispatch,
  baseUrl: 'http://127.0.0.1:3000',
  getToken: ({ forceRefresh }) => getIdToken(forceRefresh),
  onEvent: (frame) => {
    if (frame.event === 'ai:progress') console.log('n8n says', frame.data);
  },
});

export async function start(): Promise<void> {
  await client.connect();
  const state = store.getState();
  const status: 'connecting' | 'live' | 'offline' = syncSelectors.selectConnectionStatus(state);
  const error: SyncError | null = syncSelectors.selectConnection(state).error;
  console.log(status, error?.message, syncSelectors.selectUser(state)?.displayName);
}

/** What a business's page shows. */
export function productCards(state: RootState, businessId: string): { title: string; status: ProductStatus; image?: string }[] {
  return syncSelectors.selectProductsOfBusiness(state, businessId).map((p: Product) => ({
    title: p.price === undefined ? p.name : `${p.name} (${p.price} ${p.currency ?? ''})`,
    status: p.status ?? 'draft',
    image: p.generatedImageUrl ?? p.imageUrl,
  }));
}

export async function createShop(): Promise<Product> {
  const business: NewBusiness = { name: 'Corner bakery', brandColors: ['#aa3300'] };
  const created = await client.request<{ id: string }>('POST', '/businesses', business);
  const bread: NewProduct = { name: 'Sourdough', price: 4.5, currency: 'EUR', tags: ['bread'] };
  return client.request<Product>('POST', `/products/${created.id}`, bread);
}

/** The old `updateProductLocally` + PUT, now one PATCH: the pushed event updates the store. */
export async function rename(product: Product, name: string): Promise<void> {
  const patch: ProductPatch = { name, description: null };
  const answer = await client.request<Product>('PATCH', `/products/update/${product.businessId}/${product.id}`, patch);
  client.applyDocument('product', answer); // optional: show it before the event comes
}

/** The old `/webhook/enrich-product` call. */
export async function generate(product: Product): Promise<Product | null> {
  try {
    return await client.request<Product>('POST', '/ai/generate-ad-image', { businessId: product.businessId, productId: product.id });
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) return null; // already processing
    throw err;
  }
}

/** Frames narrow on `event`. */
export function describe(frame: ServerFrame): string {
  const doc = frame as DocEventFrame;
  switch (doc.event) {
    case 'product:updated': {
      const update: ProductUpdatedFrame['data'] = doc.data;
      if ('truncated' in update) return `product ${update.id} changed (too large: refetched)`;
      return `product ${update.id} at ${update.version}: ${Object.keys(update).join(', ')}`;
    }
    case 'product:deleted': return `product ${doc.data.id} deleted`;
    case 'product:created': return `product ${doc.data.name} created`;
    case 'business:created': return 'truncated' in doc.data ? 'a business' : `business ${doc.data.name}`;
    case 'user:updated': return `profile of ${doc.data.uid}`;
    default: return frame.event;
  }
}

/** The pure core works without the client too. */
export const replayed = applyEvent(emptyModel(), {
  event: 'product:deleted', seq: 3, ts: '2026-11-24T23:42:22.169Z', data: { id: 'p1', businessId: 'b1' },
});

export const ping: ClientMessage = { action: 'ping' };
export const profile: UserPatch = { displayName: 'Alice', locale: null };

// Mistakes the declarations catch.
// @ts-expect-error: `name` is required on a product and cannot be cleared
export const clearName: ProductPatch = { name: null };
// @ts-expect-error: not a product field
export const unknownField: ProductPatch = { colour: 'red' };
// @ts-expect-error: not a status
export const badStatus: ProductPatch = { status: 'done' };
// @ts-expect-error: colours are #RRGGBB
export const badColour: NewBusiness = { name: 'x', brandColors: ['red'] };
// @ts-expect-error: a create needs its name
export const nameless: NewProduct = { price: 3 };
// @ts-expect-error: resume needs `since`
export const badResume: ClientMessage = { action: 'resume' };
// @ts-expect-error: applyDocument checks the kind against the document
client.applyDocument('product', { uid: 'alice', createdAt: '', updatedAt: '', version: '' });
