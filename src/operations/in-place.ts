// The Upgrade's step for servers users joined (provider `import`): Marina never replaces one, so
// each is upgraded in place, one server at a time, after the pools Marina rolls:
//
//   drain     cordon its Node and evict its pods through the eviction API — the roll's rules:
//             PodDisruptionBudgets decide, one that blocks is named, and the drain timeout (the
//             machine's, else its pool's, else Marina's) ends the wait: the server is made
//             schedulable again and the operation fails with the budget named.
//   upgrade   the provider carries the new version to the server's agent (MachineActions.upgradeNode),
//             which fetches that version's kubelet and kube-proxy with their checksums, swaps the
//             binaries and restarts both; the step waits for the Node Ready with the new kubeletVersion.
//   uncordon  the Machine records the version, the Node takes pods again; on to the next server.
//
// Level-based and restart-safe: where each server stands is read from its Node and Machine; the
// record only keeps which server is in hand and since when (for the timeouts).
import type { Machine, NodePool } from '../api/kinds.js';
import { ANNOTATION_HOSTNAME } from '../api/wellknown.js';
import type { KubeApi } from '../clusteraccess/access.js';
import { DEFAULT_TIMING } from '../controllers/common.js';
import { cordonAndEvict, uncordon } from '../controllers/node.js';
import type { Node } from '../kube/objects.js';
import { clusterMachines, typed } from '../store/typed.js';
import { done, fail, skip, wait, type StepDefinition, type StepOutcome, type StepScope } from './framework.js';
import { healthGate, importedPools, ROLL_STEP_TIMEOUT_MS } from './rolling.js';

/** How long a drained server may take to come back Ready on the new version (a download of its binaries included). */
export const NODE_UPGRADE_TIMEOUT_MS = 10 * 60_000;
const POLL_MS = 2000;

/** Where one server stands, from its Machine and Node. */
export type ServerState = 'upgraded' | 'uncordon' | 'pending';

/** What the step keeps between looks: the server in hand, its phase and since when. */
export interface InPlaceRecord {
  machine?: string;
  phase?: 'draining' | 'upgrading';
  since?: string;
}

const nodeNameOf = (m: Machine) => m.status?.nodeName ?? m.metadata.name;
const serverOf = (m: Machine) => `${m.metadata.annotations?.[ANNOTATION_HOSTNAME] ?? m.metadata.name} (machine ${m.metadata.name})`;

export function isNodeReady(node: Node | undefined): boolean {
  return node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

/**
 * Where a server stands. Its Machine records the target only once its Node was back on it and
 * schedulable again (finish), or when the server joined its pool after the pool took the target:
 * either way nothing is left to do. A Node Ready on the target whose Machine does not say so yet
 * waits for finish; anything else is still to be upgraded.
 */
export function serverState(m: Machine, node: Node | undefined, to: string): ServerState {
  if (m.spec.kubernetesVersion === to) return 'upgraded';
  return isNodeReady(node) && node?.status?.nodeInfo?.kubeletVersion === to ? 'uncordon' : 'pending';
}

/** The server to work on: the one in hand if it is not done yet, else the first pending one by name. */
export function nextServer<S extends { machine: Machine; state: ServerState }>(servers: readonly S[], inHand: string | undefined): S | undefined {
  const open = servers.filter((s) => s.state !== 'upgraded');
  return open.find((s) => s.machine.metadata.name === inHand) ?? [...open].sort((a, b) => a.machine.metadata.name.localeCompare(b.machine.metadata.name))[0];
}

/** The drain timeout of a server: its Machine's, else its pool's, else Marina's default. */
export function drainTimeoutMs(m: Machine, pool: NodePool | undefined): number {
  const seconds = m.spec.drainTimeoutSeconds ?? pool?.spec.healing?.drainTimeoutSeconds;
  return seconds !== undefined ? seconds * 1000 : DEFAULT_TIMING.drainTimeoutMs;
}

export function inPlaceStep(name: string, target: (sc: StepScope) => string): StepDefinition {
  return { name, timeoutMs: ROLL_STEP_TIMEOUT_MS, run: (sc) => upgradeServers(sc, target(sc)) };
}

async function upgradeServers(sc: StepScope, to: string): Promise<StepOutcome> {
  const pools = await importedPools(sc);
  if (pools.length === 0) return skip('the cluster has no imported servers');
  const behind = pools.filter((p) => p.spec.kubernetesVersion !== to);
  if (behind.length > 0) return wait(`imported servers wait for the earlier pools (${behind.map((p) => `${p.metadata.name} still ${p.spec.kubernetesVersion}`).join(', ')})`, POLL_MS);
  const kube = await sc.deps.connections.kube(sc.cluster);
  if (!kube) return fail('the cluster has no admin kubeconfig');
  const poolNames = new Set(pools.map((p) => p.metadata.name));
  const machines = (await clusterMachines(sc.deps.store, sc.op.metadata.project ?? '', sc.cluster.metadata.name)).filter(
    (m) => !m.metadata.deletionTimestamp && poolNames.has(m.metadata.labels?.['marina.dev/nodepool'] ?? ''),
  );
  const servers = await Promise.all(
    machines.map(async (m) => {
      const node = await kube.getNode(nodeNameOf(m), { signal: sc.signal });
      return { machine: m, node, state: serverState(m, node, to) };
    }),
  );
  const record = sc.record as InPlaceRecord;
  const upgraded = () => servers.filter((s) => s.state === 'upgraded').length;
  const next = nextServer(servers, record.machine);
  if (!next) {
    sc.result('importedServers', `${servers.length} upgraded in place`);
    return done(`imported servers: ${servers.length}/${servers.length} upgraded in place to ${to}`);
  }
  const m = next.machine;
  if (record.machine !== m.metadata.name) Object.assign(record, { machine: m.metadata.name, phase: 'draining', since: new Date().toISOString() } satisfies InPlaceRecord);
  const progress = (what: string) => `imported servers: ${upgraded()}/${servers.length} on ${to}; ${serverOf(m)}: ${what}`;

  if (next.state === 'uncordon') {
    await finish(sc, kube, m, to);
    delete record.machine;
    return wait(progress(`Node ${nodeNameOf(m)} Ready on ${to}, schedulable again`), 0);
  }
  const gate = await healthGate(sc);
  if (gate) return gate;
  const elapsed = Date.now() - Date.parse(record.since!);
  if (record.phase === 'draining') {
    const pool = pools.find((p) => p.metadata.name === m.metadata.labels?.['marina.dev/nodepool']);
    const drained = await drainPass(sc, kube, m);
    if (drained !== true) {
      const timeoutMs = drainTimeoutMs(m, pool);
      if (elapsed < timeoutMs) return wait(progress(`draining: ${drained}`), POLL_MS);
      await uncordon(kube, nodeNameOf(m), sc.signal);
      return fail(`${serverOf(m)}: drain of ${nodeNameOf(m)} timed out after ${Math.round(timeoutMs / 1000)} s: ${drained}; the server stays on ${m.spec.kubernetesVersion} and in service`);
    }
    const actions = sc.deps.providers.get(m.spec.provider).actions;
    if (!actions?.upgradeNode) return fail(`${serverOf(m)}: provider ${m.spec.provider} cannot upgrade a machine in place`);
    const asked = await actions.upgradeNode({ project: sc.op.metadata.project ?? '', cluster: sc.cluster.metadata.name, name: m.metadata.name, uid: m.metadata.uid ?? '' }, to, { signal: sc.signal });
    Object.assign(record, { phase: 'upgrading', since: new Date().toISOString() } satisfies InPlaceRecord);
    const seen = asked.agentSeenAt ? ` (its agent was last heard from at ${asked.agentSeenAt})` : '';
    return wait(progress(`drained; its agent is told to take ${to}${seen}`), POLL_MS);
  }
  if (elapsed >= NODE_UPGRADE_TIMEOUT_MS) {
    return fail(`${serverOf(m)}: its Node ${nodeNameOf(m)} did not come back Ready on ${to} within ${Math.round(NODE_UPGRADE_TIMEOUT_MS / 1000)} s (now ${nodeSummary(next.node)}); it stays cordoned: see its agent's output`);
  }
  return wait(progress(`its agent takes ${to}: Node ${nodeSummary(next.node)}`), POLL_MS);
}

/** One eviction pass: true when no pod is left to evict, else what is left and what holds it up (the blocking PodDisruptionBudget). */
async function drainPass(sc: StepScope, kube: KubeApi, m: Machine): Promise<true | string> {
  const node = nodeNameOf(m);
  const pass = await cordonAndEvict(kube, node, { dead: false, signal: sc.signal });
  if (pass === 'apiGone') return 'the API does not answer';
  if (pass.remaining.length === 0 && !pass.problem) return true;
  const pods = pass.remaining
    .slice(0, 5)
    .map((p) => `${p.metadata.namespace}/${p.metadata.name}${p.metadata.deletionTimestamp ? ' terminating' : ''}`)
    .join(', ');
  return `${pass.remaining.length} pods left on ${node}${pods ? ` (${pods}${pass.remaining.length > 5 ? ', …' : ''})` : ''}${pass.problem ? `; ${pass.problem}` : ''}`;
}

/** The Node takes pods again, then the Machine records the version it runs now (in this order: the record means done). */
async function finish(sc: StepScope, kube: KubeApi, m: Machine, to: string): Promise<void> {
  await uncordon(kube, nodeNameOf(m), sc.signal);
  await typed(sc.deps.store, 'Machine').update({ ...m, spec: { ...m.spec, kubernetesVersion: to } });
}

function nodeSummary(node: Node | undefined): string {
  if (!node) return 'not registered';
  return `${isNodeReady(node) ? 'Ready' : 'NotReady'}, kubelet ${node.status?.nodeInfo?.kubeletVersion ?? '?'}`;
}
