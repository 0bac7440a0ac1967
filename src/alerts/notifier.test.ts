// The notifier's reconcile, driven by hand with a fake clock and a fake fetch: conflicts, restarts
// in the middle of a retry, superseded deliveries, garbage collection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { Alert } from '../api/kinds.js';
import { ApiError, isApiError } from '../api/errors.js';
import { API_VERSION, type Resource } from '../api/meta.js';
import { memStore } from '../runtime/test-helpers.js';
import type { Store } from '../store/types.js';
import { AlertManager } from './manager.js';
import { AlertNotifier, backoffDelay, channelMatches } from './notifier.js';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const ctx = { signal: new AbortController().signal, log: pino({ level: 'silent' }) };

async function setup(codes: number[] = [200]) {
  const store = await memStore();
  await store.create({ apiVersion: API_VERSION, kind: 'Project', metadata: { name: 'p' }, spec: { members: [] } });
  await store.create({ apiVersion: API_VERSION, kind: 'NotificationChannel', metadata: { name: 'hook', project: 'p' }, spec: { type: 'webhook', url: 'http://127.0.0.1:9/hook' } } as Resource);
  let t = T0;
  const now = () => new Date(t);
  const calls: { status: string }[] = [];
  const fakeFetch = (async (_url: unknown, init?: RequestInit) => {
    const body = JSON.parse(String(init?.body)) as { status: string };
    calls.push(body);
    const code = codes[Math.min(calls.length - 1, codes.length - 1)]!;
    return new Response(code === 200 ? 'ok' : 'nope', { status: code });
  }) as typeof fetch;
  const notifier = (s: Store = store) => new AlertNotifier({ store: s, now, fetch: fakeFetch, backoffBaseMs: 1000, backoffFactor: 2, maxAttempts: 3, resolvedRetentionMs: 3_600_000 });
  const manager = new AlertManager({ store, now });
  const alert = await manager.raise({ project: 'p', rule: 'BackupFailed', severity: 'warning', summary: 'snapshot failed' });
  const key = { kind: 'Alert', project: 'p', name: alert.metadata.name };
  const get = async () => (await store.get(key)) as Alert;
  return { store, manager, notifier, key, get, calls, advance: (ms: number) => (t += ms) };
}

test('a status write lost to a conflict does not send the notification again', async () => {
  const s = await setup();
  let failNext = true;
  // A store whose next Alert status write conflicts, as when the AlertManager wrote in between.
  const flaky: Store = Object.create(s.store, {
    updateStatus: {
      value: async (obj: Resource) => {
        if (obj.kind === 'Alert' && failNext) {
          failNext = false;
          throw ApiError.conflict('Alert', obj.metadata.name, 'changed meanwhile');
        }
        return s.store.updateStatus(obj);
      },
    },
  });
  const n = s.notifier(flaky);
  await assert.rejects(n.reconcile(s.key, ctx), (e: unknown) => isApiError(e) && e.code === 409);
  assert.equal(s.calls.length, 1);
  assert.equal((await s.get()).status?.notifications?.length, 0, 'the outcome was not stored');
  await n.reconcile(s.key, ctx);
  assert.equal(s.calls.length, 1, 'not sent twice');
  const rec = (await s.get()).status!.notifications![0]!;
  assert.deepEqual([rec.channel, rec.state, rec.outcome, rec.attempts], ['hook', 'firing', 'delivered', 1]);
});

test('retries follow the stored log across a restart, and give up after maxAttempts', async () => {
  const s = await setup([503]);
  assert.deepEqual(await s.notifier().reconcile(s.key, ctx), { requeueAfterMs: 1000 });
  let rec = (await s.get()).status!.notifications![0]!;
  assert.deepEqual([rec.outcome, rec.attempts, rec.code, rec.nextAttemptAt], ['pending', 1, 503, '2030-01-01T00:00:01.000Z']);
  // A new notifier (Marina restarted) respects nextAttemptAt.
  const again = s.notifier();
  s.advance(500);
  assert.deepEqual(await again.reconcile(s.key, ctx), { requeueAfterMs: 500 });
  assert.equal(s.calls.length, 1);
  s.advance(500);
  assert.deepEqual(await again.reconcile(s.key, ctx), { requeueAfterMs: 2000 });
  s.advance(2000);
  await again.reconcile(s.key, ctx);
  rec = (await s.get()).status!.notifications![0]!;
  assert.deepEqual([rec.outcome, rec.attempts], ['failed', 3]);
  assert.equal(rec.nextAttemptAt, undefined);
  s.advance(60_000);
  await again.reconcile(s.key, ctx);
  assert.equal(s.calls.length, 3, 'bounded');
});

test('a pending firing notification is superseded when the alert resolves; resolved is then not sent', async () => {
  const s = await setup([503]);
  const n = s.notifier();
  await n.reconcile(s.key, ctx);
  await s.manager.resolve({ project: 'p', rule: 'BackupFailed' });
  s.advance(5000);
  await n.reconcile(s.key, ctx);
  const log = (await s.get()).status!.notifications!;
  assert.equal(log.length, 1);
  assert.equal(log[0]!.outcome, 'failed');
  assert.match(log[0]!.error ?? '', /^superseded: the alert is resolved/);
  assert.equal(s.calls.length, 1);
});

test('resolved alerts are deleted after the retention; firing again starts a new episode', async () => {
  const s = await setup();
  const n = s.notifier();
  await n.reconcile(s.key, ctx);
  s.advance(1000);
  await s.manager.resolve({ project: 'p', rule: 'BackupFailed' });
  const res = await n.reconcile(s.key, ctx);
  assert.deepEqual(s.calls.map((c) => c.status), ['firing', 'resolved']);
  assert.deepEqual(res, { requeueAfterMs: 3_600_000 });
  s.advance(1000);
  await s.manager.raise({ project: 'p', rule: 'BackupFailed', severity: 'warning', summary: 'snapshot failed again' });
  await n.reconcile(s.key, ctx);
  assert.deepEqual(s.calls.map((c) => c.status), ['firing', 'resolved', 'firing']);
  assert.equal((await s.get()).status!.notifications!.length, 3);
  await s.manager.resolve({ project: 'p', rule: 'BackupFailed' });
  await n.reconcile(s.key, ctx);
  s.advance(3_600_000);
  await n.reconcile(s.key, ctx);
  assert.equal(await s.get(), undefined, 'garbage-collected');
});

test('channel filters and backoff arithmetic', () => {
  const alert = { spec: { rule: 'HealingHeldBack', severity: 'warning' } } as Alert;
  const ch = (spec: object) => ({ spec: { type: 'webhook', url: 'http://x', ...spec } }) as Parameters<typeof channelMatches>[0];
  assert.equal(channelMatches(ch({}), alert), true);
  assert.equal(channelMatches(ch({ rules: ['HealingHeldBack'] }), alert), true);
  assert.equal(channelMatches(ch({ rules: ['BackupFailed'] }), alert), false);
  assert.equal(channelMatches(ch({ minSeverity: 'warning' }), alert), true);
  assert.equal(channelMatches(ch({ minSeverity: 'critical' }), alert), false);
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, 2000, 4, 300_000)), [2000, 8000, 32_000, 128_000, 300_000, 300_000]);
});

test('an alert created without a status (platform admin, through the API) fires', async () => {
  const s = await setup();
  await s.store.create({
    apiVersion: API_VERSION,
    kind: 'Alert',
    metadata: { name: 'manual', project: 'p' },
    spec: { rule: 'ChannelTest', severity: 'info', labels: {}, annotations: { summary: 'does the channel work?' } },
  } as Resource);
  await s.notifier().reconcile({ kind: 'Alert', project: 'p', name: 'manual' }, ctx);
  const a = (await s.store.get({ kind: 'Alert', project: 'p', name: 'manual' })) as Alert;
  assert.equal(a.status?.state, 'firing');
  assert.match(a.status?.fingerprint ?? '', /^[0-9a-f]{16}$/);
  assert.equal(a.status?.notifications?.[0]?.outcome, 'delivered');
  assert.deepEqual(s.calls.map((c) => c.status), ['firing']);
});
