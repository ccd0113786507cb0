/**
 * redux.js: the Redux Toolkit adapter of the sync client (`@adsync/client/redux`, docs/client.md).
 *
 * Four slices, mounted together under one key (`sync` by default):
 *   user         { profile, versions, held }                    the signed-in user
 *   businesses   { ids, entities, versions, held, deleted }     an entity-adapter state
 *   products     { ids, entities, versions, held, deleted }     an entity-adapter state
 *   connection   { status, error }                              'offline' | 'connecting' | 'live'
 *
 * The client reports every change of its model (`onChange`: a login snapshot, a new data
 * frame, a fetched document); the adapter dispatches each as an action, and each slice's reducer
 * applies it with the client's own pure core (`applyChange`), so the store holds exactly what the
 * client holds: partial `product:updated` merge and are held out of sight until the product is
 * known (never a half-empty product), `null` clears, a field changes only for a greater
 * `version`, deletes are final. `entities` are what to render; `versions`, `held` and `deleted`
 * are the bookkeeping that makes arrival order irrelevant.
 *
 *   const store = configureStore({ reducer: { sync: syncReducer } });
 *   const client = createReduxSyncClient({ dispatch: store.dispatch, baseUrl, getToken });
 *   await client.connect();
 *   syncSelectors.selectProductsOfBusiness(store.getState(), businessId);
 */

import {
  combineReducers, createAction, createEntityAdapter, createSelector, createSlice, isDraft, original,
} from '@reduxjs/toolkit';
import { applyChange, createSyncClient, emptyModel } from './sync-client.js';

/** The adapter's actions. Every one but `statusChanged`, `errorRaised` and `reset` is a change of the model. */
export const syncActions = {
  /** A login bootstrap (`{user, businesses, products, seq}`, every answer joined): the state is replaced. */
  snapshotLoaded: createAction('adsync/snapshotLoaded'),
  /** A new data frame (`{event, seq, ts, data}`), or one the client made after a refetch. */
  eventReceived: createAction('adsync/eventReceived'),
  /** A full document read over REST: `{kind: 'user' | 'business' | 'product', doc}`. */
  documentFetched: createAction('adsync/documentFetched'),
  /** The connection's status: `'offline'`, `'connecting'` or `'live'`. */
  statusChanged: createAction('adsync/statusChanged'),
  /** An error the client met: `{code, message, status}` (`status` 0 for a socket frame). */
  errorRaised: createAction('adsync/errorRaised'),
  /** Back to nothing (signed out, or another client takes over). */
  reset: createAction('adsync/reset'),
};

/** The action for a change the client reported to `onChange`. */
export function changeAction(change) {
  switch (change.type) {
    case 'snapshot': return syncActions.snapshotLoaded(change.snapshot);
    case 'event': return syncActions.eventReceived(change.frame);
    case 'document': return syncActions.documentFetched({ kind: change.kind, doc: change.doc });
    default: throw new TypeError(`changeAction: unknown change ${change.type}`);
  }
}

/** The change an action of the adapter stands for, or null. */
function changeOf(action) {
  if (syncActions.snapshotLoaded.match(action)) return { type: 'snapshot', snapshot: action.payload };
  if (syncActions.eventReceived.match(action)) return { type: 'event', frame: action.payload };
  if (syncActions.documentFetched.match(action)) return { type: 'document', ...action.payload };
  return null;
}

const isChange = (action) => changeOf(action) !== null;

/** Businesses and products, oldest first (as the API lists them), then by id. */
const byCreation = (a, b) => String(a.createdAt ?? '').localeCompare(String(b.createdAt ?? '')) || String(a.id).localeCompare(String(b.id));
export const businessesAdapter = createEntityAdapter({ sortComparer: byCreation });
export const productsAdapter = createEntityAdapter({ sortComparer: byCreation });

const plain = (state) => (isDraft(state) ? original(state) : state);

/** A model holding only this slice's collection, for the pure core. */
function collectionModel(coll, s) {
  const m = emptyModel();
  m.state[coll] = s.entities;
  m.versions[coll] = s.versions;
  m.held[coll] = s.held;
  m.deleted[coll] = s.deleted;
  return m;
}

/** The sorted ids of `entities`, or `previous` when they are the same. */
function idsOf(entities, previous) {
  const ids = Object.values(entities).sort(byCreation).map((doc) => doc.id);
  return ids.length === previous.length && ids.every((id, i) => id === previous[i]) ? previous : ids;
}

function collectionSlice(name, coll, adapter) {
  const initialState = adapter.getInitialState({ versions: {}, held: {}, deleted: {} });
  return createSlice({
    name: `adsync/${name}`,
    initialState,
    reducers: {},
    extraReducers: (builder) => {
      builder.addCase(syncActions.reset, () => initialState);
      builder.addMatcher(isChange, (draft, action) => {
        const s = plain(draft);
        const before = collectionModel(coll, s);
        const after = applyChange(before, changeOf(action));
        if (
          after.state[coll] === before.state[coll] && after.versions[coll] === before.versions[coll]
          && after.held[coll] === before.held[coll] && after.deleted[coll] === before.deleted[coll]
        ) return undefined; // unchanged: the same state object
        return {
          ids: idsOf(after.state[coll], s.ids),
          entities: after.state[coll],
          versions: after.versions[coll],
          held: after.held[coll],
          deleted: after.deleted[coll],
        };
      });
    },
  });
}

const userInitial = { profile: null, versions: null, held: null };

export const userSlice = createSlice({
  name: 'adsync/user',
  initialState: userInitial,
  reducers: {},
  extraReducers: (builder) => {
    builder.addCase(syncActions.reset, () => userInitial);
    builder.addMatcher(isChange, (draft, action) => {
      const s = plain(draft);
      const before = emptyModel();
      before.state.user = s.profile;
      before.versions.user = s.versions;
      before.held.user = s.held;
      const after = applyChange(before, changeOf(action));
      if (after.state.user === s.profile && after.versions.user === s.versions && after.held.user === s.held) return undefined;
      return { profile: after.state.user, versions: after.versions.user, held: after.held.user };
    });
  },
});

export const businessesSlice = collectionSlice('businesses', 'businesses', businessesAdapter);
export const productsSlice = collectionSlice('products', 'products', productsAdapter);

const connectionInitial = { status: 'offline', error: null };

export const connectionSlice = createSlice({
  name: 'adsync/connection',
  initialState: connectionInitial,
  reducers: {},
  extraReducers: (builder) => {
    builder.addCase(syncActions.reset, () => connectionInitial);
    builder.addCase(syncActions.statusChanged, (state, action) => {
      state.status = action.payload;
      if (action.payload === 'live') state.error = null; // the error was recovered from
    });
    builder.addCase(syncActions.errorRaised, (state, action) => {
      state.error = action.payload;
    });
  },
});

/** The four slices' reducer: mount it under `sync` (or pass your key to createSyncSelectors). */
export const syncReducer = combineReducers({
  user: userSlice.reducer,
  businesses: businessesSlice.reducer,
  products: productsSlice.reducer,
  connection: connectionSlice.reducer,
});

/** Selectors over the adapter's state, found by `selectSync` in the root state. */
export function createSyncSelectors(selectSync = (state) => state.sync) {
  const businesses = businessesAdapter.getSelectors((state) => selectSync(state).businesses);
  const products = productsAdapter.getSelectors((state) => selectSync(state).products);
  return {
    selectUser: (state) => selectSync(state).user.profile,
    selectBusinesses: businesses.selectAll,
    selectBusinessById: businesses.selectById,
    selectProducts: products.selectAll,
    selectProductById: products.selectById,
    selectProductsOfBusiness: createSelector(
      [products.selectAll, (_state, businessId) => businessId],
      (all, businessId) => all.filter((p) => p.businessId === businessId),
    ),
    selectConnection: (state) => selectSync(state).connection,
    selectConnectionStatus: (state) => selectSync(state).connection.status,
    /** Whether the product was deleted (anything later about it is ignored). */
    selectIsProductDeleted: (state, id) => Object.prototype.hasOwnProperty.call(selectSync(state).products.deleted, id),
  };
}

/** The selectors for the reducer mounted under `sync`. */
export const syncSelectors = createSyncSelectors();

/** What an error says, as plain data for the store. */
const errorInfo = (err) => ({
  code: (err && err.code) || 'error',
  message: String((err && err.message) || err),
  status: (err && typeof err.status === 'number') ? err.status : 0,
});

/**
 * A sync client (createSyncClient's options) whose changes, status and errors go to the store
 * through `dispatch`; the options' own `onChange`, `onStatus` and `onError` are still called.
 * The store's sync state is reset first: it mirrors this client from its first login on.
 */
export function createReduxSyncClient({ dispatch, onChange, onStatus, onError, ...options }) {
  if (typeof dispatch !== 'function') throw new TypeError('createReduxSyncClient: dispatch is required');
  dispatch(syncActions.reset());
  return createSyncClient({
    ...options,
    onChange: (change) => { dispatch(changeAction(change)); onChange?.(change); },
    onStatus: (status) => { dispatch(syncActions.statusChanged(status)); onStatus?.(status); },
    onError: (err) => { dispatch(syncActions.errorRaised(errorInfo(err))); onError?.(err); },
  });
}
