// The HTTP surface as TypeBox schemas: query and path parameters, request bodies other than the
// kinds, and responses. Route declarations use them for validation at the edge and the OpenAPI
// document is generated from the same routes (openapi.ts), so both cannot drift apart. The
// schemas of the kinds themselves live in src/api; the variants for replace and status bodies
// are derived from them here.
import { CloneType, FormatRegistry, Type, type Static, type TObject, type TSchema } from '@sinclair/typebox';
import { ObjectMeta } from '../api/meta.js';
// Not the registry's KindInfo: the client (and so the browser console) reads types from this file,
// and the registry reaches server-only code (the Function source compiler).
interface KindSchema {
  kind: string;
  schema: TSchema;
}
// Only the list of fault types (sim/faults.ts imports nothing else at run time).
import { SIM_FAULT_TYPES } from '../sim/faults.js';

/** RFC 3339 date-time (the `date-time` format of JSON Schema), as every timestamp in the API. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Milliseconds since the epoch of an RFC 3339 date-time (which allows a lower-case t and z). */
export function parseDateTime(v: string): number {
  return RFC3339.test(v) ? Date.parse(v.toUpperCase()) : NaN;
}
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (v) => Number.isFinite(parseDateTime(v)));

export const DateTime = (description: string) => Type.String({ format: 'date-time', description });

// ---------- errors ----------

export const Status = Type.Object(
  {
    kind: Type.Literal('Status'),
    code: Type.Integer({ description: 'the HTTP status code' }),
    reason: Type.String({ description: 'machine-readable: BadRequest, Invalid, NotFound, AlreadyExists, Conflict, Gone, Unauthorized, Forbidden, ...' }),
    message: Type.String(),
    field: Type.Optional(Type.String({ description: 'the first offending field or parameter, e.g. spec.nodePools[0].replicas or limit' })),
    causes: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
  },
  { $id: 'Status', description: 'The answer to every failed request, and to a delete that has no object to return (modelled on Kubernetes metav1.Status)' },
);

/** What each status code means wherever it is documented. */
const ERROR_MEANINGS: Record<number, string> = {
  400: 'malformed request: a query parameter its schema refuses, a body that is not a JSON or YAML object; `field` names the parameter',
  401: 'missing, invalid, revoked or expired bearer token',
  403: 'your role does not allow this',
  404: 'no such object, or one in a project you are no member of',
  409: 'already exists, or metadata.resourceVersion is stale',
  410: 'the resourceVersion or continue token is older than the retained history: list again',
  413: 'request body larger than the server limit',
  415: 'unsupported Content-Type',
  422: 'invalid object: `field` names the first offending field, `causes` all of them',
  503: 'the server is shutting down',
};

/** Response entries for error codes, each with the Status schema. */
export function errorResponses(...codes: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const code of codes) out[code] = Type.Ref(Status.$id!, { description: ERROR_MEANINGS[code] ?? 'error' });
  return out;
}

// ---------- parameters ----------

export const ProjectParams = Type.Object({ project: Type.String({ description: 'the project' }) });
export const NameParams = Type.Object({ name: Type.String({ description: 'the object name' }) });
export const ProjectNameParams = Type.Object({ project: ProjectParams.properties.project, name: NameParams.properties.name });

export const LIMIT_MAX = 10_000;
const Limit = Type.Integer({ minimum: 1, maximum: LIMIT_MAX, description: 'page size; the answer carries metadata.continue when more follow' });

export const ListQuery = Type.Object({
  labelSelector: Type.Optional(Type.String({ description: 'Kubernetes label selector: a=b, a!=b, a, !a, a in (x,y), a notin (x), comma-separated' })),
  limit: Type.Optional(Limit),
  continue: Type.Optional(Type.String({ description: 'the metadata.continue of the previous page' })),
  watch: Type.Optional(Type.Boolean({ description: 'stream changes as application/x-ndjson WatchEvents instead of listing' })),
  resourceVersion: Type.Optional(Type.String({ description: 'watch: deliver the changes after this revision (410 when older than the retained history); default: from now on' })),
  timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400, description: 'watch: end the stream after this many seconds' })),
});
export type ListQuery = Static<typeof ListQuery>;

export const DeleteQuery = Type.Object({
  resourceVersion: Type.Optional(Type.String({ description: 'precondition: delete only while the object has this resourceVersion (409 otherwise)' })),
});

export const AuditQuery = Type.Object({
  project: Type.Optional(Type.String({ description: 'only this project (required unless you are a platform admin; needs the admin role)' })),
  user: Type.Optional(Type.String()),
  kind: Type.Optional(Type.String()),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMIT_MAX, description: 'newest entries first; default 100' })),
});
export type AuditQuery = Static<typeof AuditQuery>;

export const HealthQuery = Type.Object({
  since: Type.Optional(DateTime('only samples after this time; default: 24 hours ago')),
});

export const TokenParams = Type.Object({ id: Type.String({ description: 'the token id (not the secret)' }) });

// ---------- bodies and answers other than objects ----------

export const WhoAmI = Type.Object(
  {
    user: Type.String(),
    platformAdmin: Type.Boolean(),
    projects: Type.Array(Type.Object({ name: Type.String(), role: Type.String() })),
  },
  { $id: 'WhoAmI' },
);
export type WhoAmI = Static<typeof WhoAmI>;

export const KubernetesVersionList = Type.Object(
  {
    kind: Type.Literal('KubernetesVersionList'),
    default: Type.Union([Type.String(), Type.Null()], { description: 'what a cluster that names no version gets' }),
    versions: Type.Array(Type.String()),
  },
  { $id: 'KubernetesVersionList', description: 'the Kubernetes versions spec.kubernetesVersion accepts' },
);

export const IssueTokenRequest = Type.Object(
  {
    user: Type.Optional(Type.String({ minLength: 1, description: 'whose token; default: yours (others: platform admins only)' })),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    expiresAt: Type.Optional(DateTime('the token is refused after this time')),
  },
  { $id: 'IssueTokenRequest', additionalProperties: false },
);
export type IssueTokenRequest = Static<typeof IssueTokenRequest>;

export const IssuedToken = Type.Object(
  { id: Type.String(), token: Type.String({ description: 'the secret bearer token (mrn_...); shown only in this answer' }) },
  { $id: 'IssuedToken' },
);

export const TokenInfo = Type.Object(
  {
    id: Type.String(),
    user: Type.String(),
    description: Type.Optional(Type.String()),
    createdAt: Type.String(),
    expiresAt: Type.Optional(Type.String()),
  },
  { $id: 'TokenInfo' },
);
export const TokenList = Type.Object({ items: Type.Array(Type.Ref(TokenInfo.$id!)) }, { $id: 'TokenList' });

export const AuditEntry = Type.Object(
  {
    id: Type.Integer(),
    time: Type.String(),
    user: Type.String(),
    verb: Type.String(),
    kind: Type.String(),
    project: Type.String(),
    name: Type.String(),
    generation: Type.Optional(Type.Integer()),
    resourceVersion: Type.Optional(Type.String()),
    code: Type.Optional(Type.Integer()),
  },
  { $id: 'AuditEntry' },
);
export const AuditList = Type.Object({ items: Type.Array(Type.Ref(AuditEntry.$id!)) }, { $id: 'AuditList' });

// ---------- simulated clusters (servers started with --sim) ----------

const simFaultFields = {
  type: Type.Union(
    SIM_FAULT_TYPES.map((t) => Type.Literal(t)),
    {
      description:
        'KillMachine: the machine is gone (not clearable); NodeNotReady: its kubelet reports NotReady; AgentUnreachable: its agent does not answer; PartitionCluster: nothing of the cluster answers Marina; EtcdMemberDown: its etcd process stops',
    },
  ),
  project: Type.String({ minLength: 1, maxLength: 63, description: 'the project of the cluster' }),
  cluster: Type.String({ minLength: 1, maxLength: 63, description: 'a cluster of the sim provider' }),
  machine: Type.Optional(Type.String({ minLength: 1, maxLength: 63, description: 'the Machine (every type but PartitionCluster)' })),
  clear: Type.Optional(Type.Boolean({ description: 'undo the fault instead (every type but KillMachine)' })),
};

export const SimFault = Type.Object(simFaultFields, { $id: 'SimFault', additionalProperties: false, description: 'a fault in a simulated cluster' });

export const SimFaultRequest = Type.Object(
  { faults: Type.Array(SimFault, { minItems: 1, maxItems: 10_000, description: 'applied together, or none of them' }) },
  { $id: 'SimFaultRequest', additionalProperties: false },
);
export type SimFaultRequest = Static<typeof SimFaultRequest>;

export const AppliedSimFault = Type.Object({ ...simFaultFields, at: DateTime('when it took effect') }, { $id: 'AppliedSimFault' });

export const SimFaultList = Type.Object({ items: Type.Array(Type.Ref(AppliedSimFault.$id!)) }, { $id: 'SimFaultList' });

export const ClusterHealth = Type.Object(
  {
    kind: Type.Literal('ClusterHealth'),
    project: Type.String(),
    cluster: Type.String(),
    latest: Type.Union([Type.Object({}, { description: 'HealthReport: checks, nodes, metrics (src/health/types.ts)' }), Type.Null()], {
      description: 'the newest report; null before the first check',
    }),
    samples: Type.Array(Type.Object({}, { description: 'HealthSample' })),
  },
  { $id: 'ClusterHealth', description: 'the newest health report of a cluster and its samples of the last 24 hours' },
);

export const OperationActionRequest = Type.Object(
  { comment: Type.Optional(Type.String({ maxLength: 1024, description: 'why; recorded with the decision' })) },
  { $id: 'OperationActionRequest', additionalProperties: false, description: 'optional; an empty body is fine' },
);

export const Kubeconfig = Type.String({ description: 'the admin kubeconfig (YAML)' });

export const WatchEvent = Type.Object(
  {
    type: Type.Union([Type.Literal('ADDED'), Type.Literal('MODIFIED'), Type.Literal('DELETED'), Type.Literal('BOOKMARK')]),
    object: Type.Object({}, { description: 'the object after the change (DELETED: its last state); BOOKMARK: only metadata.resourceVersion' }),
  },
  { $id: 'WatchEvent', description: 'one line of a watch stream' },
);

export const MergePatch = Type.Object({}, { description: 'JSON merge patch (RFC 7386): objects merge, null deletes, anything else replaces' });

// ---------- per-kind schemas ----------

/** Component names of one kind's schemas. */
export const schemaNames = (kind: string) => ({
  object: kind,
  list: `${kind}List`,
  replace: `${kind}Replace`,
  status: `${kind}StatusReplace`,
});

/**
 * A kind's list answer, the replace (PUT) body, whose metadata.resourceVersion is a required
 * precondition instead of a server-owned field, and the status (PUT .../status) body, of which
 * only metadata.resourceVersion and status are read.
 */
export function kindSchemas(info: KindSchema): TSchema[] {
  const names = schemaNames(info.kind);
  const object = info.schema as TObject;
  const list = Type.Object(
    {
      apiVersion: Type.String(),
      kind: Type.Literal(names.list),
      metadata: Type.Object({ resourceVersion: Type.String(), continue: Type.Optional(Type.String()) }),
      items: Type.Array(Type.Ref(names.object)),
    },
    { $id: names.list },
  );
  const replaceMeta = Type.Object(
    { ...ObjectMeta.properties, resourceVersion: Type.String({ minLength: 1, description: 'precondition: the version you read (409 when stale)' }) },
    { additionalProperties: false },
  );
  const replace = Type.Object({ ...object.properties, metadata: replaceMeta }, { additionalProperties: false, $id: names.replace, description: `${info.kind} with the resourceVersion it replaces` });
  // The one body in which status is written (CloneType's options do not override a keyword).
  const status = CloneType(object.properties.status as TSchema);
  status.readOnly = false;
  const statusBody = Type.Object(
    {
      metadata: Type.Object({ resourceVersion: replaceMeta.properties.resourceVersion }),
      status: Type.Optional(status),
    },
    { $id: names.status, description: `the status of a ${info.kind}; the rest of the body is ignored` },
  );
  return [list, replace, statusBody];
}
