import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MarinaApiError, MarinaClient } from '../client/index.js';
import { formatAge, formatBytes, formatCores, formatMs, formatTime, urlHost } from './format.js';
import { alertCounts, clusterSummary, conditionGood, conditionRows, sortAlerts } from './summary.js';
import { alertEntries, auditEntries, mergeTimeline, TransitionLog } from './timeline.js';
import { downsample, fetchHealth, healthPlots, mergeHealth, niceMax, type ClusterHealth } from './health.js';
import { clearToken, loadToken, login, saveToken } from './session.js';
import type { AlertView, ClusterView, MachineView } from './types.js';

test('formatting', () => {
  const now = Date.parse('2026-01-02T12:00:00Z');
  assert.equal(formatAge('2026-01-02T11:59:18Z', now), '42s');
  assert.equal(formatAge('2026-01-02T11:30:00Z', now), '30m');
  assert.equal(formatAge('2026-01-01T12:00:00Z', now), '24h');
  assert.equal(formatAge('2025-12-20T12:00:00Z', now), '13d');
  assert.equal(formatAge(undefined, now), '-');
  assert.equal(formatAge('garbage', now), '-');
  assert.equal(formatTime('2026-01-02T03:04:05Z', true), '2026-01-02 03:04:05');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatBytes(20 * 1024 * 1024), '20.0 MiB');
  assert.equal(formatMs(0.5), '0.50 ms');
  assert.equal(formatMs(850), '850 ms');
  assert.equal(formatMs(1250), '1.25 s');
  assert.equal(formatMs(200_000), '3m 20s');
  assert.equal(formatCores(0.012), '12 mcores');
  assert.equal(formatCores(1.5), '1.50 cores');
  assert.equal(urlHost('https://user:secret@hooks.example/abc?x=1'), 'https://hooks.example');
  assert.equal(urlHost('nope'), '(invalid URL)');
});

const cond = (type: string, status: string, reason?: string, t = '2026-01-02T10:00:00Z', message?: string) => ({
  type,
  status: status as 'True' | 'False' | 'Unknown',
  ...(reason ? { reason } : {}),
  ...(message ? { message } : {}),
  lastTransitionTime: t,
});

test('cluster summary for the list', () => {
  const c: ClusterView = {
    apiVersion: 'v',
    kind: 'Cluster',
    metadata: { name: 'web', project: 'p' },
    spec: { nodePools: [{ name: 'cp', roles: ['etcd', 'controlplane'], replicas: 1 }, { name: 'w', roles: ['worker'], replicas: 2 }] },
    status: {
      phase: 'Provisioning',
      pools: [{ name: 'cp', replicas: 1, readyReplicas: 1 }, { name: 'w', replicas: 2, readyReplicas: 1 }],
      conditions: [cond('EtcdReady', 'True'), cond('NodesReady', 'False', 'WaitingForMachines', undefined, '1 of 2 workers')],
    },
  };
  assert.deepEqual(clusterSummary(c), { phase: 'Provisioning', tone: 'warn', ready: 'Unknown', pools: '2/3', problem: 'NodesReady: WaitingForMachines — 1 of 2 workers' });
  c.status!.health = { healthy: false, failing: ['agent/web-w-1: timeout'], nodesReady: 1, nodesTotal: 2 };
  assert.equal(clusterSummary(c).health, '1 failing check');
  c.metadata.deletionTimestamp = '2026-01-02T10:00:00Z';
  assert.equal(clusterSummary(c).phase, 'Deleting');
  assert.equal(conditionGood(cond('MemoryPressure', 'False')), true);
  assert.equal(conditionGood(cond('Ready', 'False')), false);
  assert.equal(conditionGood(cond('Ready', 'Unknown')), false);
  const m: MachineView = { apiVersion: 'v', kind: 'Machine', metadata: { name: 'web-w-1' }, spec: { cluster: 'web', pool: 'w', roles: ['worker'] }, status: { conditions: [cond('Ready', 'True', 'Running')] } };
  const rows = conditionRows(c, [], [m]);
  assert.deepEqual(rows.map((r) => `${r.kind}/${r.name} ${r.type}=${r.status} ${r.good}`), [
    'Cluster/web EtcdReady=True true',
    'Cluster/web NodesReady=False false',
    'Machine/web-w-1 Ready=True true',
  ]);
});

const alert = (name: string, state: string, startsAt: string, endsAt?: string): AlertView => ({
  apiVersion: 'v',
  kind: 'Alert',
  metadata: { name, project: 'p' },
  spec: { rule: 'ComponentUnhealthy', severity: 'critical', cluster: 'web', labels: { component: 'agent', machine: name }, annotations: { summary: `agent of ${name} down` } },
  status: { state, startsAt, ...(endsAt ? { endsAt } : {}) },
});

test('alerts: firing first, newest first within each group', () => {
  const list = [
    alert('r-old', 'resolved', '2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z'),
    alert('f-old', 'firing', '2026-01-01T00:00:00Z'),
    alert('r-new', 'resolved', '2026-01-01T00:00:00Z', '2026-01-01T05:00:00Z'),
    alert('f-new', 'firing', '2026-01-02T00:00:00Z'),
  ];
  assert.deepEqual(sortAlerts(list).map((a) => a.metadata.name), ['f-new', 'f-old', 'r-new', 'r-old']);
  assert.deepEqual(alertCounts(list), { firing: 2, resolved: 2 });
});

test('timeline: remembered transitions, operations and alerts, newest first', () => {
  const log = new TransitionLog();
  const m = (status: string, t: string): MachineView => ({
    apiVersion: 'v',
    kind: 'Machine',
    metadata: { name: 'web-w-1', uid: 'u1', creationTimestamp: '2026-01-02T09:00:00Z' },
    spec: { cluster: 'web', pool: 'w', roles: ['worker'] },
    status: { conditions: [cond('Ready', status, status === 'True' ? 'Running' : 'AgentUnreachable', t)] },
  });
  log.observe([m('True', '2026-01-02T10:00:00Z')]);
  log.observe([m('True', '2026-01-02T10:00:00Z')]); // unchanged: no duplicate
  log.observe([m('False', '2026-01-02T11:00:00Z')]); // a flip while the page is open
  const audit = [
    { id: 7, time: '2026-01-02T09:00:00Z', user: 'admin', verb: 'create', kind: 'Cluster', project: 'p', name: 'web', generation: 1, code: 201 },
    { id: 8, time: '2026-01-02T10:30:00Z', user: 'admin', verb: 'update', kind: 'Cluster', project: 'p', name: 'web', generation: 2, code: 200 },
    { id: 9, time: '2026-01-02T10:31:00Z', user: 'admin', verb: 'get', kind: 'Kubeconfig', project: 'p', name: 'web', code: 200 },
    { id: 10, time: '2026-01-02T10:32:00Z', user: 'admin', verb: 'create', kind: 'Cluster', project: 'p', name: 'other', code: 201 },
  ];
  const entries = mergeTimeline([
    log.list(),
    auditEntries(audit, 'web'),
    alertEntries([alert('web-w-1', 'resolved', '2026-01-02T11:00:05Z', '2026-01-02T11:02:00Z')]),
  ]);
  assert.deepEqual(entries.map((e) => `${e.time.slice(11, 19)} ${e.source} ${e.title}`), [
    '11:02:00 alert alert ComponentUnhealthy resolved',
    '11:00:05 alert alert ComponentUnhealthy firing',
    '11:00:00 condition Machine web-w-1 Ready=False',
    '10:31:00 operation admin downloaded the kubeconfig',
    '10:30:00 operation admin update Cluster web',
    '10:00:00 condition Machine web-w-1 Ready=True',
    '09:00:00 operation admin create Cluster web',
    '09:00:00 object Machine web-w-1 created',
  ]);
  assert.equal(entries.find((e) => e.title.endsWith('Ready=False'))!.detail, 'AgentUnreachable');
  assert.equal(mergeTimeline([log.list()], 1).length, 1);
});

const sample = (t: string, extra: Record<string, unknown> = {}) => ({ t, healthy: true, failedChecks: 0, nodesReady: 2, nodesTotal: 2, ...extra });

test('health: series for the plots, merging newer samples, downsampling', () => {
  const samples = [
    sample('2026-01-02T10:00:00Z', { apiserverP99Ms: 12, endpointLatencyMs: 3, etcdDbBytes: 1e6, machines: { a: { cpuCores: 0.1, rssBytes: 100, diskUsedBytes: 1 } } }),
    sample('2026-01-02T10:00:10Z', { endpointLatencyMs: 4, machines: { a: { rssBytes: 110, diskUsedBytes: 1 }, b: { cpuCores: 0.2, rssBytes: 50, diskUsedBytes: 1 } } }),
  ];
  const plots = healthPlots(samples);
  assert.deepEqual(plots.apiLatency.map((s) => `${s.name}:${s.points.map((p) => p.v).join(',')}`), ['apiserver p99:12', 'endpoint /readyz:3,4']);
  assert.deepEqual(plots.etcdFsync, [], 'no data, no series');
  assert.deepEqual(plots.cpu.map((s) => `${s.name}:${s.points.length}`), ['a:1', 'b:1']);
  assert.deepEqual(plots.memory.map((s) => `${s.name}:${s.points.map((p) => p.v).join(',')}`), ['a:100,110', 'b:50']);

  const first: ClusterHealth = { kind: 'ClusterHealth', project: 'p', cluster: 'web', latest: null, samples };
  const next: ClusterHealth = { ...first, latest: { project: 'p', cluster: 'web', at: '2026-01-02T10:00:20Z', durationMs: 5, healthy: true, checks: [], nodes: [] }, samples: [samples[1]!, sample('2026-01-02T10:00:20Z')] };
  const merged = mergeHealth(first, next);
  assert.deepEqual(merged.samples.map((s) => s.t.slice(11, 19)), ['10:00:00', '10:00:10', '10:00:20']);
  assert.equal(merged.latest?.at, '2026-01-02T10:00:20Z');
  assert.deepEqual(mergeHealth(merged, { ...next, samples: [sample('2026-01-03T10:00:30Z')] }).samples.length, 1, 'older than 24 h before the newest: dropped');

  const pts = Array.from({ length: 1000 }, (_, i) => ({ t: i, v: i === 500 ? 1000 : i % 7 }));
  const d = downsample(pts, 100);
  assert.ok(d.length <= 100, `${d.length}`);
  assert.ok(d.some((p) => p.v === 1000), 'a spike survives');
  assert.ok(d.every((p, i) => i === 0 || p.t > d[i - 1]!.t), 'in time order');
  assert.equal(niceMax(0), 1);
  assert.equal(niceMax(13), 20);
  assert.equal(niceMax(0.3), 0.5);
  assert.equal(niceMax(1000), 1000);
});

test('fetchHealth: 404 is "no health data yet", other errors pass', async () => {
  const calls: string[] = [];
  const answers = [
    new Response(JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound', message: 'no route' }), { status: 404 }),
    new Response(JSON.stringify({ kind: 'ClusterHealth', project: 'p', cluster: 'web', latest: null, samples: [] }), { status: 200 }),
    new Response(JSON.stringify({ kind: 'Status', code: 403, reason: 'Forbidden', message: 'no' }), { status: 403 }),
  ];
  const client = new MarinaClient({ server: 'http://m.test', token: 't', fetch: (async (u: string | URL | Request) => (calls.push(String(u)), answers.shift()!)) as typeof fetch });
  assert.equal(await fetchHealth(client, 'p', 'web'), undefined);
  assert.equal((await fetchHealth(client, 'p', 'web', '2026-01-02T10:00:00Z'))?.kind, 'ClusterHealth');
  await assert.rejects(fetchHealth(client, 'p', 'web'), (e: unknown) => e instanceof MarinaApiError && e.code === 403);
  assert.equal(calls[0], 'http://m.test/api/v1alpha1/projects/p/clusters/web/health');
  assert.equal(calls[1], 'http://m.test/api/v1alpha1/projects/p/clusters/web/health?since=2026-01-02T10%3A00%3A00Z');
});

test('session: token in storage, checked with whoami', async () => {
  const mem = new Map<string, string>();
  const storage = { getItem: (k: string) => mem.get(k) ?? null, setItem: (k: string, v: string) => void mem.set(k, v), removeItem: (k: string) => void mem.delete(k) };
  assert.equal(loadToken(storage), undefined);
  saveToken(storage, ' mrn_abc \n');
  assert.equal(loadToken(storage), 'mrn_abc');
  clearToken(storage);
  assert.equal(loadToken(storage), undefined);

  const seen: (string | null)[] = [];
  const fetchImpl = (async (_u: string | URL | Request, init?: RequestInit) => {
    const auth = new Headers(init?.headers).get('authorization');
    seen.push(auth);
    return auth === 'Bearer good'
      ? new Response(JSON.stringify({ user: 'admin', platformAdmin: true, projects: [] }), { status: 200 })
      : new Response(JSON.stringify({ kind: 'Status', code: 401, reason: 'Unauthorized', message: 'token is invalid, revoked or expired' }), { status: 401 });
  }) as typeof fetch;
  const s = await login('http://m.test', ' good ', fetchImpl);
  assert.equal(s.me.user, 'admin');
  assert.equal(s.token, 'good');
  await assert.rejects(login('http://m.test', 'bad', fetchImpl), /the server refused the token: token is invalid/);
  await assert.rejects(login('http://m.test', '  ', fetchImpl), /enter an API token/);
  assert.deepEqual(seen, ['Bearer good', 'Bearer bad']);
});
