// The controllers with a pool of imported servers (a provider that cannot create machines), on the
// real SQLite store with the in-test provider of fakes.ts: the pool waits for servers instead of
// creating machines, a server that joined with an approval token waits for `marina cluster
// approve`, its kubelet joins with its bootstrap token (node admission: the token's Secret exists
// until the Node registers, the kubernetes Service points where the provider says nodes reach the
// API), and an unhealthy imported machine raises ImportedMachineUnhealthy instead of being replaced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Cluster, Machine, NodePool } from '../../src/api/kinds.js';
import { API_VERSION } from '../../src/api/meta.js';
import { ANNOTATION_APPROVAL, ANNOTATION_APPROVED } from '../../src/api/wellknown.js';
import type { AlertInput, AlertScope, AlertSink } from '../../src/alerts/manager.js';
import { startControlLoops } from '../../src/server/control-loops.js';
import type { InfrastructureProvider, ProviderRegistry } from '../../src/providers/contract.js';
import { getCondition } from '../../src/api/conditions.js';
import { waitFor } from '../../src/runtime/test-helpers.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { Endpoints } from '../../src/kube/objects.js';
import { FakeWorld } from './fakes.js';

const P = 'p1';
const FAST = { clusterPollMs: 40, clusterReadyPollMs: 400, poolPollMs: 40, machinePollMs: 25, machineReadyPollMs: 400, deletePollMs: 25, drainTimeoutMs: 400, remoteCallTimeoutMs: 500 };

test('import pools wait for servers, admit approved ones, and alert instead of healing', async () => {
  const store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
  const world = new FakeWorld(store);
  // The same in-test machines, but the provider says what the import provider says.
  const imports: InfrastructureProvider = {
    ...world.provider,
    name: 'import',
    capabilities: { createsMachines: false, endpoints: false },
    sweepOrphans: false,
    nodeAPIEndpoint: async () => '192.0.2.10:7001',
  };
  const registry: ProviderRegistry = { get: (name) => (name === 'import' ? imports : world.registry.get(name)), list: () => [...world.registry.list(), imports] };
  const alerts: { scope: AlertScope; active: readonly AlertInput[] }[] = [];
  const sink = { sync: async (scope: AlertScope, active: readonly AlertInput[]) => void alerts.push({ scope, active }) } as unknown as AlertSink;
  const controllers = await startControlLoops({
    store,
    providers: registry,
    metrics: new Registry(),
    logger: pino({ level: 'silent' }),
    defaultKubernetesVersion: 'v1.36.3',
    timing: FAST,
    access: world.connections,
    resyncPeriodMs: 0,
    alerts: sink,
  });
  try {
    const cluster: Cluster = {
      apiVersion: API_VERSION,
      kind: 'Cluster',
      metadata: { name: 'c', project: P },
      spec: {
        provider: 'local',
        nodePools: [
          { name: 'cp', roles: ['etcd', 'controlplane'], replicas: 1 },
          { name: 'byo', roles: ['worker'], replicas: 1, provider: 'import', healing: { unhealthyTimeoutSeconds: 10 } },
        ],
      },
    };
    await store.create(cluster);
    let pool: NodePool | undefined;
    await waitFor(async () => {
      pool = (await store.get({ kind: 'NodePool', project: P, name: 'c-byo' })) as NodePool | undefined;
      return getCondition(pool?.status?.conditions, 'Scaled')?.reason === 'WaitingForServers';
    }, 'the import pool waiting for servers');
    assert.equal(pool!.spec.provider, 'import');
    assert.match(getCondition(pool!.status?.conditions, 'Scaled')?.message ?? '', /0\/1 servers joined; more join with `marina cluster join-token create c --pool byo`/);
    assert.equal((await store.list('Machine', { project: P, labelSelector: 'marina.dev/pool=byo' })).items.length, 0, 'no machine created');

    // A server joins with an approval token (what the join service creates).
    await store.create({
      apiVersion: API_VERSION,
      kind: 'Machine',
      metadata: { name: 'c-byo-srv01', project: P, labels: { 'marina.dev/cluster': 'c', 'marina.dev/pool': 'byo', 'marina.dev/nodepool': 'c-byo' }, annotations: { [ANNOTATION_APPROVAL]: 'required' } },
      spec: { cluster: 'c', pool: 'byo', roles: ['worker'], provider: 'import', kubernetesVersion: 'v1.36.3', runtime: { type: 'containerd' } },
      status: { phase: 'Pending' },
    });
    let waiting: Machine | undefined;
    await waitFor(async () => {
      waiting = (await store.get({ kind: 'Machine', project: P, name: 'c-byo-srv01' })) as Machine;
      return getCondition(waiting.status?.conditions, 'Bootstrapped')?.reason === 'WaitingForApproval';
    }, 'the machine waiting for approval');
    assert.equal(world.callsOf('start').some((c) => c.name === 'c-byo-srv01'), false, 'not started before approval');
    await store.update({ ...waiting!, metadata: { ...waiting!.metadata, annotations: { ...waiting!.metadata.annotations, [ANNOTATION_APPROVED]: 'true' } } });
    let running: Machine | undefined;
    await waitFor(async () => {
      running = (await store.get({ kind: 'Machine', project: P, name: 'c-byo-srv01' })) as Machine;
      return running.status?.phase === 'Running';
    }, 'the approved machine Running');
    // Its kubelet joined with the machine's bootstrap token; the token is gone once the Node exists.
    assert.equal(getCondition(running!.status?.conditions, 'NodeAdmitted')?.status, 'True');
    const sim = world.sim('c');
    assert.ok(world.timeline.some((t) => /^apply Secret\/kube-system\/bootstrap-token-[a-z0-9]{6}$/.test(t)), 'a bootstrap token Secret was applied');
    await waitFor(async () => [...sim.objects.keys()].every((k) => !k.startsWith('Secret/kube-system/bootstrap-token-')), 'the bootstrap token deleted after registration');
    assert.ok(sim.objects.has('ClusterRoleBinding//marina:kubelet-bootstrap'));
    const endpoints = () => sim.objects.get('Endpoints/default/kubernetes') as Endpoints | undefined;
    await waitFor(async () => endpoints()?.subsets?.[0]?.addresses?.[0]?.ip === '192.0.2.10', 'the kubernetes Endpoints at the nodes\' API address');
    assert.equal(endpoints()?.subsets?.[0]?.ports?.[0]?.port, 7001);

    // Its Node goes NotReady: healing alerts, and never deletes the machine.
    const node = world.sim('c').nodes.get('c-byo-srv01')!;
    node.status!.conditions![0]!.status = 'False';
    node.status!.conditions![0]!.reason = 'KubeletNotReady';
    await waitFor(
      async () => alerts.some((a) => a.scope.source === 'healing.c-byo' && a.active.some((x) => x.rule === 'ImportedMachineUnhealthy' && x.labels?.machine === 'c-byo-srv01')),
      'ImportedMachineUnhealthy',
      10_000,
    );
    assert.ok(await store.get({ kind: 'Machine', project: P, name: 'c-byo-srv01' }), 'the imported machine is not replaced');
    assert.equal(world.callsOf('delete').length, 0);
  } finally {
    await controllers.stop();
    await store.close();
  }
});
