// The SQLite store: objects, their change history (for watch resume), the audit log and API tokens
// in one database file, behind the Kubernetes-like Store contract of ./types.ts.
//
// Concurrency model. better-sqlite3 is synchronous and the store is owned by ONE process (do not
// open the same file from two processes: revisions are counted in memory). Every mutation runs
// start-to-finish in a single synchronous call: one IMMEDIATE transaction reads the stored copy,
// checks preconditions, bumps the global revision, writes the object and appends the event; after
// the commit the event is queued to the matching watchers and the queue is drained before the
// mutation returns. Because no other JavaScript can run between those steps, watch() can replay
// history and register itself atomically: no gap, no duplicate.
import Database from 'better-sqlite3';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { ApiError } from '../api/errors.js';
import type { ObjectKey, Resource } from '../api/meta.js';
import { findKind, kindInfo, type KindInfo } from '../api/registry.js';
import {
  aadOf,
  admit,
  checkDeletePrecondition,
  checkPreconditions,
  decodeContinue,
  encodeContinue,
  envelope,
  matchesSelector,
  newObject,
  parseLimit,
  parseRevision,
  planUpdate,
  planUpdateStatus,
  withRevision,
  type Labels,
} from './admission.js';
import { decryptJson, encryptJson, isEncryptedField, KEY_BYTES } from './crypto.js';
import { parseLabelSelector, type LabelSelector } from './selector.js';
import type {
  AuditEntry,
  AuditLog,
  AuditQuery,
  AuditRecord,
  DeleteOptions,
  DeleteResult,
  IssuedToken,
  ListOptions,
  ListResult,
  Store,
  TokenInfo,
  TokenStore,
  SeriesStore,
  Watch,
  WatchEvent,
  WatchEventType,
  WatchOptions,
} from './types.js';

export { loadOrCreateEncryptionKey } from './crypto.js';

/** The subset of a pino logger the store uses. */
export interface StoreLogger {
  error(obj: object, msg?: string): void;
}

export interface SqliteStoreOptions {
  /** Database file, or ':memory:'. */
  path: string;
  /** 32-byte AES-256-GCM key for sensitive kinds (see loadOrCreateEncryptionKey). */
  encryptionKey: Buffer;
  /**
   * Watch events retained for resuming watches (default 10000). At least this many of the most
   * recent events are kept; compaction runs in batches of 1% (so up to 1% more are kept).
   */
  historyLimit?: number;
  /** Where handler exceptions are reported; default: a pino logger named `store`. */
  logger?: StoreLogger;
}

export interface SqliteStore extends Store {
  /** Audit log in the same database. */
  readonly audit: AuditLog;
  /** API tokens in the same database. */
  readonly tokens: TokenStore;
  /** Bounded time series (health samples) in the same database. */
  readonly series: SeriesStore;
}

export function openSqliteStore(opts: SqliteStoreOptions): SqliteStore {
  return new SqliteStoreImpl(opts);
}

// ---------------------------------------------------------------------------------------------

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- Revision 1 is a genesis revision without an event: a list never returns "0", which watch()
-- would read as "from now" (a client listing a fresh store would then miss the first changes).
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', 1), ('revision', 1), ('compacted', 1);
CREATE TABLE IF NOT EXISTS objects (
  kind TEXT NOT NULL, project TEXT NOT NULL, name TEXT NOT NULL,
  uid TEXT NOT NULL, rv INTEGER NOT NULL, json TEXT NOT NULL,
  PRIMARY KEY (kind, project, name)
);
CREATE TABLE IF NOT EXISTS events (
  rv INTEGER PRIMARY KEY, kind TEXT NOT NULL, project TEXT NOT NULL, name TEXT NOT NULL,
  type TEXT NOT NULL, json TEXT NOT NULL,
  old_labels TEXT -- when an update changed the labels: the labels before (for selector watches)
);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, user TEXT NOT NULL, verb TEXT NOT NULL,
  kind TEXT NOT NULL, project TEXT NOT NULL, name TEXT NOT NULL,
  generation INTEGER, resource_version TEXT, code INTEGER
);
CREATE INDEX IF NOT EXISTS audit_by_project ON audit (project, id);
CREATE INDEX IF NOT EXISTS audit_by_user ON audit (user, id);
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY, user TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, description TEXT,
  created_at TEXT NOT NULL, expires_at TEXT
);
CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens (user);
CREATE TABLE IF NOT EXISTS series (series TEXT NOT NULL, time TEXT NOT NULL, json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS series_by_time ON series (series, time);
CREATE TABLE IF NOT EXISTS series_latest (series TEXT PRIMARY KEY, time TEXT NOT NULL, json TEXT NOT NULL);
`;

interface ObjectRow {
  kind: string;
  project: string;
  name: string;
  json: string;
}

interface EventRow extends ObjectRow {
  rv: number;
  type: WatchEventType;
  old_labels: string | null;
}

/** One committed change, as handed to watchers. */
interface Change {
  rev: number;
  type: WatchEventType;
  info: KindInfo;
  key: ObjectKey;
  /** Plaintext object, metadata.resourceVersion === String(rev). */
  object: Resource;
  /** Labels before the change, when an update altered them (MODIFIED, or DELETED by finalizer removal). */
  oldLabels?: Labels;
  /** Set by persist(): the plaintext JSON delivered to watchers. */
  plain?: string;
  /** Set by persist() when it compacted the history up to (and including) this revision. */
  compactedTo?: number;
}

interface Pending {
  type: WatchEventType;
  json: string;
}

interface Watcher {
  kind?: string;
  project?: string;
  selector?: LabelSelector;
  handler: (event: WatchEvent) => void;
  /** Highest revision already queued or skipped for this watcher (dedup between replay and live). */
  lastRv: number;
  pending: Pending[];
  head: number;
  queued: boolean;
  stopped: boolean;
}

class SqliteStoreImpl implements SqliteStore {
  readonly audit: AuditLog;
  readonly tokens: TokenStore;
  readonly series: SeriesStore;

  private readonly db: Database.Database;
  private readonly key: Buffer;
  private readonly historyLimit: number;
  private readonly compactSlack: number;
  private readonly logger: StoreLogger;
  private rev: number;
  private compacted: number;
  private closed = false;

  private readonly watchers = new Set<Watcher>();
  private ready: Watcher[] = [];
  private draining = false;

  private readonly txn: Database.Transaction<(fn: () => unknown) => unknown>;
  private readonly st: {
    getObject: Database.Statement<[string, string, string], { json: string }>;
    exists: Database.Statement<[string, string, string], { one: number }>;
    upsertObject: Database.Statement<[string, string, string, string, number, string]>;
    deleteObject: Database.Statement<[string, string, string]>;
    insertEvent: Database.Statement<[number, string, string, string, string, string, string | null]>;
    setMeta: Database.Statement<[number, string]>;
    compact: Database.Statement<[number]>;
  };
  private readonly stmtCache = new Map<string, Database.Statement>();

  constructor(opts: SqliteStoreOptions) {
    if (!Buffer.isBuffer(opts.encryptionKey) || opts.encryptionKey.length !== KEY_BYTES) {
      throw new Error(`encryptionKey must be a ${KEY_BYTES}-byte Buffer`);
    }
    const historyLimit = opts.historyLimit ?? 10000;
    if (!Number.isInteger(historyLimit) || historyLimit < 1) throw new Error('historyLimit must be a positive integer');
    this.key = Buffer.from(opts.encryptionKey);
    this.historyLimit = historyLimit;
    this.compactSlack = Math.max(1, Math.floor(historyLimit / 100));
    this.logger = opts.logger ?? pino({ name: 'store' });

    const db = new Database(opts.path);
    this.db = db;
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      db.exec(SCHEMA);
    } catch (err) {
      db.close();
      throw err;
    }
    const meta = db.prepare<[string], { value: number }>('SELECT value FROM meta WHERE key = ?');
    this.rev = meta.get('revision')!.value;
    this.compacted = meta.get('compacted')!.value;

    this.txn = db.transaction((fn: () => unknown) => fn());
    this.st = {
      getObject: db.prepare('SELECT json FROM objects WHERE kind = ? AND project = ? AND name = ?'),
      exists: db.prepare('SELECT 1 AS one FROM objects WHERE kind = ? AND project = ? AND name = ?'),
      upsertObject: db.prepare(
        `INSERT INTO objects (kind, project, name, uid, rv, json) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (kind, project, name) DO UPDATE SET uid = excluded.uid, rv = excluded.rv, json = excluded.json`,
      ),
      deleteObject: db.prepare('DELETE FROM objects WHERE kind = ? AND project = ? AND name = ?'),
      insertEvent: db.prepare(
        'INSERT INTO events (rv, kind, project, name, type, json, old_labels) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      setMeta: db.prepare('UPDATE meta SET value = ? WHERE key = ?'),
      compact: db.prepare('DELETE FROM events WHERE rv <= ?'),
    };
    const check = () => this.assertOpen();
    this.audit = new SqliteAuditLog(db, check);
    this.tokens = new SqliteTokenStore(db, check);
    this.series = new SqliteSeriesStore(db, check);
  }

  // ----- reads ---------------------------------------------------------------------------------

  async get(key: ObjectKey): Promise<Resource | undefined> {
    this.assertOpen();
    const info = kindInfo(key.kind);
    return this.read(info, key.project ?? '', key.name);
  }

  async list(kind: string, opts: ListOptions = {}): Promise<ListResult> {
    this.assertOpen();
    const info = kindInfo(kind);
    const limit = parseLimit(opts.limit);
    const selector = opts.labelSelector ? parseLabelSelector(opts.labelSelector) : undefined;
    let listRev = this.rev;
    let after: { p: string; n: string } | undefined;
    if (opts.continue) {
      const tok = decodeContinue(opts.continue, info.kind, this.rev);
      if (tok.rv < this.compacted) {
        throw ApiError.gone(`continue token is too old (revision ${tok.rv} was compacted); start the list again`);
      }
      listRev = tok.rv;
      after = { p: tok.p, n: tok.n };
    }

    let sql = 'SELECT kind, project, name, json FROM objects WHERE kind = ?';
    const args: (string | number)[] = [info.kind];
    if (opts.project !== undefined) {
      sql += ' AND project = ?';
      args.push(opts.project);
    }
    if (after) {
      sql += ' AND (project, name) > (?, ?)';
      args.push(after.p, after.n);
    }
    sql += ' ORDER BY project, name';
    // Without a selector the page size is known up front: fetch one extra row to see if there is more.
    if (limit > 0 && !selector) sql += ` LIMIT ${limit + 1}`;

    const items: Resource[] = [];
    let more = false;
    let last: ObjectRow | undefined;
    for (const row of this.stmt<ObjectRow>(sql).iterate(...args)) {
      const obj = JSON.parse(row.json) as Resource;
      if (selector && !selector.matches(obj.metadata.labels)) continue;
      if (limit > 0 && items.length === limit) {
        more = true;
        break;
      }
      items.push(info.sensitive ? this.decrypt(info, row, obj) : obj);
      last = row;
    }
    const result: ListResult = { items, resourceVersion: String(listRev) };
    if (more && last) result.continue = encodeContinue({ k: info.kind, p: last.project, n: last.name, rv: listRev });
    return result;
  }

  async currentRevision(): Promise<string> {
    this.assertOpen();
    return String(this.rev);
  }

  // ----- mutations -----------------------------------------------------------------------------

  async create(obj: Resource): Promise<Resource> {
    return this.mutate(() => {
      const a = admit(obj);
      const { info, key } = a;
      if (this.st.exists.get(key.kind, key.project, key.name)) throw ApiError.alreadyExists(key.kind, key.name);
      const rev = this.rev + 1;
      const object = newObject(a, { uid: randomUUID(), resourceVersion: String(rev), creationTimestamp: new Date().toISOString() });
      return { result: object, change: { rev, type: 'ADDED', info, key, object } };
    });
  }

  async update(obj: Resource): Promise<Resource> {
    return this.mutate(() => {
      const { info, key, inc } = admit(obj);
      const cur = this.precondition(info, key, inc);
      const plan = planUpdate(cur, inc);
      if (!plan) return { result: cur };
      const rev = this.rev + 1;
      const object = withRevision(plan.next, String(rev));
      return { result: object, change: { rev, type: plan.type, info, key, object, oldLabels: plan.oldLabels } };
    });
  }

  async updateStatus(obj: Resource): Promise<Resource> {
    return this.mutate(() => {
      const { info, key, inc } = admit(obj);
      const cur = this.precondition(info, key, inc);
      const next = planUpdateStatus(cur, inc);
      if (!next) return { result: cur };
      const rev = this.rev + 1;
      const object = withRevision(next, String(rev));
      return { result: object, change: { rev, type: 'MODIFIED', info, key, object } };
    });
  }

  async delete(key: ObjectKey, opts: DeleteOptions = {}): Promise<DeleteResult> {
    return this.mutate<DeleteResult>(() => {
      const info = kindInfo(key.kind);
      const k: ObjectKey = { kind: info.kind, project: key.project ?? '', name: key.name };
      const cur = this.read(info, k.project, k.name);
      if (!cur) throw ApiError.notFound(k.kind, k.name);
      checkDeletePrecondition(k, cur, opts.resourceVersion);
      if (cur.metadata.deletionTimestamp) return { result: { object: cur, removed: false } };
      const rev = this.rev + 1;
      if (!cur.metadata.finalizers?.length) {
        const object = withRevision(cur, String(rev));
        return { result: { object, removed: true }, change: { rev, type: 'DELETED', info, key: k, object } };
      }
      const object = envelope(cur.apiVersion, cur.kind, {
        ...cur.metadata,
        resourceVersion: String(rev),
        deletionTimestamp: new Date().toISOString(),
      }, cur.spec, cur.status);
      return { result: { object, removed: false }, change: { rev, type: 'MODIFIED', info, key: k, object } };
    });
  }

  // ----- watch ---------------------------------------------------------------------------------

  watch(opts: WatchOptions, handler: (event: WatchEvent) => void): Watch {
    this.assertOpen();
    const w: Watcher = {
      kind: opts.kind !== undefined ? kindInfo(opts.kind).kind : undefined,
      project: opts.project,
      selector: opts.labelSelector ? parseLabelSelector(opts.labelSelector) : undefined,
      handler,
      lastRv: this.rev,
      pending: [],
      head: 0,
      queued: false,
      stopped: false,
    };
    const from = parseRevision(opts.resourceVersion);
    if (from !== undefined && from !== 0) {
      if (from < this.compacted) {
        throw ApiError.gone(
          `resourceVersion ${from} is too old: history starts after ${this.compacted}; list again and watch from the list's resourceVersion`,
        );
      }
      if (from > this.rev) {
        throw ApiError.gone(`resourceVersion ${from} is newer than the store's revision ${this.rev}; list again`);
      }
      let sql = 'SELECT rv, kind, project, name, type, json, old_labels FROM events WHERE rv > ?';
      const args: (string | number)[] = [from];
      if (w.kind !== undefined) {
        sql += ' AND kind = ?';
        args.push(w.kind);
      }
      if (w.project !== undefined) {
        sql += ' AND project = ?';
        args.push(w.project);
      }
      sql += ' ORDER BY rv';
      for (const row of this.stmt<EventRow>(sql).iterate(...args)) {
        const info = findKind(row.kind);
        let object: Resource | undefined;
        if (w.selector) {
          object = JSON.parse(row.json) as Resource;
          const oldLabels = row.old_labels === null ? undefined : (JSON.parse(row.old_labels) as Labels);
          if (!matchesSelector(w.selector, object.metadata.labels, oldLabels)) continue;
        }
        let json = row.json;
        if (info?.sensitive) {
          object ??= JSON.parse(row.json) as Resource;
          json = JSON.stringify(this.decrypt(info, row, object));
        }
        w.pending.push({ type: row.type, json });
      }
    }
    this.watchers.add(w);
    if (w.pending.length > 0) {
      w.queued = true;
      this.ready.push(w);
      // Deliver the replay after watch() returns; a mutation before then drains it first.
      if (!this.draining) queueMicrotask(() => this.drain());
    }
    return {
      stop: () => {
        w.stopped = true;
        w.pending = [];
        w.head = 0;
        this.watchers.delete(w);
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watchers) {
      w.stopped = true;
      w.pending = [];
    }
    this.watchers.clear();
    this.db.close();
  }

  // ----- internals -----------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new Error('store is closed');
  }

  private stmt<R>(sql: string): Database.Statement<unknown[], R> {
    let s = this.stmtCache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmtCache.set(sql, s);
    }
    return s as Database.Statement<unknown[], R>;
  }

  /** Runs fn in one IMMEDIATE transaction, persists its change, then notifies watchers. */
  private mutate<T>(fn: () => { result: T; change?: Change }): T {
    this.assertOpen();
    const out = this.txn.immediate(() => {
      const r = fn();
      if (r.change) this.persist(r.change);
      return r;
    }) as { result: T; change?: Change };
    const change = out.change;
    if (change) {
      this.rev = change.rev;
      if (change.compactedTo !== undefined) this.compacted = change.compactedTo;
      this.publish(change);
    }
    return out.result;
  }

  /** Writes the object and its event; inside the mutation's transaction. */
  private persist(c: Change): void {
    const { key, info, object } = c;
    const plain = JSON.stringify(object);
    const stored = info.sensitive && object.spec !== undefined
      ? JSON.stringify({ ...object, spec: encryptJson(this.key, object.spec, aadOf(key)) })
      : plain;
    if (c.type === 'DELETED') this.st.deleteObject.run(key.kind, key.project, key.name);
    else this.st.upsertObject.run(key.kind, key.project, key.name, object.metadata.uid ?? '', c.rev, stored);
    this.st.insertEvent.run(c.rev, key.kind, key.project, key.name, c.type, stored, c.oldLabels ? JSON.stringify(c.oldLabels) : null);
    this.st.setMeta.run(c.rev, 'revision');
    if (c.rev - this.compacted > this.historyLimit + this.compactSlack) {
      const to = c.rev - this.historyLimit;
      this.st.compact.run(to);
      this.st.setMeta.run(to, 'compacted');
      c.compactedTo = to;
    }
    c.plain = plain;
  }

  private publish(c: Change): void {
    const labels = c.object.metadata.labels;
    for (const w of this.watchers) {
      if (w.stopped || c.rev <= w.lastRv) continue;
      w.lastRv = c.rev;
      if (w.kind !== undefined && w.kind !== c.key.kind) continue;
      if (w.project !== undefined && w.project !== c.key.project) continue;
      if (w.selector && !matchesSelector(w.selector, labels, c.oldLabels)) continue;
      w.pending.push({ type: c.type, json: c.plain! });
      if (!w.queued) {
        w.queued = true;
        this.ready.push(w);
      }
    }
    this.drain();
  }

  /** Delivers queued events; re-entrant calls (a handler mutating the store) just queue. */
  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      for (let i = 0; i < this.ready.length; i++) {
        const w = this.ready[i]!;
        while (!w.stopped && w.head < w.pending.length) {
          const ev = w.pending[w.head]!;
          w.head++;
          let event: WatchEvent;
          try {
            event = { type: ev.type, object: JSON.parse(ev.json) as Resource };
            w.handler(event);
          } catch (err) {
            try {
              this.logger.error({ err, type: ev.type }, 'watch handler threw; event skipped for this watcher');
            } catch {
              /* a broken logger must not break the store either */
            }
          }
        }
        w.pending = [];
        w.head = 0;
        w.queued = false;
      }
    } finally {
      this.ready = [];
      this.draining = false;
    }
  }

  private read(info: KindInfo, project: string, name: string): Resource | undefined {
    const row = this.st.getObject.get(info.kind, project, name);
    return row ? this.decode(info, { kind: info.kind, project, name, json: row.json }) : undefined;
  }

  private decode(info: KindInfo, row: ObjectRow): Resource {
    const obj = JSON.parse(row.json) as Resource;
    return info.sensitive ? this.decrypt(info, row, obj) : obj;
  }

  private decrypt(info: KindInfo, row: ObjectRow, obj: Resource): Resource {
    if (isEncryptedField(obj.spec)) {
      obj.spec = decryptJson(this.key, obj.spec, aadOf({ kind: info.kind, project: row.project, name: row.name }));
    }
    return obj;
  }

  /** The stored object, after the resourceVersion (and uid, if given) preconditions of an update. */
  private precondition(info: KindInfo, key: ObjectKey, inc: Resource): Resource {
    return checkPreconditions(key, inc, this.read(info, key.project, key.name));
  }
}

// ----- time series -----------------------------------------------------------------------------

class SqliteSeriesStore implements SeriesStore {
  private readonly stmts;

  constructor(
    db: Database.Database,
    private readonly check: () => void,
  ) {
    this.stmts = {
      insert: db.prepare<[string, string, string]>('INSERT INTO series (series, time, json) VALUES (?, ?, ?)'),
      pruneAge: db.prepare<[string, string]>('DELETE FROM series WHERE series = ? AND time < ?'),
      // rowid order is insertion order; keeping the newest N by rowid avoids sorting by time.
      pruneCount: db.prepare<[string, string, number]>(
        'DELETE FROM series WHERE series = ? AND rowid <= (SELECT rowid FROM series WHERE series = ? ORDER BY rowid DESC LIMIT 1 OFFSET ?)',
      ),
      range: db.prepare<[string, string], { time: string; json: string }>('SELECT time, json FROM series WHERE series = ? AND time > ? ORDER BY time, rowid'),
      drop: db.prepare<[string]>('DELETE FROM series WHERE series = ?'),
      setLatest: db.prepare<[string, string, string]>(
        'INSERT INTO series_latest (series, time, json) VALUES (?, ?, ?) ON CONFLICT (series) DO UPDATE SET time = excluded.time, json = excluded.json',
      ),
      latest: db.prepare<[string], { time: string; json: string }>('SELECT time, json FROM series_latest WHERE series = ?'),
      dropLatest: db.prepare<[string]>('DELETE FROM series_latest WHERE series = ?'),
    };
    this.dropTx = db.transaction((series: string) => {
      this.stmts.dropLatest.run(series);
      return this.stmts.drop.run(series).changes;
    });
    this.tx = db.transaction((series: string, time: string, json: string, retainSince: string, maxPoints: number) => {
      this.stmts.insert.run(series, time, json);
      this.stmts.pruneAge.run(series, retainSince);
      this.stmts.pruneCount.run(series, series, maxPoints);
    });
  }

  private readonly tx: (series: string, time: string, json: string, retainSince: string, maxPoints: number) => void;
  private readonly dropTx: (series: string) => number;

  async append(series: string, time: string, sample: unknown, bounds: { retainSince: string; maxPoints: number }): Promise<void> {
    this.check();
    this.tx(series, time, JSON.stringify(sample), bounds.retainSince, Math.max(1, Math.floor(bounds.maxPoints)));
  }

  async range(series: string, since: string): Promise<{ time: string; sample: unknown }[]> {
    this.check();
    return this.stmts.range.all(series, since).map((r) => ({ time: r.time, sample: JSON.parse(r.json) as unknown }));
  }

  async setLatest(series: string, time: string, value: unknown): Promise<void> {
    this.check();
    this.stmts.setLatest.run(series, time, JSON.stringify(value));
  }

  async latest(series: string): Promise<{ time: string; value: unknown } | undefined> {
    this.check();
    const row = this.stmts.latest.get(series);
    return row ? { time: row.time, value: JSON.parse(row.json) as unknown } : undefined;
  }

  async drop(series: string): Promise<number> {
    this.check();
    return this.dropTx(series);
  }
}

// ----- audit log -------------------------------------------------------------------------------

interface AuditRow {
  id: number;
  time: string;
  user: string;
  verb: string;
  kind: string;
  project: string;
  name: string;
  generation: number | null;
  resource_version: string | null;
  code: number | null;
}

class SqliteAuditLog implements AuditLog {
  private readonly insert: Database.Statement<unknown[]>;
  private readonly cache = new Map<string, Database.Statement<unknown[], AuditRow>>();

  constructor(
    private readonly db: Database.Database,
    private readonly check: () => void,
  ) {
    this.insert = db.prepare(
      `INSERT INTO audit (time, user, verb, kind, project, name, generation, resource_version, code)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  async append(r: AuditRecord): Promise<AuditEntry> {
    this.check();
    const res = this.insert.run(
      r.time, r.user, r.verb, r.kind, r.project ?? '', r.name,
      r.generation ?? null, r.resourceVersion ?? null, r.code ?? null,
    );
    return { id: Number(res.lastInsertRowid), ...r, project: r.project ?? '' };
  }

  async list(q: AuditQuery = {}): Promise<AuditEntry[]> {
    this.check();
    const limit = q.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1) throw ApiError.badRequest('limit must be a positive integer', 'limit');
    const where: string[] = [];
    const args: unknown[] = [];
    for (const [col, v] of [['project', q.project], ['user', q.user], ['kind', q.kind]] as const) {
      if (v !== undefined) {
        where.push(`${col} = ?`);
        args.push(v);
      }
    }
    if (q.sinceId !== undefined) {
      where.push('id > ?');
      args.push(q.sinceId);
    }
    const sql = `SELECT * FROM audit${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    let st = this.cache.get(sql);
    if (!st) this.cache.set(sql, (st = this.db.prepare(sql)));
    return st.all(...args, Math.min(limit, 10000)).map((row) => {
      const e: AuditEntry = {
        id: row.id, time: row.time, user: row.user, verb: row.verb, kind: row.kind, project: row.project, name: row.name,
      };
      if (row.generation !== null) e.generation = row.generation;
      if (row.resource_version !== null) e.resourceVersion = row.resource_version;
      if (row.code !== null) e.code = row.code;
      return e;
    });
  }

  async prune(opts: { before?: string; keep?: number }): Promise<number> {
    this.check();
    let n = 0;
    if (opts.before !== undefined) n += this.db.prepare('DELETE FROM audit WHERE time < ?').run(opts.before).changes;
    if (opts.keep !== undefined) {
      n += this.db
        .prepare('DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?)')
        .run(Math.max(0, opts.keep)).changes;
    }
    return n;
  }
}

// ----- API tokens ------------------------------------------------------------------------------

interface TokenRow {
  id: string;
  user: string;
  description: string | null;
  created_at: string;
  expires_at: string | null;
}

const TOKEN_PREFIX = 'mrn_';

/**
 * Tokens are 32 random bytes, so a single fast SHA-256 is the right hash: there is nothing to
 * brute-force (unlike passwords, which need a slow KDF). Lookup is by hash, which also makes a
 * constant-time comparison unnecessary.
 */
function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

class SqliteTokenStore implements TokenStore {
  private readonly st;

  constructor(
    db: Database.Database,
    private readonly check: () => void,
  ) {
    this.st = {
      insert: db.prepare<[string, string, string, string | null, string, string | null]>(
        'INSERT INTO tokens (id, user, hash, description, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      byHash: db.prepare<[string], { id: string; user: string; expires_at: string | null }>(
        'SELECT id, user, expires_at FROM tokens WHERE hash = ?',
      ),
      all: db.prepare<[], TokenRow>('SELECT id, user, description, created_at, expires_at FROM tokens ORDER BY created_at, id'),
      byUser: db.prepare<[string], TokenRow>(
        'SELECT id, user, description, created_at, expires_at FROM tokens WHERE user = ? ORDER BY created_at, id',
      ),
      revoke: db.prepare<[string]>('DELETE FROM tokens WHERE id = ?'),
      revokeUser: db.prepare<[string]>('DELETE FROM tokens WHERE user = ?'),
    };
  }

  async issue(opts: { user: string; description?: string; expiresAt?: string }): Promise<IssuedToken> {
    this.check();
    if (typeof opts.user !== 'string' || opts.user === '') throw ApiError.invalidField('user', 'required');
    let expiresAt: string | null = null;
    if (opts.expiresAt !== undefined) {
      const t = Date.parse(opts.expiresAt);
      if (Number.isNaN(t)) throw ApiError.invalidField('expiresAt', 'must be an ISO-8601 time');
      expiresAt = new Date(t).toISOString();
    }
    const id = 'tok_' + randomBytes(9).toString('base64url');
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    this.st.insert.run(id, opts.user, hashToken(token), opts.description ?? null, new Date().toISOString(), expiresAt);
    return { id, token };
  }

  async verify(token: string): Promise<{ id: string; user: string } | undefined> {
    this.check();
    if (typeof token !== 'string' || !token.startsWith(TOKEN_PREFIX) || token.length > 128) return undefined;
    const row = this.st.byHash.get(hashToken(token));
    if (!row) return undefined;
    if (row.expires_at !== null && Date.parse(row.expires_at) <= Date.now()) return undefined;
    return { id: row.id, user: row.user };
  }

  async list(user?: string): Promise<TokenInfo[]> {
    this.check();
    const rows = user === undefined ? this.st.all.all() : this.st.byUser.all(user);
    return rows.map((r) => {
      const t: TokenInfo = { id: r.id, user: r.user, createdAt: r.created_at };
      if (r.description !== null) t.description = r.description;
      if (r.expires_at !== null) t.expiresAt = r.expires_at;
      return t;
    });
  }

  async revoke(id: string): Promise<boolean> {
    this.check();
    return this.st.revoke.run(id).changes > 0;
  }

  async revokeUser(user: string): Promise<number> {
    this.check();
    return this.st.revokeUser.run(user).changes;
  }
}
