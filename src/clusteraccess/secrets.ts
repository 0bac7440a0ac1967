// A cluster's PKI and admin kubeconfig, read from its Secrets. Every health pass and most
// reconciles need them, so what was read is kept until a watch on Secrets says it changed: the
// parsed PKI per Secret revision (the CAs are loaded once), the admin kubeconfig as text. No
// Secret is read and decrypted again while it stays the same.
import type { Cluster, Secret } from '../api/kinds.js';
import { adminKubeconfigSecretName, pkiSecretName } from '../api/wellknown.js';
import { loadClusterPkiFromSecretData, type ClusterPki } from '../bootstrap/clusterPki.js';
import type { Store, Watch } from '../store/types.js';
import { typed } from '../store/typed.js';

const cacheKey = (c: { project: string; name: string }): string => `${c.project}/${c.name}`;
const refOf = (cluster: Cluster) => ({ project: cluster.metadata.project ?? '', name: cluster.metadata.name });

/** Reads a cluster's PKI and admin kubeconfig Secrets, keeping what it read until the Secret changes. */
export class ClusterSecrets {
  private readonly pkis = new Map<string, { uid: string; rv: string; pki: Promise<ClusterPki> }>();
  /** What each Secret (project/name) held when it was last read; null: it did not exist. */
  private readonly read = new Map<string, { uid: string; rv: string; kubeconfig?: string } | null>();
  /** Bumped by every change of a Secret, so a read that raced with a change is not kept. */
  private readonly changes = new Map<string, number>();
  private readonly secrets;
  private readonly watch: Watch;

  constructor(store: Store) {
    this.secrets = typed(store, 'Secret');
    // From now on: nothing is kept that was read before the watch started.
    this.watch = store.watch({ kind: 'Secret' }, (ev) => {
      const key = cacheKey({ project: ev.object.metadata.project ?? '', name: ev.object.metadata.name });
      this.read.delete(key);
      this.changes.set(key, (this.changes.get(key) ?? 0) + 1);
    });
  }

  /** The Secret's uid, revision and (for kubeconfig Secrets) its kubeconfig; null when it does not exist. */
  private async lookup(project: string, name: string): Promise<{ uid: string; rv: string; kubeconfig?: string; secret?: Secret } | null> {
    const key = cacheKey({ project, name });
    const known = this.read.get(key);
    if (known !== undefined) return known;
    const before = this.changes.get(key) ?? 0;
    const secret = await this.secrets.get(project, name);
    const entry = secret ? { uid: secret.metadata.uid ?? '', rv: secret.metadata.resourceVersion ?? '', ...(secret.spec.data.kubeconfig ? { kubeconfig: secret.spec.data.kubeconfig } : {}) } : null;
    if ((this.changes.get(key) ?? 0) === before) this.read.set(key, entry);
    return entry && { ...entry, ...(secret ? { secret } : {}) };
  }

  async pki(cluster: Cluster): Promise<ClusterPki | undefined> {
    const { project, name } = refOf(cluster);
    const key = cacheKey({ project, name });
    const found = await this.lookup(project, pkiSecretName(name));
    if (!found) {
      this.pkis.delete(key);
      return undefined;
    }
    let entry = this.pkis.get(key);
    if (!entry || entry.uid !== found.uid || entry.rv !== found.rv) {
      const secret = found.secret ?? (await this.secrets.get(project, pkiSecretName(name)));
      if (!secret) return undefined;
      entry = { uid: found.uid, rv: found.rv, pki: loadClusterPkiFromSecretData(secret.spec.data) };
      this.pkis.set(key, entry);
      entry.pki.catch(() => this.pkis.delete(key));
    }
    return entry.pki;
  }

  async adminKubeconfig(cluster: Cluster): Promise<string | undefined> {
    const { project, name } = refOf(cluster);
    return (await this.lookup(project, adminKubeconfigSecretName(name)))?.kubeconfig;
  }

  forget(cluster: { project: string; name: string }): void {
    this.pkis.delete(cacheKey(cluster));
    for (const n of [pkiSecretName(cluster.name), adminKubeconfigSecretName(cluster.name)]) {
      this.read.delete(cacheKey({ project: cluster.project, name: n }));
      this.changes.delete(cacheKey({ project: cluster.project, name: n }));
    }
  }

  close(): void {
    this.watch.stop();
  }
}
