import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RETRY_DEFAULTS } from '../api/functions.js';
import { backoffMs, FunctionStore, type EnqueueRequest } from './functions-sqlite.js';

const retry = { ...RETRY_DEFAULTS, maxAttempts: 2, backoffSeconds: 10 };
const req = (key: string, over: Partial<EnqueueRequest> = {}): EnqueueRequest => ({
  project: 'p',
  target: { kind: 'Function', name: 'f' },
  trigger: { type: 'api' },
  idempotencyKey: key,
  event: { key },
  retry,
  ...over,
});

function withClock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('FunctionStore queue', () => {
  it('queues once per idempotency key', () => {
    const s = new FunctionStore({ path: ':memory:' });
    const a = s.enqueue(req('k'));
    const b = s.enqueue(req('k'));
    assert.equal(a.created, true);
    assert.equal(b.created, false);
    assert.equal(b.delivery.id, a.delivery.id);
    assert.equal(s.enqueue(req('k', { target: { kind: 'Function', name: 'g' } })).created, true, 'the key is per target');
    s.close();
  });

  it('leases a delivery to one worker; an expired lease is claimed again; only the holder completes it', () => {
    const clock = withClock();
    const s = new FunctionStore({ path: ':memory:', now: clock.now });
    s.enqueue(req('k'));
    const [d] = s.claim('w1', 10, 1000);
    assert.ok(d);
    assert.deepEqual(s.claim('w2', 10, 1000), [], 'leased');
    clock.advance(1001);
    const [again] = s.claim('w2', 10, 1000);
    assert.equal(again?.id, d.id, 'the lease expired (its worker died)');
    assert.equal(s.succeed(d.id, 'w1'), false, 'w1 lost the lease');
    assert.equal(s.renew(d.id, 'w1', 1000), false);
    assert.equal(s.succeed(d.id, 'w2'), true);
    assert.equal(s.rawState(d.id), 'done');
    s.close();
  });

  it('retries after the backoff, then buries in the dead-letter list; replay queues it again with fresh attempts', () => {
    const clock = withClock();
    const s = new FunctionStore({ path: ':memory:', now: clock.now });
    const { delivery } = s.enqueue(req('k'));
    let [d] = s.claim('w', 1, 60_000);
    assert.equal(s.fail(d!, 'w', 'boom', { random: () => 0.5 }), 'queued');
    assert.deepEqual(s.claim('w', 1, 60_000), [], 'not before the backoff');
    clock.advance(10_000);
    [d] = s.claim('w', 1, 60_000);
    assert.equal(d?.attempts, 1);
    assert.equal(s.fail(d!, 'w', 'boom again'), 'dead');
    const dead = s.deadLetters('p');
    assert.deepEqual(dead.map((x) => [x.id, x.state, x.attempts, x.lastError]), [[delivery.id, 'dead', 2, 'boom again']]);
    assert.deepEqual(s.deadLetters('other'), []);
    assert.equal(s.replay('other', delivery.id), false, 'another project cannot replay it');
    assert.equal(s.replay('p', delivery.id), true);
    [d] = s.claim('w', 1, 60_000);
    assert.equal(d?.attempts, 0);
    assert.deepEqual(s.depth(), { queued: 0, running: 1, dead: 0 });
    s.close();
  });

  it('gives a delivery back without counting an attempt', () => {
    const clock = withClock();
    const s = new FunctionStore({ path: ':memory:', now: clock.now });
    s.enqueue(req('k'));
    const [d] = s.claim('w', 1, 60_000);
    s.release(d!.id, 'w', 100);
    clock.advance(100);
    assert.equal(s.claim('w', 1, 60_000)[0]?.attempts, 0);
    s.close();
  });

  it('cancels the queued and flags the running deliveries of a trigger', () => {
    const s = new FunctionStore({ path: ':memory:' });
    const a = s.enqueue(req('a', { triggerKey: 't' })).delivery;
    s.claim('w', 1, 60_000);
    const b = s.enqueue(req('b', { triggerKey: 't' })).delivery;
    assert.equal(s.activeForTrigger('t').length, 2);
    s.cancelTrigger('t');
    assert.equal(s.rawState(b.id), 'canceled');
    assert.equal(s.cancelRequested(a.id), true);
    s.close();
  });

  it('advances a cron trigger only from the expected value, with its deliveries in the same transaction', () => {
    const s = new FunctionStore({ path: ':memory:' });
    s.cronInit('t', '* * * * *|UTC', 100);
    assert.equal(s.cronAdvance('t', 100, 200, () => void s.enqueue(req('run-100'))), true);
    assert.equal(s.cronAdvance('t', 100, 200, () => void s.enqueue(req('run-100-again'))), false, 'another worker advanced it');
    assert.equal(s.cronState('t')?.nextRun, 200);
    assert.equal(s.depth().queued, 1);
    s.close();
  });

  it('keeps its tables in the same file across reopen (what a restart sees)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'marina-fnstore-'));
    try {
      const path = join(dir, 'marina.db');
      const s1 = new FunctionStore({ path });
      s1.enqueue(req('k'));
      s1.recordActivation({ id: 'a1', project: 'p', function: 'f', revision: 1, trigger: { type: 'api' }, attempt: 1, start: new Date().toISOString(), end: new Date().toISOString(), durationMs: 1, coldStart: false, outcome: 'success' });
      s1.close(); // writes the pending activation
      const s2 = new FunctionStore({ path });
      assert.equal(s2.depth().queued, 1);
      assert.equal(s2.activation('p', 'a1')?.outcome, 'success');
      assert.equal(s2.activation('q', 'a1'), undefined, 'activations are per project');
      s2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes activations in one batch after the turn, and before any read or finished delivery', async () => {
    const s = new FunctionStore({ path: ':memory:' });
    const rows = () => (s.db.prepare('SELECT count(*) AS n FROM fn_activations').get() as { n: number }).n;
    const act = (id: string, deliveryId?: string) => ({ id, project: 'p', function: 'f', revision: 1, trigger: { type: 'api' as const }, attempt: 1, start: new Date().toISOString(), end: new Date().toISOString(), durationMs: 1, coldStart: false, outcome: 'success' as const, ...(deliveryId ? { deliveryId } : {}) });
    s.recordActivation(act('a1'));
    s.recordActivation(act('a2'));
    assert.equal(rows(), 0, 'nothing written during the turn');
    await new Promise((r) => setImmediate(r));
    assert.equal(rows(), 2, 'written right after it');
    s.recordActivation(act('a3'));
    assert.equal(s.activation('p', 'a3')?.id, 'a3', 'a read sees what is pending');
    const { delivery } = s.enqueue(req('k'));
    const [claimed] = s.claim('w', 1, 10_000);
    s.recordActivation(act('a4', delivery.id));
    s.succeed(claimed!.id, 'w');
    assert.equal(rows(), 4, 'a finished delivery implies its activation is written');
    s.close();
  });

  it('prunes activations by count per function and by age', () => {
    const clock = withClock();
    const s = new FunctionStore({ path: ':memory:', now: clock.now });
    for (let i = 0; i < 5; i++) {
      const t = new Date(clock.now() + i).toISOString();
      s.recordActivation({ id: `a${i}`, project: 'p', function: 'f', revision: 1, trigger: { type: 'api' }, attempt: 1, start: t, end: t, durationMs: 1, coldStart: false, outcome: 'success' });
    }
    s.prune({ maxAgeMs: 3_600_000, maxPerFunction: 2, finishedDeliveryAgeMs: 1 });
    assert.deepEqual(s.activations({ project: 'p', function: 'f' }).map((a) => a.id), ['a4', 'a3']);
    clock.advance(3_600_001 + 10);
    s.prune({ maxAgeMs: 3_600_000, maxPerFunction: 2, finishedDeliveryAgeMs: 1 });
    assert.deepEqual(s.activations({ project: 'p' }), []);
    s.close();
  });
});

describe('backoffMs', () => {
  it('grows by the multiplier, is capped, and jitters ±20 %', () => {
    const p = { maxAttempts: 5, backoffSeconds: 1, multiplier: 2, maxBackoffSeconds: 5 };
    assert.deepEqual([1, 2, 3, 4].map((a) => backoffMs(p, a, () => 0.5)), [1000, 2000, 4000, 5000]);
    assert.equal(backoffMs(p, 1, () => 0), 800);
    assert.equal(backoffMs(p, 1, () => 1), 1200);
  });
});
