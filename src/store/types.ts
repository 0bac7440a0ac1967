// The store contract every backend fulfils: SQLite (./sqlite.ts, one process) and the Kubernetes API
// of a management cluster (./kubernetes/, several replicas; docs/ha.md). Semantics follow the
// Kubernetes API server: a global, monotonically increasing resourceVersion (not necessarily dense:
// compare revisions, never count them), optimistic concurrency, finalizers, and watch resumable
// from a resourceVersion. ./conformance.ts and ./properties.ts check every backend against it.
import type { ObjectKey, Resource } from '../api/meta.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent {
  type: WatchEventType;
  /**
   * The object after the change; for DELETED, the last state before removal. In every case
   * `object.metadata.resourceVersion` is the revision of this event (for DELETED: the revision of
   * the deletion), so it can be used to resume a watch. Each watcher gets its own copy.
   */
  object: Resource;
}

export interface ListOptions {
  /** Restrict to one project; undefined lists across projects (for controllers). */
  project?: string;
  /**
   * Kubernetes label selector: equality-based `a=b`, `a==b`, `a!=b`, `a`, `!a` and set-based
   * `a in (x,y)`, `a notin (x)`, comma-separated (all must hold). `a!=b` and `notin` also match
   * objects without the label, as in Kubernetes. Malformed: 400 ApiError, field `labelSelector`.
   */
  labelSelector?: string;
  /**
   * Page size (positive integer; 0 or undefined: everything). Items are ordered by (project, name).
   * Pass the previous page's `continue` to get the next page.
   */
  limit?: number;
  /**
   * Opaque token from a previous page. Malformed or from another kind: 400, field `continue`;
   * older than the retained watch history: 410 Gone (start the list again).
   */
  continue?: string;
}

export interface ListResult {
  items: Resource[];
  /**
   * Store revision the list was read at; a watch from it misses nothing. Every page of a paginated
   * list carries the revision of the FIRST page: later pages show the current state of the objects
   * after the cursor (not a snapshot), so a watch from this revision may re-deliver changes a later
   * page already shows, but never misses one. Treat events as upserts/removals (informer style).
   */
  resourceVersion: string;
  /** Opaque token for the next page; absent on the last page. */
  continue?: string;
}

export interface WatchOptions {
  /** Kind to watch; undefined watches every kind. */
  kind?: string;
  /** Only objects of this project (global kinds never match a project filter). */
  project?: string;
  /**
   * Same syntax as ListOptions.labelSelector. An event is delivered when the object matches after
   * the change OR matched before it. So a MODIFIED event whose object LEFT the selector is still
   * delivered, as MODIFIED with the new (non-matching) labels, so the watcher learns it is gone from
   * its set (Kubernetes would send a synthetic DELETED; Marina does not rewrite event types), and an
   * update that changes labels and removes the last finalizer still yields the DELETED. An object
   * that ENTERS the selector through an update arrives as MODIFIED, not ADDED: treat MODIFIED as an
   * upsert and drop objects whose labels no longer match.
   */
  labelSelector?: string;
  /**
   * Deliver every change after this revision ("0" or undefined: only changes from now on).
   * A revision older than the retained history fails with a 410 Gone ApiError, thrown synchronously
   * by watch(). A revision newer than the store's current revision (the store was reset) also
   * fails with 410 so the client relists (SQLite); a Kubernetes replica cannot tell it from a
   * revision another replica handed out a moment ago, and waits for it. Malformed: 400, field
   * `resourceVersion`.
   */
  resourceVersion?: string;
}

export interface Watch {
  /** Stops delivery; no handler call happens after stop() returns. */
  stop(): void;
}

export interface DeleteOptions {
  /** Precondition: fail with 409 unless the stored object has this resourceVersion. */
  resourceVersion?: string;
}

export interface DeleteResult {
  /** The object as it stands after the call: removed, or marked with deletionTimestamp. */
  object: Resource;
  /** False when finalizers keep the object (HTTP 202); true when it is gone (HTTP 200). */
  removed: boolean;
}

export interface Store {
  /**
   * Assigns uid, resourceVersion, generation=1, creationTimestamp; drops deletionTimestamp and any
   * client-supplied uid/resourceVersion/generation/creationTimestamp. A supplied `status` is kept
   * (controllers create children together with their status). Project kinds need
   * `metadata.project`, global kinds must not have one (422 `metadata.project`). 409 if it exists
   * (also while an object of the same name is still terminating). Unknown kind: 400 `kind`.
   */
  create(obj: Resource): Promise<Resource>;
  get(key: ObjectKey): Promise<Resource | undefined>;
  list(kind: string, opts?: ListOptions): Promise<ListResult>;
  /**
   * Replaces metadata (labels, annotations, finalizers) and spec. `metadata.resourceVersion` is
   * required and must match (409 otherwise). Status in the argument is ignored. generation is bumped
   * only when spec changed. An update that empties finalizers of an object being deleted removes it.
   * uid, creationTimestamp, deletionTimestamp and status are kept from the stored copy. Missing
   * resourceVersion: 422 `metadata.resourceVersion`; missing object: 404. An update that changes
   * nothing returns the stored object without a new revision or event. Adding a finalizer to an
   * object that is being deleted: 422 `metadata.finalizers`. Empty labels/annotations/finalizers
   * are stored as absent.
   */
  update(obj: Resource): Promise<Resource>;
  /** Replaces only status; same resourceVersion precondition. Unchanged status: no new revision. */
  updateStatus(obj: Resource): Promise<Resource>;
  /**
   * Without finalizers: removes (DELETED event). With finalizers: sets deletionTimestamp once
   * (MODIFIED event; generation unchanged) and keeps the object; deleting it again is a no-op that
   * returns it with removed=false. 404 if missing, 409 if the precondition fails.
   */
  delete(key: ObjectKey, opts?: DeleteOptions): Promise<DeleteResult>;
  /**
   * Handler is called in resourceVersion order (per kind; a watch of every kind is in one order
   * across kinds only in SQLite), exactly once per change, never concurrently. Replayed history
   * (resourceVersion given) is delivered after watch() returns (on a microtask, or earlier from
   * within the next mutation). Live events: SQLite delivers them synchronously from within the
   * mutation that caused them; the Kubernetes store once the API server's watch reports them. Either
   * way handlers must be quick (hand work off to a queue). A handler may call the store, including
   * mutations: the nested mutation's event is queued and delivered after the current handler
   * returns, preserving order. A handler that throws is logged and keeps its subscription; the
   * store is unaffected. For DELETED caused by an update that removed the last finalizer, the
   * object is the update's content (SQLite) or the last stored state (Kubernetes).
   */
  watch(opts: WatchOptions, handler: (event: WatchEvent) => void): Watch;
  /**
   * Current revision of the whole store. Revisions are positive integers (as strings); a new SQLite
   * store starts at "1" without any event, so "0" is never a real revision and always means "now".
   */
  currentRevision(): Promise<string>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Audit log and API tokens: stored next to the objects (same database for the SQLite backend).

export interface AuditRecord {
  /** ISO-8601 time of the request. */
  time: string;
  user: string;
  /** create | update | updateStatus | delete | get | list | watch | ... */
  verb: string;
  kind: string;
  /** Empty for global kinds. */
  project: string;
  name: string;
  generation?: number;
  resourceVersion?: string;
  /** HTTP status code of the outcome. */
  code?: number;
}

export interface AuditEntry extends AuditRecord {
  /** Increasing id; newer entries have larger ids. */
  id: number;
}

export interface AuditQuery {
  project?: string;
  user?: string;
  kind?: string;
  /** Default 100, at most 10000. */
  limit?: number;
  /** Only entries with id > sinceId (for polling). */
  sinceId?: number;
}

export interface AuditLog {
  append(record: AuditRecord): Promise<AuditEntry>;
  /** Newest first. */
  list(query?: AuditQuery): Promise<AuditEntry[]>;
  /** Deletes entries older than `before` (ISO time) and/or all but the newest `keep`; returns how many. */
  prune(opts: { before?: string; keep?: number }): Promise<number>;
}

/**
 * Small time series beside the objects (e.g. a cluster's health samples): append-only per series
 * key, bounded by age and count, read back by time range. Beside its samples a series may keep one
 * full record, replaced on each write (a cluster's newest health report, which the replica that
 * checks health shares with the others this way).
 */
export interface SeriesStore {
  /** Appends a sample, then drops the series' samples older than `retainSince` and beyond the newest `maxPoints`. */
  append(series: string, time: string, sample: unknown, bounds: { retainSince: string; maxPoints: number }): Promise<void>;
  /** Samples with time > since, oldest first. */
  range(series: string, since: string): Promise<{ time: string; sample: unknown }[]>;
  /** Keeps `value` as the series' newest record, replacing the one before. */
  setLatest(series: string, time: string, value: unknown): Promise<void>;
  /** The record setLatest kept last, if any. */
  latest(series: string): Promise<{ time: string; value: unknown } | undefined>;
  /** Deletes a whole series (its owner is gone), its newest record too; returns how many samples. */
  drop(series: string): Promise<number>;
}

export interface TokenInfo {
  id: string;
  user: string;
  description?: string;
  createdAt: string;
  expiresAt?: string;
}

export interface IssuedToken {
  id: string;
  /** The secret bearer token (`mrn_...`). Shown once: only its SHA-256 is stored. */
  token: string;
}

export interface TokenStore {
  /** `expiresAt`: ISO time after which verify() rejects the token. */
  issue(opts: { user: string; description?: string; expiresAt?: string }): Promise<IssuedToken>;
  /** The owner of a valid, unexpired, unrevoked token; undefined otherwise. */
  verify(token: string): Promise<{ id: string; user: string } | undefined>;
  /** Metadata only, never the secret; oldest first. */
  list(user?: string): Promise<TokenInfo[]>;
  /** True if the token existed. */
  revoke(id: string): Promise<boolean>;
  /** Revokes every token of a user (e.g. when the User is deleted); returns how many. */
  revokeUser(user: string): Promise<number>;
}
