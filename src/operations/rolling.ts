// What the Upgrade and RotateCertificates operations share: they change what the cluster's
// machines are made of (a version, a certificate generation) and then follow the pools' rolls in
// upgrade order — etcd, control planes, workers (src/controllers/upgrade-order.ts) — with the
// health gate between machines, ending the operation Failed (and the rolls paused) when a drain
// hits its timeout, a new machine fails or the API stops answering through the endpoint.
import { getCondition } from '../api/conditions.js';
import type { Machine, NodePool } from '../api/kinds.js';
import { hasRole } from '../api/machines.js';
import { ANNOTATION_REPLACES, ANNOTATION_ROLLOUT_PAUSED_BY, NodePoolCondition } from '../api/wellknown.js';
import { etcdMembership } from '../clusteraccess/etcd.js';
import { machineHash } from '../controllers/pool-rollout.js';
import { rolledOut, upgradeStep } from '../controllers/upgrade-order.js';
import { isHealthy } from '../controllers/healing.js';
import { quorumSummary } from '../etcd/membership.js';
import { createsMachines } from '../providers/contract.js';
import { clusterMachines, clusterNodePools, typed } from '../store/typed.js';
import { done, fail, skip, wait, type OperationDefinition, type StepDefinition, type StepOutcome, type StepScope } from './framework.js';

/** A roll step may take this long (a pool of hundreds of workers); the drain timeout and the health gate end it sooner when something is wrong. */
export const ROLL_STEP_TIMEOUT_MS = 2 * 3600_000;
/** How long the API may fail /readyz through the endpoint during a roll before the operation fails. */
const GATE_TIMEOUT_MS = 120_000;
const POLL_MS = 2000;

export const STEP_NAMES = ['etcd', 'control planes', 'workers'] as const;

const project = (sc: Pick<StepScope, 'op'>) => sc.op.metadata.project ?? '';

/**
 * The step that follows the pools of upgrade step `step` until each has taken what `wanted` checks
 * (the Cluster controller passes it on in order) and rolled all its machines onto it.
 */
export function rollStep(name: string, step: 0 | 1 | 2, wanted: (sc: StepScope, pool: NodePool) => string | undefined): StepDefinition {
  return { name, timeoutMs: ROLL_STEP_TIMEOUT_MS, run: (sc) => followRoll(sc, step, wanted) };
}

async function followRoll(sc: StepScope, step: 0 | 1 | 2, wanted: (sc: StepScope, pool: NodePool) => string | undefined): Promise<StepOutcome> {
  const since = (sc.record.since as string | undefined) ?? new Date().toISOString();
  sc.record.since = since;
  // Pools of servers users joined are never rolled: the Upgrade moves them in place (./in-place.ts).
  const pools = (await clusterNodePools(sc.deps.store, project(sc), sc.cluster.metadata.name)).filter(
    (p) => upgradeStep(p.spec.roles) === step && !p.metadata.deletionTimestamp && !isImported(sc, p),
  );
  const what = STEP_NAMES[step];
  if (pools.length === 0) return skip(`the cluster has no ${what} pool Marina creates the machines of`);
  const machines = await clusterMachines(sc.deps.store, project(sc), sc.cluster.metadata.name);
  const progress: string[] = [];
  let pending = false;
  for (const pool of pools) {
    const name = pool.metadata.labels?.['marina.dev/pool'] ?? pool.metadata.name;
    const timeout = pool.status?.rollout?.lastDrainTimeout;
    if (timeout && timeout.at >= since) return fail(`pool ${name}: ${timeout.message}; ${timeout.machine} stays in service`);
    const mine = machines.filter((m) => m.metadata.labels?.['marina.dev/nodepool'] === pool.metadata.name && !m.metadata.deletionTimestamp);
    // A successor of this roll: one made since the step began. A machine that replaced another in
    // an earlier roll keeps its annotation, and its failure now (a killed server) is healing's
    // business, not a sign that the new template is bad.
    const broken = mine.find(
      (m) => m.status?.phase === 'Failed' && m.metadata.annotations?.[ANNOTATION_REPLACES] && Date.parse(m.metadata.creationTimestamp ?? '') >= Date.parse(since),
    );
    if (broken) return fail(`health gate: the new machine ${broken.metadata.name} of pool ${name} failed: ${broken.status?.failureReason}: ${broken.status?.failureMessage}`);
    const missing = wanted(sc, pool);
    if (missing) {
      pending = true;
      progress.push(`${name}: ${missing}`);
      continue;
    }
    if (rolledOut(pool) && mine.every((m) => machineHash(m) === pool.status?.rollout?.templateHash)) {
      progress.push(`${name}: ${pool.spec.replicas}/${pool.spec.replicas} up to date`);
      continue;
    }
    pending = true;
    const upToDate = getCondition(pool.status?.conditions, NodePoolCondition.UpToDate);
    progress.push(`${name}: ${upToDate?.message ?? 'rolling'}`);
  }
  const gate = await healthGate(sc);
  if (gate) return gate;
  const summary = progress.join('; ');
  return pending ? wait(summary, POLL_MS) : done(`${what}: ${summary}`);
}

/** /readyz through the endpoint; failing for longer than GATE_TIMEOUT_MS fails the step. */
export async function healthGate(sc: StepScope): Promise<StepOutcome | undefined> {
  let problem: string | undefined;
  try {
    const kube = await sc.deps.connections.kube(sc.cluster);
    const r = kube ? await kube.readyz({ signal: sc.signal }) : { ok: false, message: 'no admin kubeconfig' };
    if (!r.ok) problem = r.message;
  } catch (err) {
    problem = (err as Error).message;
  }
  if (!problem) {
    delete sc.record.unhealthySince;
    return undefined;
  }
  const from = (sc.record.unhealthySince as string | undefined) ?? new Date().toISOString();
  sc.record.unhealthySince = from;
  const forMs = Date.now() - Date.parse(from);
  if (forMs >= GATE_TIMEOUT_MS) return fail(`health gate: /readyz through the endpoint failed for ${Math.round(forMs / 1000)} s: ${problem}`);
  return wait(`health gate: /readyz through the endpoint fails (${Math.round(forMs / 1000)} s): ${problem}`, POLL_MS);
}

/**
 * What the preflights of both types check: etcd healthy, every pool Ready — and that the
 * operation can deal with pools of servers users joined: `importedRefusal` says why it cannot;
 * without it (the Upgrade) their provider must upgrade its machines in place. undefined: fine.
 */
export async function clusterServes(sc: StepScope, importedRefusal?: string): Promise<string | undefined> {
  const unrollable = await unrollablePools(sc, importedRefusal);
  if (unrollable) return unrollable;
  const machines = await clusterMachines(sc.deps.store, project(sc), sc.cluster.metadata.name);
  const membership = await etcdMembership(sc.deps.connections, sc.cluster, machines, { signal: sc.signal });
  if (!membership) return 'the cluster has no PKI';
  const quorum = quorumSummary(await membership.health());
  if (!quorum.allHealthy) return `etcd is not healthy: ${quorum.message}`;
  const pools = await clusterNodePools(sc.deps.store, project(sc), sc.cluster.metadata.name);
  const notReady = pools.filter((p) => getCondition(p.status?.conditions, NodePoolCondition.Ready)?.status !== 'True');
  if (notReady.length > 0) return `pools not Ready: ${notReady.map((p) => `${p.metadata.name} (${getCondition(p.status?.conditions, NodePoolCondition.Ready)?.message ?? 'no status yet'})`).join('; ')}`;
  return undefined;
}

/** Whether the pool's machines are servers users joined (its provider creates no machines). */
export function isImported(sc: Pick<StepScope, 'deps'>, pool: NodePool): boolean {
  try {
    return !createsMachines(sc.deps.providers.get(pool.spec.provider));
  } catch {
    return false; // a provider this server does not run: the Machine controller reports it
  }
}

/** The cluster's pools of servers users joined. */
export async function importedPools(sc: Pick<StepScope, 'deps' | 'op' | 'cluster'>): Promise<NodePool[]> {
  const pools = await clusterNodePools(sc.deps.store, project(sc), sc.cluster.metadata.name);
  return pools.filter((p) => !p.metadata.deletionTimestamp && isImported(sc, p));
}

/**
 * Pools of a provider that creates no machines (`import`: servers users joined) cannot be rolled —
 * a roll replaces every machine and Marina never replaces a user's server. The operation deals
 * with them in place (no `refusal`, when their provider offers it) or is refused up front, with
 * `refusal` saying why, instead of waiting on them forever.
 */
async function unrollablePools(sc: StepScope, refusal: string | undefined): Promise<string | undefined> {
  const imported = (await importedPools(sc)).filter((p) => refusal !== undefined || !sc.deps.providers.get(p.spec.provider).actions?.upgradeNode);
  if (imported.length === 0) return undefined;
  const names = imported.map((p) => `${p.metadata.labels?.['marina.dev/pool'] ?? p.metadata.name} (provider ${p.spec.provider})`).join(', ');
  return `pools of servers users joined: ${names}: ${refusal ?? 'their provider cannot upgrade a server in place, and Marina never replaces a user\'s server'}`;
}

/** The PodDisruptionBudgets that allow no disruption now: the drains they cover will wait for them. */
export async function blockingBudgets(sc: StepScope): Promise<string[]> {
  const kube = await sc.deps.connections.kube(sc.cluster);
  if (!kube) return [];
  const pdbs = await kube.listPodDisruptionBudgets({ signal: sc.signal });
  return pdbs
    .filter((p) => (p.status?.disruptionsAllowed ?? 0) === 0)
    .map((p) => `${p.metadata.namespace}/${p.metadata.name} (${p.status?.currentHealthy ?? 0} healthy, ${p.status?.desiredHealthy ?? 0} required)`)
    .sort();
}

/** Lets the pools roll again (a run after a failed one resumes). */
export async function resumeRollouts(sc: StepScope): Promise<void> {
  const clusters = typed(sc.deps.store, 'Cluster');
  const c = await clusters.get(project(sc), sc.cluster.metadata.name);
  const { [ANNOTATION_ROLLOUT_PAUSED_BY]: paused, ...rest } = c?.metadata.annotations ?? {};
  if (c && paused !== undefined) await clusters.update({ ...c, metadata: { ...c.metadata, annotations: rest } });
}

/**
 * After a roll failed: the pools stop (no new machine, drains undone), new machines that never
 * became healthy go again, and the message says where each pool stands — the cluster serves on
 * the machines that are Ready.
 */
export async function stopRollouts(sc: Parameters<NonNullable<OperationDefinition['cleanup']>>[0], versionOf: (m: Machine) => string): Promise<string> {
  const clusters = typed(sc.deps.store, 'Cluster');
  const c = await clusters.get(project(sc), sc.cluster.metadata.name);
  if (c && c.metadata.annotations?.[ANNOTATION_ROLLOUT_PAUSED_BY] !== sc.op.metadata.name) {
    await clusters.update({ ...c, metadata: { ...c.metadata, annotations: { ...c.metadata.annotations, [ANNOTATION_ROLLOUT_PAUSED_BY]: sc.op.metadata.name } } });
  }
  const machines = (await clusterMachines(sc.deps.store, project(sc), sc.cluster.metadata.name)).filter((m) => !m.metadata.deletionTimestamp);
  const names = new Set(machines.map((m) => m.metadata.name));
  const unhealthySuccessors = machines.filter((m) => names.has(m.metadata.annotations?.[ANNOTATION_REPLACES] ?? '') && !isHealthy(m));
  const machineObjects = typed(sc.deps.store, 'Machine');
  for (const m of unhealthySuccessors) await machineObjects.deleteIfExists(project(sc), m.metadata.name);
  const gone = new Set(unhealthySuccessors.map((m) => m.metadata.name));
  const byPool = new Map<string, Map<string, number>>();
  for (const m of machines) {
    if (gone.has(m.metadata.name)) continue;
    const counts = byPool.get(m.spec.pool) ?? new Map<string, number>();
    counts.set(versionOf(m), (counts.get(versionOf(m)) ?? 0) + 1);
    byPool.set(m.spec.pool, counts);
  }
  const state = [...byPool].map(([pool, counts]) => `${pool}: ${[...counts].map(([v, n]) => `${n} on ${v}`).join(', ')}`).join('; ');
  return `rollouts of cluster ${sc.cluster.metadata.name} paused (annotation ${ANNOTATION_ROLLOUT_PAUSED_BY}); the cluster serves on its Ready machines${gone.size > 0 ? `; new machines that never became healthy removed: ${[...gone].join(', ')}` : ''}; machines: ${state}; run the operation again to resume`;
}

/** The machines of a cluster that run a kubelet or a control plane (they carry the Kubernetes version). */
export function kubernetesMachines(machines: readonly Machine[]): Machine[] {
  return machines.filter((m) => hasRole(m, 'controlplane') || hasRole(m, 'worker'));
}
