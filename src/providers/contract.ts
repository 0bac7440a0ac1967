// The infrastructure provider contract. Controllers talk to machines and endpoints only through
// this interface; every provider (local, openstack, import, sim) implements it and passes the
// shared conformance suite in ./conformance.ts. Controllers never import a provider module: the
// server wires a ProviderRegistry at start-up.
//
// Lifecycle of one machine, driven by the Machine controller:
//   prepareMachine  → the machine's identity and address exist (local: a loopback IP; OpenStack:
//                     a Neutron port). Needed first because certificates name the address.
//   startMachine    → the machine boots with its bootstrap data (local: files + supervised
//                     processes; OpenStack: a Nova server with cloud-init user-data).
//   describeMachine → what runs now; `Missing` when the provider has no trace of it.
//   deleteMachine   → everything the provider created for the machine is gone (idempotent).
// Every call is idempotent: after a Marina restart the controller simply calls them again and the
// provider re-adopts what already exists instead of creating a second copy — including a start
// that was in flight when Marina died: a provider finds what it started by the machine's uid, not
// only by a record it writes after the fact.
//
// listMachines is the inventory the orphan sweep (src/controllers/orphans.ts) compares with the
// Machine objects: what it lists that no Machine accounts for (by uid) is reported and, after a
// grace period, deleted through deleteMachine — unless the provider sets `sweepOrphans` false.
// A provider that also makes resources a whole cluster shares (a cloud's load balancer, security
// and server groups) lists them with listClusterResources: the sweep compares them with the
// Cluster objects the same way and deletes orphans through deleteClusterResource.

export interface MachineRef {
  project: string;
  cluster: string;
  name: string;
  /** The Machine object's uid: providers tag what they create with it to tell copies apart. */
  uid: string;
}

export interface ClusterRef {
  project: string;
  name: string;
  uid: string;
}

export interface PreparedMachine {
  /** The address other machines and Marina reach this machine on. */
  address: string;
  /** Provider's stable id for the machine, e.g. `local:///<project>/<cluster>/<machine>`. */
  providerID: string;
}

/** A file the machine needs before its processes start (certificates, kubeconfigs, configs). */
export interface BootstrapFile {
  /** Relative to the machine's root (local: its data directory; OpenStack: /etc/marina). */
  path: string;
  content: string;
  /** Octal file mode; secrets use 0o600. */
  mode: number;
}

/** A long-running service of the machine, in start order (etcd before kube-apiserver). */
export interface BootstrapService {
  name: string;
  /** Binary name from the Kubernetes toolchain (etcd, kube-apiserver, ...). */
  binary: string;
  /** Arguments; `{root}` is replaced by the machine's root directory. */
  args: string[];
  /** HTTPS URL that answers 200 once the service is up (checked with the machine's client cert). */
  readyUrl?: string;
}

/** The virtual kubelet's registration, for machines that become Kubernetes Nodes. */
export interface BootstrapKubelet {
  nodeName: string;
  /** Relative path of the node's kubeconfig among the bootstrap files. */
  kubeconfig: string;
  labels: Record<string, string>;
  taints: { key: string; value?: string; effect: string }[];
  capacity: { cpu: string; memory: string; pods: string };
  kubeletVersion: string;
  /** Nameserver(s) the kubelet gives pods (the cluster DNS Service address) and the cluster's DNS domain. */
  clusterDNS?: string[];
  clusterDomain?: string;
}

/**
 * A real kubelet with containerd (runtime `containerd`, and every imported server). The machine
 * gets its client certificate through kubelet TLS bootstrap (the bootstrap token below, a CSR
 * Marina approves) and its serving certificate likewise; kubeconfigs are written on the machine,
 * because only the provider knows how the machine reaches the API endpoint.
 */
export interface BootstrapNode {
  nodeName: string;
  /** The cluster's API endpoint as Marina knows it; its host is in the apiserver certificate. */
  apiServerURL: string;
  /** Relative path of the cluster CA among the bootstrap files. */
  caFile: string;
  /** `<id>.<secret>`, valid once Marina created `bootstrap-token-<id>` in kube-system. Secret: never log. */
  bootstrapToken: string;
  /** Relative paths of kube-proxy's client certificate (CN system:kube-proxy) and key. */
  kubeProxyCertFile: string;
  kubeProxyKeyFile: string;
  /** The cluster's pod CIDR (kube-proxy's clusterCIDR; each Node gets a part of it). */
  clusterCIDR: string;
  /** kubelet clusterDNS: the 10th address of the service CIDR. */
  clusterDNS: string;
  clusterDomain: string;
  /** Labels the kubelet may set on itself at registration (Marina sets the rest). */
  labels: Record<string, string>;
  taints: { key: string; value?: string; effect: string }[];
  maxPods: number;
}

/** What a provider can do; absent fields mean yes. */
export interface ProviderCapabilities {
  /**
   * false: the provider cannot create machines on its own (imported servers join by themselves),
   * so a pool never scales out through it and healing never replaces one of its machines (it
   * alerts instead).
   */
  createsMachines?: boolean;
  /** false: no API endpoints (ensureEndpoint/deleteEndpoint refuse). */
  endpoints?: boolean;
  /**
   * How often a running machine is described again, when that must be sooner than Marina's
   * default (5 min): a cloud's server can fail without anything Marina watches noticing (Nova's
   * ERROR while the VM, and so its agent, still runs), and only describeMachine tells.
   */
  describeEveryMs?: number;
}

/** Whether the provider creates machines itself (false: imported servers, which join by themselves). */
export function createsMachines(provider: Pick<InfrastructureProvider, 'capabilities'>): boolean {
  return provider.capabilities?.createsMachines !== false;
}

/** Everything a machine needs to join its cluster: the provider-neutral "user-data". */
export interface MachineBootstrap {
  kubernetesVersion: string;
  roles: string[];
  files: BootstrapFile[];
  services: BootstrapService[];
  kubelet?: BootstrapKubelet;
  /** Instead of `kubelet`: a real kubelet and container runtime. */
  node?: BootstrapNode;
  /** HTTPS client credentials (relative file paths) to check services' readyUrl. */
  probeTls?: { ca: string; cert: string; key: string };
  /**
   * Ports of the machine's services that must also answer on 127.0.0.1: kube-apiserver's
   * ComponentStatus probes kube-controller-manager and kube-scheduler there, at a fixed address,
   * while they serve on the machine's. The machine agent relays them (src/agent/loopback-relay.ts).
   */
  loopbackPorts?: number[];
}

export type MachineState = 'Provisioning' | 'Running' | 'Failed' | 'Missing';

export interface MachineDescription {
  state: MachineState;
  address?: string;
  providerID?: string;
  /** Failed only: short machine-readable reason and a message for people. */
  failureReason?: string;
  failureMessage?: string;
  /** The machine's node agent endpoint (health, facts, metrics), when it has one. */
  agentUrl?: string;
  /** Provider bookkeeping persisted in Machine.status.providerStatus (pids, server ids). */
  providerStatus?: Record<string, unknown>;
}

/** One machine of the provider's inventory (listMachines). */
export interface ProviderMachine {
  /** Project, cluster and name of the machine, and the uid of the Machine object it was made for. */
  ref: MachineRef;
  providerID: string;
  state: MachineState;
}

/** A resource of a whole cluster the provider made (not a machine's): listed for the orphan sweep. */
export interface ProviderClusterResource {
  /** What it is, in the provider's words: `load balancer`, `security group`, `server group`. */
  kind: string;
  /** The provider's id of it. */
  id: string;
  name: string;
  /** The cluster it was made for (`name` may be '' when only the uid is recorded on the resource). */
  cluster: ClusterRef;
}

export interface EndpointDescription {
  /** https://host:port of the cluster's API load balancer. */
  url: string;
  host: string;
  port: number;
}

/**
 * Passed to every call: `signal` aborts when Marina stops and the call outlived the stop grace
 * period. A provider that waits on remote APIs should pass it on; one whose calls are quick may
 * ignore it. An aborted call may have taken effect or not: the next call (after a restart) finds out.
 */
export interface ProviderCallOptions {
  signal?: AbortSignal;
}

export interface InfrastructureProvider {
  readonly name: string;
  readonly capabilities?: ProviderCapabilities;

  /** Allocates identity and address; returns the same answer when called again. */
  prepareMachine(machine: MachineRef, opts?: ProviderCallOptions): Promise<PreparedMachine>;
  /** Boots the machine; a machine that already runs with the same uid is left as is. */
  startMachine(machine: MachineRef, bootstrap: MachineBootstrap, opts?: ProviderCallOptions): Promise<MachineDescription>;
  describeMachine(machine: MachineRef, opts?: ProviderCallOptions): Promise<MachineDescription>;
  /**
   * Stops and removes everything of the machine made for this uid; succeeds when it is already
   * gone. What the provider holds under the same name for another uid is left alone.
   */
  deleteMachine(machine: MachineRef, opts?: ProviderCallOptions): Promise<void>;

  /**
   * Every machine this provider made and still holds — prepared, running or failed — with the
   * uid it was made for, including machines no record of Marina knows any more (a start in flight
   * when Marina died). Only machines the provider holds for Marina are listed — made by it, or
   * (imported servers) joined through it — never something it merely observes.
   */
  listMachines(): Promise<ProviderMachine[]>;
  /**
   * Whether the orphan sweep may delete a listed machine that no Machine object accounts for.
   * false for providers whose machines are not Marina's to destroy (e.g. imported servers): the
   * sweep never touches them.
   */
  readonly sweepOrphans: boolean;
  /**
   * Every resource of a whole cluster the provider made and still holds, with the uid of the
   * Cluster it was made for (only with `sweepOrphans`; providers without such resources omit it).
   */
  listClusterResources?(): Promise<ProviderClusterResource[]>;
  /** Deletes one listed resource; succeeds when it is gone already. */
  deleteClusterResource?(resource: ProviderClusterResource): Promise<void>;

  /**
   * The cluster's stable API endpoint (a TCP load balancer). Its address is fixed on first call so
   * certificates can name it; `backends` (host:port of every apiserver) may change on every call.
   */
  ensureEndpoint(cluster: ClusterRef, backends: string[], opts?: ProviderCallOptions): Promise<EndpointDescription>;
  deleteEndpoint(cluster: ClusterRef, opts?: ProviderCallOptions): Promise<void>;

  /**
   * Optional: `ip:port` where this provider's real nodes of the cluster reach its API endpoint
   * (e.g. a node network's gateway), usable in Endpoints (the endpoint's own address may be
   * loopback). Marina points the cluster's `kubernetes` Service at it, so pods reach the API.
   */
  nodeAPIEndpoint?(cluster: ClusterRef): Promise<string | undefined>;

  /** Releases all provider state; running machines keep running (they survive a Marina restart). */
  close(): Promise<void>;

  /** Day-2 actions on a machine's services (restore); absent: the provider offers none. */
  readonly actions?: MachineActions;
}

/** What a restore hands each etcd machine: the snapshot (a file on Marina's host) and its member's place in the new cluster. */
export interface EtcdRestoreRequest {
  /** Identifies the restore: a repeated call with the same id is answered from the machine's record. */
  id: string;
  /** Absolute path of the (decrypted, verified) snapshot on Marina's host. */
  snapshotPath: string;
  sha256: string;
  /** This member's name and peer URL, and every member as `name=peerURL,...`. */
  memberName: string;
  peerURL: string;
  initialCluster: string;
  /** A new token: the restored members form a new etcd cluster (a new cluster ID). */
  clusterToken: string;
  bumpRevision: number;
}

/**
 * Machine-level actions of day-2 operations, provider-neutral: the machine agent performs them
 * (src/agent/control.ts); a provider only carries the call to the machine's agent. A provider
 * without them (or a machine started before they existed) answers with a ProviderError, and the
 * operation fails with that message before touching anything.
 */
export interface MachineActions {
  /**
   * Stops the named services of the machine and keeps them down (also across agent restarts).
   * `immediate`: no graceful stop (SIGKILL), for state that is thrown away anyway.
   */
  holdServices(machine: MachineRef, names: string[], opts?: ProviderCallOptions & { immediate?: boolean }): Promise<void>;
  /** Starts the named held services again. */
  releaseServices(machine: MachineRef, names: string[], opts?: ProviderCallOptions): Promise<void>;
  /** Replaces the machine's etcd data directory with the snapshot (etcd must be held). Idempotent by id. */
  restoreEtcd(machine: MachineRef, restore: EtcdRestoreRequest, opts?: ProviderCallOptions): Promise<void>;
  /**
   * Optional: moves a worker machine that cannot be replaced (an imported server) to another
   * Kubernetes version in place — its agent fetches that version's kubelet and kube-proxy (with
   * checksums, as at its start), stops them, swaps the binaries and starts them again; containerd,
   * the node's certificates and everything outside the agent's directory stay. The caller drains
   * the Node first and watches it come back Ready with the new kubeletVersion. Idempotent: asking
   * again for the version already asked for changes nothing. Absent: the provider's machines are
   * replaced by a roll instead.
   */
  upgradeNode?(machine: MachineRef, kubernetesVersion: string, opts?: ProviderCallOptions): Promise<NodeUpgradeState>;
}

/** What a provider knows about an in-place upgrade it was asked for (upgradeNode). */
export interface NodeUpgradeState {
  /** The version the machine was asked to run. */
  requested: string;
  /** When the machine's agent was last heard of (it may only learn of the request then). */
  agentSeenAt?: string;
}

export interface ProviderRegistry {
  get(name: string): InfrastructureProvider;
  /** Every provider this server runs with (the orphan sweep asks each for its inventory). */
  list(): InfrastructureProvider[];
}

export class ProviderError extends Error {
  constructor(
    readonly reason: string,
    message: string,
    /** Retrying cannot help (bad machine spec, quota): the Machine goes Failed. */
    readonly terminal = false,
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}
