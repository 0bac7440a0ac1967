// Property-based tests of the store contract, shared by every backend (SQLite:
// src/store/property.test.ts; the Kubernetes API: test/ha/store-properties.test.ts).
//
// Several "writers" run random operations concurrently (their starts interleaved by a fast-check
// scheduler; a networked backend adds its own interleaving). Outcomes are not predicted at call
// time; they are checked afterwards for linearizability against an independent model:
// - A reference watch of every kind, started on the empty store, gives the log of committed changes,
//   ordered by revision. Every change must be the product of exactly one acknowledged operation (the
//   one whose result carries its revision), and the model applied to the key's state just before it
//   must produce exactly that change. Every other successful operation must be a valid no-op on a
//   state the key had while the operation ran, every failure (404/409/422) must be justified by such
//   a state, every get must return such a state. "While it ran" is bounded below by the newest
//   revision acknowledged before it started and above by the newest revision of any operation that
//   started before it ended.
// - Every watch, started at any revision (or "now"), sees exactly the log's matching changes after
//   its start, per kind in revision order, with no gap or duplicate (a stopped one: a prefix of
//   them); 410 only when more than the retained history lies after its start.
// - list (paginated, other writers running between the pages) + watch from the list's revision
//   rebuilds the final state; the final state is the log's.
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { test } from 'node:test';
import fc from 'fast-check';
import { ApiError } from '../api/errors.js';
import { API_VERSION, type Resource } from '../api/meta.js';
import { barrier, testLogger, type ConformanceTarget, type StoreUnderTest } from './conformance.js';
import type { ListResult, WatchEvent, WatchEventType } from './types.js';

export interface PropertyTarget {
  /** A fresh, empty store. */
  open: ConformanceTarget['open'];
  /** Whether historyLimit counts the events of each kind (Kubernetes) or of the whole store (SQLite). */
  historyPerKind: boolean;
  /**
   * The object of the DELETED event of an update that removed the last finalizer: the update's
   * content (SQLite) or the last stored state (Kubernetes removes the object without writing it).
   */
  deletedByUpdateShows: 'update' | 'lastStored';
  /** fast-check runs per property (a networked backend is slower). */
  runs: { random: number; tinyHistory: number; paged: number };
}

// ----- the domain: small, so that collisions, conflicts and no-ops are frequent ---------------

type Labels = Record<string, string>;
const KINDS = ['Cluster', 'Secret', 'Project'] as const;
type Kind = (typeof KINDS)[number];
const PROJECTS = ['p1', 'p2'];
const NAMES = ['a', 'b'];
const FINALIZERS = ['example.com/f1', 'example.com/f2'];
const MARKER = 'zz-barrier-';

const SELECTORS: [string, (l: Labels) => boolean][] = [
  ['tier=web', (l) => l.tier === 'web'],
  ['tier!=web', (l) => l.tier !== 'web'],
  ['tier in (web,db)', (l) => l.tier === 'web' || l.tier === 'db'],
  ['!tier', (l) => !('tier' in l)],
  ['env', (l) => 'env' in l],
  ['tier notin (db),env=prod', (l) => l.tier !== 'db' && l.env === 'prod'],
];

interface Key {
  kind: Kind;
  project: string;
  name: string;
}
const keyStr = (k: { kind: string; project: string; name: string }) => `${k.kind}/${k.project}/${k.name}`;
const keyOfObj = (o: Resource): Key => ({ kind: o.kind as Kind, project: o.metadata.project ?? '', name: o.metadata.name });
const rvOf = (o: Resource): number => Number(o.metadata.resourceVersion);

const keyArb: fc.Arbitrary<Key> = fc
  .record({ kind: fc.constantFrom<Kind>('Cluster', 'Cluster', 'Secret', 'Project'), project: fc.constantFrom(...PROJECTS), name: fc.constantFrom(...NAMES) })
  .map((k) => (k.kind === 'Project' ? { ...k, project: '' } : k));
const labelsArb: fc.Arbitrary<Labels> = fc
  .record({ tier: fc.constantFrom('web', 'db', undefined), env: fc.constantFrom('prod', 'dev', undefined) })
  .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as Labels);
/** A spec seed: `n` varies the content, `flip` only the key order (which is no change). */
const specArb = fc.record({ n: fc.integer({ min: 1, max: 2 }), flip: fc.boolean() });
type SpecSeed = { n: number; flip: boolean };
const statusArb = fc.constantFrom(undefined, 1, 2);
const finalizersArb = fc.oneof(fc.constant([] as string[]), fc.subarray(FINALIZERS, { minLength: 1 }));

/** A schema-valid spec of `kind` from a seed. */
function specOf(kind: Kind, s: SpecSeed): unknown {
  const ordered = (a: [string, unknown][]) => Object.fromEntries(s.flip ? a.reverse() : a);
  switch (kind) {
    case 'Cluster':
      return ordered([['provider', 'sim'], ['nodePools', [{ name: 'pool', roles: ['worker'], replicas: s.n }]]]);
    case 'Secret':
      return ordered([['type', 'opaque'], ['data', { a: String(s.n) }]]);
    case 'Project':
      return ordered([['displayName', `d${s.n}`], ['members', []]]);
  }
}

function statusOf(kind: Kind, s: number | undefined): unknown {
  if (s === undefined) return undefined;
  if (kind === 'Cluster') return s === 1 ? { phase: 'Ready' } : { phase: 'Degraded', observedGeneration: 1 };
  return { observedGeneration: s };
}

type Op =
  | { op: 'create'; key: Key; labels: Labels; spec: SpecSeed; finalizers: string[]; status: number | undefined }
  | { op: 'update'; key: Key; fresh: boolean; labels?: Labels; spec?: SpecSeed; finalizers: 'keep' | 'add' | 'removeOne' | 'removeAll' }
  | { op: 'updateStatus'; key: Key; fresh: boolean; status: number | undefined }
  | { op: 'delete'; key: Key; precondition: 'none' | 'cached' }
  | { op: 'get'; key: Key }
  | { op: 'watch'; kind?: Kind; project?: string; selector?: number; from: number | 'now'; throws: boolean }
  | { op: 'stopWatch'; index: number }
  | { op: 'list'; kind: Kind; project?: string; selector?: number; limit: number }
  | { op: 'yield' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('create' as const), key: keyArb, labels: labelsArb, spec: specArb, finalizers: finalizersArb, status: statusArb }) },
  {
    weight: 5,
    arbitrary: fc.record(
      {
        op: fc.constant('update' as const),
        key: keyArb,
        fresh: fc.boolean(),
        labels: labelsArb,
        spec: specArb,
        finalizers: fc.constantFrom('keep' as const, 'add' as const, 'removeOne' as const, 'removeAll' as const),
      },
      { requiredKeys: ['op', 'key', 'fresh', 'finalizers'] },
    ),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('updateStatus' as const), key: keyArb, fresh: fc.boolean(), status: statusArb }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), key: keyArb, precondition: fc.constantFrom('none' as const, 'cached' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('get' as const), key: keyArb }) },
  {
    weight: 2,
    arbitrary: fc.record(
      {
        op: fc.constant('watch' as const),
        kind: fc.constantFrom(...KINDS),
        project: fc.constantFrom(...PROJECTS),
        selector: fc.nat(SELECTORS.length - 1),
        from: fc.oneof(fc.constant('now' as const), fc.double({ min: 0, max: 1, noNaN: true })),
        throws: fc.boolean(),
      },
      { requiredKeys: ['op', 'from', 'throws'] },
    ),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('stopWatch' as const), index: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc
      .record({
        op: fc.constant('list' as const),
        kind: fc.constantFrom<Kind>('Cluster', 'Cluster', 'Secret', 'Project'),
        project: fc.constantFrom(undefined, undefined, ...PROJECTS),
        selector: fc.constantFrom(undefined, undefined, ...SELECTORS.keys()),
        limit: fc.constantFrom(0, 1, 1, 2),
      })
      .map((l) => (l.kind === 'Project' ? { ...l, project: undefined } : l)),
  },
);

// ----- the model: one object's transition under one operation ---------------------------------

/** Compares objects without what the model cannot predict (uid, timestamps, resourceVersion). */
function norm(o: Resource, keepRv = false): Resource {
  const c = structuredClone(o);
  delete c.metadata.uid;
  delete c.metadata.creationTimestamp;
  if (!keepRv) delete c.metadata.resourceVersion;
  if (c.metadata.deletionTimestamp) c.metadata.deletionTimestamp = 'set';
  return c;
}

type Transition = { code: number } | { noop: Resource } | { write: { type: WatchEventType; next: Resource; removed?: boolean } };

const same = (a: unknown, b: unknown) => isDeepStrictEqual(norm0(a), norm0(b));
/** Deep equality ignoring key order. */
function norm0(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(norm0);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, norm0(x)]));
  return v ?? null;
}

const model = {
  create(cur: Resource | undefined, key: Key, labels: Labels, spec: unknown, finalizers: string[], status: unknown): Transition {
    if (cur) return { code: 409 };
    const md: Resource['metadata'] = { name: key.name, generation: 1 };
    if (key.project) md.project = key.project;
    if (Object.keys(labels).length) md.labels = { ...labels };
    if (finalizers.length) md.finalizers = [...finalizers];
    const o: Resource = { apiVersion: API_VERSION, kind: key.kind, metadata: md, spec: structuredClone(spec) };
    if (status !== undefined) o.status = structuredClone(status);
    return { write: { type: 'ADDED', next: o } };
  },

  update(cur: Resource | undefined, rv: string, labels: Labels | undefined, spec: unknown, finalizers: string[] | undefined): Transition {
    if (!cur) return { code: 404 };
    if (cur.metadata.resourceVersion !== rv) return { code: 409 };
    const deleting = cur.metadata.deletionTimestamp !== undefined;
    if (deleting && (finalizers ?? []).some((f) => !(cur.metadata.finalizers ?? []).includes(f))) return { code: 422 };
    const lbl = labels && Object.keys(labels).length ? labels : undefined;
    const fin = finalizers && finalizers.length ? finalizers : undefined;
    const specChanged = !same(cur.spec, spec);
    if (!specChanged && same(cur.metadata.labels, lbl) && same(cur.metadata.finalizers, fin)) return { noop: cur };
    const next = structuredClone(cur);
    if (specChanged) next.metadata.generation! += 1;
    if (lbl) next.metadata.labels = structuredClone(lbl);
    else delete next.metadata.labels;
    if (fin) next.metadata.finalizers = [...fin];
    else delete next.metadata.finalizers;
    next.spec = structuredClone(spec);
    return { write: { type: deleting && !fin ? 'DELETED' : 'MODIFIED', next } };
  },

  updateStatus(cur: Resource | undefined, rv: string, status: unknown): Transition {
    if (!cur) return { code: 404 };
    if (cur.metadata.resourceVersion !== rv) return { code: 409 };
    if (same(cur.status, status)) return { noop: cur };
    const next = structuredClone(cur);
    if (status === undefined) delete next.status;
    else next.status = structuredClone(status);
    return { write: { type: 'MODIFIED', next } };
  },

  delete(cur: Resource | undefined, rv: string | undefined): Transition {
    if (!cur) return { code: 404 };
    if (rv !== undefined && cur.metadata.resourceVersion !== rv) return { code: 409 };
    if (cur.metadata.deletionTimestamp) return { noop: cur };
    const next = structuredClone(cur);
    if (!cur.metadata.finalizers?.length) return { write: { type: 'DELETED', next, removed: true } };
    next.metadata.deletionTimestamp = 'set';
    return { write: { type: 'MODIFIED', next, removed: false } };
  },
};

// ----- the recorded history --------------------------------------------------------------------

interface LogEvent {
  rv: number;
  type: WatchEventType;
  key: Key;
  object: Resource;
  /** Labels of the key's previous state (for selector matching). */
  oldLabels?: Labels;
  writer?: Recorded;
}

/** One operation as it ran: what it was asked, what it answered, and when. */
interface Recorded {
  what: string;
  key: Key;
  /** The model's transition for a key state. */
  transition: (cur: Resource | undefined) => Transition;
  /** Newest revision acknowledged before it started. */
  floor: number;
  /** Sequence number of its start and of its end (for the ceiling). */
  startSeq: number;
  endSeq: number;
  outcome: { value: Resource | undefined; removed?: boolean } | { error: unknown };
  isRead?: boolean;
}

interface Filter {
  kind?: Kind;
  project?: string;
  selector?: number;
}

interface WatchRecord {
  label: string;
  filter: Filter;
  from: number | 'now';
  floor: number;
  startSeq: number;
  endSeq: number;
  stopped?: { floor: number; seq: number };
  events: WatchEvent[];
  throws: boolean;
}

interface Reconstruction {
  filter: Filter;
  state: Map<string, Resource>;
  listRv: number;
  watch?: WatchRecord;
}

const stats = new Map<string, number>();
const count = (what: string) => stats.set(what, (stats.get(what) ?? 0) + 1);
process.on('exit', () => {
  if (process.env.MARINA_PROP_STATS) console.error(Object.fromEntries([...stats].sort()));
});

function exclusive<E>(label: string, fn: (e: E) => void): (e: E) => void {
  let active = false;
  return (e) => {
    assert.ok(!active, `${label}: handler called while already running`);
    active = true;
    try {
      fn(e);
    } finally {
      active = false;
    }
  };
}

async function settle<T>(p: Promise<T>): Promise<{ value: T } | { error: unknown }> {
  try {
    return { value: await p };
  } catch (error) {
    return { error };
  }
}

function objectMatches(f: Filter, o: Resource): boolean {
  if (f.kind !== undefined && o.kind !== f.kind) return false;
  if (f.project !== undefined && (o.metadata.project ?? '') !== f.project) return false;
  return f.selector === undefined || SELECTORS[f.selector]![1](o.metadata.labels ?? {});
}

function eventMatches(f: Filter, e: LogEvent): boolean {
  if (f.kind !== undefined && e.key.kind !== f.kind) return false;
  if (f.project !== undefined && e.key.project !== f.project) return false;
  if (f.selector === undefined) return true;
  const pred = SELECTORS[f.selector]![1];
  return pred(e.object.metadata.labels ?? {}) || (e.oldLabels !== undefined && pred(e.oldLabels));
}

interface RunOptions {
  historyLimit: number;
  writers: Op[][];
  reentrant: boolean;
}

async function run(target: PropertyTarget, s: fc.Scheduler, opts: RunOptions): Promise<void> {
  const logger = testLogger();
  const store: StoreUnderTest = await target.open({ historyLimit: opts.historyLimit, logger });
  try {
    await exercise(target, store, logger, s, opts);
  } finally {
    await store.close();
  }
}

async function exercise(target: PropertyTarget, store: StoreUnderTest, logger: ReturnType<typeof testLogger>, s: fc.Scheduler, opts: RunOptions): Promise<void> {
  const openRv = Number(await store.currentRevision());
  let ack = openRv;
  let seq = 0;
  const noteAck = (o: Resource | undefined) => {
    const r = o ? rvOf(o) : 0;
    if (r > ack) ack = r;
  };
  const ops: Recorded[] = [];
  const watches: WatchRecord[] = [];
  const reconstructions: Reconstruction[] = [];
  const pending: Promise<void>[] = [];
  const lists: { items: Resource[]; listRv: number; startSeq: number; endSeq: number; what: string }[] = [];

  /** Runs a store call as a recorded operation. */
  const record = async (
    what: string,
    key: Key,
    transition: Recorded['transition'],
    call: () => Promise<{ value: Resource | undefined; removed?: boolean }>,
    isRead = false,
  ): Promise<Recorded> => {
    const rec: Recorded = { what, key, transition, floor: ack, startSeq: ++seq, endSeq: 0, outcome: { value: undefined }, isRead };
    ops.push(rec);
    const res = await settle(call());
    rec.endSeq = ++seq;
    rec.outcome = 'value' in res ? res.value : res;
    if ('value' in res) noteAck(res.value.value);
    else assert.ok(res.error instanceof ApiError, `${what}: ${String(res.error)}`);
    return rec;
  };

  const startWatch = (filter: Filter, from: number | 'now', throws: boolean, label: string): WatchRecord | undefined => {
    const rec: WatchRecord = { label, filter, from, floor: ack, startSeq: ++seq, endSeq: 0, events: [], throws };
    try {
      const w = store.watch(
        {
          kind: filter.kind,
          project: filter.project,
          labelSelector: filter.selector === undefined ? undefined : SELECTORS[filter.selector]![0],
          resourceVersion: from === 'now' ? '0' : String(from),
        },
        exclusive(label, (e: WatchEvent) => {
          if (e.object.metadata.name.startsWith(MARKER)) return;
          rec.events.push(e);
          if (throws) throw new Error('handler failure (expected by the test)');
        }),
      );
      (rec as WatchRecord & { stop: () => void }).stop = () => {
        w.stop();
        rec.stopped = { floor: ack, seq: ++seq };
      };
    } catch (err) {
      assert.ok(err instanceof ApiError && err.code === 410, `watch from ${from}: ${String(err)}`);
      rec.endSeq = ++seq;
      gones.push({ rec, from: from as number });
      count('watch -> 410');
      return undefined;
    }
    rec.endSeq = ++seq;
    watches.push(rec);
    return rec;
  };
  const gones: { rec: WatchRecord; from: number }[] = [];

  if (opts.reentrant) {
    // A "controller": on ADDED of a web-tier Cluster it writes status from inside the handler.
    store.watch({ kind: 'Cluster' }, exclusive('reentrant', (e: WatchEvent) => {
      if (e.type !== 'ADDED' || e.object.metadata.labels?.tier !== 'web' || e.object.metadata.name.startsWith(MARKER)) return;
      const key = keyOfObj(e.object);
      const status = statusOf('Cluster', 1);
      const base = e.object.metadata.resourceVersion!;
      pending.push(
        record(`handler updateStatus(${keyStr(key)})`, key, (cur) => model.updateStatus(cur, base, status), async () => ({
          value: await store.updateStatus({ ...e.object, status }),
        })).then(() => undefined),
      );
    }));
  }
  const all = startWatch({}, 'now', false, 'all-from-start')!;

  const writer = async (wops: Op[], w: number) => {
    const cache = new Map<string, Resource>();
    for (const [i, op] of wops.entries()) {
      await s.schedule(Promise.resolve(), `w${w}#${i} ${op.op}`);
      const what = `w${w}#${i} ${JSON.stringify(op)}`;
      switch (op.op) {
        case 'create': {
          const spec = specOf(op.key.kind, op.spec);
          const status = statusOf(op.key.kind, op.status);
          const input: Resource = { apiVersion: API_VERSION, kind: op.key.kind, metadata: { name: op.key.name, labels: op.labels, finalizers: op.finalizers }, spec };
          if (op.key.project) input.metadata.project = op.key.project;
          if (status !== undefined) input.status = status;
          const rec = await record(what, op.key, (cur) => model.create(cur, op.key, op.labels, spec, op.finalizers, status), async () => ({ value: await store.create(input) }));
          if ('value' in rec.outcome && rec.outcome.value) cache.set(keyStr(op.key), rec.outcome.value);
          break;
        }
        case 'get': {
          const rec = await record(what, op.key, () => ({ code: 0 }), async () => ({ value: await store.get(op.key) }), true);
          if ('value' in rec.outcome && rec.outcome.value) cache.set(keyStr(op.key), rec.outcome.value);
          else cache.delete(keyStr(op.key));
          break;
        }
        case 'update':
        case 'updateStatus': {
          let base = op.fresh ? undefined : cache.get(keyStr(op.key));
          if (!base) {
            const got = await record(`${what}: get`, op.key, () => ({ code: 0 }), async () => ({ value: await store.get(op.key) }), true);
            if (!('value' in got.outcome) || !got.outcome.value) break;
            base = got.outcome.value;
          }
          const arg = structuredClone(base);
          const baseRv = base.metadata.resourceVersion!;
          let rec: Recorded;
          if (op.op === 'update') {
            const fins = base.metadata.finalizers ?? [];
            const finalizers =
              op.finalizers === 'keep' ? fins
              : op.finalizers === 'add' ? [...new Set([...fins, ...FINALIZERS])]
              : op.finalizers === 'removeOne' ? fins.slice(1)
              : [];
            arg.metadata.labels = op.labels ?? base.metadata.labels;
            arg.metadata.finalizers = finalizers;
            arg.spec = op.spec ? specOf(op.key.kind, op.spec) : base.spec;
            arg.status = statusOf(op.key.kind, 2); // ignored by update
            const labels = arg.metadata.labels;
            const spec = arg.spec;
            rec = await record(what, op.key, (cur) => model.update(cur, baseRv, labels, spec, finalizers), async () => ({ value: await store.update(arg) }));
          } else {
            const status = statusOf(op.key.kind, op.status);
            arg.status = status;
            arg.spec = specOf(op.key.kind, { n: 2, flip: true }); // ignored by updateStatus
            rec = await record(what, op.key, (cur) => model.updateStatus(cur, baseRv, status), async () => ({ value: await store.updateStatus(arg) }));
          }
          if ('value' in rec.outcome && rec.outcome.value) cache.set(keyStr(op.key), rec.outcome.value);
          break;
        }
        case 'delete': {
          const precondition = op.precondition === 'cached' ? cache.get(keyStr(op.key))?.metadata.resourceVersion : undefined;
          await record(what, op.key, (cur) => model.delete(cur, precondition), async () => {
            const r = await store.delete(op.key, precondition === undefined ? {} : { resourceVersion: precondition });
            return { value: r.object, removed: r.removed };
          });
          break;
        }
        case 'watch': {
          // 'now', or a revision between the store's opening and the newest acknowledged one.
          const from = op.from === 'now' ? 'now' : openRv + Math.floor(op.from * (ack - openRv));
          startWatch({ kind: op.kind, project: op.project, selector: op.selector }, from, op.throws, what);
          break;
        }
        case 'yield':
          break;
        case 'stopWatch': {
          const live = watches.filter((r) => !r.stopped && r !== all && !r.label.endsWith(' reconstruct'));
          if (live.length > 0) (live[op.index % live.length] as WatchRecord & { stop: () => void }).stop();
          break;
        }
        case 'list': {
          const filter: Filter = { kind: op.kind, project: op.project, selector: op.selector };
          const rec: Reconstruction = { filter, state: new Map(), listRv: -1 };
          let cont: string | undefined;
          let pages = 0;
          do {
            const startSeq = ++seq;
            const page: { value: ListResult } | { error: unknown } = await settle(
              store.list(op.kind, {
                project: op.project,
                labelSelector: op.selector === undefined ? undefined : SELECTORS[op.selector]![0],
                limit: op.limit,
                continue: cont,
              }),
            );
            const endSeq = ++seq;
            if ('error' in page) {
              assert.ok(page.error instanceof ApiError && page.error.code === 410 && opts.historyLimit < 1000, String(page.error));
              rec.listRv = -1;
              break;
            }
            const list: ListResult = page.value;
            if (pages === 0) rec.listRv = Number(list.resourceVersion);
            else assert.equal(Number(list.resourceVersion), rec.listRv, 'pages carry the first revision');
            if (rec.listRv > ack) ack = rec.listRv;
            if (op.limit > 0) assert.ok(list.items.length <= op.limit);
            lists.push({ items: list.items, listRv: rec.listRv, startSeq, endSeq, what });
            for (const item of list.items) {
              assert.ok(objectMatches(filter, item), `${what}: listed a non-matching object`);
              rec.state.set(keyStr(keyOfObj(item)), item);
            }
            cont = list.continue;
            pages++;
            if (cont) await s.schedule(Promise.resolve(), `w${w}#${i} next page`);
          } while (cont);
          count(`list items=${rec.state.size} pages=${Math.min(pages, 3)}`);
          if (rec.listRv < 0) break;
          assert.ok(rec.listRv >= 1, 'a list never returns revision 0');
          const wr = startWatch(filter, rec.listRv, false, `${what} reconstruct`);
          if (!wr) break;
          rec.watch = wr;
          reconstructions.push(rec);
          break;
        }
      }
    }
  };

  await s.waitFor(Promise.all(opts.writers.map((wops, w) => writer(wops, w))));
  await s.waitIdle();
  await Promise.all(pending);
  // Every watcher has been handed every change once a marker of each kind reached it.
  for (const kind of KINDS) await barrier(store, kind, 'p9');
  await Promise.all(pending);
  for (const kind of KINDS) await barrier(store, kind, 'p9');
  const endSeq = ++seq;

  check(target, opts, { ops, watches, gones, reconstructions, lists, all, endSeq, openRv });
  // The final state: what the log says, and what a list says.
  const actual = new Map<string, Resource>();
  for (const kind of KINDS) {
    for (const item of (await store.list(kind)).items) if (!item.metadata.name.startsWith(MARKER)) actual.set(keyStr(keyOfObj(item)), norm(item, true));
  }
  const fromLog = new Map<string, Resource>();
  for (const e of logOf(all)) {
    if (e.type === 'DELETED') fromLog.delete(keyStr(e.key));
    else fromLog.set(keyStr(e.key), norm(e.object, true));
  }
  assert.deepEqual(actual, fromLog, 'final state');
  const maxRv = Math.max(openRv, ...all.events.map((e) => rvOf(e.object)));
  assert.ok(Number(await store.currentRevision()) >= maxRv);

  const throwing = watches.filter((r) => r.throws).reduce((n, r) => n + r.events.length, 0);
  assert.equal(logger.errors.length, throwing, 'every handler exception is logged once');
}

function logOf(all: WatchRecord): LogEvent[] {
  const log: LogEvent[] = all.events.map((e) => ({ rv: rvOf(e.object), type: e.type, key: keyOfObj(e.object), object: e.object }));
  log.sort((a, b) => a.rv - b.rv);
  const last = new Map<string, Resource>();
  for (const e of log) {
    const prev = last.get(keyStr(e.key));
    if (prev) e.oldLabels = prev.metadata.labels ?? {};
    if (e.type === 'DELETED') last.delete(keyStr(e.key));
    else last.set(keyStr(e.key), e.object);
  }
  return log;
}

interface History {
  ops: Recorded[];
  watches: WatchRecord[];
  gones: { rec: WatchRecord; from: number }[];
  reconstructions: Reconstruction[];
  lists: { items: Resource[]; listRv: number; startSeq: number; endSeq: number; what: string }[];
  all: WatchRecord;
  endSeq: number;
  openRv: number;
}

function check(target: PropertyTarget, opts: RunOptions, h: History): void {
  const log = logOf(h.all);
  // The reference watch itself: strictly increasing revisions per kind, no duplicates.
  for (const kind of KINDS) {
    const revs = h.all.events.filter((e) => e.object.kind === kind).map((e) => rvOf(e.object));
    for (let i = 1; i < revs.length; i++) assert.ok(revs[i]! > revs[i - 1]!, `reference watch: ${kind} revisions not increasing: ${revs}`);
  }
  assert.equal(new Set(log.map((e) => e.rv)).size, log.length, 'one change per revision');

  const byKey = new Map<string, LogEvent[]>();
  for (const e of log) {
    const k = keyStr(e.key);
    byKey.set(k, [...(byKey.get(k) ?? []), e]);
  }
  /** The key's state after every change at or below `r`. */
  const stateAt = (key: Key, r: number): Resource | undefined => {
    let state: Resource | undefined;
    for (const e of byKey.get(keyStr(key)) ?? []) {
      if (e.rv > r) break;
      state = e.type === 'DELETED' ? undefined : e.object;
    }
    return state;
  };
  /** Every state the key had between the two revisions. */
  const statesBetween = (key: Key, lo: number, hi: number): (Resource | undefined)[] => {
    const out = [stateAt(key, lo)];
    for (const e of byKey.get(keyStr(key)) ?? []) if (e.rv > lo && e.rv <= hi) out.push(e.type === 'DELETED' ? undefined : e.object);
    return out;
  };
  // The newest revision any operation that started before `seq` could have written.
  const starts = h.ops.filter((o) => !o.isRead && 'value' in o.outcome && o.outcome.value).map((o) => ({ seq: o.startSeq, rv: rvOf((o.outcome as { value: Resource }).value) }));
  const ceiling = (seqEnd: number): number => Math.max(h.openRv, ...starts.filter((x) => x.seq < seqEnd).map((x) => x.rv));

  const byRv = new Map(log.map((e) => [e.rv, e]));
  for (const op of h.ops) {
    const what = op.what;
    const hi = ceiling(op.endSeq);
    if ('error' in op.outcome) {
      const code = (op.outcome.error as ApiError).code;
      count(`${/"op":"(\w+)"/.exec(what)?.[1] ?? what} -> ${code}`);
      const justified = statesBetween(op.key, op.floor, hi).some((st) => {
        const t = op.transition(st);
        return 'code' in t && t.code === code;
      });
      assert.ok(justified, `${what}: ${code} (${(op.outcome.error as Error).message}) matches no state between ${op.floor} and ${hi}`);
      continue;
    }
    const value = op.outcome.value;
    if (op.isRead) {
      const ok = statesBetween(op.key, op.floor, hi).some((st) => (st === undefined ? value === undefined : value !== undefined && isDeepStrictEqual(norm(st, true), norm(value, true))));
      assert.ok(ok, `${what}: read ${value ? value.metadata.resourceVersion : 'nothing'}, not a state between ${op.floor} and ${hi}`);
      continue;
    }
    count(`${/"op":"(\w+)"/.exec(what)?.[1] ?? 'handler'} -> ok`);
    assert.ok(value, `${what}: success without an object`);
    const r = rvOf(value);
    const ev = byRv.get(r);
    // The writer of the change at r: the model, applied to the state before it, gives exactly it.
    if (ev && !ev.writer && keyStr(ev.key) === keyStr(op.key)) {
      const t = op.transition(stateAt(op.key, r - 1));
      if ('write' in t && t.write.type === ev.type && isDeepStrictEqual(norm(t.write.next), norm(value)) && (t.write.removed === undefined || t.write.removed === op.outcome.removed)) {
        ev.writer = op;
        const expected = ev.type === 'DELETED' && target.deletedByUpdateShows === 'lastStored' ? stateAt(op.key, r - 1)! : t.write.next;
        assert.deepEqual(norm(ev.object), norm(expected), `${what}: the ${ev.type} event at ${r}`);
        const before = stateAt(op.key, r - 1);
        if (before && ev.type !== 'ADDED') assert.equal(value.metadata.uid, before.metadata.uid, `${what}: uid changed`);
        continue;
      }
    }
    // Otherwise a no-op on a state the key had while it ran.
    const ok = statesBetween(op.key, op.floor, hi).some((st) => {
      if (!st || !isDeepStrictEqual(norm(st, true), norm(value, true))) return false;
      const t = op.transition(st);
      return 'noop' in t && (op.outcome as { removed?: boolean }).removed !== true;
    });
    assert.ok(ok, `${what}: answered ${JSON.stringify(norm(value, true))}: neither the writer of a change nor a no-op between ${op.floor} and ${hi}`);
  }
  for (const e of log) assert.ok(e.writer, `the ${e.type} of ${keyStr(e.key)} at ${e.rv} has no acknowledged writer`);

  // uid: one per incarnation, never reused.
  const uids = new Map<string, string>();
  for (const e of log) {
    const u = e.object.metadata.uid!;
    if (e.type === 'ADDED') {
      assert.ok(![...uids.values()].includes(u), `uid ${u} reused`);
      uids.set(keyStr(e.key), u);
    } else assert.equal(u, uids.get(keyStr(e.key)), `${e.type} of ${keyStr(e.key)}: uid changed`);
  }

  // Lists: every item is a state of its key at or after the list's revision.
  for (const l of h.lists) {
    for (const item of l.items) {
      const k = keyOfObj(item);
      const ok = statesBetween(k, l.listRv, ceiling(l.endSeq)).some((st) => st && isDeepStrictEqual(norm(st, true), norm(item, true)));
      assert.ok(ok, `${l.what}: listed ${keyStr(k)}@${item.metadata.resourceVersion}, not a state from ${l.listRv} on`);
    }
  }

  // 410 only when more than the retained history lies after the start.
  for (const g of h.gones) {
    const hi = ceiling(g.rec.endSeq);
    const after = (kind?: string) => log.filter((e) => e.rv > g.from && e.rv <= hi && (kind === undefined || e.key.kind === kind)).length;
    // A marker-free log undercounts nothing that matters: markers come only at the end.
    const kinds = g.rec.filter.kind ? [g.rec.filter.kind] : [...KINDS];
    const enough = target.historyPerKind ? kinds.some((k) => after(k) >= opts.historyLimit) : after() >= opts.historyLimit;
    assert.ok(enough, `410 for ${g.from} with historyLimit ${opts.historyLimit}`);
  }

  // Every watch: per kind, exactly the log's matching changes after its start, in order.
  for (const rec of h.watches) {
    for (const kind of rec.filter.kind ? [rec.filter.kind] : KINDS) {
      const got = rec.events.filter((e) => e.object.kind === kind);
      const revs = got.map((e) => rvOf(e.object));
      for (let i = 1; i < revs.length; i++) assert.ok(revs[i]! > revs[i - 1]!, `${rec.label}: ${kind} revisions not increasing: ${revs}`);
      const matching = log.filter((e) => e.key.kind === kind && eventMatches(rec.filter, e));
      let expected: LogEvent[];
      if (rec.from === 'now') {
        // It starts somewhere in the window of the watch() call.
        const hi = ceiling(rec.endSeq);
        const first = got.length > 0 ? matching.findIndex((e) => e.rv === revs[0]) : matching.findIndex((e) => e.rv > hi);
        const cut = first < 0 ? matching.length : first;
        for (const e of matching.slice(0, cut)) assert.ok(e.rv <= hi, `${rec.label}: missed ${e.type} ${keyStr(e.key)}@${e.rv} committed after it started`);
        if (got.length > 0) assert.ok(first >= 0 && revs[0]! > rec.floor, `${rec.label}: first event ${revs[0]} is not a change after its start (${rec.floor})`);
        expected = matching.slice(cut);
      } else {
        const from = rec.from;
        expected = matching.filter((e) => e.rv > from);
      }
      if (rec.stopped) {
        // A prefix, ending no later than the stop.
        expected = expected.slice(0, got.length);
        if (got.length > 0) assert.ok(revs[revs.length - 1]! <= ceiling(rec.stopped.seq), `${rec.label}: delivered after stop()`);
      }
      const view = (e: { type: string; object: Resource }) => ({ type: e.type, object: norm(e.object, true) });
      assert.deepEqual(got.map(view), expected.map(view), `${rec.label}: ${kind} events`);
    }
  }

  // list + watch from the list's revision rebuilds the (filtered) final state.
  const final = new Map<string, Resource>();
  for (const e of log) {
    if (e.type === 'DELETED') final.delete(keyStr(e.key));
    else final.set(keyStr(e.key), e.object);
  }
  for (const rec of h.reconstructions) {
    const state = new Map(rec.state);
    for (const e of rec.watch!.events) {
      const k = keyStr(keyOfObj(e.object));
      if (e.type === 'DELETED' || !objectMatches(rec.filter, e.object)) state.delete(k);
      else state.set(k, e.object);
    }
    const want = new Map([...final].filter(([, o]) => objectMatches(rec.filter, o)).map(([k, o]) => [k, norm(o, true)]));
    assert.deepEqual(new Map([...state].map(([k, o]) => [k, norm(o, true)])), want, `reconstruction of ${JSON.stringify(rec.filter)} from ${rec.listRv}`);
  }
}

const writersArb = (maxOps: number) => fc.array(fc.array(opArb, { minLength: 3, maxLength: maxOps, size: 'max' }), { minLength: 2, maxLength: 4 });

export function storeProperties(name: string, target: PropertyTarget): void {
  test(`${name}: random interleaved writers linearize against the model; watches and list+watch are exact`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), writersArb(25), fc.boolean(), async (s, writers, reentrant) => {
        await run(target, s, { historyLimit: 10000, writers, reentrant });
      }),
      { numRuns: target.runs.random, includeErrorInReport: true },
    );
  });

  test(`${name}: with a tiny history, 410 Gone only below the retained window, otherwise exact`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), writersArb(30), fc.integer({ min: 1, max: 6 }), async (s, writers, historyLimit) => {
        await run(target, s, { historyLimit, writers, reentrant: false });
      }),
      { numRuns: target.runs.tinyHistory, includeErrorInReport: true },
    );
  });

  test(`${name}: paginated lists interleaved with writes: list + watch from the list revision is exact`, async () => {
    const clusterOnly = opArb
      .filter((op) => op.op !== 'list' && op.op !== 'watch')
      .map((op): Op => ('key' in op ? { ...op, key: { kind: 'Cluster', project: op.key.project || 'p2', name: op.key.name } } : op));
    const pager: fc.Arbitrary<Op> = fc.record({
      op: fc.constant('list' as const),
      kind: fc.constant<Kind>('Cluster'),
      project: fc.constantFrom(undefined, undefined, 'p1'),
      selector: fc.constantFrom(undefined, undefined, 0, 1),
      limit: fc.constantFrom(1, 2),
    });
    const writers = fc
      .tuple(
        fc.array(fc.oneof({ weight: 1, arbitrary: pager }, { weight: 2, arbitrary: fc.constant<Op>({ op: 'yield' }) }), { minLength: 6, maxLength: 20, size: 'max' }),
        fc.array(fc.array(clusterOnly, { minLength: 4, maxLength: 20, size: 'max' }), { minLength: 2, maxLength: 3 }),
      )
      .map(([p, ws]) => [p, ...ws]);
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), writers, async (s, ws) => {
        await run(target, s, { historyLimit: 10000, writers: ws, reentrant: false });
      }),
      { numRuns: target.runs.paged, includeErrorInReport: true },
    );
  });
}
