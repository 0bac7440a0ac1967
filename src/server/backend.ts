// Where a Marina server keeps its state: the embedded SQLite database in its data directory (one
// process), or the Kubernetes API of a management cluster (several replicas; the controllers run on
// the one that holds a Lease). This module opens the store, and for the Kubernetes backend also
// hands out what leader election and the bootstrap token need.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { isAlreadyExists, KubeClient, loadKubeconfig, Resources, type KubeConnection } from '../kube/client.js';
import { loadOrCreateEncryptionKey } from '../store/crypto.js';
import { openKubernetesStore } from '../store/kubernetes/store.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { AuditLog, SeriesStore, Store, TokenStore } from '../store/types.js';

/** A store with the audit log, tokens and series beside it (what the server needs). */
export interface ServerStore extends Store {
  readonly audit: AuditLog;
  readonly tokens: TokenStore;
  readonly series: SeriesStore;
}

export type StoreConfig =
  | { kind: 'sqlite' }
  | {
      kind: 'kubernetes';
      /** Kubeconfig of the management cluster; absent: in-cluster (service account). */
      kubeconfig?: string;
      /** Namespace of Marina's objects (default: the pod's namespace in-cluster, else `marina`). */
      namespace?: string;
      /** Lease timing (seconds): duration 15, renew deadline 10, retry period 2. */
      lease?: { durationSeconds?: number; renewDeadlineSeconds?: number; retryPeriodSeconds?: number };
      /** This replica's identity in the Lease (default: hostname_pid_random). */
      identity?: string;
    };

export interface Backend {
  store: ServerStore;
  /** The key the store encrypts Secrets with; the same on every replica (snapshots use it too). */
  encryptionKey: Buffer;
  /** For the Kubernetes backend: what leader election runs against. */
  election?: {
    client: KubeClient;
    namespace: string;
    leaseDurationMs: number;
    renewDeadlineMs: number;
    retryPeriodMs: number;
    identity?: string;
  };
  /** Keeps the bootstrap admin token where operators of this backend look for it. */
  saveAdminToken?(token: string): Promise<void>;
  describe: string;
  close(): Promise<void>;
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
export const ADMIN_TOKEN_SECRET = 'marina-admin-token';

/** The in-cluster connection of a pod's service account, or undefined outside a pod. */
export function inClusterConnection(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): (KubeConnection & { namespace: string }) | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  if (!host || !existsSync(join(dir, 'token'))) return undefined;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(join(dir, 'ca.crt')),
    token: readFileSync(join(dir, 'token'), 'utf8').trim(),
    tokenFile: join(dir, 'token'),
    namespace: readFileSync(join(dir, 'namespace'), 'utf8').trim(),
  };
}

/**
 * The key every replica shares: `MARINA_ENCRYPTION_KEY`, the file `MARINA_ENCRYPTION_KEY_FILE`
 * (a mounted Kubernetes Secret), or an existing `<dataDir>/encryption.key`. Never created here: a
 * replica that made up its own key would write Secrets the others cannot read.
 */
export function loadSharedEncryptionKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): Buffer {
  const file = env.MARINA_ENCRYPTION_KEY_FILE;
  if (!env.MARINA_ENCRYPTION_KEY && file) {
    return loadOrCreateEncryptionKey(dataDir, { MARINA_ENCRYPTION_KEY: readFileSync(file, 'utf8').trim() });
  }
  if (!env.MARINA_ENCRYPTION_KEY && !existsSync(join(dataDir, 'encryption.key'))) {
    throw new Error(
      '--store kubernetes needs the encryption key all replicas share: set MARINA_ENCRYPTION_KEY (64 hex characters) or MARINA_ENCRYPTION_KEY_FILE, or put it in <data-dir>/encryption.key',
    );
  }
  return loadOrCreateEncryptionKey(dataDir, env);
}

export async function openBackend(config: StoreConfig, dataDir: string, logger: Logger): Promise<Backend> {
  if (config.kind === 'sqlite') {
    const encryptionKey = loadOrCreateEncryptionKey(dataDir);
    const store = openSqliteStore({ path: join(dataDir, 'marina.db'), encryptionKey });
    return { store, encryptionKey, describe: `sqlite ${join(dataDir, 'marina.db')}`, close: () => store.close() };
  }
  let conn: KubeConnection;
  let namespace = config.namespace;
  if (config.kubeconfig) {
    conn = await loadKubeconfig(config.kubeconfig);
  } else {
    const inCluster = inClusterConnection();
    if (!inCluster) throw new Error('--store kubernetes needs --kubeconfig FILE (or to run in a pod with a service account)');
    conn = inCluster;
    namespace ??= inCluster.namespace;
  }
  namespace ??= 'marina';
  const client = new KubeClient(conn, { userAgent: 'marina-server' });
  const storeLog = logger.child({ module: 'store' });
  try {
    const encryptionKey = loadSharedEncryptionKey(dataDir);
    const store = await openKubernetesStore({ client, namespace, encryptionKey, logger: storeLog });
    const lease = config.lease ?? {};
    return {
      store,
      encryptionKey,
      election: {
        client,
        namespace,
        leaseDurationMs: (lease.durationSeconds ?? 15) * 1000,
        renewDeadlineMs: (lease.renewDeadlineSeconds ?? 10) * 1000,
        retryPeriodMs: (lease.retryPeriodSeconds ?? 2) * 1000,
        ...(config.identity ? { identity: config.identity } : {}),
      },
      async saveAdminToken(token) {
        try {
          await client.create(Resources.secrets, {
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: { name: ADMIN_TOKEN_SECRET, namespace, labels: { 'app.kubernetes.io/part-of': 'marina' } },
            type: 'Opaque',
            stringData: { token },
          } as never);
        } catch (err) {
          if (!isAlreadyExists(err)) throw err;
        }
      },
      describe: `kubernetes ${conn.server} namespace ${namespace}`,
      async close() {
        await store.close();
        client.close();
      },
    };
  } catch (err) {
    client.close();
    throw err;
  }
}
