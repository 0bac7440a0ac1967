import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { Cluster, Machine } from '../api/kinds.js';
import { API_VERSION } from '../api/meta.js';
import type { Operation } from '../api/operations.js';
import { ANNOTATION_REPLACE_REQUESTED } from '../api/wellknown.js';
import type { InfrastructureProvider, ProviderRegistry } from '../providers/contract.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { OperationDeps, StepScope } from './framework.js';
import { replaceMachineOperation } from './replace-machine.js';

const request = replaceMachineOperation.steps.find((s) => s.name === 'request')!;

function machine(name: string, provider: Machine['spec']['provider']): Machine {
  return {
    apiVersion: API_VERSION,
    kind: 'Machine',
    metadata: { name, project: 'p', labels: { 'marina.dev/cluster': 'c' } },
    spec: { cluster: 'c', pool: 'w', roles: ['worker'], provider, kubernetesVersion: 'v1.36.3' },
  };
}

test('a replacement is refused for a server that joined by itself, and requested for a machine its provider creates', async () => {
  const store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
  try {
    const provider = (name: string, createsMachines: boolean) => ({ name, capabilities: { createsMachines } }) as unknown as InfrastructureProvider;
    const providers: ProviderRegistry = { get: (n) => provider(n, n !== 'import'), list: () => [] };
    const cluster = { apiVersion: API_VERSION, kind: 'Cluster', metadata: { name: 'c', project: 'p' }, spec: { nodePools: [] } } as unknown as Cluster;
    await store.create(machine('c-byo-srv01', 'import'));
    await store.create(machine('c-w-abcde', 'local'));
    const scope = (target: string): StepScope => ({
      op: { apiVersion: API_VERSION, kind: 'Operation', metadata: { name: `replace-${target}`, project: 'p' }, spec: { cluster: 'c', type: 'ReplaceMachine', replaceMachine: { machine: target } } } as unknown as Operation,
      cluster,
      deps: { store, providers } as unknown as OperationDeps,
      signal: new AbortController().signal,
      log: pino({ level: 'silent' }),
      record: {},
      records: {},
      result: () => undefined,
    });

    const refused = await request.run(scope('c-byo-srv01'));
    assert.ok('fail' in refused, 'refused');
    assert.match(refused.fail, /joined by itself \(provider import\): Marina cannot create its successor/);
    const untouched = (await store.get({ kind: 'Machine', project: 'p', name: 'c-byo-srv01' })) as Machine;
    assert.equal(untouched.metadata.annotations?.[ANNOTATION_REPLACE_REQUESTED], undefined, 'nothing changed');

    const asked = await request.run(scope('c-w-abcde'));
    assert.ok('done' in asked);
    const local = (await store.get({ kind: 'Machine', project: 'p', name: 'c-w-abcde' })) as Machine;
    assert.equal(local.metadata.annotations?.[ANNOTATION_REPLACE_REQUESTED], 'replace-c-w-abcde');
  } finally {
    await store.close();
  }
});
