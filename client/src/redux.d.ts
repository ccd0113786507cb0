// Declarations of redux.js, the Redux Toolkit adapter (`@adsync/client/redux`). See docs/client.md.

import type {
  ActionCreatorWithPayload, ActionCreatorWithoutPayload, EntityAdapter, EntityState, PayloadAction, Reducer, Slice,
} from '@reduxjs/toolkit';
import type {
  Change, ConnectionStatus, DataFrame, DocumentKind, FieldVersions, HeldEntry, Snapshot, SyncClient, SyncClientOptions,
} from './sync-client.js';
import type { Business, Documents, Product, User } from './types.js';

/** A collection slice: an entity-adapter state plus the convergence bookkeeping. */
export interface CollectionState<D extends { id: string }> extends EntityState<D, string> {
  versions: { [id: string]: FieldVersions };
  held: { [id: string]: HeldEntry<D> };
  /** Tombstones: ids deleted for good. */
  deleted: { [id: string]: true };
}

export interface UserState {
  profile: User | null;
  versions: FieldVersions | null;
  held: HeldEntry<User> | null;
}

/** The last error the client met; cleared when the connection is live again. */
export interface SyncError {
  code: string;
  message: string;
  /** The HTTP status; 0 for a socket frame or a network error. */
  status: number;
}

export interface ConnectionState {
  status: ConnectionStatus;
  error: SyncError | null;
}

/** The state of `syncReducer`. */
export interface SyncSliceState {
  user: UserState;
  businesses: CollectionState<Business>;
  products: CollectionState<Product>;
  connection: ConnectionState;
}

export const syncActions: {
  snapshotLoaded: ActionCreatorWithPayload<Snapshot, 'adsync/snapshotLoaded'>;
  eventReceived: ActionCreatorWithPayload<DataFrame, 'adsync/eventReceived'>;
  documentFetched: ActionCreatorWithPayload<{ kind: DocumentKind; doc: Documents[keyof Documents] }, 'adsync/documentFetched'>;
  statusChanged: ActionCreatorWithPayload<ConnectionStatus, 'adsync/statusChanged'>;
  errorRaised: ActionCreatorWithPayload<SyncError, 'adsync/errorRaised'>;
  reset: ActionCreatorWithoutPayload<'adsync/reset'>;
};

/** The actions the adapter dispatches. */
export type SyncAction =
  | ReturnType<(typeof syncActions)['snapshotLoaded']>
  | ReturnType<(typeof syncActions)['eventReceived']>
  | ReturnType<(typeof syncActions)['documentFetched']>
  | ReturnType<(typeof syncActions)['statusChanged']>
  | ReturnType<(typeof syncActions)['errorRaised']>
  | ReturnType<(typeof syncActions)['reset']>;

/** The action for a change the client reported to `onChange`. */
export function changeAction(change: Change): PayloadAction<unknown, string>;

export const businessesAdapter: EntityAdapter<Business, string>;
export const productsAdapter: EntityAdapter<Product, string>;
export const userSlice: Slice<UserState, {}, 'adsync/user'>;
export const businessesSlice: Slice<CollectionState<Business>, {}, 'adsync/businesses'>;
export const productsSlice: Slice<CollectionState<Product>, {}, 'adsync/products'>;
export const connectionSlice: Slice<ConnectionState, {}, 'adsync/connection'>;

/** The four slices' reducer: mount it under `sync` (or pass your key to createSyncSelectors). */
export const syncReducer: Reducer<SyncSliceState>;

export interface SyncSelectors<S> {
  selectUser(state: S): User | null;
  selectBusinesses(state: S): Business[];
  selectBusinessById(state: S, id: string): Business | undefined;
  selectProducts(state: S): Product[];
  selectProductById(state: S, id: string): Product | undefined;
  /** Memoized: the same array while the products do not change. */
  selectProductsOfBusiness(state: S, businessId: string): Product[];
  selectConnection(state: S): ConnectionState;
  selectConnectionStatus(state: S): ConnectionStatus;
  selectIsProductDeleted(state: S, id: string): boolean;
}

/** Selectors over the adapter's state, found by `selectSync` in the root state. */
export function createSyncSelectors<S>(selectSync: (state: S) => SyncSliceState): SyncSelectors<S>;

/** The selectors for the reducer mounted under `sync`. */
export const syncSelectors: SyncSelectors<{ sync: SyncSliceState }>;

export interface ReduxSyncClientOptions extends SyncClientOptions {
  /** The store's dispatch. */
  dispatch: (action: SyncAction) => unknown;
}

/** A sync client whose changes, status and errors go to the store (its sync state is reset first). */
export function createReduxSyncClient(options: ReduxSyncClientOptions): SyncClient;
