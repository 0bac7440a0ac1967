// Helpers shared by the runtime tests (not used by production code).
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { API_VERSION, type Resource } from '../api/meta.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { Store, WatchEvent } from '../store/types.js';

export async function memStore(): Promise<Store> {
  return await openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
}

/** Polls `cond` until it holds; fails after `timeoutMs` with `what` in the message. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(5);
  }
}

/** Resolves with the promise's value, or 'pending' if it has not settled after `ms`. */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([p, new Promise<'pending'>((res) => (timer = setTimeout(() => res('pending'), ms)))]);
  clearTimeout(timer);
  return r;
}

/** A promise with its resolve function exposed. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

export function cluster(name: string, replicas = 1, project = 'p1'): Resource {
  return {
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name, project },
    spec: { provider: 'sim', nodePools: [{ name: 'pool', roles: ['worker'], replicas }] },
  };
}

export function machine(name: string, clusterName: string, project = 'p1'): Resource {
  return {
    apiVersion: API_VERSION,
    kind: 'Machine',
    metadata: { name, project, labels: { 'marina.dev/cluster': clusterName } },
    spec: { cluster: clusterName, pool: 'pool', roles: ['worker'], provider: 'sim', kubernetesVersion: 'v1.31.0' },
  };
}

/** Records every watch event of `kind` from the store's current revision on. */
export async function recordEvents(store: Store, kind: string): Promise<{ events: WatchEvent[]; delivered: () => Promise<WatchEvent[]>; stop: () => void }> {
  const events: WatchEvent[] = [];
  const rv = await store.currentRevision();
  const w = store.watch({ kind, resourceVersion: rv }, (ev) => events.push(ev));
  // The store delivers events on the next turn of the event loop after the write.
  const delivered = () => new Promise<WatchEvent[]>((resolve) => setImmediate(() => resolve(events)));
  return { events, delivered, stop: () => w.stop() };
}

/** A Store delegating to `real` (bound), with some methods replaced: for injecting failures. */
export function wrapStore(real: Store, overrides: Partial<Store>): Store {
  const base: Store = {
    create: (o) => real.create(o),
    get: (k) => real.get(k),
    list: (kind, opts) => real.list(kind, opts),
    update: (o) => real.update(o),
    updateStatus: (o) => real.updateStatus(o),
    delete: (k, opts) => real.delete(k, opts),
    watch: (opts, h) => real.watch(opts, h),
    currentRevision: () => real.currentRevision(),
    close: () => real.close(),
  };
  return { ...base, ...overrides };
}
