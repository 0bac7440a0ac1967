import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MarinaClient } from '../client/index.js';
import type { Resource } from '../api/meta.js';
import { LiveCollection, LiveRegistry, type LiveSnapshot } from './live.js';

const obj = (name: string, rv: string, phase = 'Provisioning'): Resource => ({
  apiVersion: 'marina.dev/v1alpha1',
  kind: 'Cluster',
  metadata: { name, project: 'p', resourceVersion: rv },
  spec: { nodePools: [] },
  status: { phase },
});
const line = (type: string, o: Resource) => JSON.stringify({ type, object: o }) + '\n';
const bookmark = (rv: string) => JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Cluster', metadata: { resourceVersion: rv } } }) + '\n';
const tick = () => new Promise((r) => setTimeout(r, 5));

/** A watch response whose body the test writes to, chunk by chunk, and closes. */
function stream() {
  let ctl!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (ctl = c) });
  const enc = new TextEncoder();
  return {
    response: new Response(body, { status: 200, headers: { 'content-type': 'application/x-ndjson' } }),
    write: (s: string) => ctl.enqueue(enc.encode(s)),
    close: () => ctl.close(),
    error: () => ctl.error(new TypeError('network error')),
  };
}

type Call = { url: URL; signal?: AbortSignal | null };
/** fetch that answers each request with the next scripted handler. */
function scriptedFetch(handlers: ((c: Call) => Response | Promise<Response>)[]) {
  const calls: Call[] = [];
  const f = (async (input: string | URL | Request, init?: RequestInit) => {
    const c: Call = { url: new URL(String(input)), signal: init?.signal ?? null };
    calls.push(c);
    const h = handlers.shift();
    if (!h) return new Promise<Response>(() => undefined); // hang: the test is done with this collection
    return h(c);
  }) as typeof fetch;
  return { f, calls };
}
const json = (code: number, v: unknown) => new Response(JSON.stringify(v), { status: code, headers: { 'content-type': 'application/json' } });
const list = (rv: string, items: Resource[]) => json(200, { apiVersion: 'v', kind: 'ClusterList', metadata: { resourceVersion: rv }, items });

async function until<T>(coll: LiveCollection, pred: (s: LiveSnapshot<Resource>) => T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const v = pred(coll.getSnapshot());
    if (v !== undefined && v !== false) return v;
    await tick();
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(coll.getSnapshot())}`);
}
const names = (s: LiveSnapshot<Resource>) => s.items.map((i) => `${i.metadata.name}@${i.metadata.resourceVersion}`).join(' ');

test('lists, then follows the watch from the list revision; partial NDJSON lines and bookmarks', async () => {
  const s1 = stream();
  const { f, calls } = scriptedFetch([() => list('10', [obj('b', '9'), obj('a', '8')]), () => s1.response]);
  const client = new MarinaClient({ server: 'http://marina.test', token: 't', fetch: f });
  const coll = new LiveCollection(client, 'Cluster', { project: 'p', sleep: async () => undefined });
  const seen: number[] = [];
  coll.subscribe(() => seen.push(coll.getSnapshot().items.length));
  assert.equal(coll.getSnapshot().synced, false);
  coll.start();
  await until(coll, (s) => s.state === 'live' && s.synced, 'live');
  assert.equal(names(coll.getSnapshot()), 'a@8 b@9', 'sorted by name');
  assert.equal(calls[0]!.url.pathname, '/api/v1alpha1/projects/p/clusters');
  assert.equal(calls[1]!.url.searchParams.get('watch'), 'true');
  assert.equal(calls[1]!.url.searchParams.get('resourceVersion'), '10', 'watches from the list revision');

  const add = line('ADDED', obj('c', '11'));
  s1.write(add.slice(0, 17)); // half a line: nothing yet
  await tick();
  assert.equal(coll.getSnapshot().items.length, 2);
  s1.write(add.slice(17) + line('MODIFIED', obj('a', '12', 'Ready')) + bookmark('13'));
  await until(coll, (s) => s.resourceVersion === '13', 'bookmark revision');
  assert.equal(names(coll.getSnapshot()), 'a@12 b@9 c@11');
  assert.equal((coll.getSnapshot().items[0]!.status as { phase: string }).phase, 'Ready');
  s1.write(line('DELETED', obj('b', '14')));
  await until(coll, (s) => s.items.length === 2, 'deletion');
  assert.equal(names(coll.getSnapshot()), 'a@12 c@11');
  const snap = coll.getSnapshot();
  assert.equal(coll.getSnapshot(), snap, 'a stable snapshot while nothing changes');
  assert.ok(seen.length < 8, `bursts are coalesced into few notifications (${seen.length})`);
  coll.stop();
  await coll.done;
  assert.ok(calls[1]!.signal?.aborted, 'stop() aborts the stream');
});

test('a dropped stream resumes from the newest revision seen, with growing delays', async () => {
  const s1 = stream();
  const s2 = stream();
  const s3 = stream();
  const delays: number[] = [];
  const { f, calls } = scriptedFetch([
    () => list('5', [obj('a', '5')]),
    () => s1.response,
    () => Promise.reject(new TypeError('fetch failed')),
    () => s2.response,
    () => s3.response,
  ]);
  const client = new MarinaClient({ server: 'http://marina.test', token: 't', fetch: f });
  const coll = new LiveCollection(client, 'Cluster', { project: 'p', retryDelayMs: 100, sleep: async (ms) => void delays.push(ms) });
  coll.start();
  await until(coll, (s) => s.state === 'live', 'live');
  s1.write(line('MODIFIED', obj('a', '6')) + bookmark('9'));
  await until(coll, (s) => s.resourceVersion === '9', 'rv 9');
  s1.error(); // connection reset
  await until(coll, () => calls.length >= 4, 'two reconnects');
  assert.equal(calls[2]!.url.searchParams.get('resourceVersion'), '9', 'resumes after the bookmark');
  assert.equal(calls[3]!.url.searchParams.get('resourceVersion'), '9');
  assert.deepEqual(delays, [100, 200], 'backoff doubles while failing');
  s2.write(line('ADDED', obj('b', '10')));
  await until(coll, (s) => s.items.length === 2 && s.state === 'live', 'live again');
  s2.close(); // the server ended the stream: reconnect with the base delay again
  await until(coll, () => calls.length >= 5, 'third reconnect');
  assert.equal(calls[4]!.url.searchParams.get('resourceVersion'), '10');
  assert.deepEqual(delays, [100, 200, 100], 'an event resets the backoff');
  assert.equal(calls.filter((c) => c.url.searchParams.get('watch') !== 'true').length, 1, 'no relist for a plain reconnect');
  coll.stop();
  await coll.done;
});

test('410 Gone lists again; objects deleted meanwhile disappear', async () => {
  const s2 = stream();
  const { f, calls } = scriptedFetch([
    () => list('5', [obj('a', '4'), obj('b', '5')]),
    () => json(410, { kind: 'Status', code: 410, reason: 'Gone', message: 'resourceVersion 5 is too old' }),
    () => list('20', [obj('b', '18'), obj('c', '19')]),
    () => s2.response,
  ]);
  const client = new MarinaClient({ server: 'http://marina.test', token: 't', fetch: f });
  const coll = new LiveCollection(client, 'Cluster', { project: 'p', sleep: async () => undefined });
  coll.start();
  await until(coll, (s) => s.resourceVersion === '20' && s.state === 'live', 'relisted');
  assert.equal(names(coll.getSnapshot()), 'b@18 c@19');
  assert.equal(calls[3]!.url.searchParams.get('resourceVersion'), '20');
  coll.stop();
  await coll.done;
});

test('401 is fatal: no retry, the owner is told', async () => {
  const { f, calls } = scriptedFetch([() => json(401, { kind: 'Status', code: 401, reason: 'Unauthorized', message: 'token is invalid, revoked or expired' })]);
  const client = new MarinaClient({ server: 'http://marina.test', token: 't', fetch: f });
  const fatal: number[] = [];
  const coll = new LiveCollection(client, 'Cluster', { project: 'p', onFatal: (e) => fatal.push(e.code), sleep: async () => undefined });
  coll.start();
  await coll.done;
  const s = coll.getSnapshot();
  assert.equal(s.state, 'error');
  assert.equal(s.errorCode, 401);
  assert.match(s.error ?? '', /revoked/);
  assert.deepEqual(fatal, [401]);
  assert.equal(calls.length, 1);
});

test('a stream silent past the idle timeout is replaced', async () => {
  const s1 = stream();
  const s2 = stream();
  const { f, calls } = scriptedFetch([() => list('3', []), () => s1.response, () => s2.response]);
  const client = new MarinaClient({ server: 'http://marina.test', token: 't', fetch: f });
  const coll = new LiveCollection(client, 'Cluster', { project: 'p', idleTimeoutMs: 30, sleep: async () => undefined });
  coll.start();
  await until(coll, () => calls.length >= 3, 'reconnect after idling');
  assert.ok(calls[1]!.signal?.aborted, 'the idle stream was aborted');
  assert.equal(calls[2]!.url.searchParams.get('resourceVersion'), '3');
  coll.stop();
  await coll.done;
});

test('the registry shares one collection per kind and project, and stops unused ones after a while', async () => {
  const started: string[] = [];
  const made: LiveCollection[] = [];
  const fakeApi = {
    listAll: () => new Promise<never>(() => undefined),
    watch: () => (async function* () {})(),
  };
  const reg = new LiveRegistry((kind, project) => {
    started.push(`${kind}/${project}`);
    const c = new LiveCollection(fakeApi as never, kind, { project: project ?? '' });
    made.push(c);
    return c;
  }, 20);
  const a = reg.acquire('Cluster', 'p');
  const b = reg.acquire('Cluster', 'p');
  const m = reg.acquire('Machine', 'p');
  assert.equal(a, b);
  assert.notEqual(a, m);
  assert.deepEqual(started, ['Cluster/p', 'Machine/p']);
  reg.release(a);
  await new Promise((r) => setTimeout(r, 40));
  assert.ok(a.running, 'still used by the second holder');
  reg.release(b);
  const again = reg.acquire('Cluster', 'p'); // within the linger time: the same collection
  assert.equal(again, a);
  reg.release(again);
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(a.running, false, 'stopped once unused for the linger time');
  assert.equal(reg.size, 1);
  reg.stopAll();
  assert.equal(m.running, false);
  assert.equal(reg.size, 0);
});

test('beyond its watch budget the registry hands out collections that poll the list', async () => {
  const lists: string[] = [];
  let phase = 'Provisioning';
  const fakeApi = {
    listAll: async (kind: string) => {
      lists.push(kind);
      return { items: [obj('a', String(lists.length), phase)], metadata: { resourceVersion: String(lists.length) } };
    },
    watch: () => (async function* () {})(),
  };
  const reg = new LiveRegistry((kind, project, pollIntervalMs) => new LiveCollection(fakeApi as never, kind, { project: project ?? '', ...(pollIntervalMs === undefined ? {} : { pollIntervalMs }), sleep: (ms, signal) => new Promise<void>((r) => { const t = setTimeout(r, ms); signal?.addEventListener('abort', () => { clearTimeout(t); r(); }); }) }), 20, 2, 10);
  const watched = [reg.acquire('Cluster', 'p'), reg.acquire('Machine', 'p')];
  const polled = reg.acquire('Operation', 'p');
  assert.deepEqual(watched.map((c) => c.watching), [true, true]);
  assert.equal(polled.watching, false, 'the third kind polls');
  await new Promise((r) => setTimeout(r, 30));
  phase = 'Ready';
  await new Promise((r) => setTimeout(r, 40));
  const snap = polled.getSnapshot();
  assert.equal(snap.state, 'live');
  assert.equal((snap.items[0]!.status as { phase: string }).phase, 'Ready', 'a later list replaced the content');
  assert.ok(lists.filter((k) => k === 'Operation').length >= 3, `listed again and again: ${lists.join(',')}`);
  reg.stopAll();
  await polled.done;
  // A stopped registry has room again: the next collection watches.
  assert.equal(reg.acquire('Alert', 'p').watching, true);
  reg.stopAll();
});
