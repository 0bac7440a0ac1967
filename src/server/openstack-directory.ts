// The OpenStack provider's view of the store (src/providers/openstack/config.ts): which cloud a
// cluster runs in — its OpenStackCloud and the application credential in that object's Secret — and
// what each Machine should be. Failures are ProviderErrors that say what to fix, so they reach the
// Machine's condition as they are.
import { DEFAULT_POD_CIDR } from '../api/cluster-validation.js';
import { OPENSTACK_CREDENTIAL_ID, OPENSTACK_CREDENTIAL_SECRET, type OpenStackCloud } from '../api/openstack.js';
import { ProviderError, type MachineRef } from '../providers/contract.js';
import type { CloudConfig, CloudDirectory, MachineFacts } from '../providers/openstack/config.js';
import { typed } from '../store/typed.js';
import type { Store } from '../store/types.js';

export class StoreCloudDirectory implements CloudDirectory {
  private readonly clusters;
  private readonly machines;
  private readonly openstackClouds;
  private readonly secrets;

  constructor(store: Store) {
    this.clusters = typed(store, 'Cluster');
    this.machines = typed(store, 'Machine');
    this.openstackClouds = typed(store, 'OpenStackCloud');
    this.secrets = typed(store, 'Secret');
  }

  async cloudOf(project: string, clusterName: string): Promise<CloudConfig> {
    const cluster = await this.clusters.get(project, clusterName);
    if (!cluster) throw new ProviderError('ClusterGone', `cluster ${project}/${clusterName} no longer exists`);
    const name = cluster.spec.cloud;
    if (!name) throw new ProviderError('NoCloud', `cluster ${clusterName} has provider openstack but no spec.cloud`, true);
    const cloud = await this.openstackClouds.get(project, name);
    if (!cloud) throw new ProviderError('CloudNotFound', `OpenStackCloud ${project}/${name} (spec.cloud of cluster ${clusterName}) does not exist`);
    return this.resolve(cloud);
  }

  async clouds(project?: string): Promise<CloudConfig[]> {
    const all = await this.openstackClouds.list(project ? { project } : {});
    const resolved = await Promise.all(all.map((c) => this.resolve(c).catch(() => undefined)));
    return resolved.filter((c): c is CloudConfig => c !== undefined);
  }

  async machine(ref: MachineRef): Promise<MachineFacts | undefined> {
    const machine = await this.machines.get(ref.project, ref.name);
    if (!machine || machine.metadata.uid !== ref.uid) return undefined;
    const cluster = await this.clusters.get(ref.project, machine.spec.cluster);
    if (!cluster?.metadata.uid) return undefined;
    const template = machine.spec.machine ?? {};
    if (!template.image || !template.flavor) {
      // Admission refuses such pools (src/api/cluster-validation.ts); a Machine written before that rule is the pool's spec to fix.
      throw new ProviderError('NoImageOrFlavor', `pool ${machine.spec.pool} names no ${template.image ? 'flavor' : 'image'} (spec.nodePools[].machine)`, true);
    }
    return {
      clusterUid: cluster.metadata.uid,
      pool: machine.spec.pool,
      roles: [...machine.spec.roles],
      image: template.image,
      flavor: template.flavor,
      ...(template.network ? { network: template.network } : {}),
      podCIDR: cluster.spec.network?.podCIDR ?? DEFAULT_POD_CIDR,
    };
  }

  private async resolve(cloud: OpenStackCloud): Promise<CloudConfig> {
    const project = cloud.metadata.project ?? '';
    const s = cloud.spec;
    const secret = await this.secrets.get(project, s.credentialsSecret);
    const id = secret?.spec.data[OPENSTACK_CREDENTIAL_ID];
    const value = secret?.spec.data[OPENSTACK_CREDENTIAL_SECRET];
    if (!id || !value) {
      const what = secret ? `has no ${!id ? OPENSTACK_CREDENTIAL_ID : OPENSTACK_CREDENTIAL_SECRET}` : 'does not exist';
      throw new ProviderError('CredentialsMissing', `Secret ${project}/${s.credentialsSecret} of OpenStackCloud ${cloud.metadata.name} ${what}`);
    }
    if (!cloud.metadata.uid) throw new ProviderError('CloudNotFound', `OpenStackCloud ${project}/${cloud.metadata.name} has no uid`);
    return {
      uid: cloud.metadata.uid,
      project,
      name: cloud.metadata.name,
      authURL: s.authURL,
      ...(s.region ? { region: s.region } : {}),
      ...(s.interface ? { interface: s.interface } : {}),
      applicationCredential: { id, secret: value },
      network: s.network,
      ...(s.subnet ? { subnet: s.subnet } : {}),
      ...(s.loadBalancer ? { loadBalancer: s.loadBalancer } : {}),
      ...(s.managementCIDR ? { managementCIDR: s.managementCIDR } : {}),
      ...(s.marinaURL ? { marinaURL: s.marinaURL } : {}),
    };
  }
}
