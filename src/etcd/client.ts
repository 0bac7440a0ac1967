// A small etcd v3 client over the JSON gRPC gateway (POST /v3/...), with mTLS on node:https. It
// covers what cluster management needs: membership (list/add/remove/promote), per-member status
// and health.
//
// etcd member and cluster IDs are uint64: they do not fit a JS number (2^53). The gateway encodes
// them as JSON strings (proto3 JSON mapping), and this client keeps them as strings end to end;
// should a server ever send them as bare numbers, the response parser quotes long integer
// literals before JSON.parse so no precision is lost.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import https from 'node:https';
import { createInterface } from 'node:readline';

export interface EtcdClientOptions {
  /** Client URLs of members to talk to, e.g. https://127.0.10.2:2379. Tried in order, failing over. */
  endpoints: string[];
  /** PEM of the etcd CA (verifies the members' serving certificates). */
  ca: string | Buffer;
  /** Client certificate + key PEM signed by the etcd CA. */
  cert: string | Buffer;
  key: string | Buffer;
  /** Per-request timeout (default 5 s). */
  timeoutMs?: number;
}

export interface EtcdMember {
  /** uint64 as a decimal string. */
  id: string;
  /** Empty until the member has started. */
  name: string;
  peerURLs: string[];
  /** Empty until the member has started. */
  clientURLs: string[];
  isLearner: boolean;
}

export interface EtcdStatus {
  version: string;
  /** uint64 as a decimal string: the member that answered. */
  memberId: string;
  clusterId: string;
  /** Leader's member id ("0" or "" when there is none). */
  leader: string;
  dbSize: number;
  raftIndex: string;
  raftTerm: string;
  isLearner: boolean;
  errors: string[];
  /** The member's current revision (the resourceVersion Kubernetes hands out). */
  revision: number;
}

export interface EtcdHealth {
  health: boolean;
  reason: string;
}

export interface MemberHealth extends EtcdMember {
  healthy: boolean;
  /** Why not healthy (error or reason reported by the member). */
  error?: string;
}

/** Every call takes an optional AbortSignal: aborting it ends the call at once (with an EtcdError). */
export interface EtcdCallOptions {
  signal?: AbortSignal;
}

/** What Marina asks of a cluster's etcd; EtcdClient is the real one, tests bring their own. */
export interface EtcdApi {
  memberList(opts?: EtcdCallOptions): Promise<EtcdMember[]>;
  memberAdd(peerURLs: string[], opts?: EtcdCallOptions & { isLearner?: boolean }): Promise<{ member: EtcdMember; members: EtcdMember[] }>;
  memberRemove(id: string, opts?: EtcdCallOptions): Promise<EtcdMember[]>;
  /** Makes a learner that caught up with the leader a voting member. */
  memberPromote(id: string, opts?: EtcdCallOptions): Promise<EtcdMember[]>;
  /** /health of every member (unstarted members are unhealthy). */
  memberHealth(members?: EtcdMember[], opts?: EtcdCallOptions): Promise<MemberHealth[]>;
  /** Prometheus text of the member at `endpoint` (a client URL). */
  metrics(endpoint: string, opts?: EtcdCallOptions): Promise<string>;
  /** Maintenance status of the member at `endpoint` (its version, its cluster). */
  status?(endpoint: string, opts?: EtcdCallOptions): Promise<EtcdStatus>;
  /** Streams a snapshot of the member at `endpoint` into `file` (see EtcdClient.snapshot). */
  snapshot?(endpoint: string, file: string, opts?: EtcdCallOptions): Promise<SnapshotFile>;
}

/** A snapshot as written: its size and SHA-256 (of the whole file, etcd's own checksum included). */
export interface SnapshotFile {
  size: number;
  sha256: string;
}

/** A failed call: `status` 0 when no HTTP response came back; `code` is the gRPC code when the gateway sent one. */
export class EtcdError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EtcdError';
  }

  /** No response at all (connection refused, TLS failure, timeout). */
  get network(): boolean {
    return this.status === 0;
  }

  /**
   * This member cannot serve the call but another may: no response, a learner (which serves
   * no cluster-wide requests), or gRPC Unavailable (code 14: stopping, no leader).
   */
  get memberUnavailable(): boolean {
    return this.network || this.code === 14 || /not supported for learner|no leader/i.test(this.message);
  }
}

/**
 * JSON.parse that keeps integers of 16 or more digits (beyond Number.MAX_SAFE_INTEGER's range) as
 * strings. Only literals outside JSON strings are touched.
 */
export function parseJsonKeepingBigInts(text: string): unknown {
  const quoted = text.replace(/("(?:[^"\\]|\\.)*")|(?<![\w.+-])(-?\d{16,})(?=\s*[,}\]])/g, (m, str: string | undefined, num: string | undefined) =>
    str !== undefined ? str : `"${num}"`,
  );
  return JSON.parse(quoted);
}

type Json = Record<string, unknown>;

function idString(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new Error(`etcd id ${v} lost precision`);
    return String(v);
  }
  return '0';
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

function toMember(raw: unknown): EtcdMember {
  const m = (raw ?? {}) as Json;
  return {
    id: idString(m.ID ?? m.id),
    name: typeof m.name === 'string' ? m.name : '',
    peerURLs: strings(m.peerURLs),
    clientURLs: strings(m.clientURLs),
    isLearner: m.isLearner === true,
  };
}

function toNumber(v: unknown): number {
  const n = typeof v === 'string' ? Number(v) : typeof v === 'number' ? v : 0;
  return Number.isFinite(n) ? n : 0;
}

interface RawResponse {
  status: number;
  body: string;
}

export class EtcdClient implements EtcdApi {
  private endpointList: string[];
  private preferred = 0;
  private readonly agent: https.Agent;
  private readonly timeoutMs: number;

  constructor(opts: EtcdClientOptions) {
    this.endpointList = normalizeEndpoints(opts.endpoints);
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.agent = new https.Agent({ keepAlive: true, maxFreeSockets: 2, ca: opts.ca, cert: opts.cert, key: opts.key });
  }

  get endpoints(): readonly string[] {
    return this.endpointList;
  }

  /** Replaces the endpoints used for cluster-wide calls (members come and go). */
  setEndpoints(endpoints: string[]): void {
    const next = normalizeEndpoints(endpoints);
    if (next.join(',') !== this.endpointList.join(',')) {
      this.endpointList = next;
      this.preferred = 0;
    }
  }

  close(): void {
    this.agent.destroy();
  }

  // ---------- cluster-wide calls (any member answers) ----------

  async memberList(opts: EtcdCallOptions = {}): Promise<EtcdMember[]> {
    const res = (await this.call('/v3/cluster/member/list', { linearizable: true }, opts.signal)) as Json;
    return (Array.isArray(res.members) ? res.members : []).map(toMember);
  }

  /**
   * Adds a member by its peer URLs (it must then start with `--initial-cluster-state=existing`).
   * If a retried request finds the peer URL already registered, the existing member is returned.
   */
  async memberAdd(peerURLs: string[], opts: EtcdCallOptions & { isLearner?: boolean } = {}): Promise<{ member: EtcdMember; members: EtcdMember[] }> {
    try {
      const res = (await this.call('/v3/cluster/member/add', { peerURLs, isLearner: opts.isLearner === true }, opts.signal)) as Json;
      return { member: toMember(res.member), members: (Array.isArray(res.members) ? res.members : []).map(toMember) };
    } catch (err) {
      if (err instanceof EtcdError && /peer ?URLs? already exists/i.test(err.message)) {
        const members = await this.memberList(opts);
        const member = members.find((m) => m.peerURLs.some((u) => peerURLs.includes(u)));
        if (member) return { member, members };
      }
      throw err;
    }
  }

  /** Removes a member by id (a decimal string); returns the remaining members. */
  async memberRemove(id: string, opts: EtcdCallOptions = {}): Promise<EtcdMember[]> {
    if (typeof id !== 'string' || !/^[0-9]+$/.test(id)) throw new TypeError(`etcd member id must be a decimal string, got ${JSON.stringify(id)}`);
    const res = (await this.call('/v3/cluster/member/remove', { ID: id }, opts.signal)) as Json;
    return (Array.isArray(res.members) ? res.members : []).map(toMember);
  }

  /** Promotes a learner that has caught up with the leader. */
  async memberPromote(id: string, opts: EtcdCallOptions = {}): Promise<EtcdMember[]> {
    if (typeof id !== 'string' || !/^[0-9]+$/.test(id)) throw new TypeError(`etcd member id must be a decimal string, got ${JSON.stringify(id)}`);
    const res = (await this.call('/v3/cluster/member/promote', { ID: id }, opts.signal)) as Json;
    return (Array.isArray(res.members) ? res.members : []).map(toMember);
  }

  // ---------- per-member calls ----------

  /** Maintenance status of the member at `endpoint` (default: the first endpoint that answers). */
  async status(endpoint?: string, opts: EtcdCallOptions = {}): Promise<EtcdStatus> {
    const res = (
      endpoint ? await this.callAt(endpoint, '/v3/maintenance/status', {}, opts.signal) : await this.call('/v3/maintenance/status', {}, opts.signal)
    ) as Json;
    const header = (res.header ?? {}) as Json;
    return {
      version: typeof res.version === 'string' ? res.version : '',
      memberId: idString(header.member_id),
      clusterId: idString(header.cluster_id),
      leader: idString(res.leader),
      dbSize: toNumber(res.dbSize),
      raftIndex: idString(res.raftIndex),
      raftTerm: idString(res.raftTerm),
      isLearner: res.isLearner === true,
      errors: strings(res.errors),
      revision: toNumber(header.revision),
    };
  }

  /**
   * GET /health?serializable=true of one member: true when it runs, knows a leader and has no
   * alarm. Serializable: the member answers from its own state instead of a linearizable read
   * through the leader, which a member promoted moments ago answers only after seconds (measured:
   * 5.6 s, holding up every membership decision and the cluster's EtcdReady meanwhile). A member
   * cut off from the quorum loses its leader within a few election timeouts and says so here.
   */
  async health(endpoint: string, opts: EtcdCallOptions = {}): Promise<EtcdHealth> {
    const res = await this.request(endpoint, 'GET', '/health?serializable=true', undefined, opts.signal);
    let parsed: Json = {};
    try {
      parsed = parseJsonKeepingBigInts(res.body) as Json;
    } catch {
      /* not JSON: unhealthy below */
    }
    const health = res.status === 200 && (parsed.health === 'true' || parsed.health === true);
    return { health, reason: typeof parsed.reason === 'string' && parsed.reason ? parsed.reason : health ? '' : `HTTP ${res.status}` };
  }

  /**
   * /health of every member (in parallel). Members that have not started are unhealthy; so are
   * members that do not answer, unless the call was aborted (then it throws).
   */
  async memberHealth(members?: EtcdMember[], opts: EtcdCallOptions = {}): Promise<MemberHealth[]> {
    const list = members ?? (await this.memberList(opts));
    const out = await Promise.all(
      list.map(async (m): Promise<MemberHealth> => {
        const url = m.clientURLs[0];
        if (!url) return { ...m, healthy: false, error: 'not started' };
        try {
          const h = await this.health(url, opts);
          return h.health ? { ...m, healthy: true } : { ...m, healthy: false, error: h.reason };
        } catch (err) {
          return { ...m, healthy: false, error: (err as Error).message };
        }
      }),
    );
    opts.signal?.throwIfAborted();
    return out;
  }

  /** Prometheus text of one member's /metrics (served on the client URL, mTLS like every call). */
  async metrics(endpoint: string, opts: EtcdCallOptions = {}): Promise<string> {
    const base = endpoint.replace(/\/+$/, '');
    const res = await this.request(base, 'GET', '/metrics', undefined, opts.signal);
    if (res.status !== 200) throw new EtcdError(`etcd ${base}/metrics: HTTP ${res.status}`, res.status);
    return res.body;
  }

  /**
   * Streams a snapshot of one member into `file` through the gateway's /v3/maintenance/snapshot
   * (newline-delimited JSON chunks, each a base64 `blob`), never holding more than a chunk in
   * memory. etcd appends the SHA-256 of the database to it; the file is checked against it, so a
   * snapshot cut short or garbled on the way is refused here, not found empty at restore time.
   */
  async snapshot(endpoint: string, file: string, opts: EtcdCallOptions = {}): Promise<SnapshotFile> {
    const url = new URL('/v3/maintenance/snapshot', endpoint.endsWith('/') ? endpoint : `${endpoint}/`);
    const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = https.request(url, { method: 'POST', agent: this.agent, headers: { 'content-type': 'application/json', 'content-length': 2 }, ...(opts.signal ? { signal: opts.signal } : {}) }, resolve);
      // A whole snapshot may take long; only a connection that stays silent this long fails.
      req.setTimeout(Math.max(this.timeoutMs, 60_000), () => req.destroy(new Error('snapshot stream stalled')));
      req.on('error', (err) => reject(new EtcdError(`etcd ${url.origin}/v3/maintenance/snapshot: ${err.message}`, 0, undefined, { cause: err })));
      req.end('{}');
    });
    if (res.statusCode !== 200) {
      let body = '';
      for await (const c of res) body += String(c);
      throw new EtcdError(`etcd ${url.origin}/v3/maintenance/snapshot: HTTP ${res.statusCode}: ${body.slice(0, 300)}`, res.statusCode ?? 0);
    }
    const out = createWriteStream(file, { mode: 0o600 });
    const whole = createHash('sha256');
    // The database's checksum covers everything but the last 32 bytes, which are the checksum.
    const db = createHash('sha256');
    let tail = Buffer.alloc(0);
    let size = 0;
    try {
      for await (const line of createInterface({ input: res, crlfDelay: Infinity })) {
        if (!line.trim()) continue;
        const msg = JSON.parse(line) as { result?: { blob?: string }; error?: { message?: string } };
        if (msg.error) throw new EtcdError(`etcd ${url.origin}/v3/maintenance/snapshot: ${msg.error.message ?? 'stream error'}`, 200);
        const chunk = Buffer.from(msg.result?.blob ?? '', 'base64');
        if (chunk.length === 0) continue;
        whole.update(chunk);
        size += chunk.length;
        const joined = Buffer.concat([tail, chunk]);
        db.update(joined.subarray(0, Math.max(0, joined.length - 32)));
        tail = joined.subarray(Math.max(0, joined.length - 32));
        if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
      }
    } finally {
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    }
    if (size < 32 || !db.digest().equals(tail)) throw new EtcdError(`etcd ${url.origin}: the snapshot (${size} bytes) does not match its own checksum`, 200);
    return { size, sha256: whole.digest('hex') };
  }

  // ---------- transport ----------

  /** POST to the preferred endpoint, failing over to the others when a member cannot serve it. */
  private async call(path: string, body: unknown, signal: AbortSignal | undefined): Promise<unknown> {
    const n = this.endpointList.length;
    if (n === 0) throw new EtcdError(`etcd ${path}: no endpoints`, 0);
    let last: unknown;
    for (let i = 0; i < n; i++) {
      const idx = (this.preferred + i) % n;
      const endpoint = this.endpointList[idx]!;
      try {
        const out = await this.callAt(endpoint, path, body, signal);
        this.preferred = idx;
        return out;
      } catch (err) {
        last = err;
        if (!(err instanceof EtcdError) || !err.memberUnavailable || signal?.aborted) throw err;
      }
    }
    throw last;
  }

  private async callAt(endpoint: string, path: string, body: unknown, signal: AbortSignal | undefined): Promise<unknown> {
    const res = await this.request(endpoint, 'POST', path, JSON.stringify(body), signal);
    let parsed: unknown;
    try {
      parsed = res.body ? parseJsonKeepingBigInts(res.body) : {};
    } catch (err) {
      throw new EtcdError(`etcd ${endpoint}${path}: HTTP ${res.status}: undecodable body ${res.body.slice(0, 200)}`, res.status, undefined, { cause: err });
    }
    if (res.status < 200 || res.status >= 300) {
      const e = (parsed ?? {}) as Json;
      const message = typeof e.message === 'string' ? e.message : typeof e.error === 'string' ? e.error : res.body.slice(0, 300);
      throw new EtcdError(`etcd ${endpoint}${path}: ${message}`, res.status, typeof e.code === 'number' ? e.code : undefined);
    }
    return parsed;
  }

  private request(endpoint: string, method: 'GET' | 'POST', path: string, body: string | undefined, signal: AbortSignal | undefined): Promise<RawResponse> {
    const url = new URL(path, endpoint.endsWith('/') ? endpoint : `${endpoint}/`);
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { accept: 'application/json' };
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(body);
      }
      // One deadline for the whole call. req.setTimeout only watches a socket once it is
      // connected, so a connect that hangs (a member starting up, its accept queue full) would
      // outlast it by seconds and hold up every reconcile that asks the cluster's etcd.
      const deadline = setTimeout(() => req.destroy(new Error(`no response within ${this.timeoutMs} ms`)), this.timeoutMs);
      // An aborted signal destroys the request at once, whatever stage it is in.
      const req = https.request(url, { method, agent: this.agent, headers, ...(signal ? { signal } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(deadline);
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', (err) => {
          clearTimeout(deadline);
          reject(new EtcdError(`etcd ${url.origin}${path}: ${err.message}`, 0, undefined, { cause: err }));
        });
      });
      req.on('error', (err) => {
        clearTimeout(deadline);
        reject(new EtcdError(`etcd ${url.origin}${path}: ${err.message}`, 0, undefined, { cause: err }));
      });
      req.end(body);
    });
  }
}

function normalizeEndpoints(endpoints: string[]): string[] {
  return [...new Set(endpoints.map((e) => e.replace(/\/+$/, '')))];
}
