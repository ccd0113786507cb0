// Generated from the Rust tables (shared/src/domain.rs: fields; shared/src/events/mod.rs:
// events and control frames; shared/src/ws.rs: client messages) by shared/src/typescript.rs.
// Do not edit: a test keeps this file equal to the code, and
// `UPDATE_DOCS=1 cargo test -p adsync --lib typescript` rewrites it.

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A JSON object. */
export type JsonObject = { [key: string]: Json };
/** An RFC 3339 UTC timestamp, e.g. `2026-11-24T23:42:22.169Z`. */
export type Timestamp = string;
/**
 * A document's Firestore `updateTime`: RFC 3339 UTC with nine fractional digits, fixed width,
 * so string order is time order (`2026-11-24T23:42:22.113284000Z`).
 */
export type Version = string;
/** A colour as `#RRGGBB`. */
export type HexColour = `#${string}`;
/** A product's `status` (`draft` when it has none). */
export type ProductStatus = 'draft' | 'processing' | 'enriched' | 'failed';

/** The fields a client writes on a user (docs/fields.md). */
export interface UserFields {
  /** string, 1 to 200 characters */
  displayName?: string;
  /** https URL, at most 2048 characters */
  photoURL?: string;
  /** string, 0 to 35 characters */
  locale?: string;
  /** string, 0 to 64 characters */
  timezone?: string;
  /** JSON object, at most 16384 bytes */
  metadata?: JsonObject;
}

/** A user as the API returns it: its fields and the server-managed ones. */
export interface User extends UserFields {
  /** The user's id (the token's `sub`). */
  uid: string;
  /** From the sign-in token, when it has one. */
  email?: string;
  /** When the document was created. */
  createdAt: Timestamp;
  /** When the document was last written. */
  updatedAt: Timestamp;
  /** The document's Firestore `updateTime` after the write: compare versions as strings. */
  version: Version;
}

/** A user event too large for API Gateway, sent instead of it: refetch the user. */
export interface UserTruncated {
  uid: string;
  version?: Version;
  truncated: true;
}

/** The body of a user update: some fields, merged into the stored ones. */
export interface UserPatch {
  /** string, 1 to 200 characters; `null` clears it. */
  displayName?: string | null;
  /** https URL, at most 2048 characters; `null` clears it. */
  photoURL?: string | null;
  /** string, 0 to 35 characters; `null` clears it. */
  locale?: string | null;
  /** string, 0 to 64 characters; `null` clears it. */
  timezone?: string | null;
  /** JSON object, at most 16384 bytes; `null` clears it. */
  metadata?: JsonObject | null;
}

/** What a user update changed: the fields it named (`null` = cleared), the user's identity, `updatedAt` and `version`. */
export interface UserChanges extends UserPatch {
  /** The user's id (the token's `sub`). */
  uid: string;
  /** When the document was last written. */
  updatedAt: Timestamp;
  /** The document's Firestore `updateTime` after the write: compare versions as strings. */
  version: Version;
}

/** The fields a client writes on a business (docs/fields.md). */
export interface BusinessFields {
  /** string, 1 to 200 characters */
  name: string;
  /** string, 0 to 2000 characters */
  description?: string;
  /** string, 0 to 100 characters */
  category?: string;
  /** https URL, at most 2048 characters */
  website?: string;
  /** https URL, at most 2048 characters */
  logoUrl?: string;
  /** list of at most 8 `#RRGGBB` colours */
  brandColors?: HexColour[];
  /** JSON object, at most 16384 bytes */
  metadata?: JsonObject;
}

/** A business as the API returns it: its fields and the server-managed ones. */
export interface Business extends BusinessFields {
  /** The document's id, made by the server (20 characters of `[A-Za-z0-9]`). */
  id: string;
  /** When the document was created. */
  createdAt: Timestamp;
  /** When the document was last written. */
  updatedAt: Timestamp;
  /** The document's Firestore `updateTime` after the write: compare versions as strings. */
  version: Version;
}

/** A business event too large for API Gateway, sent instead of it: refetch the business. */
export interface BusinessTruncated {
  id: string;
  version?: Version;
  truncated: true;
}

/** The body of a business create. */
export type NewBusiness = BusinessFields;

/** The fields a client writes on a product (docs/fields.md). */
export interface ProductFields {
  /** string, 1 to 200 characters */
  name: string;
  /** string, 0 to 5000 characters */
  description?: string;
  /** number, 0 to 1000000000 */
  price?: number;
  /** ISO 4217 code (`USD`) */
  currency?: string;
  /** string, 0 to 100 characters */
  category?: string;
  /** list of at most 8 `#RRGGBB` colours */
  colors?: HexColour[];
  /** list of at most 20 strings of 1 to 50 characters */
  tags?: string[];
  /** https URL, at most 2048 characters */
  imageUrl?: string;
  /** https URL, at most 2048 characters */
  generatedImageUrl?: string;
  /** string, 0 to 2200 characters */
  caption?: string;
  /** one of `draft`, `processing`, `enriched`, `failed` (default `draft`) */
  status?: ProductStatus;
  /** string, 0 to 1000 characters */
  error?: string;
  /** JSON object, at most 16384 bytes */
  metadata?: JsonObject;
}

/** A product as the API returns it: its fields and the server-managed ones. */
export interface Product extends ProductFields {
  /** The document's id, made by the server (20 characters of `[A-Za-z0-9]`). */
  id: string;
  /** The business the product belongs to. */
  businessId: string;
  /** When the document was created. */
  createdAt: Timestamp;
  /** When the document was last written. */
  updatedAt: Timestamp;
  /** While `processing`: when the sweeper marks the product `failed` if nothing finished it. */
  processingUntil?: Timestamp;
  /** The document's Firestore `updateTime` after the write: compare versions as strings. */
  version: Version;
}

/** A product event too large for API Gateway, sent instead of it: refetch the product. */
export interface ProductTruncated {
  id: string;
  businessId: string;
  version?: Version;
  truncated: true;
}

/** The body of a product update: some fields, merged into the stored ones. */
export interface ProductPatch {
  /** string, 1 to 200 characters; required, so it cannot be cleared. */
  name?: string;
  /** string, 0 to 5000 characters; `null` clears it. */
  description?: string | null;
  /** number, 0 to 1000000000; `null` clears it. */
  price?: number | null;
  /** ISO 4217 code (`USD`); `null` clears it. */
  currency?: string | null;
  /** string, 0 to 100 characters; `null` clears it. */
  category?: string | null;
  /** list of at most 8 `#RRGGBB` colours; `null` clears it. */
  colors?: HexColour[] | null;
  /** list of at most 20 strings of 1 to 50 characters; `null` clears it. */
  tags?: string[] | null;
  /** https URL, at most 2048 characters; `null` clears it. */
  imageUrl?: string | null;
  /** https URL, at most 2048 characters; `null` clears it. */
  generatedImageUrl?: string | null;
  /** string, 0 to 2200 characters; `null` clears it. */
  caption?: string | null;
  /** one of `draft`, `processing`, `enriched`, `failed` (default `draft`); `null` clears it. */
  status?: ProductStatus | null;
  /** string, 0 to 1000 characters; `null` clears it. */
  error?: string | null;
  /** JSON object, at most 16384 bytes; `null` clears it. */
  metadata?: JsonObject | null;
}

/** What a product update changed: the fields it named (`null` = cleared), the product's identity, `updatedAt` and `version`. */
export interface ProductChanges extends ProductPatch {
  /** The document's id, made by the server (20 characters of `[A-Za-z0-9]`). */
  id: string;
  /** The business the product belongs to. */
  businessId: string;
  /** When the document was last written. */
  updatedAt: Timestamp;
  /** The document's Firestore `updateTime` after the write: compare versions as strings. */
  version: Version;
  /** While `processing`: when the sweeper marks the product `failed` if nothing finished it. */
  processingUntil?: Timestamp | null;
}

/** The body of a product create. */
export type NewProduct = ProductFields;

/** A deleted product: its identity. */
export interface ProductDeleted {
  id: string;
  businessId: string;
}

/** Each kind of document, by the name the client's `applyDocument` takes. */
export interface Documents {
  user: User;
  business: Business;
  product: Product;
}

/** A data frame: one event of the user's stream, numbered by `seq` (per user). */
export interface EventFrame<E extends string = string, D = unknown> {
  event: E;
  seq: number;
  ts: Timestamp;
  data: D;
}
/** `business:created` */
export type BusinessCreatedFrame = EventFrame<'business:created', Business | BusinessTruncated>;
/** `product:created` */
export type ProductCreatedFrame = EventFrame<'product:created', Product>;
/** `product:updated` */
export type ProductUpdatedFrame = EventFrame<'product:updated', ProductChanges | ProductTruncated>;
/** `product:deleted` */
export type ProductDeletedFrame = EventFrame<'product:deleted', ProductDeleted>;
/** `user:updated` */
export type UserUpdatedFrame = EventFrame<'user:updated', UserChanges | UserTruncated>;
/** Every event the backend emits about the documents it writes. */
export type DocEventFrame = BusinessCreatedFrame | ProductCreatedFrame | ProductUpdatedFrame | ProductDeletedFrame | UserUpdatedFrame;
/** The names of those events. */
export type DocEventName = DocEventFrame['event'];
/** An event a service broadcast (`POST /broadcast`; n8n progress, say): any other name, free data. */
export type BroadcastFrame = EventFrame<string, Json | undefined>;

/** A control frame: no `seq`, not data. */
export interface ControlFrame<E extends string = string, D = unknown> {
  event: E;
  ts: Timestamp;
  data: D;
}
/** Every control frame:
 * - `pong`: The answer to `ping`, with the user's head `seq` (no data when the head could not be read).
 * - `resume:done`: A `resume` replayed everything up to `seq`, the head.
 * - `resume:partial`: A `resume` replayed everything up to `seq` and stopped: ask again from `seq` after `retryAfterMs`.
 * - `resync:required`: What is missing cannot be replayed: bootstrap again.
 * - `auth:expiring`: The connection's token expires at `expiresAt` (unix seconds), within 5 minutes: send `auth`.
 * - `auth:ok`: The `auth` action refreshed the connection's token.
 * - `error`: A message could not be handled.
 */
export type ControlFrames =
  | ControlFrame<'pong', { seq: number } | undefined>
  | ControlFrame<'resume:done', { seq: number }>
  | ControlFrame<'resume:partial', { seq: number; head: number; retryAfterMs: number }>
  | ControlFrame<'resync:required', { seq: number }>
  | ControlFrame<'auth:expiring', { expiresAt: number }>
  | ControlFrame<'auth:ok', { expiresAt: number }>
  | ControlFrame<'error', { code: string; message: string; retryAfterMs?: number }>;
/** The names of control frames. */
export type ControlEventName = ControlFrames['event'];
/** Any frame the server sends. */
export type ServerFrame = DocEventFrame | ControlFrames | BroadcastFrame;

/** What a client sends on the socket (route selection on `action`). */
export type ClientMessage =
  | { action: 'ping' }
  | { action: 'resume'; since: number }
  | { action: 'auth'; token: string };
