// Helpers shared by the store tests (not used by production code).
import { randomBytes } from 'node:crypto';
import { API_VERSION, type Resource } from '../api/meta.js';
import { openSqliteStore, type SqliteStore, type SqliteStoreOptions, type StoreLogger } from './sqlite.js';
import type { WatchEvent, WatchOptions } from './types.js';

export const TEST_KEY = Buffer.alloc(32, 7);

export interface CountingLogger extends StoreLogger {
  errors: { obj: object; msg?: string }[];
}

export function countingLogger(): CountingLogger {
  const errors: { obj: object; msg?: string }[] = [];
  return { errors, error: (obj, msg) => void errors.push({ obj, msg }) };
}

export function openTestStore(opts: Partial<SqliteStoreOptions> = {}): SqliteStore {
  return openSqliteStore({ path: ':memory:', encryptionKey: TEST_KEY, logger: countingLogger(), ...opts });
}

export function randomKey(): Buffer {
  return randomBytes(32);
}

export function obj(
  kind: string,
  project: string,
  name: string,
  spec: unknown = {},
  extra: { labels?: Record<string, string>; finalizers?: string[]; status?: unknown; annotations?: Record<string, string> } = {},
): Resource {
  const r: Resource = { apiVersion: API_VERSION, kind, metadata: { name }, spec };
  if (project) r.metadata.project = project;
  if (extra.labels) r.metadata.labels = extra.labels;
  if (extra.annotations) r.metadata.annotations = extra.annotations;
  if (extra.finalizers) r.metadata.finalizers = extra.finalizers;
  if (extra.status !== undefined) r.status = extra.status;
  return r;
}

export const cluster = (project: string, name: string, spec: unknown = { size: 1 }, extra = {}) =>
  obj('Cluster', project, name, spec, extra);

/** Lets replayed watch events (delivered on a microtask) and other queued work run. */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export function collect(store: SqliteStore, opts: WatchOptions = {}) {
  const events: WatchEvent[] = [];
  const watch = store.watch(opts, (e) => void events.push(e));
  return { events, watch, summary: () => events.map((e) => `${e.type} ${e.object.metadata.name}@${e.object.metadata.resourceVersion}`) };
}
