// Names one module writes and another reads back: labels, annotations, finalizers, the names and
// types of a cluster's Secrets, and the condition types and reasons that more than one module
// relies on. One home, so a writer and its readers cannot drift apart.
import type { MachineRole, Taint } from './kinds.js';

// ---------- labels ----------

/** On NodePools, Machines, Secrets and Alerts of a cluster, and on its Nodes: the cluster's name. */
export const LABEL_CLUSTER = 'marina.dev/cluster';
/** On NodePools, Machines and Nodes: the pool template (`spec.nodePools[].name`) they come from. */
export const LABEL_POOL = 'marina.dev/pool';
/** On Machines: the name of the NodePool object that owns them. */
export const LABEL_NODEPOOL = 'marina.dev/nodepool';
/** On Nodes: the Machine that runs them; on a real kubelet's bootstrap-token Secret: the Machine it is for. */
export const LABEL_MACHINE = 'marina.dev/machine';
/**
 * On Machines: the hash of what the machine is made of (roles, provider, machine spec, runtime,
 * Kubernetes — or for etcd-only machines etcd — version, certificate generation), like a
 * Deployment's pod-template-hash. A machine whose hash differs from its pool's is rolled.
 */
export const LABEL_TEMPLATE_HASH = 'marina.dev/template-hash';
/** On Addons the add-on starter created from the AddonPolicy's default set (value `true`). */
export const LABEL_DEFAULT_ADDON = 'addons.marina.dev/default';

/**
 * On every object an add-on applies in a cluster: `app.kubernetes.io/managed-by=marina-addons`.
 * The add-on controllers watch each managed kind with this selector, so it also says what they see.
 */
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_ADDONS = 'marina-addons';
/** On every object an add-on applies in a cluster except Namespaces (several add-ons may share one): the add-on. */
export const LABEL_ADDON = 'addons.marina.dev/addon';
/** The value of LABEL_MANAGED_BY on what Marina itself writes into a cluster (the kubelet bootstrap binding, the `kubernetes` Endpoints). */
export const MANAGED_BY_MARINA = 'marina';
/** The ClusterRoleBinding that lets bootstrap tokens (group system:bootstrappers) create kubelet CSRs. */
export const KUBELET_BOOTSTRAP_BINDING = 'marina:kubelet-bootstrap';

/** Node-role label of each Marina role (kubectl's ROLES column reads `node-role.kubernetes.io/*`). */
export const ROLE_LABELS: Readonly<Record<MachineRole, string>> = {
  etcd: 'node-role.kubernetes.io/etcd',
  controlplane: 'node-role.kubernetes.io/control-plane',
  worker: 'node-role.kubernetes.io/worker',
};

/** On control-plane Nodes that are not also workers. */
export const CONTROL_PLANE_TAINT: Readonly<Taint> = { key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' };

// ---------- annotations ----------

/** On Nodes: the labels and taints Marina set, so removals can be told from others' additions. */
export const ANNOTATION_MANAGED_LABELS = 'marina.dev/managed-labels';
export const ANNOTATION_MANAGED_TAINTS = 'marina.dev/managed-taints';
/** On a surge Machine: the name of the (working) Machine it is brought up to replace. */
export const ANNOTATION_REPLACES = 'marina.dev/replaces';
/**
 * On a Cluster: the Operation (`<name>`) that took it out of service (a restore). While it is
 * set, the health checker raises no health alerts and the NodePools replace no machine.
 */
export const ANNOTATION_PAUSED_BY = 'marina.dev/paused-by';
/**
 * On a Cluster: the Operation (an Upgrade or RotateCertificates that failed) that stopped its
 * pools' rolls. While it is set, no pool starts replacing another machine and drains in progress
 * are undone; the machines that run keep serving. Running the operation again removes it.
 */
export const ANNOTATION_ROLLOUT_PAUSED_BY = 'marina.dev/rollout-paused-by';
/** On the admin kubeconfig Secret: the certificate generation its certificate was issued under. */
export const ANNOTATION_CERTIFICATES_GENERATION = 'marina.dev/certificates-generation';
/** On a Machine: the ReplaceMachine Operation that asked its pool to surge a replacement for it. */
export const ANNOTATION_REPLACE_REQUESTED = 'marina.dev/replace-requested';
/** The kubelet's mark on a static pod's mirror (a drain leaves those alone). */
export const ANNOTATION_MIRROR_POD = 'kubernetes.io/config.mirror';
/** On Machines of servers that joined with a token asking for approval: `required`. */
export const ANNOTATION_APPROVAL = 'marina.dev/approval';
/** Set to `true` by an operator (`marina cluster approve`) to admit such a machine. */
export const ANNOTATION_APPROVED = 'marina.dev/approved';
/** On Machines of imported servers: the host name the server reported when it joined. */
export const ANNOTATION_HOSTNAME = 'marina.dev/hostname';
/** On Machines of imported servers: the id of the join token the server joined with. */
export const ANNOTATION_JOIN_TOKEN = 'marina.dev/join-token';
/** On a Cluster at creation: `none` skips the default add-ons. */
export const ANNOTATION_ADDON_DEFAULTS = 'addons.marina.dev/defaults';
/** On a Cluster, written by the add-on starter once it created the default set (never again, even if an add-on is disabled later). */
export const ANNOTATION_ADDON_DEFAULTS_APPLIED = 'addons.marina.dev/defaults-applied';
/** On an object in a cluster: never delete it (prune, add-on disabled), as Gardener's keep-object. */
export const ANNOTATION_ADDON_KEEP = 'addons.marina.dev/keep';
/** On an object in a cluster: leave it alone entirely (no drift correction, no deletion, no health verdict). */
export const ANNOTATION_ADDON_IGNORE = 'addons.marina.dev/ignore';

// ---------- finalizers ----------

export const FINALIZER_CLUSTER = 'marina.dev/cluster';
export const FINALIZER_NODEPOOL = 'marina.dev/nodepool';
export const FINALIZER_MACHINE = 'marina.dev/machine';
/** On Snapshots: the stored object is deleted from its target before the Snapshot goes. */
export const FINALIZER_SNAPSHOT = 'marina.dev/snapshot';

/** On Snapshots: the operation that took it ran on the cluster's schedule (retention deletes only those). */
export const LABEL_SCHEDULED = 'marina.dev/scheduled';
/** On Operations: their type (for label selectors). */
export const LABEL_OPERATION_TYPE = 'marina.dev/operation-type';

/** The requester of operations Marina starts itself (the backup schedule). */
export const SYSTEM_SCHEDULER = 'system:backup-schedule';
/** The requester of the certificate rotations Marina starts when certificates near their end. */
export const SYSTEM_CERTIFICATE_RENEWAL = 'system:certificate-renewal';

/** On Addons: the objects the add-on put into its cluster are removed before the Addon goes. */
export const FINALIZER_ADDON = 'addons.marina.dev/cleanup';

// ---------- a cluster's Secrets ----------

export const SECRET_TYPE_PKI = 'marina.dev/pki';
export const SECRET_TYPE_KUBECONFIG = 'marina.dev/kubeconfig';
/** Join tokens of imported servers: Secrets of this type hold only the token's SHA-256. */
export const SECRET_TYPE_JOIN_TOKEN = 'marina.dev/join-token';
/** On join-token Secrets: the token's id (the public half of `<id>.<secret>`). */
export const LABEL_JOIN_TOKEN = 'marina.dev/join-token';

/** The Secret holding a cluster's CAs and service-account key. */
export function pkiSecretName(cluster: string): string {
  return `${cluster}-pki`;
}

/** The Secret holding a cluster's admin kubeconfig (`marina cluster kubeconfig` serves it). */
export function adminKubeconfigSecretName(cluster: string): string {
  return `${cluster}-admin-kubeconfig`;
}

// ---------- conditions ----------

/** Condition types of a Cluster. Ready sums up the five before Healthy; Healthy is the health checker's. */
export const ClusterCondition = {
  Ready: 'Ready',
  PKIReady: 'PKIReady',
  EndpointReady: 'EndpointReady',
  EtcdReady: 'EtcdReady',
  ControlPlaneReady: 'ControlPlaneReady',
  PoolsReady: 'PoolsReady',
  Healthy: 'Healthy',
  /**
   * Clusters with real kubelets only: bootstrap tokens may request kubelet certificates and the
   * `kubernetes` Service points where the real nodes reach the API. Not part of Ready.
   */
  NodeBootstrapReady: 'NodeBootstrapReady',
} as const;

/** Condition types of a NodePool. */
export const NodePoolCondition = {
  Ready: 'Ready',
  Scaled: 'Scaled',
  Healthy: 'Healthy',
  HealingHeldBack: 'HealingHeldBack',
  /** True when every machine is made of the pool's current template; False while rolling, with what it waits for. */
  UpToDate: 'UpToDate',
} as const;

/** Reasons of a NodePool's UpToDate condition that other modules (the operations) read. */
export const UpToDateReason = {
  UpToDate: 'UpToDate',
  RollingUpdate: 'RollingUpdate',
  /** A drain hit the pool's drain timeout; the message names the PodDisruptionBudget that blocked it. */
  DrainTimeout: 'DrainTimeout',
  /** The cluster's rollouts are paused (ANNOTATION_ROLLOUT_PAUSED_BY) or a restore holds it. */
  Paused: 'Paused',
} as const;

/** Condition types of an Operation. */
export const OperationCondition = {
  /** True once it ended (Succeeded, Failed, Cancelled); the reason says which. */
  Complete: 'Complete',
  Approved: 'Approved',
} as const;

/** Condition types of a Machine. */
export const MachineCondition = {
  /** True once the provider was asked to start the machine: Marina's own record of a start. */
  Bootstrapped: 'Bootstrapped',
  InfrastructureReady: 'InfrastructureReady',
  NodeReady: 'NodeReady',
  /** True once the machine's etcd member votes. */
  EtcdMember: 'EtcdMember',
  EtcdMemberRemoved: 'EtcdMemberRemoved',
  Drained: 'Drained',
  NodeDeleted: 'NodeDeleted',
  /** What auto-healing reads: False only for what replacing the machine can fix. */
  Healthy: 'Healthy',
  /**
   * Real kubelets only: True once the Node registered. Until then Marina keeps the machine's
   * bootstrap token valid in the cluster and judges its kubelet's certificate requests.
   */
  NodeAdmitted: 'NodeAdmitted',
} as const;

/** Reasons of a Machine's Healthy condition (auto-healing and the provisioning watchdog read them). */
export const MachineHealthyReason = {
  /** Not running yet: a machine that never came up is the startup timeout's business. */
  Provisioning: 'Provisioning',
  MachineFailed: 'MachineFailed',
  AgentUnreachable: 'AgentUnreachable',
  NodeNotReady: 'NodeNotReady',
  Healthy: 'Healthy',
} as const;

/** Reasons of a Machine's NodeReady condition that say nothing about the Node itself. */
export const NodeReadyReason = {
  APIUnreachable: 'APIUnreachable',
  MachineNotRunning: 'MachineNotRunning',
} as const;

/** Condition types of an Addon (the CLI and the console read them). */
export const AddonCondition = {
  /** True once the current version and values are in the cluster; False names what it waits for or what failed. */
  Applied: 'Applied',
  /** Every object healthy by its kind's rule; False names the objects that are not. */
  Healthy: 'Healthy',
  /** A rollout of a new version or of values is under way. */
  Progressing: 'Progressing',
} as const;

/** Reasons of an Addon's conditions, written by its add-on controller; the console and the alert rules read them. */
export const AddonReason = {
  Applied: 'Applied',
  ApplyFailed: 'ApplyFailed',
  RenderFailed: 'RenderFailed',
  ClusterNotFound: 'ClusterNotFound',
  ClusterReplaced: 'ClusterReplaced',
  ClusterNotReady: 'ClusterNotReady',
  ClusterRunsNoWorkloads: 'ClusterRunsNoWorkloads',
  ClusterUnreachable: 'ClusterUnreachable',
  Duplicate: 'Duplicate',
  DefinitionNotFound: 'DefinitionNotFound',
  InvalidDefinition: 'InvalidDefinition',
  DependencyMissing: 'DependencyMissing',
  DependencyNotReady: 'DependencyNotReady',
  Removing: 'Removing',
  Healthy: 'Healthy',
  Unhealthy: 'Unhealthy',
  RollingOut: 'RollingOut',
  Stable: 'Stable',
} as const;
