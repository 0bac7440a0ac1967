// Instances per function revision and the scaling between them:
// - an invocation goes to the least busy instance below the target in-flight count;
// - when every instance is at the target, a new one starts (up to maxInstances) — from the warm
//   pool, so the cold start is a module load, not a sandbox start;
// - past that, instances take up to `concurrency` each, and further invocations wait in line;
// - instances idle for idleSeconds stop, down to minInstances (0: scale to zero);
// - a new revision takes new invocations at once; the old one's instances finish what they run
//   and stop (draining).
import type { SandboxProfile } from './sandbox/command.js';
import type { SandboxInstance } from './sandbox/instance.js';
import type { WarmPool } from './warm-pool.js';

export interface RevisionSpec {
  project: string;
  name: string;
  revision: number;
  code: string;
  /** Resolved environment (env + secretEnv) — resolved when an instance loads. */
  env: () => Promise<Record<string, string>>;
  profile: SandboxProfile;
  concurrency: number;
  targetInFlight: number;
  minInstances: number;
  maxInstances: number;
  idleMs: number;
}

export interface Lease {
  instance: SandboxInstance;
  /** This invocation waited for an instance to start. */
  cold: boolean;
  /** How long it waited for that (ms). */
  coldStartMs?: number;
  release(): void;
}

export interface InstanceInfo {
  id: string;
  revision: number;
  /** starting: loading the module; ready: takes calls; draining: finishing calls of an old revision (or retired). */
  state: 'starting' | 'ready' | 'draining';
  inFlight: number;
  idleSeconds: number;
}

interface Slot {
  instance: SandboxInstance;
  inFlight: number;
  lastUsed: number;
  loaded: boolean;
  loading: Promise<void>;
  retiring: boolean;
}

interface Waiter {
  wake: () => void;
}

class RevisionPool {
  readonly slots: Slot[] = [];
  readonly waiters: Waiter[] = [];
  draining = false;
  constructor(public spec: RevisionSpec) {}
  live(): Slot[] {
    return this.slots.filter((s) => !s.retiring && s.instance.state !== 'dead');
  }
}

export class CapacityError extends Error {}
/** All instances are busy and no more may start: try later (not a failed attempt). */
export class NoCapacityNow extends CapacityError {}

/** Retire an instance once it used this share of its CPU-time budget (RLIMIT_CPU), before the kernel stops it mid-invocation. */
const CPU_RECYCLE_MS = 300_000;

export class InstancePool {
  private readonly revisions = new Map<string, RevisionPool>();
  private readonly reaper: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly warm: WarmPool,
    private readonly opts: { now?: () => number; onInstanceError?: (spec: RevisionSpec, err: Error) => void } = {},
  ) {
    this.reaper = setInterval(() => this.reap(), 1000);
    this.reaper.unref();
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /**
   * An instance of `spec`'s revision with a free slot; waits (until `deadline`) when all are full,
   * or throws CapacityError at once with `noWait` (the queue keeps such work instead).
   */
  async acquire(spec: RevisionSpec, deadline: number, noWait = false): Promise<Lease> {
    if (this.closed) throw new CapacityError('the function service is stopping');
    const rp = this.pool(spec);
    for (;;) {
      const slot = this.pick(rp);
      if (slot) {
        slot.inFlight++;
        const wasLoaded = slot.loaded;
        const t0 = performance.now();
        try {
          await slot.loading;
        } catch (err) {
          slot.inFlight--;
          throw err;
        }
        const lease: Lease = { instance: slot.instance, cold: !wasLoaded, release: () => this.release(rp, slot) };
        if (!wasLoaded) lease.coldStartMs = performance.now() - t0;
        return lease;
      }
      const remaining = deadline - this.now();
      if (noWait) throw new NoCapacityNow(`${spec.project}/${spec.name} is at maxInstances × concurrency`);
      if (remaining <= 0) throw new CapacityError(`no instance of ${spec.project}/${spec.name} became free before the deadline (maxInstances ${spec.maxInstances}, concurrency ${spec.concurrency})`);
      await new Promise<void>((resolve) => {
        const w: Waiter = { wake: () => (clearTimeout(t), resolve()) };
        const t = setTimeout(() => {
          const i = rp.waiters.indexOf(w);
          if (i >= 0) rp.waiters.splice(i, 1);
          resolve();
        }, remaining);
        rp.waiters.push(w);
      });
    }
  }

  /** Starts instances up to minInstances for a live revision. */
  ensureMin(spec: RevisionSpec): void {
    const rp = this.pool(spec);
    while (rp.live().length < spec.minInstances) this.startSlot(rp);
  }

  /** Every revision of project/name other than `keep` drains: no new invocations, stops when idle. */
  drainOthers(project: string, name: string, keep?: number): void {
    for (const rp of this.revisions.values()) {
      if (rp.spec.project !== project || rp.spec.name !== name || rp.spec.revision === keep) continue;
      rp.draining = true;
      this.reapPool(rp);
    }
  }

  /** Instances per function (loaded or loading), for metrics and tests. */
  instanceCounts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const rp of this.revisions.values()) {
      const key = `${rp.spec.project}/${rp.spec.name}`;
      out.set(key, (out.get(key) ?? 0) + rp.slots.filter((s) => s.instance.state !== 'dead').length);
    }
    return out;
  }

  /** The instances of a function in this process, as the API shows them. */
  describe(project: string, name: string): InstanceInfo[] {
    const now = this.now();
    return [...this.revisions.values()]
      .filter((rp) => rp.spec.project === project && rp.spec.name === name)
      .flatMap((rp) =>
        rp.slots
          .filter((s) => s.instance.state !== 'dead')
          .map((s) => ({
            id: s.instance.id,
            revision: rp.spec.revision,
            state: s.retiring || rp.draining ? ('draining' as const) : s.loaded ? ('ready' as const) : ('starting' as const),
            inFlight: s.inFlight,
            idleSeconds: s.inFlight > 0 ? 0 : Math.floor((now - s.lastUsed) / 1000),
          })),
      );
  }

  instancesOf(project: string, name: string): SandboxInstance[] {
    return [...this.revisions.values()]
      .filter((rp) => rp.spec.project === project && rp.spec.name === name)
      .flatMap((rp) => rp.slots.map((s) => s.instance))
      .filter((i) => i.state !== 'dead');
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.reaper);
    const all = [...this.revisions.values()].flatMap((rp) => rp.slots.map((s) => s.instance));
    this.revisions.clear();
    await Promise.all(all.map((i) => i.stop(500)));
  }

  // ----- internals ---------------------------------------------------------------------------

  private pool(spec: RevisionSpec): RevisionPool {
    const key = `${spec.project}/${spec.name}@${spec.revision}`;
    let rp = this.revisions.get(key);
    if (!rp) {
      rp = new RevisionPool(spec);
      this.revisions.set(key, rp);
    } else if (rp.draining) {
      rp.draining = false; // the revision is current again (rolled back)
    }
    rp.spec = spec;
    return rp;
  }

  private pick(rp: RevisionPool): Slot | undefined {
    const live = rp.live();
    const least = (limit: number) =>
      live.filter((s) => s.inFlight < limit).reduce<Slot | undefined>((best, s) => (!best || s.inFlight < best.inFlight ? s : best), undefined);
    const belowTarget = least(rp.spec.targetInFlight);
    if (belowTarget) return belowTarget;
    if (live.length < rp.spec.maxInstances) return this.startSlot(rp);
    return least(rp.spec.concurrency);
  }

  private startSlot(rp: RevisionPool): Slot {
    const spec = rp.spec;
    const { instance } = this.warm.take(spec.profile);
    const slot: Slot = { instance, inFlight: 0, lastUsed: this.now(), loaded: false, loading: Promise.resolve(), retiring: false };
    slot.loading = (async () => {
      await instance.ready;
      await instance.load(spec.code, await spec.env());
      slot.loaded = true;
    })();
    slot.loading.catch((err: Error) => {
      this.opts.onInstanceError?.(spec, err);
      instance.kill({ outcome: 'crashed', message: `load failed: ${err.message}` });
    });
    void instance.exited.then(() => {
      const i = rp.slots.indexOf(slot);
      if (i >= 0) rp.slots.splice(i, 1);
      // Waiters may now start a replacement.
      this.wakeAll(rp);
    });
    rp.slots.push(slot);
    return slot;
  }

  private release(rp: RevisionPool, slot: Slot): void {
    slot.inFlight--;
    slot.lastUsed = this.now();
    if (slot.instance.cpuMs > CPU_RECYCLE_MS) slot.retiring = true;
    if (slot.retiring || rp.draining) this.reapPool(rp);
    rp.waiters.shift()?.wake();
  }

  private wakeAll(rp: RevisionPool): void {
    for (const w of rp.waiters.splice(0)) w.wake();
  }

  private reap(): void {
    for (const [key, rp] of this.revisions) {
      this.reapPool(rp);
      if (rp.draining && rp.slots.length === 0) this.revisions.delete(key);
    }
  }

  private reapPool(rp: RevisionPool): void {
    const now = this.now();
    const keep = rp.draining ? 0 : rp.spec.minInstances;
    let live = rp.live().length;
    for (const slot of [...rp.slots]) {
      if (slot.inFlight > 0 || !slot.loaded) continue;
      const idle = now - slot.lastUsed >= rp.spec.idleMs;
      if (slot.retiring || rp.draining || (idle && live > keep)) {
        if (!slot.retiring) live--;
        slot.retiring = true;
        void slot.instance.stop();
      }
    }
  }
}
