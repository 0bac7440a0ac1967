// What the OpenStack provider needs from the rest of Marina, as interfaces the server implements
// (src/server/openstack-directory.ts, src/joins/machine-joins.ts) — the provider reads no store and
// serves no route itself:
//   - the directory: which cloud a cluster runs in (an OpenStackCloud object and its credentials
//     Secret) and what a machine should be (its pool's image, flavor, network and roles);
//   - the join: a single-use token for the server's first boot, and what the machine's agent last
//     reported after it joined with it.
import type { MachineBootstrap, MachineRef } from '../contract.js';

/** An OpenStackCloud object, resolved: its spec with the credential from its Secret. */
export interface CloudConfig {
  /** The OpenStackCloud object's uid: every resource made through it carries it as a tag. */
  uid: string;
  project: string;
  name: string;
  authURL: string;
  region?: string;
  interface?: 'public' | 'internal';
  applicationCredential: { id: string; secret: string };
  /** Machines' network and (optionally) subnet, names or ids. */
  network: string;
  subnet?: string;
  loadBalancer?: { network?: string; subnet?: string };
  /** Where Marina connects from (default 0.0.0.0/0). */
  managementCIDR?: string;
  /** https URL machines reach Marina at (default: the server's advertised URL). */
  marinaURL?: string;
}

/** What a machine should be, from its Machine object and its Cluster. */
export interface MachineFacts {
  clusterUid: string;
  pool: string;
  roles: string[];
  image: string;
  flavor: string;
  /** The pool's network, overriding the cloud's. */
  network?: string;
  /** The cluster's pod CIDR: pods on other nodes send from it (allowed through port security and the group). */
  podCIDR: string;
}

export interface CloudDirectory {
  /**
   * The cloud a cluster runs in. Throws a ProviderError saying what is missing (the cluster, its
   * spec.cloud, the OpenStackCloud, the Secret or a key in it).
   */
  cloudOf(project: string, cluster: string): Promise<CloudConfig>;
  /** Every usable cloud (of one project, or all): the inventory and orphans whose cluster is gone. */
  clouds(project?: string): Promise<CloudConfig[]>;
  /** The machine's facts; undefined when its Machine (or Cluster) no longer exists. */
  machine(ref: MachineRef): Promise<MachineFacts | undefined>;
}

/** The one line a new server runs to join: Marina's URL, a single-use token, the pin of Marina's CA. */
export interface JoinInstructions {
  url: string;
  token: string;
  caPin: string;
}

export interface AgentReport {
  /** The agent's last sync carried a healthy report. */
  healthy: boolean;
  message?: string;
  lastSeenAt?: string;
}

export interface MachineJoins {
  /**
   * A single-use token that lets a server join as this machine (uid-bound; an earlier unused one
   * for the machine is replaced) and hands it `bootstrap` once it did.
   */
  issue(machine: MachineRef, bootstrap: MachineBootstrap, marinaURL?: string): Promise<JoinInstructions>;
  /** What the machine's agent last reported; undefined before it joined. */
  report(machine: MachineRef): Promise<AgentReport | undefined>;
  /** The machine's server is gone: its token and credential are void. */
  forget(machine: MachineRef): Promise<void>;
}
