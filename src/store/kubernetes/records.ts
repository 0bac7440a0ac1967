// API tokens, the audit log and the health series of the Kubernetes-backed store: custom resources
// of the store's own group (store.marina.dev) in the same namespace, so every replica verifies the
// same tokens, reads the same audit trail and serves the same health history.
//
// - A token is named after the SHA-256 of its secret (verify is one GET); only that hash is stored.
// - An audit entry's id is the resourceVersion it was created at: increasing with time and never
//   reused, as the contract asks, without a counter shared between replicas. The log is pruned to
//   the newest `maxEntries` as it grows.
// - A health sample is one object; appending prunes its series by age and count. A series' newest
//   full record (a cluster's newest health report) is one more object per series, named after the
//   series and replaced by server-side apply.
import { createHash, randomBytes } from 'node:crypto';
import { ApiError } from '../../api/errors.js';
import { isNotFound, type KubeClient, type KubeObject, type ResourceType } from '../../kube/client.js';
import type { AuditEntry, AuditLog, AuditQuery, AuditRecord, IssuedToken, SeriesStore, TokenInfo, TokenStore } from '../types.js';
import { RESERVED_PREFIX, STORE_GROUP, STORE_KINDS, STORE_VERSION, type StoreKind } from './crd.js';

interface RecordObject<T> extends KubeObject {
  metadata: NonNullable<KubeObject['metadata']>;
  record: T;
}

function recordType(k: StoreKind): ResourceType {
  return { apiVersion: `${STORE_GROUP}/${STORE_VERSION}`, kind: k.kind, plural: k.plural, namespaced: true };
}

const LABEL_VALUE_RE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** A label value for any string: itself when Kubernetes accepts it, else a hash of it. */
export function labelValue(s: string): string {
  if (s.length <= 63 && LABEL_VALUE_RE.test(s)) return s;
  return 'h-' + createHash('sha256').update(s, 'utf8').digest('hex').slice(0, 40);
}

const label = (name: string) => `${RESERVED_PREFIX}${name}`;

function selector(pairs: [string, string | undefined][]): string | undefined {
  const parts = pairs.filter(([, v]) => v !== undefined).map(([k, v]) => `${label(k)}=${labelValue(v!)}`);
  return parts.length > 0 ? parts.join(',') : undefined;
}

/** Plumbing shared by the record kinds. */
class Records<T> {
  readonly type: ResourceType;

  constructor(
    private readonly client: KubeClient,
    private readonly namespace: string,
    private readonly kind: StoreKind,
  ) {
    this.type = recordType(kind);
  }

  create(metadata: { name?: string; generateName?: string; labels: Record<string, string> }, record: T): Promise<RecordObject<T>> {
    return this.client.create<RecordObject<T>>(
      this.type,
      { apiVersion: this.type.apiVersion, kind: this.kind.kind, metadata: { ...metadata, namespace: this.namespace }, record },
      { fieldValidation: 'Strict' },
    );
  }

  /** Creates or replaces the object `name` in one request (server-side apply, this store owning every field). */
  apply(name: string, labels: Record<string, string>, record: T): Promise<RecordObject<T>> {
    return this.client.apply<RecordObject<T>>(
      this.type,
      { apiVersion: this.type.apiVersion, kind: this.kind.kind, metadata: { name, namespace: this.namespace, labels }, record },
      { fieldManager: FIELD_MANAGER, force: true },
    );
  }

  async get(name: string): Promise<RecordObject<T> | undefined> {
    try {
      return await this.client.get<RecordObject<T>>(this.type, name, { namespace: this.namespace });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list(labelSelector?: string): Promise<RecordObject<T>[]> {
    const list = await this.client.listAll<RecordObject<T>>(this.type, { namespace: this.namespace, labelSelector });
    return list.items;
  }

  /** Deletes by name; true if it was there. */
  async delete(name: string): Promise<boolean> {
    try {
      await this.client.delete(this.type, name, { namespace: this.namespace });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Deletes these objects, a few at a time; returns how many were still there. */
  async deleteAll(items: RecordObject<T>[]): Promise<number> {
    let n = 0;
    for (let i = 0; i < items.length; i += 16) {
      const done = await Promise.all(items.slice(i, i + 16).map((o) => this.delete(o.metadata.name!)));
      n += done.filter(Boolean).length;
    }
    return n;
  }
}

const FIELD_MANAGER = 'marina-store';

const rvOf = (o: KubeObject): number => Number(o.metadata?.resourceVersion ?? 0);

// ----- tokens ----------------------------------------------------------------------------------

interface TokenData {
  id: string;
  user: string;
  description?: string;
  createdAt: string;
  expiresAt?: string;
}

const TOKEN_PREFIX = 'mrn_';

function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class KubernetesTokenStore implements TokenStore {
  private readonly records: Records<TokenData>;

  constructor(client: KubeClient, namespace: string) {
    this.records = new Records(client, namespace, STORE_KINDS.token);
  }

  async issue(opts: { user: string; description?: string; expiresAt?: string }): Promise<IssuedToken> {
    if (typeof opts.user !== 'string' || opts.user === '') throw ApiError.invalidField('user', 'required');
    let expiresAt: string | undefined;
    if (opts.expiresAt !== undefined) {
      const t = Date.parse(opts.expiresAt);
      if (Number.isNaN(t)) throw ApiError.invalidField('expiresAt', 'must be an ISO-8601 time');
      expiresAt = new Date(t).toISOString();
    }
    // Hex, unlike the SQLite store's base64url: the id is also a label value.
    const id = 'tok_' + randomBytes(9).toString('hex');
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const data: TokenData = { id, user: opts.user, createdAt: new Date().toISOString() };
    if (opts.description !== undefined) data.description = opts.description;
    if (expiresAt !== undefined) data.expiresAt = expiresAt;
    await this.records.create({ name: hashToken(token), labels: { [label('user')]: labelValue(opts.user), [label('token-id')]: id } }, data);
    return { id, token };
  }

  async verify(token: string): Promise<{ id: string; user: string } | undefined> {
    if (typeof token !== 'string' || !token.startsWith(TOKEN_PREFIX) || token.length > 128) return undefined;
    const obj = await this.records.get(hashToken(token));
    if (!obj) return undefined;
    const r = obj.record;
    if (r.expiresAt !== undefined && Date.parse(r.expiresAt) <= Date.now()) return undefined;
    return { id: r.id, user: r.user };
  }

  async list(user?: string): Promise<TokenInfo[]> {
    const items = await this.records.list(selector([['user', user]]));
    return items
      .map((o) => o.record)
      .filter((r) => user === undefined || r.user === user)
      .sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? -1 : 1) : a.createdAt < b.createdAt ? -1 : 1))
      .map((r) => {
        const t: TokenInfo = { id: r.id, user: r.user, createdAt: r.createdAt };
        if (r.description !== undefined) t.description = r.description;
        if (r.expiresAt !== undefined) t.expiresAt = r.expiresAt;
        return t;
      });
  }

  async revoke(id: string): Promise<boolean> {
    const items = (await this.records.list(selector([['token-id', id]]))).filter((o) => o.record.id === id);
    return (await this.records.deleteAll(items)) > 0;
  }

  async revokeUser(user: string): Promise<number> {
    const items = (await this.records.list(selector([['user', user]]))).filter((o) => o.record.user === user);
    return this.records.deleteAll(items);
  }
}

// ----- audit log -------------------------------------------------------------------------------

export class KubernetesAuditLog implements AuditLog {
  private readonly records: Records<AuditRecord>;
  private appends = 0;
  private pruning: Promise<unknown> | undefined;

  constructor(
    client: KubeClient,
    namespace: string,
    private readonly retention: { maxEntries: number; pruneEvery: number },
    private readonly onPruneError: (err: unknown) => void,
  ) {
    this.records = new Records(client, namespace, STORE_KINDS.audit);
  }

  async append(r: AuditRecord): Promise<AuditEntry> {
    const record: AuditRecord = { time: r.time, user: r.user, verb: r.verb, kind: r.kind, project: r.project ?? '', name: r.name };
    if (r.generation !== undefined) record.generation = r.generation;
    if (r.resourceVersion !== undefined) record.resourceVersion = r.resourceVersion;
    if (r.code !== undefined) record.code = r.code;
    const created = await this.records.create(
      {
        generateName: 'audit-',
        labels: { [label('user')]: labelValue(record.user), [label('kind')]: labelValue(record.kind), [label('project')]: labelValue(record.project) },
      },
      record,
    );
    // Every replica prunes now and then; two pruning at once only find some objects already gone.
    if (++this.appends % this.retention.pruneEvery === 0 && !this.pruning) {
      this.pruning = this.prune({ keep: this.retention.maxEntries })
        .catch(this.onPruneError)
        .finally(() => (this.pruning = undefined));
    }
    return { id: rvOf(created), ...record };
  }

  async list(q: AuditQuery = {}): Promise<AuditEntry[]> {
    const limit = q.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1) throw ApiError.badRequest('limit must be a positive integer', 'limit');
    const items = await this.records.list(selector([['project', q.project], ['user', q.user], ['kind', q.kind]]));
    return items
      .map((o): AuditEntry => ({ id: rvOf(o), ...o.record }))
      .filter(
        (e) =>
          (q.project === undefined || e.project === q.project) &&
          (q.user === undefined || e.user === q.user) &&
          (q.kind === undefined || e.kind === q.kind) &&
          (q.sinceId === undefined || e.id > q.sinceId),
      )
      .sort((a, b) => b.id - a.id)
      .slice(0, Math.min(limit, 10000));
  }

  async prune(opts: { before?: string; keep?: number }): Promise<number> {
    const items = (await this.records.list()).sort((a, b) => rvOf(b) - rvOf(a));
    const doomed = items.filter((o, i) => (opts.before !== undefined && o.record.time < opts.before) || (opts.keep !== undefined && i >= Math.max(0, opts.keep)));
    return this.records.deleteAll(doomed);
  }

  /** Waits for a background prune (tests, shutdown). */
  async settle(): Promise<void> {
    await this.pruning;
  }
}

// ----- health series ---------------------------------------------------------------------------

interface SampleData {
  series: string;
  time: string;
  sample: unknown;
}

interface LatestData {
  series: string;
  time: string;
  value: unknown;
}

/** The object name of a series' newest record: a DNS label for any series key. */
const latestName = (series: string): string => 'latest-' + createHash('sha256').update(series, 'utf8').digest('hex').slice(0, 40);

/** Oldest first: by sample time, then by creation. */
const byTime = (a: RecordObject<SampleData>, b: RecordObject<SampleData>) =>
  a.record.time === b.record.time ? rvOf(a) - rvOf(b) : a.record.time < b.record.time ? -1 : 1;

export class KubernetesSeriesStore implements SeriesStore {
  private readonly records: Records<SampleData>;
  private readonly latestRecords: Records<LatestData>;

  constructor(client: KubeClient, namespace: string) {
    this.records = new Records(client, namespace, STORE_KINDS.sample);
    this.latestRecords = new Records(client, namespace, STORE_KINDS.latest);
  }

  private async samples(series: string): Promise<RecordObject<SampleData>[]> {
    return (await this.records.list(selector([['series', series]]))).filter((o) => o.record.series === series).sort(byTime);
  }

  async append(series: string, time: string, sample: unknown, bounds: { retainSince: string; maxPoints: number }): Promise<void> {
    await this.records.create({ generateName: 'sample-', labels: { [label('series')]: labelValue(series) } }, { series, time, sample });
    const all = await this.samples(series);
    const maxPoints = Math.max(1, Math.floor(bounds.maxPoints));
    const doomed = all.filter((o, i) => o.record.time < bounds.retainSince || i < all.length - maxPoints);
    await this.records.deleteAll(doomed);
  }

  async range(series: string, since: string): Promise<{ time: string; sample: unknown }[]> {
    return (await this.samples(series)).filter((o) => o.record.time > since).map((o) => ({ time: o.record.time, sample: o.record.sample }));
  }

  async setLatest(series: string, time: string, value: unknown): Promise<void> {
    await this.latestRecords.apply(latestName(series), { [label('series')]: labelValue(series) }, { series, time, value });
  }

  async latest(series: string): Promise<{ time: string; value: unknown } | undefined> {
    const obj = await this.latestRecords.get(latestName(series));
    return obj && obj.record.series === series ? { time: obj.record.time, value: obj.record.value } : undefined;
  }

  async drop(series: string): Promise<number> {
    await this.latestRecords.delete(latestName(series));
    return this.records.deleteAll(await this.samples(series));
  }
}
