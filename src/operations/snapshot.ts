// The Snapshot operation: take → store → verify. Other types take a snapshot with the same steps
// under their own names (an Upgrade's automatic snapshot): snapshotSteps().
//   take    a snapshot of one healthy, voting etcd member, streamed through Marina's etcd client
//           (the v3 gateway's /v3/maintenance/snapshot) into a work file and checked against
//           etcd's own checksum; `etcdutl snapshot status` must read it. The Snapshot object is
//           created (Pending) with what is known.
//   store   encrypted (AES-256-GCM, Marina's key) into the target.
//   verify  read back from the target: stored checksum, decryption, plaintext checksum and
//           `etcdutl snapshot status` again — a snapshot that would fail at restore time fails now.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { resolveBackup } from '../api/backup-policy.js';
import type { Cluster } from '../api/kinds.js';
import { API_VERSION } from '../api/meta.js';
import { ANNOTATION_PAUSED_BY, FINALIZER_SNAPSHOT, LABEL_CLUSTER, LABEL_SCHEDULED, SYSTEM_SCHEDULER } from '../api/wellknown.js';
import { decryptFile, encryptFile, fileDigest } from '../backup/crypto.js';
import { etcdClientURL } from '../bootstrap/machine.js';
import { startedEtcdMachines } from '../clusteraccess/etcd.js';
import { clusterMachines } from '../store/typed.js';
import { clusterVersion, etcdutlStatus, removeWorkDir, snapshotAad, snapshotKey, snapshotObjects, withTarget, workDir } from './backup.js';
import { done, fail, wait, type OperationDefinition, type StepDefinition, type StepScope } from './framework.js';

/** The names the three snapshot steps have in an operation type (their records are found by them). */
export interface SnapshotStepNames {
  take: string;
  store: string;
  verify: string;
}

const SNAPSHOT_STEPS: SnapshotStepNames = { take: 'take', store: 'store', verify: 'verify' };

/** `<cluster>-<yyyymmdd-hhmmss>-<4 of the operation's uid>`: sortable, unique, a DNS label. */
export function snapshotName(cluster: string, at: Date, uid: string): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const suffix = uid.replace(/[^a-z0-9]/g, '').slice(0, 4) || 'x';
  return `${cluster.slice(0, 63 - stamp.length - suffix.length - 2)}-${stamp}-${suffix}`.toLowerCase();
}

function targetOf(sc: StepScope): string {
  return sc.op.spec.snapshot?.target ?? resolveBackup(sc.cluster.spec.backup).target;
}

async function take(sc: StepScope) {
  const { op, cluster, deps } = sc;
  const paused = cluster.metadata.annotations?.[ANNOTATION_PAUSED_BY];
  if (paused) return wait(`the cluster is out of service for operation ${paused}`);
  const project = op.metadata.project ?? '';
  const machines = startedEtcdMachines(await clusterMachines(deps.store, project, cluster.metadata.name)).filter((m) => m.status.phase === 'Running');
  if (machines.length === 0) return wait('no etcd member is running');
  const api = await deps.connections.etcd(cluster, machines.map((m) => etcdClientURL(m.status.address)));
  if (!api?.snapshot) return fail('this Marina cannot reach the etcd of the cluster (no PKI, or a client without snapshots)');
  const health = await api.memberHealth(undefined, { signal: sc.signal });
  const voting = health.filter((h) => h.healthy && !h.isLearner);
  const member = machines.find((m) => voting.some((h) => h.clientURLs.includes(etcdClientURL(m.status.address))));
  if (!member) return wait(`no healthy voting etcd member to take the snapshot from (${health.map((h) => `${h.name || h.id}: ${h.healthy ? 'healthy' : h.error}`).join('; ')})`);
  const endpoint = etcdClientURL(member.status.address);
  const dir = await workDir(deps, op.metadata.uid ?? op.metadata.name);
  const file = join(dir, 'snapshot.db');
  const startTime = new Date().toISOString();
  const got = await api.snapshot(endpoint, file, { signal: sc.signal });
  const version = clusterVersion(cluster, deps.defaultKubernetesVersion);
  const fileStatus = await etcdutlStatus(file, version);
  const etcdStatus = await api.status?.(endpoint, { signal: sc.signal }).catch(() => undefined);
  const name = (sc.record.snapshot as string | undefined) ?? snapshotName(cluster.metadata.name, new Date(startTime), op.metadata.uid ?? '');
  Object.assign(sc.record, {
    snapshot: name,
    file,
    member: member.metadata.name,
    sha256: got.sha256,
    size: got.size,
    revision: fileStatus.revision,
    etcdVersion: etcdStatus?.version ?? '',
    kubernetesVersion: version,
    startTime,
  });
  await ensureSnapshotObject(sc, cluster, name, targetOf(sc));
  sc.result('snapshot', name);
  return done(`${got.size} bytes from ${member.metadata.name} at revision ${fileStatus.revision} (${fileStatus.totalKey} keys)`);
}

/** The Snapshot object, created once (Pending) with the finalizer that deletes its stored copy. */
async function ensureSnapshotObject(sc: StepScope, cluster: Cluster, name: string, target: string): Promise<void> {
  const snaps = snapshotObjects(sc.deps);
  const project = sc.op.metadata.project ?? '';
  if (await snaps.get(project, name)) return;
  const scheduled = sc.op.status?.requestedBy === SYSTEM_SCHEDULER;
  await snaps.create({
    apiVersion: API_VERSION,
    kind: 'Snapshot',
    metadata: {
      name,
      project,
      labels: { [LABEL_CLUSTER]: cluster.metadata.name, ...(scheduled ? { [LABEL_SCHEDULED]: 'true' } : {}) },
      finalizers: [FINALIZER_SNAPSHOT],
    },
    spec: { cluster: cluster.metadata.name, ...(target ? { target } : {}) },
    status: { phase: 'Pending', operation: sc.op.metadata.name, clusterUID: cluster.metadata.uid ?? '', scheduled, startTime: String(sc.record.startTime) },
  });
}

async function store(sc: StepScope, names: SnapshotStepNames) {
  const taken = sc.records[names.take]!;
  const file = String(taken.file);
  if (!existsSync(file)) return fail('the snapshot file of the take step is gone (Marina restarted and lost its work directory); run the operation again');
  const project = sc.op.metadata.project ?? '';
  const name = String(taken.snapshot);
  const encrypted = `${file}.enc`;
  const { plain, stored } = await encryptFile(sc.deps.encryptionKey, snapshotAad(project, sc.cluster.metadata.uid ?? '', name), file, encrypted);
  if (plain.sha256 !== taken.sha256) return fail(`the snapshot file changed on disk (SHA-256 ${plain.sha256}, taken ${String(taken.sha256)})`);
  const key = snapshotKey(project, sc.cluster.metadata.name, name);
  const where = await withTarget(sc.deps, project, targetOf(sc), async (target) => {
    await target.put(key, encrypted, sc.signal);
    return target.description;
  });
  Object.assign(sc.record, { key, storedSha256: stored.sha256, storedSize: stored.size });
  return done(`encrypted (${stored.size} bytes) to ${where}${key}`);
}

async function verify(sc: StepScope, names: SnapshotStepNames) {
  const taken = sc.records[names.take]!;
  const stored = sc.records[names.store]!;
  const project = sc.op.metadata.project ?? '';
  const name = String(taken.snapshot);
  const dir = await workDir(sc.deps, sc.op.metadata.uid ?? sc.op.metadata.name);
  const back = join(dir, 'readback.enc');
  await withTarget(sc.deps, project, targetOf(sc), (target) => target.get(String(stored.key), back, sc.signal));
  const digest = await fileDigest(back);
  if (digest.sha256 !== stored.storedSha256) return fail(`the target returned other bytes than were written (SHA-256 ${digest.sha256}, wrote ${String(stored.storedSha256)})`);
  const plainFile = join(dir, 'readback.db');
  const plain = await decryptFile(sc.deps.encryptionKey, snapshotAad(project, sc.cluster.metadata.uid ?? '', name), back, plainFile);
  if (plain.sha256 !== taken.sha256) return fail(`the stored snapshot decrypts to other bytes (SHA-256 ${plain.sha256}, taken ${String(taken.sha256)})`);
  const status = await etcdutlStatus(plainFile, String(taken.kubernetesVersion));
  if (status.revision !== taken.revision) return fail(`etcdutl reads revision ${status.revision} from the stored snapshot, ${String(taken.revision)} when taken`);
  const snaps = snapshotObjects(sc.deps);
  const obj = await snaps.get(project, name);
  if (!obj) return fail(`Snapshot ${name} was deleted while it was being taken`);
  await snaps.updateStatus({
    ...obj,
    status: {
      ...obj.status,
      phase: 'Completed',
      sha256: String(taken.sha256),
      size: Number(taken.size),
      storedSha256: String(stored.storedSha256),
      storedSize: Number(stored.storedSize),
      location: String(stored.key),
      etcdRevision: Number(taken.revision),
      etcdVersion: String(taken.etcdVersion),
      kubernetesVersion: String(taken.kubernetesVersion),
      clusterUID: sc.cluster.metadata.uid ?? '',
      member: String(taken.member),
      completionTime: new Date().toISOString(),
      message: `verified: decrypts, SHA-256 matches, etcdutl reads revision ${status.revision} with ${status.totalKey} keys`,
    },
  });
  await removeWorkDir(sc.deps, sc.op.metadata.uid ?? sc.op.metadata.name);
  return done(`Snapshot ${name} verified (revision ${status.revision}, ${status.totalKey} keys)`);
}

/** take → store → verify under `names`. */
export function snapshotSteps(names: SnapshotStepNames = SNAPSHOT_STEPS): StepDefinition[] {
  return [
    { name: names.take, run: take },
    { name: names.store, run: (sc) => store(sc, names) },
    { name: names.verify, run: (sc) => verify(sc, names) },
  ];
}

/** After a failure or a cancel of the snapshot steps: the work files go, an unfinished Snapshot is marked Failed. */
export async function cleanupSnapshot(sc: Parameters<NonNullable<OperationDefinition['cleanup']>>[0], why: 'failed' | 'cancelled', names: SnapshotStepNames = SNAPSHOT_STEPS): Promise<string> {
  await removeWorkDir(sc.deps, sc.op.metadata.uid ?? sc.op.metadata.name);
  const name = sc.records[names.take]?.snapshot as string | undefined;
  if (!name) return 'no snapshot was taken; the cluster was not touched';
  const snaps = snapshotObjects(sc.deps);
  const obj = await snaps.get(sc.op.metadata.project ?? '', name);
  if (obj && obj.status?.phase !== 'Completed') {
    const failed = (sc.op.status?.steps ?? []).find((st) => st.state === 'Failed');
    const message = failed ? `${failed.name}: ${failed.message ?? 'failed'}` : `the operation was ${why}`;
    await snaps.updateStatus({ ...obj, status: { ...obj.status, phase: 'Failed', completionTime: new Date().toISOString(), message } });
    return `Snapshot ${name} is marked Failed; the cluster was not touched`;
  }
  return `Snapshot ${name} stays; the cluster was not touched`;
}

export const snapshotOperation: OperationDefinition = {
  type: 'Snapshot',
  steps: snapshotSteps(),
  cleanup: (sc, why) => cleanupSnapshot(sc, why),
};
