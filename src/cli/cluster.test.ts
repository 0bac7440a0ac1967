import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Resource } from '../api/meta.js';
import { validateObject } from '../api/registry.js';
import { buildCluster, clusterVerdict, normalizeK8sVersion, parseKeyValues, poolsSummary, ProgressPrinter, withPoolReplicas } from './cluster.js';
import { CliError, EXIT } from './errors.js';

const ctx = { kubernetesVersions: ['v1.36.3', 'v1.35.4'] };

test('cluster create flags build a Cluster the API accepts', () => {
  const c = buildCluster({ name: 'demo', project: 'team-a', version: '1.36.3', etcd: 3, controlplanes: 1, workers: 2, labels: { env: 'dev' } });
  assert.deepEqual(c, {
    apiVersion: 'marina.dev/v1alpha1',
    kind: 'Cluster',
    metadata: { name: 'demo', project: 'team-a', labels: { env: 'dev' } },
    spec: {
      kubernetesVersion: 'v1.36.3',
      nodePools: [
        { name: 'etcd', roles: ['etcd'], replicas: 3 },
        { name: 'controlplane', roles: ['controlplane'], replicas: 1 },
        { name: 'workers', roles: ['worker'], replicas: 2 },
      ],
    },
  });
  validateObject(c, undefined, ctx);
  const net = buildCluster({ name: 'n', project: 'p', provider: 'sim', etcd: 1, controlplanes: 1, workers: 0, podCIDR: '10.1.0.0/16', serviceCIDR: '10.2.0.0/16' });
  assert.deepEqual(net.spec.network, { podCIDR: '10.1.0.0/16', serviceCIDR: '10.2.0.0/16' });
  assert.equal(net.spec.provider, 'sim');
  assert.equal(net.spec.kubernetesVersion, undefined, 'no --version: the server picks its default');
  validateObject(net, undefined, ctx);
});

test('an even etcd count is built as asked and rejected by validation on the field', () => {
  const c = buildCluster({ name: 'demo', project: 'p', etcd: 2, controlplanes: 1, workers: 0 });
  assert.throws(() => validateObject(c, undefined, ctx), (e: { causes?: { field: string }[] }) => e.causes?.[0]?.field === 'spec.nodePools[0].replicas');
});

test('version and key=value helpers', () => {
  assert.equal(normalizeK8sVersion('1.36.3'), 'v1.36.3');
  assert.equal(normalizeK8sVersion('v1.35.4'), 'v1.35.4');
  assert.deepEqual(parseKeyValues(['a=1,b=2', 'c=x=y']), { a: '1', b: '2', c: 'x=y' });
  assert.throws(() => parseKeyValues(['nope']), (e: unknown) => e instanceof CliError && e.exitCode === EXIT.usage);
});

test('withPoolReplicas changes one pool and reports the old count', () => {
  const c = buildCluster({ name: 'demo', project: 'p', etcd: 3, controlplanes: 1, workers: 2 });
  const { cluster, from } = withPoolReplicas(c, 'workers', 5);
  assert.equal(from, 2);
  assert.equal(cluster.spec.nodePools[2]!.replicas, 5);
  assert.equal(c.spec.nodePools[2]!.replicas, 2, 'the input is not mutated');
  assert.throws(() => withPoolReplicas(c, 'gpu', 1), (e: unknown) => e instanceof CliError && e.exitCode === EXIT.notFound && /etcd, controlplane, workers/.test(e.message));
});

function clusterWith(status: Record<string, unknown>, generation = 1): Resource {
  const c = buildCluster({ name: 'demo', project: 'p', etcd: 1, controlplanes: 1, workers: 1 });
  return { ...c, metadata: { ...c.metadata, generation }, status } as Resource;
}

test('clusterVerdict: Ready only for the current generation and full pools; Failed carries the reason', () => {
  assert.deepEqual(clusterVerdict(clusterWith({ phase: 'Provisioning' })), { done: false });
  assert.deepEqual(clusterVerdict(clusterWith({ phase: 'Ready' })), { done: true, ok: true });
  assert.deepEqual(clusterVerdict(clusterWith({ phase: 'Ready', observedGeneration: 1 }, 2), 2), { done: false }, 'stale Ready');
  const pools = [{ name: 'etcd', replicas: 1, readyReplicas: 1 }, { name: 'controlplane', replicas: 1, readyReplicas: 1 }, { name: 'workers', replicas: 1, readyReplicas: 0 }];
  assert.deepEqual(clusterVerdict(clusterWith({ phase: 'Ready', observedGeneration: 2, pools }, 2), 2), { done: false }, 'a pool still short');
  pools[2]!.readyReplicas = 1;
  assert.deepEqual(clusterVerdict(clusterWith({ phase: 'Ready', observedGeneration: 2, pools }, 2), 2), { done: true, ok: true });
  const failed = clusterVerdict(clusterWith({ phase: 'Failed', conditions: [{ type: 'Ready', status: 'False' }, { type: 'EtcdReady', status: 'False', reason: 'QuorumLost', message: '1 of 3 members' }] }));
  assert.deepEqual(failed, { done: true, ok: false, reason: 'EtcdReady: QuorumLost: 1 of 3 members' });
  assert.equal(poolsSummary(clusterWith({ pools })), 'etcd 1/1, controlplane 1/1, workers 1/1');
  assert.equal(poolsSummary(clusterWith({})), undefined);
});

test('ProgressPrinter reports only what changed', () => {
  const p = new ProgressPrinter();
  const m = (status: Record<string, unknown>, extra: Partial<Resource['metadata']> = {}): Resource => ({
    apiVersion: 'marina.dev/v1alpha1',
    kind: 'Machine',
    metadata: { name: 'demo-etcd-x2k1', project: 'p', ...extra },
    spec: { cluster: 'demo', pool: 'etcd', roles: ['etcd'] },
    status,
  });
  assert.deepEqual(p.lines({ type: 'ADDED', object: m({}) }), ['machine demo-etcd-x2k1 created (pool etcd, roles etcd)']);
  assert.deepEqual(p.lines({ type: 'MODIFIED', object: m({ phase: 'Provisioning' }) }), ['machine demo-etcd-x2k1 Provisioning']);
  assert.deepEqual(p.lines({ type: 'MODIFIED', object: m({ phase: 'Provisioning' }) }), [], 'no change, no line');
  assert.deepEqual(p.lines({ type: 'MODIFIED', object: m({ phase: 'Running', address: '127.0.10.5' }) }), ['machine demo-etcd-x2k1 Running (127.0.10.5)']);
  assert.deepEqual(p.lines({ type: 'MODIFIED', object: m({ phase: 'Running', address: '127.0.10.5', nodeName: 'n1', nodeReady: true }) }), ['machine demo-etcd-x2k1 node n1 Ready']);
  assert.deepEqual(
    p.lines({ type: 'MODIFIED', object: m({ phase: 'Failed', failureReason: 'Crashed', failureMessage: 'etcd exited 1' }, { deletionTimestamp: 'now', finalizers: ['f'] }) }),
    ['machine demo-etcd-x2k1 deleting (waiting for f)', 'machine demo-etcd-x2k1 Failed: Crashed: etcd exited 1'],
  );
  assert.deepEqual(p.lines({ type: 'DELETED', object: m({}) }), ['machine demo-etcd-x2k1 deleted']);

  const c1 = clusterWith({ phase: 'Provisioning', conditions: [{ type: 'EtcdReady', status: 'False', reason: 'Creating' }] });
  assert.deepEqual(p.lines({ type: 'ADDED', object: c1 }), ['cluster demo Provisioning', 'cluster demo EtcdReady=False (Creating)']);
  const c2 = clusterWith({ phase: 'Provisioning', endpoint: 'https://e', pools: [{ name: 'etcd', replicas: 1, readyReplicas: 1 }], conditions: [{ type: 'EtcdReady', status: 'True', reason: 'Healthy', message: '1/1' }] });
  assert.deepEqual(p.lines({ type: 'MODIFIED', object: c2 }), ['cluster demo endpoint https://e', 'cluster demo pools etcd 1/1, controlplane 0/1, workers 0/1', 'cluster demo EtcdReady=True (Healthy: 1/1)']);
});
