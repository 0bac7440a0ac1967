// The schemas of every kind Marina serves. These TypeBox definitions are the single source for
// request validation, the OpenAPI document and the TypeScript types.
import { CloneType, Type, type Static, type TSchema } from '@sinclair/typebox';
import { API_VERSION, Name, ObjectMeta, statusSchema } from './meta.js';
import { OperationTypeSchema } from './operations.js';

const StringMap = Type.Record(Type.String({ minLength: 1, maxLength: 253 }), Type.String({ maxLength: 4096 }));

export function envelope<S extends TSchema, T extends TSchema>(kind: string, spec: S, status: T, description: string) {
  return Type.Object(
    {
      apiVersion: Type.Literal(API_VERSION),
      kind: Type.Literal(kind),
      metadata: ObjectMeta,
      spec,
      // Written by Marina's controllers (PUT .../status); ignored in create and replace bodies.
      status: Type.Optional(CloneType(status, { readOnly: true })),
    },
    { additionalProperties: false, $id: kind, description },
  );
}

// ---------- User & Project (tenancy) ----------

export const Role = Type.Union(
  [Type.Literal('admin'), Type.Literal('operator'), Type.Literal('member'), Type.Literal('viewer')],
  { description: 'admin: everything incl. members; operator: day-2 operations; member: create/change; viewer: read' },
);
export type Role = Static<typeof Role>;

export const UserSpec = Type.Object(
  {
    displayName: Type.Optional(Type.String({ maxLength: 256 })),
    platformAdmin: Type.Optional(Type.Boolean({ description: 'may manage users and every project' })),
  },
  { additionalProperties: false },
);
export const User = envelope('User', UserSpec, statusSchema({}), 'A person or robot that holds API tokens');
export type User = Static<typeof User>;

export const Member = Type.Object({ user: Name, role: Role }, { additionalProperties: false });

/** Checkpoints: which operation types wait for a second person (operator or higher) to approve them. */
export const OperationPolicy = Type.Object(
  {
    approvalRequired: Type.Optional(
      Type.Array(OperationTypeSchema, { maxItems: 16, uniqueItems: true, description: 'operation types that wait in AwaitingApproval until another user approves them' }),
    ),
  },
  { additionalProperties: false },
);
export type OperationPolicy = Static<typeof OperationPolicy>;

export const ProjectSpec = Type.Object(
  {
    displayName: Type.Optional(Type.String({ maxLength: 256 })),
    members: Type.Array(Member, { maxItems: 1000, default: [] }),
    /** Applies to every cluster of the project, on top of the cluster's own policy. */
    operations: Type.Optional(OperationPolicy),
  },
  { additionalProperties: false },
);
export const Project = envelope('Project', ProjectSpec, statusSchema({}), 'A tenant: owns clusters and their members');
export type Project = Static<typeof Project>;

// ---------- Secret ----------

export const SecretSpec = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 253, description: 'e.g. marina.dev/pki, marina.dev/kubeconfig' }),
    data: Type.Record(Type.String({ minLength: 1, maxLength: 253 }), Type.String({ maxLength: 1048576 })),
  },
  { additionalProperties: false },
);
export const Secret = envelope('Secret', SecretSpec, statusSchema({}), 'Sensitive data, encrypted at rest');
export type Secret = Static<typeof Secret>;

// ---------- Cluster, NodePool, Machine ----------

export const MachineRole = Type.Union([Type.Literal('etcd'), Type.Literal('controlplane'), Type.Literal('worker')]);
export type MachineRole = Static<typeof MachineRole>;

export const Taint = Type.Object(
  {
    key: Type.String({ minLength: 1, maxLength: 316 }),
    value: Type.Optional(Type.String({ maxLength: 63 })),
    effect: Type.Union([Type.Literal('NoSchedule'), Type.Literal('PreferNoSchedule'), Type.Literal('NoExecute')]),
  },
  { additionalProperties: false },
);
export type Taint = Static<typeof Taint>;

export const MachineSpecTemplate = Type.Object(
  {
    image: Type.Optional(Type.String({ maxLength: 256, description: 'provider image (OpenStack: Glance image)' })),
    flavor: Type.Optional(Type.String({ maxLength: 256, description: 'provider size (OpenStack: Nova flavor)' })),
    network: Type.Optional(Type.String({ maxLength: 256, description: 'provider network (OpenStack: Neutron network)' })),
    cpu: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'CPUs reported as Node capacity' })),
    memoryMiB: Type.Optional(Type.Integer({ minimum: 64, maximum: 16777216, description: 'memory reported as Node capacity' })),
  },
  { additionalProperties: false },
);
export type MachineSpecTemplate = Static<typeof MachineSpecTemplate>;

export const RuntimeType = Type.Union([Type.Literal('virtual'), Type.Literal('containerd')], {
  description:
    'virtual (default for local pools): a virtual kubelet registers the Node and reports pods Running, nothing runs; containerd: a real kubelet with containerd, runc and bridge CNI runs the pods (always for imported servers)',
});
export type RuntimeType = Static<typeof RuntimeType>;

export const RuntimeOptions = Type.Object(
  {
    type: Type.Optional(RuntimeType),
    maxPods: Type.Optional(Type.Integer({ minimum: 1, maximum: 2500 })),
  },
  { additionalProperties: false },
);
export type RuntimeOptions = Static<typeof RuntimeOptions>;

/** Auto-healing of a pool's machines. Defaults: on, startup 600 s, unhealthy 60 s, 40 % in flight (1 for etcd/controlplane). */
export const HealingPolicy = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ description: 'replace unhealthy machines automatically (default true)' })),
    startupTimeoutSeconds: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 86400, description: 'a machine not Running this long after it was started is replaced (default 600)' }),
    ),
    unhealthyTimeoutSeconds: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 86400,
        description: 'a machine whose Node is NotReady/Unknown or whose agent is unreachable this long is replaced (default 60); a machine its provider reports failed is replaced at once',
      }),
    ),
    maxInFlight: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: 500 }), Type.String({ pattern: '^[0-9]{1,3}%$' })], {
        description: 'storm guard: at most this many machines (or this percentage of the pool, at least 1) are being replaced at once (default 40%); etcd and controlplane pools: always 1',
      }),
    ),
    drainTimeoutSeconds: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 86400, description: 'upper bound for draining a replaced Node through the eviction API (default 60)' }),
    ),
  },
  { additionalProperties: false },
);
export type HealingPolicy = Static<typeof HealingPolicy>;

/** How often Marina checks a cluster, and when slow provisioning raises an alert. */
export const HealthPolicy = Type.Object(
  {
    intervalSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600, description: 'simple checks (readyz, agents, Nodes, etcd health) every this many seconds (default 10)' })),
    metricsIntervalSeconds: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 3600, description: 'advanced checks (Prometheus metrics of etcd, apiservers, agents) every this many seconds (default 60)' }),
    ),
    nodeProvisioningAlertSeconds: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 604800, description: 'alert NodeProvisioningSlow when a machine is not Running after this long (default 600)' }),
    ),
    clusterProvisioningAlertSeconds: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 604800, description: 'alert ClusterProvisioningSlow when a new cluster is not Ready after this long (default 1200)' }),
    ),
    certificateExpiryAlertDays: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 3650, description: 'alert CertificateNearExpiry when a certificate ends within this many days (default 30)' }),
    ),
  },
  { additionalProperties: false },
);
export type HealthPolicy = Static<typeof HealthPolicy>;

export const Provider = Type.Union([
  Type.Literal('local'),
  Type.Literal('openstack'),
  Type.Literal('import'),
  Type.Literal('sim'),
]);
export type Provider = Static<typeof Provider>;

// Scheduled etcd snapshots. Defaults: on, every 6 hours (0 */6 * * *), keep 8, Marina's data directory.
export const BackupPolicy = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ description: 'take scheduled snapshots (default true)' })),
    schedule: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'cron expression (5 or 6 fields, UTC), default "0 */6 * * *"' })),
    retain: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'scheduled snapshots kept, newest first (default 8)' })),
    target: Type.Optional(CloneType(Name, { description: "a BackupTarget of the project (default: Marina's data directory)" })),
  },
  { additionalProperties: false },
);
export type BackupPolicy = Static<typeof BackupPolicy>;

/**
 * How a worker pool rolls its machines when what they are made of changes (machine spec, runtime,
 * Kubernetes version, certificates): like a Deployment's RollingUpdate. etcd and control-plane
 * pools always roll one machine at a time, surge first (maxSurge 1, maxUnavailable 0).
 */
export const RolloutPolicy = Type.Object(
  {
    maxSurge: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 500, description: 'machines created above spec.replicas while rolling (default 1)' }),
    ),
    maxUnavailable: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 500, description: 'machines that may be unavailable (draining or not yet replaced) while rolling (default 0)' }),
    ),
  },
  { additionalProperties: false },
);
export type RolloutPolicy = Static<typeof RolloutPolicy>;

export const NodePoolTemplate = Type.Object(
  {
    name: Name,
    roles: Type.Array(MachineRole, { minItems: 1, maxItems: 3, uniqueItems: true }),
    replicas: Type.Integer({ minimum: 0, maximum: 500 }),
    machine: Type.Optional(MachineSpecTemplate),
    labels: Type.Optional(StringMap),
    taints: Type.Optional(Type.Array(Taint, { maxItems: 64 })),
    runtime: Type.Optional(RuntimeOptions),
    healing: Type.Optional(HealingPolicy),
    rollout: Type.Optional(RolloutPolicy),
    /** Another provider than the cluster's for this pool, e.g. `import` for users' own servers. */
    provider: Type.Optional(CloneType(Provider, { description: "this pool's provider (default: the cluster's); import: users' own servers join with a join token" })),
  },
  { additionalProperties: false },
);
export type NodePoolTemplate = Static<typeof NodePoolTemplate>;

export const ClusterSpec = Type.Object(
  {
    provider: Type.Optional(Provider),
    cloud: Type.Optional(CloneType(Name, { description: 'provider openstack: the OpenStackCloud of the project the machines and the API endpoint are made in' })),
    kubernetesVersion: Type.Optional(
      Type.String({ pattern: '^v[0-9]+\\.[0-9]+\\.[0-9]+$', description: 'one of the toolchain versions; default: newest' }),
    ),
    network: Type.Optional(
      Type.Object(
        {
          podCIDR: Type.Optional(Type.String({ description: 'IPv4 CIDR for pods, default 10.244.0.0/16' })),
          serviceCIDR: Type.Optional(Type.String({ description: 'IPv4 CIDR for services, default 10.96.0.0/16' })),
          cni: Type.Optional(Type.Union([Type.Literal('none')], { description: 'virtual nodes need no CNI' })),
        },
        { additionalProperties: false },
      ),
    ),
    nodePools: Type.Array(NodePoolTemplate, { minItems: 1, maxItems: 32 }),
    health: Type.Optional(HealthPolicy),
    backup: Type.Optional(BackupPolicy),
    operations: Type.Optional(OperationPolicy),
    certificateRenewalDays: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 180,
        description: "re-issue the machines' and the admin kubeconfig's certificates (a RotateCertificates operation) when one ends within this many days (default 30); leaf certificates live 365 days",
      }),
    ),
  },
  { additionalProperties: false },
);
export type ClusterSpec = Static<typeof ClusterSpec>;

/** A certificate authority (ca, etcd-ca, front-proxy-ca), the admin kubeconfig's certificate, or the earliest-ending leaf of a pool (`pool/<name>`). */
export const CertificateStatus = Type.Object(
  { name: Type.String(), notAfter: Type.String(), notBefore: Type.Optional(Type.String()) },
  { additionalProperties: false },
);
export const PoolSummary = Type.Object(
  {
    name: Type.String(),
    replicas: Type.Integer(),
    readyReplicas: Type.Integer(),
    /** Machines made of the pool's current template (version, machine spec, certificates). */
    updatedReplicas: Type.Optional(Type.Integer()),
    availableReplicas: Type.Optional(Type.Integer()),
    /** The Kubernetes version the pool rolls its machines to (it follows the cluster's in upgrade order). */
    kubernetesVersion: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export const HealthSummary = Type.Object(
  {
    healthy: Type.Boolean(),
    /** Failing checks, e.g. `agent/demo-workers-x1y2z: timeout after 2000 ms` (at most 20). */
    failing: Type.Array(Type.String(), { maxItems: 20 }),
    nodesReady: Type.Integer(),
    nodesTotal: Type.Integer(),
  },
  { additionalProperties: false },
);
export type HealthSummary = Static<typeof HealthSummary>;
export const ClusterStatus = statusSchema({
  phase: Type.Optional(
    Type.Union([Type.Literal('Provisioning'), Type.Literal('Ready'), Type.Literal('Degraded'), Type.Literal('Deleting'), Type.Literal('Failed')]),
  ),
  endpoint: Type.Optional(Type.String()),
  /** The control-plane machines the endpoint sends new connections to (a roll takes one out before it stops it). */
  endpointBackends: Type.Optional(Type.Array(Type.String())),
  kubernetesVersion: Type.Optional(Type.String()),
  pools: Type.Optional(Type.Array(PoolSummary)),
  certificates: Type.Optional(Type.Array(CertificateStatus)),
  /** Summary of the newest health check (details: GET .../clusters/{name}/health). */
  health: Type.Optional(HealthSummary),
});
export type ClusterStatus = Static<typeof ClusterStatus>;
export const Cluster = envelope('Cluster', ClusterSpec, ClusterStatus, 'A Kubernetes cluster and its node pools');
export type Cluster = Static<typeof Cluster>;

export const NodePoolSpec = Type.Object(
  {
    cluster: Name,
    roles: NodePoolTemplate.properties.roles,
    replicas: NodePoolTemplate.properties.replicas,
    kubernetesVersion: Type.String(),
    provider: Provider,
    machine: Type.Optional(MachineSpecTemplate),
    labels: Type.Optional(StringMap),
    taints: Type.Optional(Type.Array(Taint, { maxItems: 64 })),
    runtime: Type.Optional(RuntimeOptions),
    healing: Type.Optional(HealingPolicy),
    rollout: Type.Optional(RolloutPolicy),
    /** The cluster's certificate generation (set by certificate rotations): a change rolls the pool's machines. */
    certificates: Type.Optional(Type.String({ maxLength: 128 })),
  },
  { additionalProperties: false },
);
export type NodePoolSpec = Static<typeof NodePoolSpec>;
/** One machine the pool replaced, newest last (bounded). */
export const Remediation = Type.Object(
  {
    machine: Type.String(),
    reason: Type.String(),
    message: Type.String(),
    at: Type.String(),
  },
  { additionalProperties: false },
);
export type Remediation = Static<typeof Remediation>;
/** A machine the pool cordoned and drains before removing it in a roll. */
export const DrainRecord = Type.Object(
  { machine: Type.String(), since: Type.String(), message: Type.Optional(Type.String({ maxLength: 4096 })) },
  { additionalProperties: false },
);
export type DrainRecord = Static<typeof DrainRecord>;
/** Where a pool's roll stands (Deployment-like: what the machines should be made of, who is being drained). */
export const RolloutStatus = Type.Object(
  {
    /** Hash of what a machine of the pool is made of now (the `marina.dev/template-hash` label of up-to-date machines). */
    templateHash: Type.String(),
    draining: Type.Optional(Type.Array(DrainRecord, { maxItems: 500 })),
    /** The last drain that hit the pool's drain timeout: the roll left that machine in place. */
    lastDrainTimeout: Type.Optional(Type.Object({ machine: Type.String(), at: Type.String(), message: Type.String({ maxLength: 4096 }) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
export type RolloutStatus = Static<typeof RolloutStatus>;
export const NodePoolStatus = statusSchema({
  replicas: Type.Optional(Type.Integer()),
  readyReplicas: Type.Optional(Type.Integer()),
  /** Machines whose health checks pass (Healthy=True). */
  healthyReplicas: Type.Optional(Type.Integer()),
  /** Machines made of the current template (see rollout.templateHash). */
  updatedReplicas: Type.Optional(Type.Integer()),
  /** Ready, healthy and not being drained. */
  availableReplicas: Type.Optional(Type.Integer()),
  machines: Type.Optional(Type.Array(Type.String())),
  remediations: Type.Optional(Type.Array(Remediation, { maxItems: 50 })),
  rollout: Type.Optional(RolloutStatus),
});
export const NodePool = envelope('NodePool', NodePoolSpec, NodePoolStatus, 'A set of machines with the same roles, managed by its Cluster');
export type NodePool = Static<typeof NodePool>;

export const MachineSpec = Type.Object(
  {
    cluster: Name,
    pool: Name,
    roles: NodePoolTemplate.properties.roles,
    provider: Provider,
    kubernetesVersion: Type.String(),
    machine: Type.Optional(MachineSpecTemplate),
    labels: Type.Optional(StringMap),
    taints: Type.Optional(Type.Array(Taint, { maxItems: 64 })),
    runtime: Type.Optional(RuntimeOptions),
    /** The cluster's certificate generation the machine's certificates were issued under (from its pool). */
    certificates: Type.Optional(Type.String({ maxLength: 128 })),
    /** Upper bound for draining this machine's Node before it is deleted anyway (from its pool's healing policy). */
    drainTimeoutSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400 })),
  },
  { additionalProperties: false },
);
export type MachineSpec = Static<typeof MachineSpec>;
export const MachineStatus = statusSchema({
  phase: Type.Optional(
    Type.Union([Type.Literal('Pending'), Type.Literal('Provisioning'), Type.Literal('Running'), Type.Literal('Deleting'), Type.Literal('Failed')]),
  ),
  address: Type.Optional(Type.String()),
  providerID: Type.Optional(Type.String()),
  nodeName: Type.Optional(Type.String()),
  nodeReady: Type.Optional(Type.Boolean()),
  /** Control-plane machines: the etcd client URLs their kube-apiserver was started with. */
  etcdServers: Type.Optional(Type.Array(Type.String(), { maxItems: 64 })),
  /** When the earliest of the machine's leaf certificates ends (recorded when they are issued). */
  certificatesNotAfter: Type.Optional(Type.String()),
  /** The machine agent's base URL (health, facts, metrics), as the provider reports it. */
  agentURL: Type.Optional(Type.String()),
  failureReason: Type.Optional(Type.String()),
  failureMessage: Type.Optional(Type.String()),
  /** Opaque provider bookkeeping (pids, ports, server ids) that lets Marina re-adopt a machine. */
  providerStatus: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type MachineStatus = Static<typeof MachineStatus>;
export const Machine = envelope('Machine', MachineSpec, MachineStatus, 'One host (VM, server or local process set) of a pool');
export type Machine = Static<typeof Machine>;

// ---------- Alert & NotificationChannel (monitoring) ----------

export const Severity = Type.Union([Type.Literal('critical'), Type.Literal('warning'), Type.Literal('info')], {
  description: 'critical: act now; warning: act soon; info: for the record',
});
export type Severity = Static<typeof Severity>;

/** PascalCase rule names, e.g. NodeProvisioningSlow; they become the `alertname` label. */
export const AlertRuleName = Type.String({
  pattern: '^[A-Z][A-Za-z0-9]*$',
  minLength: 1,
  maxLength: 63,
  description: 'the rule that raised the alert, PascalCase (e.g. NodeProvisioningSlow, ComponentUnhealthy, HealingHeldBack)',
});

export const AlertState = Type.Union([Type.Literal('firing'), Type.Literal('resolved')]);
export type AlertState = Static<typeof AlertState>;

export const AlertSpec = Type.Object(
  {
    rule: AlertRuleName,
    severity: Severity,
    cluster: Type.Optional(Name),
    labels: Type.Optional(
      Type.Record(Type.String({ minLength: 1, maxLength: 128 }), Type.String({ maxLength: 1024 }), {
        maxProperties: 32,
        description: 'identifying labels (Prometheus label names); with rule, project and cluster they make the fingerprint',
      }),
    ),
    annotations: Type.Object(
      {
        summary: Type.String({ minLength: 1, maxLength: 1024 }),
        description: Type.Optional(Type.String({ maxLength: 16384 })),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type AlertSpec = Static<typeof AlertSpec>;

export const NotificationOutcome = Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')], {
  description: 'pending: will be retried at nextAttemptAt; delivered: the receiver answered 2xx; failed: gave up',
});
export type NotificationOutcome = Static<typeof NotificationOutcome>;

/** One alert state (of one firing episode) sent to one channel. */
export const NotificationRecord = Type.Object(
  {
    channel: Name,
    state: AlertState,
    /** startsAt of the episode this notification belongs to (an alert may fire again later). */
    startsAt: Type.String(),
    outcome: NotificationOutcome,
    attempts: Type.Integer({ minimum: 0 }),
    /** Time of the last attempt. */
    at: Type.String(),
    nextAttemptAt: Type.Optional(Type.String()),
    /** HTTP status code of the last attempt, when the receiver answered. */
    code: Type.Optional(Type.Integer()),
    /** Error of the last failed attempt. */
    error: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: false },
);
export type NotificationRecord = Static<typeof NotificationRecord>;

export const AlertStatus = statusSchema({
  state: Type.Optional(AlertState),
  startsAt: Type.Optional(Type.String()),
  endsAt: Type.Optional(Type.String()),
  lastEvaluatedAt: Type.Optional(Type.String()),
  fingerprint: Type.Optional(Type.String({ pattern: '^[0-9a-f]{16}$' })),
  /** Delivery log, bounded: the current episode's records plus the newest older ones. */
  notifications: Type.Optional(Type.Array(NotificationRecord, { maxItems: 200 })),
});
export type AlertStatus = Static<typeof AlertStatus>;
export const Alert = envelope('Alert', AlertSpec, AlertStatus, 'A condition Marina noticed, firing or resolved; written by Marina, delivered to notification channels');
export type Alert = Static<typeof Alert>;

export const ChannelType = Type.Union([Type.Literal('webhook'), Type.Literal('slack')], {
  description: 'webhook: Alertmanager webhook payload (version 4); slack: Slack-compatible incoming webhook',
});
export type ChannelType = Static<typeof ChannelType>;

export const NotificationChannelSpec = Type.Object(
  {
    type: ChannelType,
    url: Type.String({ minLength: 1, maxLength: 2048, description: 'http or https URL the notifications are POSTed to' }),
    sendResolved: Type.Optional(Type.Boolean({ default: true, description: 'also notify when an alert resolves (default true)' })),
    rules: Type.Optional(Type.Array(AlertRuleName, { minItems: 1, maxItems: 64, uniqueItems: true, description: 'only these rules (default: all)' })),
    minSeverity: Type.Optional(Severity),
  },
  { additionalProperties: false },
);
export type NotificationChannelSpec = Static<typeof NotificationChannelSpec>;
export const NotificationChannelStatus = statusSchema({
  delivered: Type.Optional(Type.Integer({ minimum: 0 })),
  failedAttempts: Type.Optional(Type.Integer({ minimum: 0 })),
  lastDeliveredAt: Type.Optional(Type.String()),
  lastFailedAt: Type.Optional(Type.String()),
  lastError: Type.Optional(Type.String({ maxLength: 1024 })),
});
export type NotificationChannelStatus = Static<typeof NotificationChannelStatus>;
export const NotificationChannel = envelope(
  'NotificationChannel',
  NotificationChannelSpec,
  NotificationChannelStatus,
  'Where the alerts of a project are delivered (webhook in the Alertmanager format, or Slack)',
);
export type NotificationChannel = Static<typeof NotificationChannel>;
