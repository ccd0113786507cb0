// Declarations of sync-client.js (written by hand; the resource and frame types it uses are
// generated from the Rust tables into types.d.ts). See docs/client.md.

import type {
  Business, ControlEventName, Documents, EventFrame, Json, Product, ServerFrame, User, Version,
} from './types.js';

export type * from './types.js';

/** What the client shows: the signed-in user and their documents by id. */
export interface SyncState {
  user: User | null;
  businesses: { [id: string]: Business };
  products: { [id: string]: Product };
}

/** The version each field of a document was written at: a field not in `fields` has `base`. */
export interface FieldVersions {
  base: Version | null;
  fields: { [field: string]: Version };
}

/** A partial document held out of sight until the document itself is known. */
export interface HeldEntry<D> {
  doc: Partial<D>;
  meta: FieldVersions;
}

/** The state with the bookkeeping that makes arrival order irrelevant. */
export interface SyncModel {
  state: SyncState;
  versions: {
    user: FieldVersions | null;
    businesses: { [id: string]: FieldVersions };
    products: { [id: string]: FieldVersions };
  };
  held: {
    user: HeldEntry<User> | null;
    businesses: { [id: string]: HeldEntry<Business> };
    products: { [id: string]: HeldEntry<Product> };
  };
  /** Tombstones: ids deleted for good. */
  deleted: {
    businesses: { [id: string]: true };
    products: { [id: string]: true };
  };
}

/** A login bootstrap, every answer joined (`POST /auth/login`). */
export interface Snapshot {
  user?: User | null;
  businesses?: Business[] | { [id: string]: Business };
  products?: Product[] | { [id: string]: Product };
  seq?: number;
  next?: string | null;
}

/** A kind of document as `applyDocument` takes it (plurals accepted). */
export type DocumentKind = keyof Documents | 'businesses' | 'products';
/** The document type of a kind. */
export type DocumentOf<K extends DocumentKind> = Documents[K extends 'businesses' ? 'business' : K extends 'products' ? 'product' : K & keyof Documents];

/** A data frame as the reducer takes it: an event of the stream, or one the client made after a refetch. */
export type DataFrame = (EventFrame<string, unknown> | { event: string; seq?: number; ts?: string; data: unknown }) & {
  refetched?: true;
};

/** A change of the model, as the client reports them to `onChange`. */
export type Change =
  | { type: 'snapshot'; snapshot: Snapshot }
  | { type: 'event'; frame: DataFrame }
  | { type: 'document'; kind: DocumentKind; doc: Documents[keyof Documents] };

export type ConnectionStatus = 'connecting' | 'live' | 'offline';

/** Names of the frames that carry no `seq` and are not data. */
export const CONTROL_EVENTS: readonly ControlEventName[];

/** Whether a write at version `v` wins over what was written at `current` (null = unknown). */
export function isNewer(v: Version | null | undefined, current: Version | null | undefined): boolean;
/** A model with nothing in it. */
export function emptyModel(): SyncModel;
/** The model after one event frame; the same object when nothing changed. */
export function applyEvent(model: SyncModel, frame: DataFrame): SyncModel;
/** The model after a full document read over REST. Throws a TypeError for an unknown kind. */
export function applyDocument<K extends DocumentKind>(model: SyncModel, kind: K, doc: DocumentOf<K>): SyncModel;
/** The model replaced by a bootstrap snapshot (tombstones kept, fresher fields kept). */
export function snapshotModel(model: SyncModel | null | undefined, snapshot?: Snapshot): SyncModel;
/** The model after one change reported by `onChange`. */
export function applyChange(model: SyncModel, change: Change): SyncModel;
/** The state (no metadata) from a login response. */
export function snapshotState(snapshot: Snapshot): SyncState;
/** The `exp` claim (unix seconds) of a JWT, or null. */
export function tokenExpiry(token: string): number | null;

/** An HTTP error from the backend: `code` and `message` from its `{error: {code, message}}`. */
export class ApiError extends Error {
  constructor(status: number, code: string, message: string);
  /** The HTTP status; 0 for an `error` frame on the socket. */
  status: number;
  code: string;
}

/** What `getToken` may answer: the token, or the token with its expiry (unix seconds). */
export type TokenAnswer = string | { token: string; expiresAt?: number };

/** The part of the WebSocket API the client uses (the browser's, or the `ws` package's in Node). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
}

export interface WebSocketConstructor {
  new (url: string, protocols?: string | string[]): WebSocketLike;
}

/** The part of a fetch answer the client reads. */
export interface FetchResponseLike {
  readonly ok: boolean;
  readonly status: number;
  text(): Promise<string>;
}

export type FetchLike = (
  url: string,
  init: { method: string; headers: { [name: string]: string }; body?: string },
) => Promise<FetchResponseLike>;

/** An injectable clock (tests). */
export interface Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
  now(): number;
  random(): number;
}

export interface SyncClientOptions {
  /** REST origin, e.g. `http://127.0.0.1:3000` (default: the page's origin). */
  baseUrl?: string;
  /** WebSocket URL (default: `baseUrl` with `ws(s):` and `/ws`). */
  wsUrl?: string;
  /** A Firebase ID token (`user.getIdToken(forceRefresh)`). */
  getToken(opts: { forceRefresh: boolean }): Promise<TokenAnswer>;
  /** How the socket carries the token (default `query`). */
  tokenIn?: 'query' | 'protocol';
  /** After each new data frame is applied (broadcasts too), with the new state. */
  onEvent?(frame: ServerFrame | DataFrame, state: SyncState): void;
  /** After each change of the model. */
  onChange?(change: Change): void;
  onStatus?(status: ConnectionStatus): void;
  /** After a fresh bootstrap replaced the state (`resync:required`). */
  onResync?(state: SyncState): void;
  /** Every frame received, control frames and duplicates included. */
  onFrame?(frame: ServerFrame): void;
  onError?(error: Error | ApiError): void;
  WebSocket?: WebSocketConstructor;
  fetch?: FetchLike;
  clock?: Partial<Clock>;
  /** Default 120 000. */
  pingIntervalMs?: number;
  /** Default 1 000. */
  gapWaitMs?: number;
  /** Default 10 000. */
  resumeTimeoutMs?: number;
  /** Default 500. */
  backoffInitialMs?: number;
  /** Default 15 000. */
  backoffMaxMs?: number;
  /** Default 60 000. */
  refreshBeforeMs?: number;
}

export interface SyncClient {
  /** `POST /auth/login`: the state is replaced by the snapshot; resolves to the new state. */
  login(): Promise<SyncState>;
  /** Opens the socket (bootstrapping first if login() was never called). */
  connect(): Promise<void>;
  /** Closes the socket and stops every timer; connect() may be called again. */
  close(): void;
  /** An authorized REST call: the parsed JSON answer, or an ApiError. */
  request<T = Json>(method: string, path: string, body?: unknown): Promise<T>;
  /** Bootstraps again, then resumes from the new mark. */
  resync(): Promise<void>;
  /** Merges a full document a REST call returned (e.g. a mutation's answer). */
  applyDocument<K extends DocumentKind>(kind: K, doc: DocumentOf<K>): SyncState;
  readonly state: SyncState;
  readonly model: SyncModel;
  /** The mark: every seq up to it was received or carries nothing (null before the first login). */
  readonly lastSeq: number | null;
  readonly status: ConnectionStatus;
}

export function createSyncClient(options: SyncClientOptions): SyncClient;
