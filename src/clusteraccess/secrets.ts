// A cluster's PKI and admin kubeconfig, read from its Secrets; the parsed PKI is kept per Secret
// revision, so the CAs are loaded once, not on every reconcile.
import type { Cluster } from '../api/kinds.js';
import { adminKubeconfigSecretName, pkiSecretName } from '../api/wellknown.js';
import { loadClusterPkiFromSecretData, type ClusterPki } from '../bootstrap/clusterPki.js';
import type { Store } from '../store/types.js';
import { typed } from '../store/typed.js';

const cacheKey = (c: { project: string; name: string }): string => `${c.project}/${c.name}`;

/** Reads a cluster's PKI and admin kubeconfig Secrets, keeping the parsed PKI per Secret revision. */
export class ClusterSecrets {
  private readonly pkis = new Map<string, { uid: string; rv: string; pki: Promise<ClusterPki> }>();
  private readonly secrets;

  constructor(store: Store) {
    this.secrets = typed(store, 'Secret');
  }

  async pki(cluster: Cluster): Promise<ClusterPki | undefined> {
    const project = cluster.metadata.project ?? '';
    const secret = await this.secrets.get(project, pkiSecretName(cluster.metadata.name));
    const key = cacheKey({ project, name: cluster.metadata.name });
    if (!secret) {
      this.pkis.delete(key);
      return undefined;
    }
    const uid = secret.metadata.uid ?? '';
    const rv = secret.metadata.resourceVersion ?? '';
    let entry = this.pkis.get(key);
    if (!entry || entry.uid !== uid || entry.rv !== rv) {
      entry = { uid, rv, pki: loadClusterPkiFromSecretData(secret.spec.data) };
      this.pkis.set(key, entry);
      entry.pki.catch(() => this.pkis.delete(key));
    }
    return entry.pki;
  }

  async adminKubeconfig(cluster: Cluster): Promise<string | undefined> {
    const secret = await this.secrets.get(cluster.metadata.project ?? '', adminKubeconfigSecretName(cluster.metadata.name));
    return secret?.spec.data.kubeconfig;
  }

  forget(cluster: { project: string; name: string }): void {
    this.pkis.delete(cacheKey(cluster));
  }
}
