import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { Cluster } from '../api/kinds.js';
import { API_VERSION } from '../api/meta.js';
import type { Operation } from '../api/operations.js';
import type { InfrastructureProvider, ProviderRegistry } from '../providers/contract.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { OperationDeps, StepScope } from './framework.js';
import { BUMP_REVISION, restoreOperation, revisionBump } from './restore.js';

test('a restore moves revisions past the highest the cluster reached, never back', () => {
  // First restore of an early snapshot: the plain margin.
  assert.equal(revisionBump(5_000, 4_000), BUMP_REVISION);
  assert.equal(revisionBump(5_000, 5_000), BUMP_REVISION);
  // The cluster went on to 2e9 (after two restores); restoring a snapshot of revision 1e9+300
  // must land above 2e9, not at 2e9+300 - (2e9 - (1e9+300)).
  const snapshot = 1_000_000_300;
  const highest = 2_000_000_700;
  const landed = snapshot + revisionBump(snapshot, highest);
  assert.ok(landed > highest, `${landed} > ${highest}`);
  assert.equal(landed - highest, BUMP_REVISION);
});

test("a restore of a cluster whose machines' provider offers no actions fails at once, naming the provider", async () => {
  const store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
  try {
    const cluster = await store.create({
      apiVersion: API_VERSION,
      kind: 'Cluster',
      metadata: { name: 'c', project: 'p' },
      spec: { kubernetesVersion: 'v1.36.3', nodePools: [] },
    } as never);
    await store.create({
      apiVersion: API_VERSION,
      kind: 'Snapshot',
      metadata: { name: 's1', project: 'p', labels: { 'marina.dev/cluster': 'c' } },
      spec: { cluster: 'c' },
      status: { phase: 'Completed', clusterUID: cluster.metadata.uid, kubernetesVersion: 'v1.36.3', etcdRevision: 10 },
    } as never);
    await store.create({
      apiVersion: API_VERSION,
      kind: 'Machine',
      metadata: { name: 'c-cp-a', project: 'p', labels: { 'marina.dev/cluster': 'c', 'marina.dev/nodepool': 'c-cp' } },
      spec: { cluster: 'c', pool: 'cp', roles: ['etcd', 'controlplane'], provider: 'openstack', kubernetesVersion: 'v1.36.3' },
      status: { phase: 'Running', address: '192.0.2.10' },
    } as never);
    const providers: ProviderRegistry = { get: (name: string) => ({ name, capabilities: {} }) as unknown as InfrastructureProvider, list: () => [] };
    const scope: StepScope = {
      op: { apiVersion: API_VERSION, kind: 'Operation', metadata: { name: 'r', project: 'p', uid: 'u1' }, spec: { cluster: 'c', type: 'Restore', restore: { snapshot: 's1' } } } as unknown as Operation,
      cluster: cluster as unknown as Cluster,
      deps: { store, providers, defaultKubernetesVersion: 'v1.36.3' } as unknown as OperationDeps,
      signal: new AbortController().signal,
      log: pino({ level: 'silent' }),
      record: {},
      records: {},
      result: () => undefined,
    };
    const outcome = await restoreOperation.steps.find((s) => s.name === 'preflight')!.run(scope);
    assert.ok('fail' in outcome, JSON.stringify(outcome));
    assert.match(outcome.fail, /the machines of provider openstack offer no actions .*: a restore of this cluster is not possible/);
  } finally {
    await store.close();
  }
});
