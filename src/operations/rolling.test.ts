import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { Cluster, NodePool } from '../api/kinds.js';
import { API_VERSION } from '../api/meta.js';
import type { Operation } from '../api/operations.js';
import type { InfrastructureProvider, ProviderRegistry } from '../providers/contract.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { OperationDeps, StepScope } from './framework.js';
import { rollStep } from './rolling.js';
import { rotateCertificatesOperation } from './rotate-certificates.js';

function pool(name: string, provider: NodePool['spec']['provider']): NodePool {
  return {
    apiVersion: API_VERSION,
    kind: 'NodePool',
    metadata: { name: `c-${name}`, project: 'p', labels: { 'marina.dev/cluster': 'c', 'marina.dev/pool': name } },
    spec: { cluster: 'c', roles: ['worker'], replicas: 1, provider, kubernetesVersion: 'v1.36.3' },
  };
}

test('a certificate rotation is refused for a cluster with a pool of servers users joined, naming the pool and saying why', async () => {
  const store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
  try {
    const provider = (name: string) => ({ name, capabilities: { createsMachines: name !== 'import' } }) as unknown as InfrastructureProvider;
    const providers: ProviderRegistry = { get: provider, list: () => [] };
    await store.create(pool('workers', 'local'));
    await store.create(pool('byo', 'import'));
    const scope: StepScope = {
      op: { apiVersion: API_VERSION, kind: 'Operation', metadata: { name: 'rot', project: 'p' }, spec: { cluster: 'c', type: 'RotateCertificates' } } as unknown as Operation,
      cluster: { apiVersion: API_VERSION, kind: 'Cluster', metadata: { name: 'c', project: 'p' }, spec: { nodePools: [] } } as unknown as Cluster,
      // No cluster access: the refusal comes before anything asks the cluster.
      deps: { store, providers } as unknown as OperationDeps,
      signal: new AbortController().signal,
      log: pino({ level: 'silent' }),
      record: {},
      records: {},
      result: () => undefined,
    };
    const preflight = rotateCertificatesOperation.steps.find((s) => s.name === 'preflight')!;
    const outcome = await preflight.run(scope);
    assert.ok('fail' in outcome, 'refused');
    assert.match(outcome.fail, /pools of servers users joined: byo \(provider import\): certificate rotation of clusters with imported servers is not offered yet: .*make them trust new CAs in place/);
    assert.doesNotMatch(outcome.fail, /workers/);
  } finally {
    await store.close();
  }
});

test("the roll's health gate fails on a failed successor of this roll, not on one a past roll made", async () => {
  const store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
  try {
    const providers: ProviderRegistry = { get: (name: string) => ({ name, capabilities: { createsMachines: true } }) as unknown as InfrastructureProvider, list: () => [] };
    await store.create(pool('workers', 'local'));
    // A worker that replaced another in an earlier roll (it keeps the annotation), now killed.
    await store.create({
      apiVersion: API_VERSION,
      kind: 'Machine',
      metadata: { name: 'c-workers-old', project: 'p', labels: { 'marina.dev/cluster': 'c', 'marina.dev/nodepool': 'c-workers' }, annotations: { 'marina.dev/replaces': 'c-workers-older' } },
      spec: { cluster: 'c', pool: 'workers', roles: ['worker'], provider: 'local', kubernetesVersion: 'v1.36.3' },
      status: { phase: 'Failed', failureReason: 'MachineStopped', failureMessage: 'machine agent (pid 1) is not running' },
    } as never);
    const scope = (since: string): StepScope => ({
      op: { apiVersion: API_VERSION, kind: 'Operation', metadata: { name: 'rot', project: 'p' }, spec: { cluster: 'c', type: 'RotateCertificates' } } as unknown as Operation,
      cluster: { apiVersion: API_VERSION, kind: 'Cluster', metadata: { name: 'c', project: 'p' }, spec: { nodePools: [] } } as unknown as Cluster,
      deps: { store, providers, connections: { kube: async () => undefined } } as unknown as OperationDeps,
      signal: new AbortController().signal,
      log: pino({ level: 'silent' }),
      record: { since },
      records: {},
      result: () => undefined,
    });
    const step = rollStep('workers', 2, () => 'waiting for the new template');
    const later = await step.run(scope(new Date(Date.now() + 60_000).toISOString()));
    assert.ok(!('fail' in later), `a machine from before the step is not this roll's: ${JSON.stringify(later)}`);
    const earlier = await step.run(scope(new Date(Date.now() - 60_000).toISOString()));
    assert.ok('fail' in earlier && /health gate: the new machine c-workers-old of pool workers failed: MachineStopped/.test(earlier.fail), JSON.stringify(earlier));
  } finally {
    await store.close();
  }
});
