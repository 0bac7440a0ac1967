// Property-based tests: several "writers" run random operations concurrently (interleaved by a
// fast-check scheduler) against the SQLite store and a simple in-test model. Every operation's
// outcome must match the model; every watcher, started at any revision, must see exactly the
// model's events after that revision, in increasing order; list + watch from the list's revision
// must reconstruct the final state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { ApiError } from '../api/errors.js';
import { API_VERSION, type Resource } from '../api/meta.js';
import type { SqliteStore } from './sqlite.js';
import { countingLogger, flush, openTestStore } from './test-util.js';
import type { ListResult, WatchEvent, WatchEventType } from './types.js';

// ----- the domain: small, so that collisions, conflicts and no-ops are frequent ---------------

type Labels = Record<string, string>;
const KINDS = ['Cluster', 'Secret', 'Project'] as const;
type Kind = (typeof KINDS)[number];
const PROJECTS = ['p1', 'p2'];
const NAMES = ['a', 'b'];
const FINALIZERS = ['f1', 'f2'];

/** Selectors and an independent model predicate for each. */
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
const keyStr = (k: Key) => `${k.kind}/${k.project}/${k.name}`;

const keyArb: fc.Arbitrary<Key> = fc
  .record({ kind: fc.constantFrom('Cluster', 'Cluster', 'Secret', 'Project'), project: fc.constantFrom(...PROJECTS), name: fc.constantFrom(...NAMES) })
  .map((k) => (k.kind === 'Project' ? { ...k, project: '' } : k));
const labelsArb: fc.Arbitrary<Labels> = fc
  .record({ tier: fc.constantFrom('web', 'db', undefined), env: fc.constantFrom('prod', 'dev', undefined) })
  .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as Labels);
const specArb = fc.record({ size: fc.integer({ min: 1, max: 2 }), tags: fc.constantFrom(undefined, ['x'], ['x', 'y']) }).map((s) =>
  s.tags ? { tags: s.tags, size: s.size } : { size: s.size },
);
const statusArb = fc.constantFrom(undefined, { phase: 'A' }, { phase: 'B', observedGeneration: 1 });
const finalizersArb = fc.oneof(fc.constant([] as string[]), fc.subarray(FINALIZERS, { minLength: 1 }));

type Op =
  | { op: 'create'; key: Key; labels: Labels; spec: unknown; finalizers: string[]; status: unknown }
  | { op: 'update'; key: Key; fresh: boolean; labels?: Labels; spec?: unknown; finalizers: 'keep' | 'add' | 'removeOne' | 'removeAll' }
  | { op: 'updateStatus'; key: Key; fresh: boolean; status: unknown }
  | { op: 'delete'; key: Key; precondition: 'none' | 'cached' }
  | { op: 'get'; key: Key }
  | { op: 'watch'; kind?: Kind; project?: string; selector?: number; from: number | 'now'; throws: boolean }
  | { op: 'stopWatch'; index: number }
  | { op: 'list'; kind: Kind; project?: string; selector?: number; limit: number }
  /** Nothing: lets the other writers run first. */
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

// ----- the model -------------------------------------------------------------------------------

/**
 * A stored object as the model predicts it. uid and timestamps are not predictable: comparisons
 * go through norm(), which drops uid/creationTimestamp and reduces deletionTimestamp to 'set'.
 */
interface ModelEvent {
  rev: number;
  type: WatchEventType;
  key: Key;
  object: Resource;
  /** Labels before the change (MODIFIED, and DELETED through an update). */
  oldLabels?: Labels;
}

function norm(o: Resource): Resource {
  const c = structuredClone(o);
  delete c.metadata.uid;
  delete c.metadata.creationTimestamp;
  if (c.metadata.deletionTimestamp) c.metadata.deletionTimestamp = 'set';
  return c;
}

/** Success carries `inc`, the incarnation (creation revision) of the object, to check uid stability. */
type Outcome = { ok: Resource; removed?: boolean; inc: number } | { code: number };

class Model {
  /** A new store is at the genesis revision 1. */
  rev = 1;
  objects = new Map<string, Resource>();
  incarnations = new Map<string, number>();
  events: ModelEvent[] = [];

  private emit(type: WatchEventType, key: Key, object: Resource, oldLabels?: Labels) {
    this.events.push({ rev: this.rev, type, key, object: structuredClone(object), oldLabels });
  }

  private ok(key: Key, o: Resource, removed?: boolean): Outcome {
    return { ok: o, removed, inc: this.incarnations.get(keyStr(key))! };
  }

  create(key: Key, labels: Labels, spec: unknown, finalizers: string[], status: unknown): Outcome {
    if (this.objects.has(keyStr(key))) return { code: 409 };
    this.rev++;
    this.incarnations.set(keyStr(key), this.rev);
    const md: Resource['metadata'] = { name: key.name, resourceVersion: String(this.rev), generation: 1 };
    if (key.project) md.project = key.project;
    if (Object.keys(labels).length) md.labels = { ...labels };
    if (finalizers.length) md.finalizers = [...finalizers];
    const o: Resource = { apiVersion: API_VERSION, kind: key.kind, metadata: md, spec: structuredClone(spec) };
    if (status !== undefined) o.status = structuredClone(status);
    this.objects.set(keyStr(key), o);
    this.emit('ADDED', key, o);
    return this.ok(key, o);
  }

  update(key: Key, rv: string, labels: Labels | undefined, spec: unknown, finalizers: string[] | undefined): Outcome {
    const cur = this.objects.get(keyStr(key));
    if (!cur) return { code: 404 };
    if (cur.metadata.resourceVersion !== rv) return { code: 409 };
    const deleting = cur.metadata.deletionTimestamp !== undefined;
    if (deleting && (finalizers ?? []).some((f) => !(cur.metadata.finalizers ?? []).includes(f))) return { code: 422 };
    const same = (a: unknown, b: unknown) => isDeepStrictEqual(a ?? null, b ?? null);
    const lbl = labels && Object.keys(labels).length ? labels : undefined;
    const fin = finalizers && finalizers.length ? finalizers : undefined;
    const specChanged = !same(cur.spec, spec);
    if (!specChanged && same(cur.metadata.labels, lbl) && same(cur.metadata.finalizers, fin)) return this.ok(key, cur);
    this.rev++;
    const next = structuredClone(cur);
    next.metadata.resourceVersion = String(this.rev);
    if (specChanged) next.metadata.generation! += 1;
    if (lbl) next.metadata.labels = structuredClone(lbl);
    else delete next.metadata.labels;
    if (fin) next.metadata.finalizers = [...fin];
    else delete next.metadata.finalizers;
    next.spec = structuredClone(spec);
    if (deleting && !fin) {
      this.objects.delete(keyStr(key));
      this.emit('DELETED', key, next, cur.metadata.labels ?? {});
    } else {
      this.objects.set(keyStr(key), next);
      this.emit('MODIFIED', key, next, cur.metadata.labels ?? {});
    }
    return this.ok(key, next);
  }

  updateStatus(key: Key, rv: string, status: unknown): Outcome {
    const cur = this.objects.get(keyStr(key));
    if (!cur) return { code: 404 };
    if (cur.metadata.resourceVersion !== rv) return { code: 409 };
    if (isDeepStrictEqual(cur.status ?? null, status ?? null)) return this.ok(key, cur);
    this.rev++;
    const next = structuredClone(cur);
    next.metadata.resourceVersion = String(this.rev);
    if (status === undefined) delete next.status;
    else next.status = structuredClone(status);
    this.objects.set(keyStr(key), next);
    this.emit('MODIFIED', key, next, cur.metadata.labels ?? {});
    return this.ok(key, next);
  }

  delete(key: Key, rv: string | undefined): Outcome {
    const cur = this.objects.get(keyStr(key));
    if (!cur) return { code: 404 };
    if (rv !== undefined && cur.metadata.resourceVersion !== rv) return { code: 409 };
    if (cur.metadata.deletionTimestamp) return this.ok(key, cur, false);
    this.rev++;
    const next = structuredClone(cur);
    next.metadata.resourceVersion = String(this.rev);
    if (!cur.metadata.finalizers?.length) {
      this.objects.delete(keyStr(key));
      this.emit('DELETED', key, next);
      return this.ok(key, next, true);
    }
    next.metadata.deletionTimestamp = 'set';
    this.objects.set(keyStr(key), next);
    this.emit('MODIFIED', key, next, cur.metadata.labels ?? {});
    return this.ok(key, next, false);
  }
}

interface Filter {
  kind?: Kind;
  project?: string;
  selector?: number;
}

function eventMatches(f: Filter, e: ModelEvent): boolean {
  if (f.kind !== undefined && e.key.kind !== f.kind) return false;
  if (f.project !== undefined && e.key.project !== f.project) return false;
  if (f.selector === undefined) return true;
  const pred = SELECTORS[f.selector]![1];
  return pred(e.object.metadata.labels ?? {}) || (e.oldLabels !== undefined && pred(e.oldLabels));
}

function objectMatches(f: Filter, o: Resource): boolean {
  if (f.kind !== undefined && o.kind !== f.kind) return false;
  if (f.project !== undefined && (o.metadata.project ?? '') !== f.project) return false;
  return f.selector === undefined || SELECTORS[f.selector]![1](o.metadata.labels ?? {});
}

// ----- the harness -----------------------------------------------------------------------------

/** Outcome counts over all runs; printed with MARINA_PROP_STATS=1 to check the generators. */
const stats = new Map<string, number>();
const count = (what: string) => stats.set(what, (stats.get(what) ?? 0) + 1);
process.on('exit', () => {
  if (process.env.MARINA_PROP_STATS) console.error(Object.fromEntries([...stats].sort()));
});

/** Wraps a handler so that a concurrent (re-entrant) call fails the test. */
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

interface WatchRecord {
  filter: Filter;
  /** Events after this revision are expected... */
  from: number;
  /** ...up to this one (the revision when it was stopped; Infinity while running). */
  until: number;
  events: WatchEvent[];
  stop?: () => void;
  label: string;
  throws: boolean;
}

interface Reconstruction {
  filter: Filter;
  state: Map<string, Resource>;
  listRv: number;
  watch?: WatchRecord;
}

async function settle<T>(p: Promise<T>): Promise<{ value: T } | { error: unknown }> {
  try {
    return { value: await p };
  } catch (error) {
    return { error };
  }
}

function checkOutcome(what: string, expected: Outcome, actual: { value: Resource; removed?: boolean } | { error: unknown }, uids: Map<string, string>, key: Key) {
  count(`${/"op":"(\w+)"/.exec(what)?.[1] ?? what} -> ${'code' in expected ? expected.code : 'ok'}`);
  if ('code' in expected) {
    assert.ok('error' in actual, `${what}: expected ${expected.code}, got success`);
    assert.ok(actual.error instanceof ApiError, `${what}: ${String(actual.error)}`);
    assert.equal(actual.error.code, expected.code, `${what}: ${actual.error.message}`);
    return;
  }
  if ('error' in actual) assert.fail(`${what}: expected success, got ${String(actual.error)}`);
  assert.deepEqual(norm(actual.value), norm(expected.ok), what);
  if (expected.removed !== undefined) assert.equal(actual.removed, expected.removed, `${what}: removed`);
  // uid: the model cannot predict it, but it must be stable for an incarnation and new for each.
  const id = `${keyStr(key)}@${expected.inc}`;
  const u = uids.get(id);
  if (u === undefined) {
    assert.ok(![...uids.values()].includes(actual.value.metadata.uid!), `${what}: uid reused`);
    uids.set(id, actual.value.metadata.uid!);
  } else assert.equal(actual.value.metadata.uid, u, `${what}: uid changed`);
}

interface RunOptions {
  historyLimit: number;
  writers: Op[][];
  reentrant: boolean;
}

async function run(s: fc.Scheduler, opts: RunOptions): Promise<void> {
  const logger = countingLogger();
  const store: SqliteStore = openTestStore({ historyLimit: opts.historyLimit, logger });
  const model = new Model();
  const watches: WatchRecord[] = [];
  const reconstructions: Reconstruction[] = [];
  const pending: Promise<void>[] = [];
  const uids = new Map<string, string>();

  /** Watch from revision `from` (0: from now). */
  const startWatch = (filter: Filter, from: number, throws: boolean, label: string): WatchRecord | undefined => {
    const rec: WatchRecord = { filter, from: from === 0 ? model.rev : from, until: Infinity, events: [], label, throws };
    try {
      const w = store.watch(
        {
          kind: filter.kind,
          project: filter.project,
          labelSelector: filter.selector === undefined ? undefined : SELECTORS[filter.selector]![0],
          resourceVersion: String(from),
        },
        exclusive(label, (e: WatchEvent) => {
          rec.events.push(e);
          if (throws) throw new Error('handler failure (expected by the test)');
        }),
      );
      rec.stop = () => {
        w.stop();
        rec.until = model.rev;
      };
    } catch (err) {
      assert.ok(err instanceof ApiError && err.code === 410, `watch from ${from}: ${String(err)}`);
      // Gone is only allowed when the history limit really was exceeded.
      assert.ok(from < model.rev - opts.historyLimit, `410 for ${from} at revision ${model.rev} with historyLimit ${opts.historyLimit}`);
      count('watch -> 410');
      return undefined;
    }
    watches.push(rec);
    return rec;
  };

  if (opts.reentrant) {
    // A "controller": on ADDED of a web-tier Cluster it writes status from inside the handler.
    store.watch({ kind: 'Cluster' }, exclusive('reentrant', (e: WatchEvent) => {
      if (e.type !== 'ADDED' || e.object.metadata.labels?.tier !== 'web') return;
      const key: Key = { kind: 'Cluster', project: e.object.metadata.project!, name: e.object.metadata.name };
      const expected = model.updateStatus(key, e.object.metadata.resourceVersion!, { phase: 'Seen' });
      const p = store.updateStatus({ ...e.object, status: { phase: 'Seen' } });
      pending.push(settle(p).then((a) => checkOutcome('handler updateStatus(reentrant)', expected, a as never, uids, key)));
    }));
  }
  const all = startWatch({}, 0, false, 'all-from-start')!;

  const writer = async (ops: Op[], w: number) => {
    const cache = new Map<string, Resource>();
    for (const [i, op] of ops.entries()) {
      await s.schedule(Promise.resolve(), `w${w}#${i} ${op.op}`);
      const what = `w${w}#${i} ${JSON.stringify(op)}`;
      switch (op.op) {
        case 'create': {
          const expected = model.create(op.key, op.labels, op.spec, op.finalizers, op.status);
          const input: Resource = {
            apiVersion: API_VERSION,
            kind: op.key.kind,
            metadata: { name: op.key.name, labels: op.labels, finalizers: op.finalizers },
            spec: op.spec,
          };
          if (op.key.project) input.metadata.project = op.key.project;
          if (op.status !== undefined) input.status = op.status;
          const res = await settle(store.create(input));
          checkOutcome(what, expected, res, uids, op.key);
          if ('value' in res) cache.set(keyStr(op.key), res.value);
          break;
        }
        case 'get': {
          // get() runs synchronously at call time: compare with the model in the same tick.
          const snapshot = model.objects.get(keyStr(op.key));
          const got = await store.get(op.key);
          assert.deepEqual(got && norm(got), snapshot && norm(snapshot), `${what}: get`);
          if (got) cache.set(keyStr(op.key), got);
          else cache.delete(keyStr(op.key));
          break;
        }
        case 'update':
        case 'updateStatus': {
          let base = op.fresh ? undefined : cache.get(keyStr(op.key));
          if (!base) {
            const snapshot = model.objects.get(keyStr(op.key));
            const got = await store.get(op.key);
            assert.deepEqual(got && norm(got), snapshot && norm(snapshot), `${what}: get`);
            if (!got) break;
            base = got;
          }
          const arg = structuredClone(base);
          let expected: Outcome;
          let p: Promise<Resource>;
          if (op.op === 'update') {
            const fins = base.metadata.finalizers ?? [];
            const finalizers =
              op.finalizers === 'keep' ? fins
              : op.finalizers === 'add' ? [...new Set([...fins, ...FINALIZERS])]
              : op.finalizers === 'removeOne' ? fins.slice(1)
              : [];
            arg.metadata.labels = op.labels ?? base.metadata.labels;
            arg.metadata.finalizers = finalizers;
            arg.spec = op.spec ?? base.spec;
            arg.status = { phase: 'ignored-by-update' };
            expected = model.update(op.key, base.metadata.resourceVersion!, arg.metadata.labels, arg.spec, finalizers);
            p = store.update(arg);
          } else {
            arg.status = op.status;
            arg.spec = { size: 99 }; // ignored by updateStatus
            expected = model.updateStatus(op.key, base.metadata.resourceVersion!, op.status);
            p = store.updateStatus(arg);
          }
          const res = await settle(p);
          checkOutcome(what, expected, res, uids, op.key);
          if ('value' in res) cache.set(keyStr(op.key), res.value);
          break;
        }
        case 'delete': {
          const rv = op.precondition === 'cached' ? cache.get(keyStr(op.key))?.metadata.resourceVersion : undefined;
          const expected = model.delete(op.key, rv);
          const res = await settle(store.delete(op.key, rv === undefined ? {} : { resourceVersion: rv }));
          checkOutcome(what, expected, 'value' in res ? { value: res.value.object, removed: res.value.removed } : res, uids, op.key);
          break;
        }
        case 'watch': {
          // 'now', or a revision from 1 (everything) up to the current one.
          const from = op.from === 'now' ? 0 : 1 + Math.floor(op.from * (model.rev - 1));
          startWatch({ kind: op.kind, project: op.project, selector: op.selector }, from, op.throws, what);
          break;
        }
        case 'yield':
          break;
        case 'stopWatch': {
          // Neither the reference watch nor the reconstructions' watches are stopped.
          const live = watches.filter((r) => r.until === Infinity && r !== all && !r.label.endsWith(' reconstruct'));
          if (live.length > 0) live[op.index % live.length]!.stop!();
          break;
        }
        case 'list': {
          // Paginated list; other writers run between the pages. Then watch from the list's
          // revision; at the end, items + events must give the final state.
          const filter: Filter = { kind: op.kind, project: op.project, selector: op.selector };
          const rec: Reconstruction = { filter, state: new Map(), listRv: -1 };
          let cont: string | undefined;
          let pages = 0;
          do {
            const page: { value: ListResult } | { error: unknown } = await settle(
              store.list(op.kind, {
                project: op.project,
                labelSelector: op.selector === undefined ? undefined : SELECTORS[op.selector]![0],
                limit: op.limit,
                continue: cont,
              }),
            );
            if ('error' in page) {
              assert.ok(page.error instanceof ApiError && page.error.code === 410 && opts.historyLimit < 1000, String(page.error));
              rec.listRv = -1;
              break;
            }
            const list: ListResult = page.value;
            if (pages === 0) rec.listRv = Number(list.resourceVersion);
            else assert.equal(Number(list.resourceVersion), rec.listRv, 'pages carry the first revision');
            if (op.limit > 0) assert.ok(list.items.length <= op.limit);
            for (const item of list.items) {
              assert.ok(objectMatches(filter, item), `${what}: listed a non-matching object`);
              rec.state.set(keyStr({ kind: op.kind, project: item.metadata.project ?? '', name: item.metadata.name }), item);
            }
            cont = list.continue;
            pages++;
            if (cont) await s.schedule(Promise.resolve(), `w${w}#${i} next page`);
          } while (cont);
          count(`list items=${rec.state.size} pages=${Math.min(pages, 3)}${pages > 1 && model.rev > rec.listRv ? ' interleaved' : ''}`);
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

  await s.waitFor(Promise.all(opts.writers.map((ops, w) => writer(ops, w))));
  await s.waitIdle();
  await flush();
  await Promise.all(pending);

  // Final state: list everything and compare with the model.
  const actual = new Map<string, Resource>();
  for (const kind of KINDS) {
    for (const item of (await store.list(kind)).items) {
      actual.set(keyStr({ kind, project: item.metadata.project ?? '', name: item.metadata.name }), norm(item));
    }
  }
  const expectedState = new Map([...model.objects].map(([k, v]) => [k, norm(v)]));
  assert.deepEqual(actual, expectedState, 'final state');
  assert.equal(await store.currentRevision(), String(model.rev));

  // Every watcher: exactly the matching model events in (from, until], in increasing order. Events
  // are delivered after the write, so a watcher stopped meanwhile got a prefix of them (stop()
  // drops what was not delivered yet).
  for (const rec of watches) {
    const revs = rec.events.map((e) => Number(e.object.metadata.resourceVersion));
    for (let i = 1; i < revs.length; i++) assert.ok(revs[i]! > revs[i - 1]!, `${rec.label}: revisions not strictly increasing: ${revs}`);
    const all = model.events.filter((e) => e.rev > rec.from && e.rev <= rec.until && eventMatches(rec.filter, e));
    const expected = rec.until === Infinity ? all : all.slice(0, rec.events.length);
    assert.deepEqual(
      rec.events.map((e) => ({ type: e.type, object: norm(e.object) })),
      expected.map((e) => ({ type: e.type, object: norm(e.object) })),
      `${rec.label}: events after ${rec.from}`,
    );
  }

  // list + watch from the list's revision reconstructs the (filtered) final state.
  for (const rec of reconstructions) {
    const state = new Map(rec.state);
    for (const e of rec.watch!.events) {
      const k = keyStr({ kind: e.object.kind as Kind, project: e.object.metadata.project ?? '', name: e.object.metadata.name });
      if (e.type === 'DELETED' || !objectMatches(rec.filter, e.object)) state.delete(k);
      else state.set(k, e.object);
    }
    const want = new Map([...model.objects].filter(([, o]) => objectMatches(rec.filter, o)).map(([k, o]) => [k, norm(o)]));
    assert.deepEqual(new Map([...state].map(([k, o]) => [k, norm(o)])), want, `reconstruction of ${JSON.stringify(rec.filter)} from ${rec.listRv}`);
  }

  const throwing = watches.filter((r) => r.throws).reduce((n, r) => n + r.events.length, 0);
  assert.equal(logger.errors.length, throwing, 'every handler exception is logged once');
  await store.close();
}

const writersArb = (maxOps: number) =>
  fc.array(fc.array(opArb, { minLength: 3, maxLength: maxOps, size: 'max' }), { minLength: 2, maxLength: 4 });

test('random interleaved writers match the model; watches and list+watch are exact', async () => {
  await fc.assert(
    fc.asyncProperty(fc.scheduler(), writersArb(25), fc.boolean(), async (s, writers, reentrant) => {
      await run(s, { historyLimit: 10000, writers, reentrant });
    }),
    { numRuns: 100, includeErrorInReport: true },
  );
});

test('with a tiny history: 410 Gone only below the retained window, otherwise exact', async () => {
  await fc.assert(
    fc.asyncProperty(fc.scheduler(), writersArb(30), fc.integer({ min: 1, max: 6 }), async (s, writers, historyLimit) => {
      await run(s, { historyLimit, writers, reentrant: false });
    }),
    { numRuns: 50, includeErrorInReport: true },
  );
});

test('paginated lists interleaved with writes: list + watch from the list revision is exact', async () => {
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
      await run(s, { historyLimit: 10000, writers: ws, reentrant: false });
    }),
    { numRuns: 50, includeErrorInReport: true },
  );
});
