// The Restore operation: the whole cluster from one snapshot, in one call.
//
//   preflight         touches nothing: the snapshot is Completed, of this cluster (its uid) unless
//                     allowed otherwise, of a Kubernetes version not newer than the cluster's and
//                     at most one minor older; it is present in its target, its stored checksum
//                     matches, it decrypts, its plaintext checksum matches and etcdutl reads it;
//                     every etcd and control-plane machine runs and its provider offers actions.
//   pause             the cluster is marked out of service (health alerts and healing pause).
//   stopControlPlane  kube-apiserver, controller-manager, scheduler held down on every machine.  ┐
//   stopEtcd          etcd held down on every member.                                           │ disruptive
//   restoreEtcd       every member's data directory restored from the same snapshot (etcdutl    │
//                     --bump-revision --mark-compacted; a new cluster ID), one call per member. ┘
//   startEtcd         etcd released everywhere; waits for every member healthy.
//   startControlPlane kube-apiserver released, /readyz through the endpoint awaited, then the
//                     controller-manager and scheduler released.
//   waitNodes         every Node Ready again, its kubelet's Lease renewed after the restart, and
//                     every machine whose services were held Running again in Marina's view.
//   resume            out of service no more.
//
// Every machine-level call goes through the provider contract's MachineActions (the machine
// agent does the work) and is idempotent, so a crash of Marina at any point re-runs the step.
// A failure ends the operation with a message that says what state the cluster is left in.
import { join } from 'node:path';
import type { Machine } from '../api/kinds.js';
import { hasKubelet, hasRole, isStarted } from '../api/machines.js';
import { ANNOTATION_PAUSED_BY } from '../api/wellknown.js';
import { decryptFile, fileDigest } from '../backup/crypto.js';
import { BlobMissing } from '../backup/targets.js';
import { etcdClientURL, etcdPeerURL } from '../bootstrap/machine.js';
import type { MachineActions, MachineRef } from '../providers/contract.js';
import { clusterMachines, typed } from '../store/typed.js';
import { clusterVersion, etcdutlStatus, removeWorkDir, snapshotAad, snapshotObjects, withTarget, workDir } from './backup.js';
import { done, fail, wait, type OperationDefinition, type StepScope } from './framework.js';

/** Revisions added on top of the highest the cluster reached, for writes after that was read. */
export const BUMP_REVISION = 1_000_000_000;

/**
 * How far to move the restored etcd's revision: past every revision the cluster's clients may have
 * seen, so resourceVersions only ever grow. Without it, restoring a snapshot older than an earlier
 * restore moves them back; a watch resuming from a newer one then waits for the server to reach it
 * and misses everything written meanwhile (virtual kubelets left new pods Pending for minutes).
 */
export function revisionBump(snapshotRevision: number, highestSeen: number): number {
  return Math.max(0, highestSeen - snapshotRevision) + BUMP_REVISION;
}
const CONTROL_PLANE_SERVICES = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'];
/** While the cluster is out of service every second counts: look again soon. */
const OUT_OF_SERVICE_POLL_MS = 500;

/** A machine as the restore recorded it in preflight. */
interface Member {
  name: string;
  uid: string;
  address: string;
  provider: string;
}

function parseMinor(v: string): [number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)\./.exec(v);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** Why a snapshot of `snap` may not be restored into a cluster running `cluster`, or undefined. */
export function versionProblem(snap: string, cluster: string): string | undefined {
  const a = parseMinor(snap);
  const b = parseMinor(cluster);
  if (!a || !b) return `cannot compare Kubernetes versions ${snap} and ${cluster}`;
  if (a[0] !== b[0] || a[1] > b[1]) return `the snapshot is of Kubernetes ${snap}, newer than the cluster's ${cluster}: restoring it would hand the apiservers data they do not know`;
  if (b[1] - a[1] > 1) return `the snapshot is of Kubernetes ${snap}, more than one minor older than the cluster's ${cluster}`;
  return undefined;
}

const refOf = (sc: StepScope, m: Member): MachineRef => ({ project: sc.op.metadata.project ?? '', cluster: sc.cluster.metadata.name, name: m.name, uid: m.uid });
const members = (sc: StepScope, kind: 'etcd' | 'controlplane'): Member[] => (sc.records.preflight?.[kind] as Member[] | undefined) ?? [];
const restoreId = (sc: StepScope) => (sc.op.metadata.uid ?? sc.op.metadata.name).toLowerCase();

function actionsOf(sc: Pick<StepScope, 'deps'>, provider: string): MachineActions {
  const actions = sc.deps.providers.get(provider).actions;
  if (!actions) throw new Error(`provider ${provider} offers no machine actions`);
  return actions;
}

async function preflight(sc: StepScope) {
  const { op, cluster, deps } = sc;
  const project = op.metadata.project ?? '';
  const params = op.spec.restore!;
  const snap = await snapshotObjects(deps).get(project, params.snapshot);
  if (!snap) return fail(`Snapshot ${params.snapshot} does not exist in project ${project}`);
  const st = snap.status ?? {};
  if (st.phase !== 'Completed') return fail(`Snapshot ${params.snapshot} is ${st.phase ?? 'Pending'}, not Completed`);
  if (st.clusterUID !== cluster.metadata.uid && !params.allowOtherCluster) {
    return fail(`Snapshot ${params.snapshot} was taken of another cluster (uid ${st.clusterUID}; this one is ${cluster.metadata.uid}); set spec.restore.allowOtherCluster to restore it anyway`);
  }
  const version = clusterVersion(cluster, deps.defaultKubernetesVersion);
  const problem = versionProblem(st.kubernetesVersion ?? '', version);
  if (problem) return fail(problem);

  const machines = (await clusterMachines(deps.store, project, cluster.metadata.name)).filter((m) => !m.metadata.deletionTimestamp);
  const describe = (m: Machine): Member => ({ name: m.metadata.name, uid: m.metadata.uid ?? '', address: m.status?.address ?? '', provider: m.spec.provider });
  const etcd = machines.filter((m) => hasRole(m, 'etcd'));
  const cp = machines.filter((m) => hasRole(m, 'controlplane'));
  // Up, not necessarily settled: a machine whose agent briefly reports a restarting process is
  // Provisioning in Marina's view and can be restored all the same.
  const down = [...etcd, ...cp].filter((m) => !isStarted(m) || m.status?.phase === 'Failed' || m.status?.phase === 'Pending' || !m.status?.address);
  if (down.length > 0) return fail(`machines not up: ${down.map((m) => `${m.metadata.name} (${m.status?.phase ?? 'Pending'})`).join(', ')}; a restore needs every etcd and control-plane machine started`);
  // A provider whose machines cannot hold services and restore etcd's data (an OpenStack VM: Marina
  // has no channel to its agent for that) makes the restore impossible: say so now, not by retrying.
  const unable = [...new Set([...etcd, ...cp].map((m) => m.spec.provider))].filter((p) => !deps.providers.get(p).actions);
  if (unable.length > 0) {
    return fail(`the machines of provider ${unable.join(', ')} offer no actions (holding services, restoring etcd's data): a restore of this cluster is not possible`);
  }

  // The stored object: present, the bytes written, decrypting to the bytes taken, readable by etcdutl.
  const dir = await workDir(deps, op.metadata.uid ?? op.metadata.name);
  const enc = join(dir, 'snapshot.enc');
  try {
    await withTarget(deps, project, snap.spec.target ?? '', (target) => target.get(st.location ?? '', enc, sc.signal));
  } catch (err) {
    if (err instanceof BlobMissing) return fail(`Snapshot ${params.snapshot} is missing from its target: ${err.message}`);
    throw err;
  }
  const stored = await fileDigest(enc);
  if (stored.sha256 !== st.storedSha256) return fail(`Snapshot ${params.snapshot} is corrupted in its target: SHA-256 ${stored.sha256}, recorded ${st.storedSha256}`);
  const file = join(dir, 'snapshot.db');
  let plain;
  try {
    plain = await decryptFile(deps.encryptionKey, snapshotAad(project, st.clusterUID ?? '', snap.metadata.name), enc, file);
  } catch (err) {
    return fail(`Snapshot ${params.snapshot}: ${(err as Error).message}`);
  }
  if (plain.sha256 !== st.sha256) return fail(`Snapshot ${params.snapshot} decrypts to SHA-256 ${plain.sha256}, recorded ${st.sha256}`);
  let status;
  try {
    status = await etcdutlStatus(file, version);
  } catch (err) {
    return fail(`Snapshot ${params.snapshot}: ${(err as Error).message}`);
  }
  const highest = await highestRevision(sc, etcd);
  const bumpRevision = revisionBump(status.revision, highest);
  Object.assign(sc.record, { file, sha256: plain.sha256, revision: status.revision, highestRevision: highest, bumpRevision, etcd: etcd.map(describe), controlplane: cp.map(describe) });
  return done(`Snapshot ${params.snapshot} verified (revision ${status.revision}, ${status.totalKey} keys); ${etcd.length} etcd members and ${cp.length} control planes to restore`);
}

/**
 * The highest revision the cluster is known to have reached: the live etcd's when it answers, and
 * never below any snapshot taken of it (a restore into a cluster whose etcd is down still knows those).
 */
async function highestRevision(sc: StepScope, etcd: Machine[]): Promise<number> {
  const { op, cluster, deps } = sc;
  const snapshots = (await snapshotObjects(deps).list({ project: op.metadata.project ?? '' })).filter((s) => s.status?.clusterUID === cluster.metadata.uid);
  let highest = Math.max(0, ...snapshots.map((s) => s.status?.etcdRevision ?? 0));
  const urls = etcd.filter((m) => m.status?.address).map((m) => etcdClientURL(m.status!.address!));
  try {
    const api = await deps.connections.etcd(cluster, urls);
    const signal = AbortSignal.any([sc.signal, AbortSignal.timeout(10_000)]);
    for (const url of urls) {
      const st = await api?.status?.(url, { signal }).catch(() => undefined);
      if (st) highest = Math.max(highest, st.revision);
    }
  } catch {
    // Unreachable: the snapshots' revisions (and the margin in BUMP_REVISION) have to do.
  }
  return highest;
}

async function pause(sc: StepScope) {
  const clusters = typed(sc.deps.store, 'Cluster');
  const c = await clusters.get(sc.op.metadata.project ?? '', sc.cluster.metadata.name);
  if (!c) return fail('the cluster is gone');
  if (c.metadata.annotations?.[ANNOTATION_PAUSED_BY] !== sc.op.metadata.name) {
    await clusters.update({ ...c, metadata: { ...c.metadata, annotations: { ...c.metadata.annotations, [ANNOTATION_PAUSED_BY]: sc.op.metadata.name } } });
  }
  return done('health alerts and healing paused for the cluster');
}

/**
 * Stops the services at once (SIGKILL): etcd's data is replaced and the control plane is
 * stateless, so a graceful stop would only add its grace period (about 17 s of the cluster's time
 * out of service with 10,000 objects; etcd is crash-safe, should the restore end before its data
 * was touched and it start on the old data again).
 */
async function hold(sc: StepScope, kind: 'etcd' | 'controlplane') {
  const names = kind === 'etcd' ? ['etcd'] : CONTROL_PLANE_SERVICES;
  await Promise.all(members(sc, kind).map((m) => actionsOf(sc, m.provider).holdServices(refOf(sc, m), names, { signal: sc.signal, immediate: true })));
  return done(`${names.join(', ')} stopped on ${members(sc, kind).map((m) => m.name).join(', ')}`);
}

async function restoreEtcd(sc: StepScope) {
  const file = String(sc.records.preflight!.file);
  const sha256 = String(sc.records.preflight!.sha256);
  const etcd = members(sc, 'etcd');
  const initialCluster = etcd.map((m) => `${m.name}=${etcdPeerURL(m.address)}`).join(',');
  const id = restoreId(sc);
  // Recorded by preflight, so a step re-run after a crash bumps by the same amount.
  const bumpRevision = Number(sc.records.preflight!.bumpRevision ?? BUMP_REVISION);
  const clusterToken = `marina-${sc.cluster.metadata.uid ?? sc.cluster.metadata.name}-restore-${id.slice(0, 8)}`;
  await Promise.all(
    etcd.map((m) =>
      actionsOf(sc, m.provider).restoreEtcd(
        refOf(sc, m),
        { id, snapshotPath: file, sha256, memberName: m.name, peerURL: etcdPeerURL(m.address), initialCluster, clusterToken, bumpRevision },
        { signal: sc.signal },
      ),
    ),
  );
  sc.record.restored = etcd.map((m) => m.name);
  return done(`${etcd.length} members restored from the same snapshot (revisions bumped by ${bumpRevision}, past the highest the cluster reached; older ones compacted)`);
}

async function startEtcd(sc: StepScope) {
  const etcd = members(sc, 'etcd');
  if (!sc.record.released) {
    await Promise.all(etcd.map((m) => actionsOf(sc, m.provider).releaseServices(refOf(sc, m), ['etcd'], { signal: sc.signal })));
    sc.record.released = true;
  }
  const api = await sc.deps.connections.etcd(sc.cluster, etcd.map((m) => etcdClientURL(m.address)));
  if (!api) return fail('the cluster has no PKI');
  try {
    const health = await api.memberHealth(undefined, { signal: sc.signal });
    const healthy = health.filter((h) => h.healthy);
    if (healthy.length < etcd.length) return wait(`etcd members healthy: ${healthy.length}/${etcd.length}`, OUT_OF_SERVICE_POLL_MS);
  } catch (err) {
    return wait(`etcd is starting: ${(err as Error).message}`, OUT_OF_SERVICE_POLL_MS);
  }
  return done(`etcd is up: ${etcd.length}/${etcd.length} members healthy`);
}

/**
 * kube-apiserver first; the controller-manager and scheduler once it answers, so their leader
 * election does not give up (and their processes exit) while the apiserver loads the data.
 */
async function startControlPlane(sc: StepScope) {
  const cp = members(sc, 'controlplane');
  const release = (names: string[]) => Promise.all(cp.map((m) => actionsOf(sc, m.provider).releaseServices(refOf(sc, m), names, { signal: sc.signal })));
  if (!sc.record.released) {
    await release(['kube-apiserver']);
    sc.record.released = true;
    sc.record.at = new Date().toISOString();
  }
  const kube = await sc.deps.connections.kube(sc.cluster);
  if (!kube) return fail('the cluster has no admin kubeconfig');
  const r = await kube.readyz({ signal: sc.signal });
  if (!r.ok) return wait(`kube-apiserver is not ready: ${r.message}`, OUT_OF_SERVICE_POLL_MS);
  await release(CONTROL_PLANE_SERVICES.filter((n) => n !== 'kube-apiserver'));
  return done('kube-apiserver answers /readyz; controller-manager and scheduler started');
}

async function waitNodes(sc: StepScope) {
  const since = Date.parse(String(sc.records.startControlPlane?.at ?? new Date(0).toISOString()));
  const project = sc.op.metadata.project ?? '';
  const machines = (await clusterMachines(sc.deps.store, project, sc.cluster.metadata.name)).filter((m) => hasKubelet(m) && !m.metadata.deletionTimestamp);
  const kube = await sc.deps.connections.kube(sc.cluster);
  if (!kube) return fail('the cluster has no admin kubeconfig');
  const nodes = await kube.listNodes({ signal: sc.signal });
  const waiting: string[] = [];
  for (const m of machines) {
    const node = nodes.find((n) => n.metadata.name === m.metadata.name);
    const ready = node?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    const lease = await kube.getLease('kube-node-lease', m.metadata.name, { signal: sc.signal });
    const renewed = lease?.renewTime ? Date.parse(lease.renewTime) >= since - 1000 : false;
    if (!node) waiting.push(`${m.metadata.name} (no Node)`);
    else if (!ready || !renewed) waiting.push(`${m.metadata.name} (${ready ? 'Lease not renewed yet' : 'NotReady'})`);
  }
  if (waiting.length > 0) return wait(`Nodes not back yet: ${waiting.join(', ')}`, OUT_OF_SERVICE_POLL_MS);
  // Marina's own view too: the machines whose services were held are Running again, so the next
  // operation (or a look at the cluster) finds them as they are.
  const held = new Set([...members(sc, 'etcd'), ...members(sc, 'controlplane')].map((m) => m.name));
  const all = await clusterMachines(sc.deps.store, project, sc.cluster.metadata.name);
  const lagging = all.filter((m) => held.has(m.metadata.name) && m.status?.phase !== 'Running');
  if (lagging.length > 0) return wait(`machines not Running again yet: ${lagging.map((m) => `${m.metadata.name} (${m.status?.phase ?? 'Pending'})`).join(', ')}`, OUT_OF_SERVICE_POLL_MS);
  return done(`${machines.length} Nodes Ready; ${held.size} etcd and control-plane machines Running`);
}

async function resume(sc: StepScope) {
  await unpause(sc);
  await removeWorkDir(sc.deps, sc.op.metadata.uid ?? sc.op.metadata.name);
  const snap = sc.op.spec.restore!.snapshot;
  sc.result('snapshot', snap);
  return done(`cluster restored from Snapshot ${snap}; health and healing resumed`);
}

async function unpause(sc: Pick<StepScope, 'deps' | 'op' | 'cluster'>): Promise<void> {
  const clusters = typed(sc.deps.store, 'Cluster');
  for (let attempt = 0; attempt < 5; attempt++) {
    const c = await clusters.get(sc.op.metadata.project ?? '', sc.cluster.metadata.name);
    if (!c || c.metadata.annotations?.[ANNOTATION_PAUSED_BY] !== sc.op.metadata.name) return;
    const { [ANNOTATION_PAUSED_BY]: _gone, ...rest } = c.metadata.annotations;
    try {
      await clusters.update({ ...c, metadata: { ...c.metadata, annotations: rest } });
      return;
    } catch {
      /* a concurrent change: read again */
    }
  }
}

export const restoreOperation: OperationDefinition = {
  type: 'Restore',
  steps: [
    { name: 'preflight', run: preflight },
    { name: 'pause', run: pause },
    { name: 'stopControlPlane', disruptive: true, run: (sc) => hold(sc, 'controlplane') },
    { name: 'stopEtcd', disruptive: true, run: (sc) => hold(sc, 'etcd') },
    { name: 'restoreEtcd', disruptive: true, run: restoreEtcd },
    { name: 'startEtcd', run: startEtcd },
    { name: 'startControlPlane', run: startControlPlane },
    { name: 'waitNodes', run: waitNodes },
    { name: 'resume', run: resume },
  ],
  /**
   * Brings back what can be brought back and says where the cluster stands: before the data was
   * touched, everything is started again on its old data; once every member was restored, the
   * restored cluster is started; a restore cut off between members leaves etcd down (two
   * different clusters' data must not meet) and says so.
   */
  async cleanup(sc, why) {
    const steps = sc.op.status?.steps ?? [];
    const state = (name: string) => steps.find((s) => s.name === name)?.state ?? 'Pending';
    const etcd = (sc.records.preflight?.etcd as Member[] | undefined) ?? [];
    const cp = (sc.records.preflight?.controlplane as Member[] | undefined) ?? [];
    const ctx = { ...sc, record: {}, result: () => undefined } as StepScope;
    const release = async (ms: Member[], names: string[]) => {
      await Promise.all(ms.map((m) => actionsOf(ctx, m.provider).releaseServices(refOf(ctx, m), names, { signal: sc.signal }).catch(() => undefined)));
    };
    await removeWorkDir(sc.deps, sc.op.metadata.uid ?? sc.op.metadata.name);
    const restoring = state('restoreEtcd');
    const restoredAll = restoring === 'Succeeded';
    if (restoring === 'Running' || restoring === 'Failed') {
      return `the ${why} restore stopped while etcd's data was being replaced: etcd and the control plane stay stopped (the members may hold different data) and the cluster is OUT OF SERVICE; run a Restore again to finish it`;
    }
    await release(etcd, ['etcd']);
    await release(cp, CONTROL_PLANE_SERVICES);
    await unpause(sc);
    if (restoredAll) return 'etcd holds the snapshot\'s data; etcd and the control plane were started again and the cluster serves the restored state';
    if (state('stopControlPlane') === 'Pending') return 'nothing was stopped; the cluster is as it was';
    return 'etcd was not changed; etcd and the control plane were started again on their old data: the cluster is as it was before the restore';
  },
};
