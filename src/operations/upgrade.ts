// The Upgrade operation: every machine of a cluster to another Kubernetes version, in one call.
//
//   preflight          touches nothing: the version is installed by the toolchain; the skew rules
//                      hold (one minor at a time from every running version, no minor downgrade,
//                      no kubelet newer than an apiserver now); etcd is healthy; every pool is
//                      Ready; pools of servers users joined have a provider that upgrades in
//                      place. The PodDisruptionBudgets that allow no disruption now are listed:
//                      the drains they cover will wait for them, up to the drain timeout.
//   snapshot, storeSnapshot, verifySnapshot
//                      an etcd snapshot first (the Snapshot type's steps), to go back to.
//   setVersion         (disruptive) rollouts resume if a failed run paused them, and the cluster's
//                      spec.kubernetesVersion becomes the target: the Cluster controller passes it
//                      on in upgrade order and each pool rolls its machines (src/controllers).
//   etcd, controlPlanes, workers
//                      follow the pools of each step until every machine runs the target (etcd's
//                      machines only roll when the target pins another etcd version), with the
//                      health gate between machines. Pools of servers users joined (provider
//                      import) are not rolled: Marina never replaces a user's server.
//   importedServers    each imported server upgraded in place, one at a time: drained (the roll's
//                      rules), its agent takes the new kubelet and kube-proxy, its Node comes back
//                      Ready on the target, uncordoned (./in-place.ts).
//   verify             the apiserver reports the target (`kubectl version`), and so does every Node's kubelet.
//
// A failure after setVersion pauses the rollouts (the cluster serves on its Ready machines, mixed
// versions within the skew rules) and says where each pool stands; running the upgrade again
// resumes. Restart-safe: each step is level-based and reads the pools' state.
import type { Machine } from '../api/kinds.js';
import { compareVersions, upgradeProblem } from '../api/versions.js';
import { etcdVersionOf, isEtcdOnly } from '../controllers/template.js';
import { clusterMachines, typed } from '../store/typed.js';
import { findToolchain } from '../toolchain/resolve.js';
import { clusterVersion } from './backup.js';
import { done, fail, type OperationDefinition, type StepScope } from './framework.js';
import { blockingBudgets, clusterServes, kubernetesMachines, resumeRollouts, rollStep, stopRollouts } from './rolling.js';
import { cleanupSnapshot, snapshotSteps, type SnapshotStepNames } from './snapshot.js';
import { inPlaceStep } from './in-place.js';

const SNAPSHOT: SnapshotStepNames = { take: 'snapshot', store: 'storeSnapshot', verify: 'verifySnapshot' };
const target = (sc: Pick<StepScope, 'op'>) => sc.op.spec.upgrade!.version;
const versionOfMachine = (m: Machine) => (isEtcdOnly(m.spec) ? `etcd ${etcdVersionOf(m.spec.kubernetesVersion)}` : m.spec.kubernetesVersion);

async function preflight(sc: StepScope) {
  const to = target(sc);
  const installed = findToolchain(to);
  if (!installed.ok) return fail(`Kubernetes ${to} is not installed on this Marina (missing ${installed.missing.join(', ')}; looked in ${installed.searched.join(' and ')}): run \`marina toolchain install ${to}\` first`);
  const from = clusterVersion(sc.cluster, sc.deps.defaultKubernetesVersion);
  const machines = kubernetesMachines((await clusterMachines(sc.deps.store, sc.op.metadata.project ?? '', sc.cluster.metadata.name)).filter((m) => !m.metadata.deletionTimestamp));
  const running = [...new Set([from, ...machines.map((m) => m.spec.kubernetesVersion)])].sort(compareVersions);
  const skew = upgradeProblem(running, to);
  if (skew) return fail(`version skew: ${skew}`);
  const apiservers = machines.filter((m) => m.spec.roles.includes('controlplane')).map((m) => m.spec.kubernetesVersion);
  const kubelets = machines.map((m) => m.spec.kubernetesVersion);
  const oldestApiserver = apiservers.sort(compareVersions)[0];
  const newestKubelet = kubelets.sort(compareVersions).at(-1);
  if (oldestApiserver && newestKubelet && compareVersions(newestKubelet, oldestApiserver) > 0) {
    return fail(`version skew: a kubelet runs ${newestKubelet}, newer than the apiserver on ${oldestApiserver}; fix that first`);
  }
  const serving = await clusterServes(sc);
  if (serving) return fail(serving);
  const budgets = await blockingBudgets(sc);
  const etcdFrom = etcdVersionOf(from);
  const etcdTo = etcdVersionOf(to);
  Object.assign(sc.record, { from: running.join(', '), budgets });
  sc.result('from', running.join(', '));
  if (budgets.length > 0) sc.result('blockingBudgets', budgets.join(', '));
  const etcd = etcdFrom === etcdTo ? `etcd stays at ${etcdTo}` : `etcd ${etcdFrom} → ${etcdTo}`;
  const note = budgets.length > 0 ? `; PodDisruptionBudgets that allow no disruption now (their drains will wait, up to the pool's drain timeout): ${budgets.join(', ')}` : '';
  return done(`${running.join(', ')} → ${to} (${etcd}); etcd healthy, every pool Ready${note}`);
}

async function setVersion(sc: StepScope) {
  await resumeRollouts(sc);
  const clusters = typed(sc.deps.store, 'Cluster');
  const c = await clusters.get(sc.op.metadata.project ?? '', sc.cluster.metadata.name);
  if (!c) return fail('the cluster is gone');
  const to = target(sc);
  if (c.spec.kubernetesVersion !== to) {
    sc.record.previous = clusterVersion(c, sc.deps.defaultKubernetesVersion);
    await clusters.update({ ...c, spec: { ...c.spec, kubernetesVersion: to } });
  }
  return done(`spec.kubernetesVersion is ${to}; the pools roll in order: etcd, control planes, workers`);
}

const wantsTarget = (sc: StepScope, pool: { spec: { kubernetesVersion: string } }) =>
  pool.spec.kubernetesVersion === target(sc) ? undefined : `waits for the earlier pools (still ${pool.spec.kubernetesVersion})`;

async function verify(sc: StepScope) {
  const to = target(sc);
  const kube = await sc.deps.connections.kube(sc.cluster);
  if (!kube) return fail('the cluster has no admin kubeconfig');
  const server = await kube.serverVersion({ signal: sc.signal });
  if (server !== to) return fail(`the apiserver reports ${server}, not ${to}`);
  const nodes = await kube.listNodes({ signal: sc.signal });
  const behind = nodes.filter((n) => n.status?.nodeInfo?.kubeletVersion !== to);
  if (behind.length > 0) return fail(`Nodes whose kubelet is not ${to}: ${behind.map((n) => `${n.metadata.name} (${n.status?.nodeInfo?.kubeletVersion ?? '?'})`).join(', ')}`);
  sc.result('version', to);
  return done(`the apiserver reports ${server}; the kubelets of all ${nodes.length} Nodes report ${to}`);
}

export const upgradeOperation: OperationDefinition = {
  type: 'Upgrade',
  steps: [
    { name: 'preflight', run: preflight },
    ...snapshotSteps(SNAPSHOT),
    { name: 'setVersion', disruptive: true, run: setVersion },
    rollStep('etcd', 0, wantsTarget),
    rollStep('controlPlanes', 1, wantsTarget),
    rollStep('workers', 2, wantsTarget),
    inPlaceStep('importedServers', target),
    { name: 'verify', run: verify },
  ],
  async cleanup(sc, why) {
    const changed = (sc.op.status?.steps ?? []).find((s) => s.name === 'setVersion')?.state !== 'Pending';
    if (!changed) return cleanupSnapshot(sc, why, SNAPSHOT);
    return stopRollouts(sc, versionOfMachine);
  },
};
