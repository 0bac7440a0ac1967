import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { ClusterConnections, KubeApi } from '../clusteraccess/access.js';
import { API_VERSION } from '../api/meta.js';
import { openSqliteStore } from '../store/sqlite.js';
import { HealthChecker } from './controller.js';
import { HealthRegistry } from './registry.js';
import { newestReport, seriesKey, sharesReport } from './shared.js';
import type { HealthReport } from './types.js';

const T0 = Date.parse('2026-11-22T12:00:00Z');

function report(over: Partial<HealthReport> = {}): HealthReport {
  return { project: 'p', cluster: 'c', at: new Date(T0).toISOString(), durationMs: 12, healthy: true, checks: [], nodes: [], ...over };
}

describe('sharesReport', () => {
  const failing = report({ healthy: false, checks: [{ component: 'endpoint', ok: false, message: 'connect ECONNREFUSED' }] });
  it('shares the first report, a changed summary and every metrics pass; not a pass that only moved time and latencies', () => {
    assert.equal(sharesReport(report(), undefined, false), true, 'first report (start, takeover)');
    assert.equal(sharesReport(report({ at: new Date(T0 + 10_000).toISOString(), durationMs: 40 }), report(), false), false, 'same summary');
    assert.equal(sharesReport(failing, report(), false), true, 'healthy → failing');
    assert.equal(sharesReport(report(), failing, false), true, 'failing → healthy');
    assert.equal(sharesReport(report({ nodes: [{ name: 'n', ready: 'True', problems: [] }] }), report(), false), true, 'Nodes Ready changed');
    assert.equal(sharesReport(report(), report(), true), true, 'metrics pass');
  });
});

describe('the health checker shares its newest report through the series store', () => {
  it('writes on the first pass, on a changed summary and on metrics passes; another replica reads what was written', async () => {
    const store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
    try {
      await store.create({ apiVersion: API_VERSION, kind: 'Cluster', metadata: { name: 'c', project: 'p' }, spec: { nodePools: [{ name: 'a', roles: ['worker'], replicas: 1 }] } });
      let up = true;
      const kube = {
        readyz: async () => (up ? { ok: true, message: 'ok' } : { ok: false, message: 'connect ECONNREFUSED' }),
        listNodes: async () => [],
      } as unknown as KubeApi;
      const connections: ClusterConnections = {
        etcd: async () => undefined,
        kube: async () => kube,
        apiserverAt: async () => undefined,
        objects: async () => undefined,
        forget: () => undefined,
        close: async () => undefined,
      };
      let now = T0;
      const registry = new HealthRegistry();
      const checker = new HealthChecker({ store, series: store.series, connections, registry, log: pino({ level: 'silent' }), now: () => now });
      const pass = async (at: number) => {
        now = at;
        await checker.reconcile({ kind: 'Cluster', project: 'p', name: 'c' }, { signal: new AbortController().signal, log: pino({ level: 'silent' }) });
        assert.equal(registry.get('p', 'c')?.at, new Date(at).toISOString(), `a pass ran at +${(at - T0) / 1000} s`);
        return (await store.series.latest(seriesKey('p', 'c')))?.time;
      };
      const iso = (ms: number) => new Date(ms).toISOString();
      // The default policy: a pass every 10 s, metrics every 60 s.
      assert.equal(await pass(T0), iso(T0), 'first pass (also a metrics pass)');
      assert.equal(await pass(T0 + 10_000), iso(T0), 'same summary: not written');
      up = false;
      assert.equal(await pass(T0 + 20_000), iso(T0 + 20_000), 'summary changed');
      assert.equal(await pass(T0 + 30_000), iso(T0 + 20_000));
      assert.equal(await pass(T0 + 60_000), iso(T0 + 60_000), 'metrics pass');

      // A replica that does not check (empty registry) answers the shared report; the checking one its own.
      const shared = await newestReport(new HealthRegistry(), store.series, 'p', 'c');
      assert.equal(shared?.at, iso(T0 + 60_000));
      assert.equal(shared?.healthy, false);
      assert.deepEqual(shared, registry.get('p', 'c'));
      await pass(T0 + 70_000);
      assert.equal((await newestReport(registry, store.series, 'p', 'c'))?.at, iso(T0 + 70_000), 'own report first');
      assert.equal(await newestReport(new HealthRegistry(), store.series, 'p', 'other'), undefined);
      assert.equal(await newestReport(new HealthRegistry(), undefined, 'p', 'c'), undefined);

      // A deleted cluster's shared report goes with its series.
      await store.delete({ kind: 'Cluster', project: 'p', name: 'c' });
      await checker.reconcile({ kind: 'Cluster', project: 'p', name: 'c' }, { signal: new AbortController().signal, log: pino({ level: 'silent' }) });
      assert.equal(await store.series.latest(seriesKey('p', 'c')), undefined);
    } finally {
      await store.close();
    }
  });
});
