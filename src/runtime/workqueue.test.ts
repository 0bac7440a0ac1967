import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ExponentialBackoff, WorkQueue } from './workqueue.js';

/** Resolves with the promise's value, or 'pending' if it has not settled after `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([p, new Promise<'pending'>((res) => (timer = setTimeout(() => res('pending'), ms)))]);
  clearTimeout(timer);
  return r;
}

test('dedup: a key added many times is handed out once', async () => {
  const q = new WorkQueue();
  for (let i = 0; i < 100; i++) q.add('a');
  assert.equal(q.len(), 1);
  assert.equal(await q.get(), 'a');
  assert.equal(q.len(), 0);
  q.done('a');
  assert.equal(q.len(), 0);
  assert.equal(await within(q.get(), 30), 'pending');
  q.shutDown();
});

test('keys come out in FIFO order, each once', async () => {
  const q = new WorkQueue();
  for (const k of ['a', 'b', 'a', 'c', 'b']) q.add(k);
  const got = [await q.get(), await q.get(), await q.get()];
  assert.deepEqual(got, ['a', 'b', 'c']);
  assert.equal(q.len(), 0);
  q.shutDown();
});

test('a key added while processing is re-queued only after done()', async () => {
  const q = new WorkQueue();
  q.add('a');
  assert.equal(await q.get(), 'a');
  q.add('a');
  q.add('a');
  q.add('b');
  assert.equal(q.len(), 1, 'only b is ready while a is processed');
  assert.equal(await q.get(), 'b');
  assert.equal(await within(q.get(), 30), 'pending', 'a is not handed out again while in flight');
  q.shutDown();

  const q2 = new WorkQueue();
  q2.add('a');
  assert.equal(await q2.get(), 'a');
  q2.add('a');
  assert.equal(q2.len(), 0);
  q2.done('a');
  assert.equal(q2.len(), 1);
  assert.equal(await q2.get(), 'a');
  q2.done('a');
  assert.equal(q2.len(), 0);
  q2.shutDown();
});

test('a waiting get() receives the next added key directly', async () => {
  const q = new WorkQueue();
  const p1 = q.get();
  const p2 = q.get();
  q.add('x');
  q.add('x');
  q.add('y');
  assert.deepEqual([await p1, await p2], ['x', 'y']);
  assert.deepEqual(q.stats(), { ready: 0, delayed: 0, processing: 2, shuttingDown: false });
  q.shutDown();
});

test('addAfter delays a key; the earliest ready time wins', async () => {
  const q = new WorkQueue();
  q.addAfter('late-then-early', 60_000);
  q.addAfter('late-then-early', 20);
  q.addAfter('early-then-late', 20);
  q.addAfter('early-then-late', 60_000);
  assert.equal(q.len(), 0);
  assert.equal(q.stats().delayed, 2);
  const got = new Set([await within(q.get(), 5000), await within(q.get(), 5000)]);
  assert.deepEqual(got, new Set(['late-then-early', 'early-then-late']));
  assert.equal(q.stats().delayed, 0);
  q.shutDown();
});

test('addAfter with a non-positive delay adds at once', async () => {
  const q = new WorkQueue();
  q.addAfter('a', 0);
  q.addAfter('b', -5);
  assert.equal(q.len(), 2);
  q.shutDown();
});

test('ExponentialBackoff doubles from the base up to the cap, per key, and forget resets', () => {
  const b = new ExponentialBackoff();
  const delays = Array.from({ length: 12 }, () => b.when('k'));
  assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]);
  assert.equal(b.numRequeues('k'), 12);
  assert.equal(b.when('other'), 100, 'other keys are independent');
  b.forget('k');
  assert.equal(b.numRequeues('k'), 0);
  assert.equal(b.when('k'), 100);
  for (let i = 0; i < 5000; i++) b.when('many');
  assert.equal(b.when('many'), 60000, 'no overflow after many failures');

  const custom = new ExponentialBackoff({ baseDelayMs: 5, maxDelayMs: 30 });
  assert.deepEqual([custom.when('x'), custom.when('x'), custom.when('x'), custom.when('x')], [5, 10, 20, 30]);
});

test('addRateLimited requeues after growing delays and reports retries', async () => {
  let retries = 0;
  const q = new WorkQueue({ backoff: { baseDelayMs: 5, maxDelayMs: 1000 }, hooks: { onRetry: () => retries++ } });
  const delays: number[] = [];
  for (let i = 0; i < 4; i++) {
    delays.push(q.addRateLimited('k'));
    assert.equal(await within(q.get(), 5000), 'k');
    q.done('k');
  }
  assert.deepEqual(delays, [5, 10, 20, 40]);
  assert.equal(q.numRequeues('k'), 4);
  assert.equal(retries, 4);
  q.forget('k');
  assert.equal(q.numRequeues('k'), 0);
  assert.equal(q.addRateLimited('k'), 5);
  q.shutDown();
});

test('shutDown wakes waiters, ignores adds, clears timers; drain waits for in-flight keys', async () => {
  const q = new WorkQueue();
  q.add('a');
  q.add('b');
  assert.equal(await q.get(), 'a');
  const waiterQ = new WorkQueue();
  const waiting = waiterQ.get();
  waiterQ.shutDown();
  assert.equal(await waiting, undefined);

  q.addAfter('c', 60_000);
  q.shutDown();
  assert.deepEqual(q.stats(), { ready: 0, delayed: 0, processing: 1, shuttingDown: true });
  assert.equal(await q.get(), undefined, 'no key handed out after shutDown');
  q.add('d');
  q.addAfter('e', 1);
  q.addRateLimited('f');
  assert.equal(q.len(), 0);
  assert.equal(q.stats().delayed, 0);

  let drained = false;
  const d = q.drain().then(() => (drained = true));
  assert.equal(await within(d, 30), 'pending');
  assert.equal(drained, false);
  q.add('a'); // ignored: must not be re-queued by done()
  q.done('a');
  await d;
  assert.equal(drained, true);
  assert.equal(q.len(), 0);
  await q.drain(); // resolves at once afterwards
  q.shutDown(); // idempotent
});

test('hooks count real adds and report depth', async () => {
  let adds = 0;
  const depths: number[] = [];
  const q = new WorkQueue({ hooks: { onAdd: () => adds++, onDepth: (d) => depths.push(d) } });
  q.add('a');
  q.add('a');
  q.add('b');
  assert.equal(adds, 2);
  assert.equal(depths.at(-1), 2);
  await q.get();
  assert.equal(depths.at(-1), 1);
  q.shutDown();
  assert.equal(depths.at(-1), 0);
});

test('model check: never two hand-outs of one key in flight, and every add is eventually served', async () => {
  const keys = ['a', 'b', 'c'];
  const op = fc.oneof(
    fc.record({ t: fc.constant('add' as const), k: fc.constantFrom(...keys) }),
    fc.record({ t: fc.constant('get' as const) }),
    fc.record({ t: fc.constant('done' as const), k: fc.constantFrom(...keys) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
      const q = new WorkQueue();
      const inFlight = new Set<string>();
      /** Keys added since they were last handed out: each must be handed out again. */
      const owed = new Set<string>();
      const take = async () => {
        const k = (await q.get())!;
        assert.ok(!inFlight.has(k), `key ${k} handed out twice concurrently`);
        inFlight.add(k);
        owed.delete(k);
      };
      for (const o of ops) {
        if (o.t === 'add') {
          q.add(o.k);
          owed.add(o.k);
        } else if (o.t === 'get') {
          if (q.len() > 0) await take();
        } else if (inFlight.has(o.k)) {
          q.done(o.k);
          inFlight.delete(o.k);
        }
      }
      // Finish everything: all owed keys must come out.
      for (const k of [...inFlight]) {
        q.done(k);
        inFlight.delete(k);
      }
      while (q.len() > 0) {
        await take();
        for (const k of [...inFlight]) {
          q.done(k);
          inFlight.delete(k);
        }
      }
      assert.deepEqual([...owed], [], 'every added key was served');
      q.shutDown();
    }),
    { numRuns: 300 },
  );
});
