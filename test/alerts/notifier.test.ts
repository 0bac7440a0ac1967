// The alerting path end to end, without clusters: a real SQLite store, the real notifier
// controller, and a real HTTP receiver on 127.0.0.1 that plays Alertmanager-webhook and Slack
// receivers (one path per channel; some fail on purpose).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Alert, NotificationChannel } from '../../src/api/kinds.js';
import { API_VERSION, type Resource } from '../../src/api/meta.js';
import { startAlerting, ZERO_TIME, type AlertmanagerPayload, type RunningAlerting, type SlackPayload } from '../../src/alerts/index.js';
import { openSqliteStore } from '../../src/store/sqlite.js';

interface Received {
  path: string;
  body: unknown;
  contentType: string;
  authorization?: string;
  answered: number;
}

/** Per path: the HTTP codes to answer, in order; the last one repeats. Default 200. */
const script: Record<string, number[]> = {
  '/flaky': [503, 500, 200],
  '/down': [503],
  '/gone': [404],
};
const received: Received[] = [];
let receiver: Server;
let base = '';

function answer(path: string): number {
  const codes = script[path] ?? [200];
  const n = received.filter((r) => r.path === path).length;
  return codes[Math.min(n, codes.length - 1)]!;
}

const store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
const OPTS = { maxAttempts: 5, backoffBaseMs: 20, backoffFactor: 2, backoffMaxMs: 200, timeoutMs: 3_000 };
let alerting: RunningAlerting | undefined;

function start(): Promise<RunningAlerting> {
  return startAlerting({ store, externalURL: 'http://marina.test:7443', notifier: OPTS, evaluatedRefreshMs: 0 });
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; received: ${JSON.stringify(received.map((r) => [r.path, r.answered]))}`);
    await sleep(10);
  }
}
/** Waits until the notifier has nothing queued or in flight, and no delivery is pending a retry. */
async function idle(a: RunningAlerting): Promise<void> {
  await waitFor(async () => {
    const s = a.controller.queueStats();
    if (s.ready > 0 || s.processing > 0) return false;
    const alerts = (await store.list('Alert', { project: 'p' })).items as Alert[];
    return alerts.every((al) => !(al.status?.notifications ?? []).some((n) => n.outcome === 'pending'));
  }, 'an idle notifier');
}

/** The rule a received body is about (Alertmanager or Slack shape). */
function ruleOf(r: Received): string {
  const b = r.body as Partial<AlertmanagerPayload> & Partial<SlackPayload>;
  return b.alerts?.[0]?.labels.alertname ?? /^\[[^\]]+\] (\w+)/.exec(b.text ?? '')?.[1] ?? '';
}
/** Successful deliveries at `path` (of one rule: default NodeConditionUnhealthy; '*': all). */
const at = (path: string, rule = 'NodeConditionUnhealthy') => received.filter((r) => r.path === path && r.answered === 200 && (rule === '*' || ruleOf(r) === rule));
const attemptsAt = (path: string, rule = 'NodeConditionUnhealthy') => received.filter((r) => r.path === path && (rule === '*' || ruleOf(r) === rule));
const statesAt = (path: string, rule?: string) => at(path, rule).map((r) => (r.body as AlertmanagerPayload).status);

async function channel(name: string, spec: NotificationChannel['spec']): Promise<void> {
  await store.create({ apiVersion: API_VERSION, kind: 'NotificationChannel', metadata: { name, project: 'p' }, spec } as Resource);
}
async function getAlert(name: string): Promise<Alert> {
  return (await store.get({ kind: 'Alert', project: 'p', name })) as Alert;
}

before(async () => {
  receiver = createServer((req, res) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => {
      const path = req.url ?? '';
      const code = answer(path);
      received.push({ path, body: JSON.parse(data), contentType: req.headers['content-type'] ?? '', authorization: req.headers.authorization, answered: code });
      res.writeHead(code, { 'content-type': 'text/plain' }).end(code === 200 ? 'ok' : 'try later');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

  await store.create({ apiVersion: API_VERSION, kind: 'Project', metadata: { name: 'p' }, spec: { members: [] } });
  await store.create({
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name: 'c1', project: 'p' },
    spec: { provider: 'sim', nodePools: [{ name: 'all', roles: ['etcd', 'controlplane', 'worker'], replicas: 1 }] },
  } as Resource);
  await channel('am', { type: 'webhook', url: `http://ops:s3cret@${base.slice(7)}/am` });
  await channel('slack', { type: 'slack', url: `${base}/slack` });
  await channel('flaky', { type: 'webhook', url: `${base}/flaky` });
  await channel('down', { type: 'webhook', url: `${base}/down` });
  await channel('gone', { type: 'webhook', url: `${base}/gone` });
  await channel('healing-only', { type: 'webhook', url: `${base}/healing-only`, rules: ['HealingHeldBack'] });
  await channel('critical-only', { type: 'webhook', url: `${base}/critical-only`, minSeverity: 'critical', sendResolved: false });
  alerting = await start();
});

after(async () => {
  await alerting?.stop();
  await new Promise((r) => receiver.close(r));
  await store.close();
});

const SCOPE = { project: 'p', cluster: 'c1', source: 'health' };
const NODE = { rule: 'NodeConditionUnhealthy', severity: 'warning' as const, labels: { node: 'w1', condition: 'Ready' }, summary: 'Node w1 is NotReady', description: 'no status for 2m' };

describe('alert notifications', () => {
  let name = '';

  it('raising twice makes one Alert, and every matching channel gets one firing notification', async () => {
    const a = alerting!;
    const r1 = await a.manager.sync(SCOPE, [NODE]);
    // Evaluations keep coming while the notifier delivers (each rewrites lastEvaluatedAt here,
    // so the notifier's status writes conflict): still one delivery per channel.
    for (let i = 0; i < 5; i++) await a.manager.sync(SCOPE, [NODE]);
    const r2 = await a.manager.raise({ ...SCOPE, ...NODE });
    name = r1.firing[0]!;
    assert.equal(r2.metadata.name, name);
    assert.equal((await store.list('Alert', { project: 'p' })).items.length, 1);

    await waitFor(() => at('/am').length === 1 && at('/slack').length === 1 && at('/flaky').length === 1, 'firing deliveries');
    await waitFor(async () => (await getAlert(name)).status?.notifications?.find((n) => n.channel === 'down')?.outcome === 'failed', 'giving up on /down');
    await idle(a);

    const alert = await getAlert(name);
    const body = at('/am')[0]!.body as AlertmanagerPayload;
    assert.equal(at('/am')[0]!.contentType, 'application/json');
    assert.equal(at('/am')[0]!.authorization, `Basic ${Buffer.from('ops:s3cret').toString('base64')}`, 'URL credentials become Basic auth');
    assert.equal(body.version, '4');
    assert.equal(body.status, 'firing');
    assert.equal(body.receiver, 'am');
    assert.equal(body.externalURL, 'http://marina.test:7443');
    assert.equal(body.truncatedAlerts, 0);
    assert.deepEqual(body.groupLabels, { alertname: 'NodeConditionUnhealthy', cluster: 'c1', condition: 'Ready', node: 'w1', project: 'p' });
    assert.equal(body.commonLabels.severity, 'warning');
    assert.deepEqual(body.commonAnnotations, { summary: 'Node w1 is NotReady', description: 'no status for 2m' });
    assert.equal(body.alerts.length, 1);
    const am = body.alerts[0]!;
    assert.equal(am.status, 'firing');
    assert.equal(am.fingerprint, alert.status?.fingerprint);
    assert.equal(am.startsAt, alert.status?.startsAt);
    assert.equal(am.endsAt, ZERO_TIME);
    assert.equal(am.generatorURL, `http://marina.test:7443/api/v1alpha1/projects/p/alerts/${name}`);
    assert.equal(am.labels.alertname, 'NodeConditionUnhealthy');

    const slack = at('/slack')[0]!.body as SlackPayload;
    assert.match(slack.text, /^\[FIRING:warning\] NodeConditionUnhealthy \(p\/c1\): Node w1 is NotReady$/);
    assert.equal(slack.attachments[0]!.color, 'warning');
    assert.equal((slack as unknown as { version?: string }).version, undefined);

    // Rule and severity filters.
    assert.equal(attemptsAt('/healing-only', '*').length, 0);
    assert.equal(attemptsAt('/critical-only', '*').length, 0);
  });

  it('retries with backoff: two failures, then exactly one success, all in the delivery log', async () => {
    assert.deepEqual(attemptsAt('/flaky').map((r) => r.answered), [503, 500, 200]);
    const log = (await getAlert(name)).status!.notifications!;
    const flaky = log.find((n) => n.channel === 'flaky')!;
    assert.equal(flaky.outcome, 'delivered');
    assert.equal(flaky.attempts, 3);
    assert.equal(flaky.code, 200);
    assert.equal(flaky.nextAttemptAt, undefined);
    const am = log.find((n) => n.channel === 'am')!;
    assert.deepEqual([am.outcome, am.attempts, am.state], ['delivered', 1, 'firing']);
    // Bounded attempts: a receiver that keeps failing gets maxAttempts tries, then the log says failed.
    const down = log.find((n) => n.channel === 'down')!;
    assert.deepEqual([down.outcome, down.attempts, down.code], ['failed', 5, 503]);
    assert.match(down.error ?? '', /HTTP 503: try later/);
    assert.equal(attemptsAt('/down').length, 5);
    // A 4xx answer is not retried.
    const gone = log.find((n) => n.channel === 'gone')!;
    assert.deepEqual([gone.outcome, gone.attempts, gone.code], ['failed', 1, 404]);
    assert.equal(attemptsAt('/gone').length, 1);
    // The channels count deliveries and failed attempts.
    const stats = (await store.get({ kind: 'NotificationChannel', project: 'p', name: 'flaky' }))!.status as NotificationChannel['status'];
    assert.equal(stats?.delivered, 1);
    assert.equal(stats?.failedAttempts, 2);
    assert.match(stats?.lastError ?? '', /HTTP 500/);
  });

  it('a rule filter lets its rule through, a severity filter its severity', async () => {
    const a = alerting!;
    await a.manager.sync({ ...SCOPE, source: 'healing' }, [{ rule: 'HealingHeldBack', severity: 'critical', labels: { pool: 'workers' }, summary: '3 of 5 workers unhealthy; guard allows 2' }]);
    await waitFor(() => at('/healing-only', '*').length === 1 && at('/critical-only', '*').length === 1, 'filtered deliveries');
    assert.equal(ruleOf(at('/healing-only', '*')[0]!), 'HealingHeldBack');
    assert.equal(ruleOf(at('/critical-only', '*')[0]!), 'HealingHeldBack');
    await idle(a);
  });

  it('resolving sends resolved notifications to the channels that got the firing one', async () => {
    const a = alerting!;
    const r = await a.manager.sync(SCOPE, []);
    assert.deepEqual(r.resolved, [name]);
    await waitFor(() => at('/am').length === 2 && at('/slack').length === 2 && at('/flaky').length === 2, 'resolved deliveries');
    await idle(a);
    const alert = await getAlert(name);
    const body = at('/am')[1]!.body as AlertmanagerPayload;
    assert.equal(body.status, 'resolved');
    assert.equal(body.alerts[0]!.status, 'resolved');
    assert.equal(body.alerts[0]!.endsAt, alert.status?.endsAt);
    assert.equal(body.groupKey, (at('/am')[0]!.body as AlertmanagerPayload).groupKey);
    assert.match((at('/slack')[1]!.body as SlackPayload).text, /^\[RESOLVED\]/);
    // No resolved notification where the firing one never arrived, and none to a sendResolved=false channel.
    assert.equal(attemptsAt('/down').length, 5);
    assert.equal(attemptsAt('/gone').length, 1);
    assert.deepEqual(statesAt('/am'), ['firing', 'resolved']);
  });

  it('a restarted notifier does not send what was delivered, and carries on with new alerts', async () => {
    await alerting!.stop();
    const before = received.length;
    alerting = await start();
    await alerting.manager.raise({ ...SCOPE, rule: 'ComponentUnhealthy', severity: 'critical', labels: { component: 'kube-scheduler' }, summary: 'scheduler /healthz fails' });
    await waitFor(() => at('/critical-only', 'ComponentUnhealthy').length === 1, 'the new alert delivered');
    await idle(alerting);
    await sleep(100);
    await idle(alerting);
    const since = received.slice(before);
    assert.deepEqual(since.filter((r) => ruleOf(r) !== 'ComponentUnhealthy').map((r) => [r.path, ruleOf(r)]), [], 'nothing delivered before was sent again');
    assert.deepEqual(statesAt('/am'), ['firing', 'resolved']);
    assert.deepEqual(statesAt('/am', 'HealingHeldBack'), ['firing']);
    assert.deepEqual(statesAt('/am', 'ComponentUnhealthy'), ['firing']);
  });

  it('a new channel gets the alerts that are firing now', async () => {
    const a = alerting!;
    await channel('late', { type: 'webhook', url: `${base}/late` });
    await waitFor(() => at('/late', '*').length === 2, 'firing alerts delivered to the new channel');
    await idle(a);
    const names = at('/late', '*').map(ruleOf).sort();
    assert.deepEqual(names, ['ComponentUnhealthy', 'HealingHeldBack']);
  });

  it('the alerts of a deleted cluster resolve', async () => {
    const a = alerting!;
    await store.delete({ kind: 'Cluster', project: 'p', name: 'c1' });
    // The notifier notices on its next look at the alert (resync, or any change); nudge it.
    for (const al of (await store.list('Alert', { project: 'p' })).items) a.controller.enqueue({ kind: 'Alert', project: 'p', name: al.metadata.name });
    await waitFor(async () => (await store.list('Alert', { project: 'p' })).items.every((x) => (x as Alert).status?.state === 'resolved'), 'every alert resolved');
    await waitFor(() => at('/late', '*').length === 4, 'resolved notifications to the late channel');
    assert.deepEqual(statesAt('/late', '*'), ['firing', 'firing', 'resolved', 'resolved']);
  });
});
