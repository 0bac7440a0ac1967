// Day-2 operations as objects: `Operation` (one request to act on a cluster, with its steps and
// approvals), `Snapshot` (one etcd snapshot stored in a backup target) and `BackupTarget` (where
// snapshots go). The cluster's and the project's policies (schedule, retention, which operation
// types need approval) live in their specs (kinds.ts).
//
// An operation type is a name plus its own parameter object in the spec (`spec.restore`,
// `spec.replaceMachine`, ...), Kubernetes' discriminated-union style: a new type (Upgrade,
// RotateCertificates) adds its literal to OPERATION_TYPES and its parameters to OperationSpec.
import { CloneType, Type, type Static, type TSchema } from '@sinclair/typebox';
import { API_VERSION, Name, ObjectMeta, statusSchema } from './meta.js';

function envelope<S extends TSchema, T extends TSchema>(kind: string, spec: S, status: T, description: string) {
  return Type.Object(
    {
      apiVersion: Type.Literal(API_VERSION),
      kind: Type.Literal(kind),
      metadata: ObjectMeta,
      spec,
      status: Type.Optional(CloneType(status, { readOnly: true })),
    },
    { additionalProperties: false, $id: kind, description },
  );
}

// ---------- Operation ----------

/** Every operation type Marina runs. */
export const OPERATION_TYPES = ['Snapshot', 'Restore', 'ReplaceMachine', 'Upgrade', 'RotateCertificates'] as const;
export type OperationType = (typeof OPERATION_TYPES)[number];

/** Types that take the cluster (or part of it) out of service: at most one runs per cluster. */
export const DISRUPTIVE_TYPES: ReadonlySet<OperationType> = new Set(['Restore', 'ReplaceMachine', 'Upgrade', 'RotateCertificates']);

export const OperationTypeSchema = Type.Union(
  OPERATION_TYPES.map((t) => Type.Literal(t)),
  {
    description:
      'Snapshot: an etcd snapshot into a backup target; Restore: the whole cluster from a snapshot; ReplaceMachine: a new machine for an old one; Upgrade: every machine to another Kubernetes version; RotateCertificates: every certificate re-issued (and with ca: true the CAs replaced)',
  },
);

export const SnapshotParameters = Type.Object(
  {
    target: Type.Optional(CloneType(Name, { description: "the BackupTarget (default: the cluster's spec.backup.target, else Marina's data directory)" })),
  },
  { additionalProperties: false },
);
export const RestoreParameters = Type.Object(
  {
    snapshot: CloneType(Name, { description: 'the Snapshot object to restore from' }),
    allowOtherCluster: Type.Optional(Type.Boolean({ description: "restore a snapshot another cluster took (its uid differs); default false" })),
  },
  { additionalProperties: false },
);
export const ReplaceMachineParameters = Type.Object(
  { machine: CloneType(Name, { description: 'the Machine to replace' }) },
  { additionalProperties: false },
);

export const UpgradeParameters = Type.Object(
  {
    version: Type.String({
      pattern: '^v[0-9]+\\.[0-9]+\\.[0-9]+$',
      description: 'the Kubernetes version to upgrade to (one of GET /api/v1alpha1/kubernetesversions; one minor at a time, no minor downgrade)',
    }),
  },
  { additionalProperties: false },
);
export const RotateCertificatesParameters = Type.Object(
  {
    ca: Type.Optional(
      Type.Boolean({
        description: 'also replace the certificate authorities, in two phases (trust old + new, then drop the old); kubeconfigs downloaded before keep working until the second phase (default false: leaf certificates only, from the existing CAs)',
      }),
    ),
  },
  { additionalProperties: false },
);

export const OperationSpec = Type.Object(
  {
    cluster: Name,
    type: OperationTypeSchema,
    snapshot: Type.Optional(SnapshotParameters),
    restore: Type.Optional(RestoreParameters),
    replaceMachine: Type.Optional(ReplaceMachineParameters),
    upgrade: Type.Optional(UpgradeParameters),
    rotateCertificates: Type.Optional(RotateCertificatesParameters),
  },
  { additionalProperties: false },
);
export type OperationSpec = Static<typeof OperationSpec>;

export const OperationPhase = Type.Union(
  ['Pending', 'AwaitingApproval', 'Running', 'Succeeded', 'Failed', 'Cancelled'].map((p) => Type.Literal(p)),
);
export type OperationPhase = 'Pending' | 'AwaitingApproval' | 'Running' | 'Succeeded' | 'Failed' | 'Cancelled';
export const TERMINAL_PHASES: ReadonlySet<string> = new Set(['Succeeded', 'Failed', 'Cancelled']);

export const StepState = Type.Union(['Pending', 'Running', 'Succeeded', 'Failed', 'Skipped'].map((p) => Type.Literal(p)));
export type StepState = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Skipped';

export const OperationStep = Type.Object(
  {
    name: Type.String(),
    state: StepState,
    /** Taking this step takes (part of) the cluster out of service: no cancel from here on. */
    disruptive: Type.Optional(Type.Boolean()),
    startedAt: Type.Optional(Type.String()),
    finishedAt: Type.Optional(Type.String()),
    message: Type.Optional(Type.String({ maxLength: 4096 })),
    /** What the step did, for a re-run after a crash (opaque to clients). */
    record: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);
export type OperationStep = Static<typeof OperationStep>;

export const Decision = Type.Object(
  { user: Type.String(), at: Type.String(), comment: Type.Optional(Type.String({ maxLength: 1024 })) },
  { additionalProperties: false },
);
export type Decision = Static<typeof Decision>;

export const OperationStatus = statusSchema({
  phase: Type.Optional(OperationPhase),
  /** The authenticated caller who created it (set by the server, never from the body). */
  requestedBy: Type.Optional(Type.String()),
  approvedBy: Type.Optional(Decision),
  rejectedBy: Type.Optional(Decision),
  cancelledBy: Type.Optional(Decision),
  /** Whether the cluster's or project's policy asks a second person to approve it. */
  approvalRequired: Type.Optional(Type.Boolean()),
  steps: Type.Optional(Type.Array(OperationStep, { maxItems: 64 })),
  /** Finished steps over all steps, 0–100. */
  progress: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  startTime: Type.Optional(Type.String()),
  completionTime: Type.Optional(Type.String()),
  /** metadata.generation of the cluster when the operation started. */
  clusterGeneration: Type.Optional(Type.Integer()),
  clusterUID: Type.Optional(Type.String()),
  /** One line: what happened and, after a failure, what state the cluster is in. */
  message: Type.Optional(Type.String({ maxLength: 8192 })),
  /** What the operation produced, e.g. `{ snapshot: "demo-20261206-120000" }`. */
  result: Type.Optional(Type.Record(Type.String(), Type.String({ maxLength: 4096 }), { maxProperties: 32 })),
});
export type OperationStatus = Static<typeof OperationStatus>;

export const Operation = envelope('Operation', OperationSpec, OperationStatus, 'A day-2 operation on a cluster (snapshot, restore, machine replacement, upgrade, certificate rotation), with its steps and approvals');
export type Operation = Static<typeof Operation>;

// ---------- Snapshot ----------

export const SnapshotSpec = Type.Object(
  {
    cluster: Name,
    /** Empty: the built-in local target under Marina's data directory. */
    target: Type.Optional(Name),
  },
  { additionalProperties: false },
);
export const SnapshotStatus = statusSchema({
  phase: Type.Optional(Type.Union(['Pending', 'Completed', 'Failed'].map((p) => Type.Literal(p)))),
  /** SHA-256 (hex) of the etcd snapshot as etcd sent it (before encryption). */
  sha256: Type.Optional(Type.String()),
  size: Type.Optional(Type.Integer({ minimum: 0 })),
  /** SHA-256 (hex) and size of the stored, encrypted object. */
  storedSha256: Type.Optional(Type.String()),
  storedSize: Type.Optional(Type.Integer({ minimum: 0 })),
  /** Key of the object in its target. */
  location: Type.Optional(Type.String()),
  etcdRevision: Type.Optional(Type.Integer()),
  etcdVersion: Type.Optional(Type.String()),
  kubernetesVersion: Type.Optional(Type.String()),
  clusterUID: Type.Optional(Type.String()),
  /** The etcd member (machine) it was taken from. */
  member: Type.Optional(Type.String()),
  startTime: Type.Optional(Type.String()),
  completionTime: Type.Optional(Type.String()),
  /** The Operation that took it. */
  operation: Type.Optional(Type.String()),
  /** True when the schedule took it (retention deletes only those). */
  scheduled: Type.Optional(Type.Boolean()),
  message: Type.Optional(Type.String({ maxLength: 4096 })),
});
export type SnapshotStatus = Static<typeof SnapshotStatus>;
export const Snapshot = envelope('Snapshot', SnapshotSpec, SnapshotStatus, "An etcd snapshot of a cluster, encrypted with Marina's key, in a backup target");
export type Snapshot = Static<typeof Snapshot>;

// ---------- BackupTarget ----------

export const S3TargetSpec = Type.Object(
  {
    endpoint: Type.String({ minLength: 1, maxLength: 2048, description: 'http(s) URL of the S3-compatible service' }),
    bucket: Type.String({ pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', description: 'S3 bucket name' }),
    region: Type.Optional(Type.String({ maxLength: 64, description: 'default us-east-1' })),
    prefix: Type.Optional(Type.String({ maxLength: 512, description: 'key prefix, e.g. marina/' })),
    credentialsSecret: CloneType(Name, { description: 'a Secret in the project with data accessKeyId and secretAccessKey' }),
    /** Path-style addressing (http://host/bucket/key); default true, which most self-hosted stores need. */
    forcePathStyle: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export const BackupTargetSpec = Type.Object(
  {
    type: Type.Union([Type.Literal('local'), Type.Literal('s3')], { description: "local: under Marina's data directory; s3: any S3-compatible object store" }),
    s3: Type.Optional(S3TargetSpec),
  },
  { additionalProperties: false },
);
export type BackupTargetSpec = Static<typeof BackupTargetSpec>;
export const BackupTarget = envelope('BackupTarget', BackupTargetSpec, statusSchema({}), 'Where snapshots are stored');
export type BackupTarget = Static<typeof BackupTarget>;
