// Kubernetes-shaped object metadata and conditions, shared by every kind.
import { CloneType, Type, type Static, type TSchema } from '@sinclair/typebox';

export const GROUP = 'marina.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** DNS-1123 label: what Kubernetes accepts for most object names. */
export const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const NAME_MAX = 63;

export const Name = Type.String({
  pattern: DNS1123_LABEL,
  minLength: 1,
  maxLength: NAME_MAX,
  description: 'DNS-1123 label: lower-case alphanumerics and "-", starting and ending alphanumeric',
});

const StringMap = Type.Record(Type.String({ minLength: 1, maxLength: 253 }), Type.String({ maxLength: 4096 }));

export const ObjectMeta = Type.Object(
  {
    name: Name,
    // readOnly: set by the server, ignored in requests (the project comes from the URL). A replace
    // sends resourceVersion back as its precondition (the Replace schemas in the OpenAPI document).
    project: Type.Optional(CloneType(Name, { readOnly: true })),
    uid: Type.Optional(Type.String({ readOnly: true })),
    resourceVersion: Type.Optional(Type.String({ readOnly: true })),
    generation: Type.Optional(Type.Integer({ minimum: 0, readOnly: true })),
    creationTimestamp: Type.Optional(Type.String({ readOnly: true })),
    deletionTimestamp: Type.Optional(Type.String({ readOnly: true })),
    labels: Type.Optional(StringMap),
    annotations: Type.Optional(StringMap),
    finalizers: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 32 })),
  },
  { additionalProperties: false },
);
export type ObjectMeta = Static<typeof ObjectMeta>;

export const ConditionStatus = Type.Union([Type.Literal('True'), Type.Literal('False'), Type.Literal('Unknown')]);
export type ConditionStatus = Static<typeof ConditionStatus>;

export const Condition = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 316 }),
    status: ConditionStatus,
    reason: Type.Optional(Type.String({ maxLength: 1024 })),
    message: Type.Optional(Type.String({ maxLength: 32768 })),
    lastTransitionTime: Type.Optional(Type.String()),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type Condition = Static<typeof Condition>;

export const Conditions = Type.Array(Condition, { maxItems: 64 });

/** Every status carries conditions and the generation it was computed from. */
export function statusSchema<P extends Record<string, TSchema>>(props: P) {
  return Type.Object(
    {
      observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
      conditions: Type.Optional(Conditions),
      ...props,
    },
    { additionalProperties: false },
  );
}

/** The generic envelope every stored object has; kinds narrow `spec` and `status`. */
export interface Resource<Spec = unknown, Stat = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: Spec;
  status?: Stat;
}

/** Identifies one object: project is empty for global kinds (Project, User). */
export interface ObjectKey {
  kind: string;
  project: string;
  name: string;
}

export function keyOf(obj: Resource): ObjectKey {
  return { kind: obj.kind, project: obj.metadata.project ?? '', name: obj.metadata.name };
}

export function keyString(key: ObjectKey): string {
  return key.project ? `${key.kind}/${key.project}/${key.name}` : `${key.kind}/${key.name}`;
}

export function parseKeyString(s: string): ObjectKey {
  const parts = s.split('/');
  if (parts.length === 2) return { kind: parts[0]!, project: '', name: parts[1]! };
  if (parts.length === 3) return { kind: parts[0]!, project: parts[1]!, name: parts[2]! };
  throw new Error(`malformed object key ${JSON.stringify(s)}`);
}

export function isDeleting(obj: Resource): boolean {
  return obj.metadata.deletionTimestamp !== undefined;
}

/** Oldest first: creationTimestamp, then name. */
export function byAge(a: Resource, b: Resource): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}
