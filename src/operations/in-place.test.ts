// The in-place upgrade step of imported servers against a store, a provider recording its
// upgradeNode calls and a Kubernetes API double that keeps Nodes and pods in memory (the real
// thing runs in test/workers/import.test.ts): one server at a time, drain first (a blocking
// PodDisruptionBudget named, the drain timeout ending the wait), then the agent is asked, then the
// Node back Ready on the new version, uncordoned, the Machine records the version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { Cluster, Machine, NodePool } from '../api/kinds.js';
import { API_VERSION } from '../api/meta.js';
import type { Operation } from '../api/operations.js';
import type { EvictionResult, KubeApi } from '../clusteraccess/access.js';
import type { Node, Pod } from '../kube/objects.js';
import type { InfrastructureProvider, MachineRef, ProviderRegistry } from '../providers/contract.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/types.js';
import type { OperationDeps, StepOutcome, StepScope } from './framework.js';
import { inPlaceStep, nextServer, serverState } from './in-place.js';

const FROM = 'v1.35.4';
const TO = 'v1.36.3';

function pool(name: string, provider: string, drainTimeoutSeconds?: number): NodePool {
  return {
    apiVersion: API_VERSION,
    kind: 'NodePool',
    metadata: { name: `c-${name}`, project: 'p', labels: { 'marina.dev/cluster': 'c', 'marina.dev/pool': name } },
    spec: { cluster: 'c', roles: ['worker'], replicas: 2, provider, kubernetesVersion: TO, ...(drainTimeoutSeconds !== undefined ? { healing: { drainTimeoutSeconds } } : {}) },
  } as NodePool;
}

function machine(name: string): Machine {
  return {
    apiVersion: API_VERSION,
    kind: 'Machine',
    metadata: { name, project: 'p', labels: { 'marina.dev/cluster': 'c', 'marina.dev/pool': 'byo', 'marina.dev/nodepool': 'c-byo' }, annotations: { 'marina.dev/hostname': `host-${name}` } },
    spec: { cluster: 'c', pool: 'byo', roles: ['worker'], provider: 'import', kubernetesVersion: FROM },
    status: { phase: 'Running', nodeName: name },
  } as Machine;
}

const node = (name: string, version: string, ready = true): Node =>
  ({ metadata: { name }, spec: {}, status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }], nodeInfo: { kubeletVersion: version } } }) as unknown as Node;

/** Nodes and pods in memory; evictions refused while `blockedBy` names a budget. */
class FakeKube {
  nodes = new Map<string, Node>();
  pods: Pod[] = [];
  blockedBy: string | undefined;
  readonly api = {
    readyz: async () => ({ ok: true, message: 'ok' }),
    getNode: async (name: string) => structuredClone(this.nodes.get(name)),
    patchNode: async (name: string, patch: { spec?: { unschedulable?: boolean } }) => {
      const n = this.nodes.get(name)!;
      n.spec = { ...n.spec, ...patch.spec };
    },
    podsOnNode: async (name: string) => this.pods.filter((p) => p.spec?.nodeName === name),
    evictPod: async (ns: string, name: string): Promise<EvictionResult> => {
      if (this.blockedBy) return { blockedBy: this.blockedBy };
      this.pods = this.pods.filter((p) => !(p.metadata.namespace === ns && p.metadata.name === name));
      return 'evicted';
    },
  } as unknown as KubeApi;
}

async function setup(drainTimeoutSeconds?: number) {
  const store: Store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
  await store.create(pool('workers', 'local'));
  await store.create(pool('byo', 'import', drainTimeoutSeconds));
  for (const n of ['c-byo-b', 'c-byo-a']) await store.create(machine(n));
  const kube = new FakeKube();
  for (const n of ['c-byo-a', 'c-byo-b']) kube.nodes.set(n, node(n, FROM));
  kube.pods = [{ metadata: { namespace: 'default', name: 'web-1' }, spec: { nodeName: 'c-byo-a' }, status: { phase: 'Running' } } as unknown as Pod];
  const asked: { name: string; version: string }[] = [];
  const imports = {
    name: 'import',
    capabilities: { createsMachines: false },
    actions: {
      upgradeNode: async (m: MachineRef, version: string) => {
        asked.push({ name: m.name, version });
        return { requested: version };
      },
    },
  } as unknown as InfrastructureProvider;
  const local = { name: 'local', capabilities: {} } as unknown as InfrastructureProvider;
  const providers: ProviderRegistry = { get: (n) => (n === 'import' ? imports : local), list: () => [local, imports] };
  const record: Record<string, unknown> = {};
  const scope: StepScope = {
    op: { apiVersion: API_VERSION, kind: 'Operation', metadata: { name: 'up', project: 'p' }, spec: { cluster: 'c', type: 'Upgrade', upgrade: { version: TO } } } as unknown as Operation,
    cluster: { apiVersion: API_VERSION, kind: 'Cluster', metadata: { name: 'c', project: 'p' }, spec: { nodePools: [] } } as unknown as Cluster,
    deps: { store, providers, connections: { kube: async () => kube.api } } as unknown as OperationDeps,
    signal: new AbortController().signal,
    log: pino({ level: 'silent' }),
    record,
    records: {},
    result: () => undefined,
  };
  const step = inPlaceStep('importedServers', () => TO);
  const run = (): Promise<StepOutcome> => step.run(scope);
  const machineOf = async (name: string) => (await store.get({ kind: 'Machine', project: 'p', name })) as Machine;
  return { store, kube, asked, record, run, machineOf };
}

const message = (o: StepOutcome): string => ('wait' in o ? o.message : 'fail' in o ? o.fail : 'skip' in o ? o.skip : (o.message ?? ''));

test('servers are upgraded in place one at a time: drained, the agent asked, back Ready on the new version, uncordoned', async () => {
  const { store, kube, asked, run, machineOf } = await setup();
  try {
    // First server (by name): cordoned and its pod evicted; once no pod is left its agent is told.
    let o = await run();
    assert.ok('wait' in o, message(o));
    assert.match(message(o), /host-c-byo-a \(machine c-byo-a\): draining: 1 pods left on c-byo-a \(default\/web-1\)$/);
    assert.equal(kube.nodes.get('c-byo-a')!.spec?.unschedulable, true, 'cordoned');
    assert.equal(kube.nodes.get('c-byo-b')!.spec?.unschedulable, undefined, 'the other server keeps serving');
    assert.deepEqual(kube.pods, [], 'pod evicted');
    assert.equal(asked.length, 0, 'not before the drain is over');
    o = await run();
    assert.match(message(o), /host-c-byo-a \(machine c-byo-a\): drained; its agent is told to take v1\.36\.3/);
    assert.deepEqual(asked, [{ name: 'c-byo-a', version: TO }]);
    // Until its Node reports the new kubelet, the step waits on it (and leaves the second alone).
    o = await run();
    assert.match(message(o), /0\/2 on v1\.36\.3; .*c-byo-a.*its agent takes v1\.36\.3: Node Ready, kubelet v1\.35\.4/);
    assert.equal(asked.length, 1, 'asked once');
    kube.nodes.set('c-byo-a', { ...node('c-byo-a', TO), spec: { unschedulable: true } } as Node);
    o = await run();
    assert.ok('wait' in o);
    assert.equal(kube.nodes.get('c-byo-a')!.spec?.unschedulable, false, 'uncordoned');
    assert.equal((await machineOf('c-byo-a')).spec.kubernetesVersion, TO, 'the Machine records its version');
    // Then the second one.
    o = await run();
    assert.equal(kube.nodes.get('c-byo-b')!.spec?.unschedulable, true);
    assert.deepEqual(asked.map((a) => a.name), ['c-byo-a', 'c-byo-b']);
    kube.nodes.set('c-byo-b', node('c-byo-b', TO));
    await run();
    o = await run();
    assert.ok('done' in o, message(o));
    assert.match(message(o), /2\/2 upgraded in place to v1\.36\.3/);
  } finally {
    await store.close();
  }
});

test('a PodDisruptionBudget that blocks is named while the drain waits; the drain timeout fails the step and leaves the server in service', async () => {
  const { store, kube, asked, record, run } = await setup(30);
  try {
    kube.blockedBy = 'default/web';
    let o = await run();
    assert.ok('wait' in o);
    assert.match(message(o), /draining: 1 pods left on c-byo-a \(default\/web-1\); PodDisruptionBudget blocks eviction of default\/web-1 \(PodDisruptionBudget default\/web\)/);
    // The pool's drain timeout (30 s) has passed.
    record.since = new Date(Date.now() - 31_000).toISOString();
    o = await run();
    assert.ok('fail' in o);
    assert.match(o.fail, /drain of c-byo-a timed out after 30 s: .*PodDisruptionBudget default\/web.*; the server stays on v1\.35\.4 and in service/);
    assert.equal(kube.nodes.get('c-byo-a')!.spec?.unschedulable, false, 'schedulable again');
    assert.equal(asked.length, 0, 'the agent was never asked');
  } finally {
    await store.close();
  }
});

test('where a server stands comes from its Node and Machine; the server in hand is kept', () => {
  const m = machine('c-byo-a');
  assert.equal(serverState(m, node('c-byo-a', FROM), TO), 'pending');
  assert.equal(serverState(m, node('c-byo-a', TO, false), TO), 'pending', 'NotReady on the new version: still coming back');
  assert.equal(serverState(m, node('c-byo-a', TO), TO), 'uncordon', 'back on the target: to be uncordoned, then recorded');
  assert.equal(serverState({ ...m, spec: { ...m.spec, kubernetesVersion: TO } }, node('c-byo-a', TO), TO), 'upgraded');
  assert.equal(serverState(m, undefined, TO), 'pending');
  assert.equal(serverState({ ...m, spec: { ...m.spec, kubernetesVersion: TO } }, undefined, TO), 'upgraded', 'joined after its pool took the target: nothing to do');
  const servers = ['c-byo-a', 'c-byo-b', 'c-byo-c'].map((n) => ({ machine: machine(n), state: 'pending' as const }));
  assert.equal(nextServer(servers, undefined)?.machine.metadata.name, 'c-byo-a');
  assert.equal(nextServer(servers, 'c-byo-b')?.machine.metadata.name, 'c-byo-b', 'a restart resumes the server in hand');
  assert.equal(nextServer(servers.map((s) => ({ ...s, state: 'upgraded' as const })), 'c-byo-b'), undefined);
});
