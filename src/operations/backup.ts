// What the Snapshot and Restore operations share: the blob store of a backup target, the work
// directory of an operation, the snapshot's encryption identity, and etcdutl's reading of a file.
import { execFile } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Cluster } from '../api/kinds.js';
import { LocalBlobStore, localTargetRoot, S3BlobStore, type BlobStore } from '../backup/targets.js';
import { typed } from '../store/typed.js';
import { resolveExtraBinary } from '../toolchain/resolve.js';
import type { OperationDeps } from './framework.js';

const execFileAsync = promisify(execFile);

/** The blob store of target `name` in `project` ('' = the built-in local target). */
export async function openTarget(deps: OperationDeps, project: string, name: string): Promise<BlobStore & { close?(): void }> {
  if (!name) return new LocalBlobStore(localTargetRoot(deps.dataDir));
  const target = await typed(deps.store, 'BackupTarget').get(project, name);
  if (!target) throw new Error(`BackupTarget ${name} does not exist in project ${project}`);
  if (target.spec.type === 'local' || !target.spec.s3) return new LocalBlobStore(localTargetRoot(deps.dataDir, name));
  const s3 = target.spec.s3;
  const secret = await typed(deps.store, 'Secret').get(project, s3.credentialsSecret);
  const accessKeyId = secret?.spec.data.accessKeyId;
  const secretAccessKey = secret?.spec.data.secretAccessKey;
  if (!accessKeyId || !secretAccessKey) throw new Error(`Secret ${s3.credentialsSecret} (credentials of BackupTarget ${name}) needs data.accessKeyId and data.secretAccessKey`);
  return new S3BlobStore({
    endpoint: s3.endpoint,
    bucket: s3.bucket,
    accessKeyId,
    secretAccessKey,
    ...(s3.region ? { region: s3.region } : {}),
    ...(s3.prefix ? { prefix: s3.prefix } : {}),
    ...(s3.forcePathStyle !== undefined ? { forcePathStyle: s3.forcePathStyle } : {}),
  });
}

/** Uses a target and closes it afterwards. */
export async function withTarget<T>(deps: OperationDeps, project: string, name: string, fn: (store: BlobStore) => Promise<T>): Promise<T> {
  const store = await openTarget(deps, project, name);
  try {
    return await fn(store);
  } finally {
    store.close?.();
  }
}

/** The object key of a snapshot in its target. */
export function snapshotKey(project: string, cluster: string, snapshot: string): string {
  return `${project}/${cluster}/${snapshot}.snap`;
}

/** What the encryption authenticates: a stored snapshot decrypts only as itself. */
export function snapshotAad(project: string, clusterUID: string, snapshot: string): string {
  return `marina-snapshot/${project}/${clusterUID}/${snapshot}`;
}

/** A fresh private directory for one operation's files (removed when the operation ends). */
export async function workDir(deps: OperationDeps, opUid: string): Promise<string> {
  const dir = join(deps.dataDir, 'work', 'operations', opUid);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export async function removeWorkDir(deps: OperationDeps, opUid: string): Promise<void> {
  await rm(join(deps.dataDir, 'work', 'operations', opUid), { recursive: true, force: true });
}

export interface SnapshotFileStatus {
  revision: number;
  totalKey: number;
  totalSize: number;
  hash: number;
}

/** `etcdutl snapshot status` of a file: refuses what etcd could not restore. */
export async function etcdutlStatus(file: string, kubernetesVersion: string): Promise<SnapshotFileStatus> {
  const etcdutl = resolveExtraBinary('etcdutl', kubernetesVersion);
  try {
    const { stdout } = await execFileAsync(etcdutl, ['snapshot', 'status', file, '-w', 'json'], { timeout: 5 * 60_000 });
    return JSON.parse(stdout) as SnapshotFileStatus;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`etcdutl snapshot status cannot read it: ${(e.stderr || e.message).trim().slice(-1000)}`);
  }
}

/** The cluster's Kubernetes version (what its machines run). */
export function clusterVersion(cluster: Cluster, fallback: string): string {
  return cluster.status?.kubernetesVersion ?? cluster.spec.kubernetesVersion ?? fallback;
}

export function snapshotObjects(deps: OperationDeps) {
  return typed(deps.store, 'Snapshot');
}

