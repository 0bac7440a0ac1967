// Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics, so that exactly
// one of several Marina replicas runs the controllers.
//
// - A candidate takes the Lease when it is free (no holder, e.g. released) or when its record has
//   not changed for leaseDuration as measured on the candidate's own monotonic clock from the moment
//   it first saw that record (so clock skew between replicas does not matter, only clock rates).
//   Unlike client-go's polling, a candidate also watches the Lease: it sees each renewal when it
//   happens and tries again the moment the record would expire, so a dead leader is replaced within
//   leaseDuration of its last renewal rather than up to a retry period later.
// - The leader renews every retryPeriod. If it has not renewed successfully for renewDeadline it
//   gives up: it stops its work. renewDeadline < leaseDuration leaves the leader
//   leaseDuration - renewDeadline to stop before any other replica can take over, because the
//   others count leaseDuration from when they saw its last renewal, which is after the leader sent
//   it. Fencing: if stopping outlives that window, `onFenceBreach` runs (by default the process
//   exits), so a stuck replica never acts alongside a new leader.
// - On a clean stop the leader releases the Lease (holder emptied), so a successor starts at once.
// - renewTime/acquireTime are MicroTime: RFC 3339 with exactly six fractional digits.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { isAlreadyExists, isConflict, isNotFound, resourcePath, Resources, type KubeClient, type Watcher } from '../kube/client.js';

export interface LeaderElectionLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  /** The Lease's name. */
  name: string;
  /** This replica's identity in the Lease (default `<hostname>_<pid>_<random>`). */
  identity?: string;
  /** How long a Lease is honoured without renewal (default 15 s). */
  leaseDurationMs?: number;
  /** How long the leader keeps trying to renew before it gives up (default 10 s, < leaseDuration). */
  renewDeadlineMs?: number;
  /** Between attempts to acquire or renew (default 2 s). */
  retryPeriodMs?: number;
  logger: LeaderElectionLogger;
  /** What happens when stopping the work outlives the fencing window (default: exit the process). */
  onFenceBreach?: () => void;
  /** Observes every change of leader (its identity; undefined when nobody holds the Lease). */
  onLeaderChange?: (identity: string | undefined) => void;
}

/** The work a leader does: started on acquisition, stopped on loss or shutdown. */
export interface Leadership {
  stop(): Promise<void>;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string> };
  spec: LeaseSpec;
}

/** A Kubernetes MicroTime: six fractional digits (a JavaScript Date has three). */
export function microTime(ms = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export function defaultIdentity(): string {
  return `${hostname()}_${process.pid}_${randomBytes(3).toString('hex')}`;
}

const monotonic = (): number => performance.now();

export class LeaderElector {
  readonly identity: string;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly path: string;
  private observed: { spec: string; at: number; rv?: string } | undefined;
  private observedLeader: string | undefined;
  private leading = false;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private leaseWatch: Watcher<Lease> | undefined;

  constructor(
    private readonly opts: LeaderElectionOptions,
    private readonly lead: () => Promise<Leadership>,
  ) {
    this.identity = opts.identity ?? defaultIdentity();
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (!(this.renewDeadlineMs < this.leaseDurationMs)) throw new Error('renewDeadline must be shorter than leaseDuration');
    if (!(this.retryPeriodMs < this.renewDeadlineMs)) throw new Error('retryPeriod must be shorter than renewDeadline');
    this.path = resourcePath(Resources.leases, { namespace: opts.namespace });
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The holder of the Lease as last seen (undefined when free or not read yet). */
  get leader(): string | undefined {
    return this.observedLeader;
  }

  start(): void {
    if (this.loop) return;
    this.leaseWatch = this.opts.client.watch<Lease>(Resources.leases, {
      namespace: this.opts.namespace,
      fieldSelector: `metadata.name=${this.opts.name}`,
      onEvent: (ev) => {
        if (ev.type === 'DELETED') return;
        this.observe(ev.object);
        // A candidate recomputes when the record can expire.
        if (!this.leading) this.wake?.();
      },
      // Polling still works without the watch; nothing to add to what the loop logs.
      onError: () => undefined,
    });
    this.loop = this.run();
  }

  /** Stops the work if leading, releases the Lease, and ends the election loop. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    this.leaseWatch?.stop();
  }

  /** Notes the Lease's record; the clock of a record starts when this replica first sees it. */
  private observe(lease: Lease): void {
    // A watch event can arrive after this replica read or wrote a newer record: keep the newer one.
    if (this.observed?.rv && Number(lease.metadata.resourceVersion) < Number(this.observed.rv)) return;
    const spec = lease.spec ?? {};
    const text = JSON.stringify(spec);
    if (!this.observed || this.observed.spec !== text) this.observed = { spec: text, at: monotonic(), rv: lease.metadata.resourceVersion };
    this.noteLeader(spec.holderIdentity);
  }

  /** How long a candidate waits before its next attempt: until the record expires, at most a retry period. */
  private candidateWait(): number {
    const jittered = this.retryPeriodMs * (1 + Math.random() * 0.2);
    const o = this.observed;
    if (!o) return jittered;
    const spec = JSON.parse(o.spec) as LeaseSpec;
    if (!spec.holderIdentity) return Math.min(jittered, 50);
    const expiresIn = o.at + (spec.leaseDurationSeconds ?? Math.ceil(this.leaseDurationMs / 1000)) * 1000 - monotonic();
    return Math.max(5, Math.min(jittered, expiresIn + 5));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      this.wake = done;
      function done() {
        clearTimeout(t);
        resolve();
      }
    });
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      // Candidate: try until the Lease is ours.
      let acquiredAt = monotonic();
      let acquired = false;
      while (!this.stopping) {
        acquiredAt = monotonic();
        acquired = await this.tryAcquireOrRenew(this.retryPeriodMs * 2);
        if (acquired) break;
        await this.sleep(this.candidateWait());
      }
      if (!acquired) break;
      await this.holdLease(acquiredAt);
    }
  }

  /** Leader: starts the work, renews until stopped or lost, stops the work within the fencing window. */
  private async holdLease(acquiredAt: number): Promise<void> {
    let lastRenew = acquiredAt;
    this.leading = true;
    this.opts.logger.info({ identity: this.identity, lease: this.opts.name }, 'became leader');
    const work = this.lead().catch((err: unknown) => {
      this.opts.logger.error({ err }, 'starting the leader work failed; giving the lease up');
      return undefined;
    });
    let failed = false;
    void work.then((w) => {
      if (!w) {
        failed = true;
        this.wake?.();
      }
    });
    while (!this.stopping && !failed) {
      await this.sleep(this.retryPeriodMs);
      if (this.stopping || failed) break;
      const sentAt = monotonic();
      const left = this.renewDeadlineMs - (sentAt - lastRenew);
      const ok = left > 0 && (await this.tryAcquireOrRenew(Math.max(100, left)));
      if (ok) {
        lastRenew = sentAt;
        continue;
      }
      if (this.observedLeader !== undefined && this.observedLeader !== this.identity) {
        this.opts.logger.warn({ identity: this.identity, holder: this.observedLeader }, 'lease taken by another replica; stopping');
        break;
      }
      if (monotonic() - lastRenew >= this.renewDeadlineMs) {
        this.opts.logger.warn({ identity: this.identity, renewDeadlineMs: this.renewDeadlineMs }, 'could not renew the lease in time; stopping');
        break;
      }
    }
    this.leading = false;
    // Others may act from lastRenew + leaseDuration on (by their clocks, no earlier): stop before.
    const fenceAt = lastRenew + this.leaseDurationMs;
    const w = await this.withFence(work, fenceAt);
    if (w) await this.withFence(w.stop(), fenceAt);
    this.opts.logger.info({ identity: this.identity }, 'stopped leading');
    if (this.stopping || failed) await this.release();
    // A replica whose work failed to start leaves the field to the others for a while.
    if (failed && !this.stopping) await this.sleep(this.leaseDurationMs);
  }

  /** Awaits `p`, but breaches the fence if it is still pending at `fenceAt` (monotonic ms). */
  private async withFence<T>(p: Promise<T>, fenceAt: number): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const breach = new Promise<'breach'>((resolve) => {
      timer = setTimeout(() => resolve('breach'), Math.max(0, fenceAt - monotonic()));
    });
    try {
      const r = await Promise.race([p.then((v) => ({ v })), breach]);
      if (r === 'breach') {
        this.opts.logger.error({ identity: this.identity }, 'the leader work did not stop before another replica may take over');
        (this.opts.onFenceBreach ?? (() => process.exit(70)))();
        return undefined;
      }
      return r.v;
    } finally {
      clearTimeout(timer);
    }
  }

  private lease(spec: LeaseSpec, rv?: string): Lease {
    const metadata: Lease['metadata'] = { name: this.opts.name, namespace: this.opts.namespace, labels: { 'app.kubernetes.io/part-of': 'marina' } };
    if (rv) metadata.resourceVersion = rv;
    return { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata, spec };
  }

  private noteLeader(holder: string | undefined): void {
    const h = holder || undefined;
    if (h === this.observedLeader) return;
    this.observedLeader = h;
    this.opts.onLeaderChange?.(h);
  }

  /** One attempt; true when this replica holds the Lease afterwards. */
  private async tryAcquireOrRenew(timeoutMs: number): Promise<boolean> {
    const client = this.opts.client;
    const now = Date.now();
    const seconds = Math.ceil(this.leaseDurationMs / 1000);
    let current: Lease | undefined;
    try {
      current = await client.request<Lease>({ method: 'GET', path: `${this.path}/${this.opts.name}`, timeoutMs });
    } catch (err) {
      if (!isNotFound(err)) {
        this.opts.logger.warn({ err: String(err) }, 'reading the lease failed');
        return false;
      }
    }
    try {
      if (!current) {
        const spec: LeaseSpec = { holderIdentity: this.identity, leaseDurationSeconds: seconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 };
        const created = await client.request<Lease>({ method: 'POST', path: this.path, body: this.lease(spec), timeoutMs });
        this.observed = { spec: JSON.stringify(created.spec), at: monotonic(), rv: created.metadata.resourceVersion };
        this.noteLeader(this.identity);
        return true;
      }
      this.observe(current);
      const spec = current.spec ?? {};
      const holder = spec.holderIdentity ?? '';
      const ttl = (spec.leaseDurationSeconds ?? seconds) * 1000;
      if (holder !== '' && holder !== this.identity && this.observed!.at + ttl > monotonic()) return false;
      const mine = holder === this.identity;
      const next: LeaseSpec = {
        holderIdentity: this.identity,
        leaseDurationSeconds: seconds,
        acquireTime: mine && spec.acquireTime ? spec.acquireTime : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: mine ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      };
      const updated = await client.request<Lease>({
        method: 'PUT',
        path: `${this.path}/${this.opts.name}`,
        body: this.lease(next, current.metadata.resourceVersion),
        timeoutMs,
      });
      this.observed = { spec: JSON.stringify(updated.spec), at: monotonic(), rv: updated.metadata.resourceVersion };
      this.noteLeader(this.identity);
      return true;
    } catch (err) {
      // Someone else wrote first: not ours this round.
      if (!isConflict(err) && !isAlreadyExists(err)) this.opts.logger.warn({ err: String(err) }, 'writing the lease failed');
      return false;
    }
  }

  /** Empties the holder so that a successor need not wait for the Lease to expire. */
  private async release(): Promise<void> {
    try {
      const current = await this.opts.client.request<Lease>({ method: 'GET', path: `${this.path}/${this.opts.name}`, timeoutMs: this.renewDeadlineMs });
      if (current.spec?.holderIdentity !== this.identity) return;
      const now = microTime();
      await this.opts.client.request({
        method: 'PUT',
        path: `${this.path}/${this.opts.name}`,
        body: this.lease(
          { holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now, leaseTransitions: current.spec.leaseTransitions ?? 0 },
          current.metadata.resourceVersion,
        ),
        timeoutMs: this.renewDeadlineMs,
      });
      this.noteLeader(undefined);
      this.opts.logger.info({ identity: this.identity }, 'released the lease');
    } catch (err) {
      this.opts.logger.warn({ err: String(err) }, 'releasing the lease failed; it expires on its own');
    }
  }
}
