// /metrics of a real `marina server --sim` holds what operators expect of an API server and a
// control plane — requests by route and code with their durations, clusters and machines by
// phase, health passes, remediations — and is valid Prometheus text: checked with `promtool check
// metrics` when promtool is around (built from its Go module into ~/.cache/marina/promtool, or
// $PROMTOOL), and always with Marina's own parser.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_VERSION } from '../../src/api/meta.js';
import { MarinaClient } from '../../src/client/index.js';
import { parsePrometheusText } from '../../src/health/prom.js';
import { startServerProcess, waitUntil, type ServerProcess } from '../support/marina.js';

const tmp = mkdtempSync(join(tmpdir(), 'marina-metrics-'));
let server: ServerProcess | undefined;
after(async () => {
  await server?.stop(10_000);
  rmSync(tmp, { recursive: true, force: true });
});

function promtool(): string | undefined {
  const candidates = [process.env.PROMTOOL, join(homedir(), '.cache', 'marina', 'promtool', 'promtool')].filter((p): p is string => !!p);
  return candidates.find((p) => existsSync(p));
}

test('/metrics: requests, clusters and machines by phase, health passes and remediations, as valid Prometheus text', { timeout: 120_000 }, async () => {
  server = await startServerProcess({
    dataDir: join(tmp, 'data'),
    listen: '127.0.0.1:0',
    logFile: join(tmp, 'server.log'),
    env: { PATH: process.env.PATH, HOME: tmp, MARINA_LOG_LEVEL: 'warn' },
    args: ['--sim', '--sim-timing', 'etcd=50,controlplane=150,worker=50,learnersync=10,etcdhealth=100'],
  });
  const client = new MarinaClient({ server: server.url, token: server.bootstrapToken! });
  await client.create({
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name: 'm', project: 'default' },
    spec: {
      provider: 'sim',
      health: { intervalSeconds: 1 },
      nodePools: [
        { name: 'cp', roles: ['etcd', 'controlplane'], replicas: 1 },
        { name: 'w', roles: ['worker'], replicas: 2 },
      ],
    },
  });
  await assert.rejects(client.get('Cluster', 'nope', 'default'), /not found/i);
  await waitUntil('cluster Ready', 60_000, async () => ((await client.get<{ status?: { phase?: string } } & Parameters<MarinaClient['create']>[0]>('Cluster', 'm', 'default')).status?.phase === 'Ready' ? true : undefined), 200);
  const [victim] = (await client.listAll<{ metadata: { name: string }; spec: { pool: string } } & Parameters<MarinaClient['create']>[0]>('Machine', { project: 'default' })).items.filter((m) => m.spec.pool === 'w');
  await client.injectSimFaults([{ type: 'KillMachine', project: 'default', cluster: 'm', machine: victim!.metadata.name }]);

  const scrape = async () => (await fetch(`${server!.url}/metrics`)).text();
  // The remediation is counted while the replacement is still being made, so the cluster is
  // not Ready at that moment: wait for both, as observable state, before reading the figures.
  const text = await waitUntil('a remediation counted and the cluster Ready again', 60_000, async () => {
    const t = await scrape();
    return /^marina_remediations_total\{reason="MachineFailed",role="worker"\} 1$/m.test(t) &&
      /marina_health_pass_duration_seconds_count\{scrape="false"\} [1-9]/.test(t) &&
      /^marina_clusters\{phase="Ready"\} 1$/m.test(t) ? t : undefined;
  }, 250);

  const fams = parsePrometheusText(text);
  const samples = [...fams.values()].flatMap((f) => f.samples);
  const sample = (name: string, labels: Record<string, string>) => samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(sample('marina_http_requests_total', { method: 'POST', route: '/api/v1alpha1/projects/:project/clusters', code: '201' }), 'POST counted by route template and code');
  assert.ok(sample('marina_http_requests_total', { method: 'GET', route: '/api/v1alpha1/projects/:project/clusters/:name', code: '404' }), 'errors counted with their code');
  assert.ok(sample('marina_http_request_duration_seconds_bucket', { method: 'GET', route: '/api/v1alpha1/projects/:project/clusters/:name', code: '200', le: '0.02' }), 'durations as a histogram');
  assert.equal(sample('marina_clusters', { phase: 'Ready' })?.value, 1);
  assert.ok((sample('marina_machines', { phase: 'Running' })?.value ?? 0) >= 2);
  assert.equal(sample('marina_health_reports', {})?.value, 1);
  assert.ok(sample('marina_workqueue_adds_total', { controller: 'machine' }));
  assert.ok(sample('marina_reconcile_duration_seconds_count', { controller: 'cluster' }));

  const tool = promtool();
  if (tool) {
    const r = spawnSync(tool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    // prom-client's default Node.js metrics name three gauges *_total, which promtool's linter
    // flags; everything else (all of Marina's own) must pass without a remark.
    const KNOWN = /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/;
    const problems = `${r.stdout}${r.stderr}`.split('\n').map((l) => l.trim()).filter((l) => l && !KNOWN.test(l));
    assert.deepEqual(problems, [], `promtool check metrics (exit ${r.status})`);
  }
});
