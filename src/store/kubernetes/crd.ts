// CustomResourceDefinitions for the Kubernetes-backed store, generated from the same TypeBox
// schemas that validate API requests and feed the OpenAPI document (src/api/kinds.ts), plus the
// store's own bookkeeping kinds (tokens, audit entries, health samples).
//
// Kubernetes accepts only *structural* schemas (every node typed, no $id, no `additionalProperties`
// beside `properties`, no `uniqueItems`, no unions but int-or-string). The translation keeps what a
// structural schema can say (types, properties, required, bounds, patterns, enums, descriptions)
// and maps the rest onto Kubernetes' extensions; `default`s are left out on purpose: the API server
// must never change what Marina wrote. Marina's own validation at the API edge stays authoritative;
// the CRD schema makes `kubectl explain` work and keeps hand edits with kubectl within the shape.
import { createHash } from 'node:crypto';
import { Kind, OptionalKind, Type, type TSchema } from '@sinclair/typebox';
import { KINDS, type KindInfo } from '../../api/registry.js';
import { GROUP, VERSION } from '../../api/meta.js';

/** The group of the store's own bookkeeping kinds (not served by Marina's API). */
export const STORE_GROUP = 'store.marina.dev';
export const STORE_VERSION = 'v1alpha1';
/** Label and annotation prefix the store reserves for itself on every object. */
export const RESERVED_PREFIX = `${STORE_GROUP}/`;
/** Annotation on each generated CRD: a hash of its spec, to tell an outdated installation. */
export const SCHEMA_HASH_ANNOTATION = `${STORE_GROUP}/schema-hash`;

/** A JSONSchemaProps of apiextensions.k8s.io/v1 (the members the generator uses). */
export interface JSONSchemaProps {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, JSONSchemaProps>;
  required?: string[];
  additionalProperties?: JSONSchemaProps;
  items?: JSONSchemaProps;
  enum?: unknown[];
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    group: string;
    scope: 'Namespaced';
    names: { plural: string; singular: string; kind: string; listKind: string; categories?: string[] };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      schema: { openAPIV3Schema: JSONSchemaProps };
      additionalPrinterColumns?: { name: string; type: string; jsonPath: string; description?: string }[];
    }[];
  };
}

const SCALAR_TYPES = new Set(['string', 'integer', 'number', 'boolean']);
const COPIED = ['description', 'pattern', 'format', 'minLength', 'maxLength', 'minimum', 'maximum', 'minItems', 'maxItems', 'minProperties', 'maxProperties'] as const;

function copyBounds(from: TSchema, to: JSONSchemaProps): void {
  for (const k of COPIED) {
    const v = (from as Record<string, unknown>)[k];
    if (v !== undefined) (to as Record<string, unknown>)[k] = v;
  }
  // JSON Schema draft 6+ numeric exclusive bounds → OpenAPI v3's boolean flags.
  if (typeof from.exclusiveMinimum === 'number') {
    to.minimum = from.exclusiveMinimum;
    to.exclusiveMinimum = true;
  }
  if (typeof from.exclusiveMaximum === 'number') {
    to.maximum = from.exclusiveMaximum;
    to.exclusiveMaximum = true;
  }
}

function literalsOf(s: TSchema): unknown[] | undefined {
  if (s.const !== undefined) return [s.const];
  if (Array.isArray(s.enum)) return s.enum as unknown[];
  return undefined;
}

/** Translates one TypeBox schema into a structural JSONSchemaProps. */
export function structural(s: TSchema): JSONSchemaProps {
  const kind = s[Kind];
  if (kind === 'Unknown' || kind === 'Any') return { 'x-kubernetes-preserve-unknown-fields': true, ...(s.description ? { description: s.description } : {}) };

  if (Array.isArray(s.anyOf)) {
    const branches = s.anyOf as TSchema[];
    const literals = branches.map(literalsOf);
    const types = new Set(branches.map((b) => b.type as string | undefined));
    const out: JSONSchemaProps = {};
    if (literals.every((l) => l !== undefined) && types.size === 1 && SCALAR_TYPES.has([...types][0] ?? '')) {
      out.type = [...types][0] as JSONSchemaProps['type'];
      out.enum = literals.flat();
    } else if (types.size === 2 && types.has('integer') && types.has('string') && branches.length === 2) {
      // The one union a structural schema can say: Marina validates each branch's bounds.
      out['x-kubernetes-int-or-string'] = true;
    } else {
      out['x-kubernetes-preserve-unknown-fields'] = true;
    }
    if (s.description) out.description = s.description;
    return out;
  }

  const out: JSONSchemaProps = {};
  const literals = literalsOf(s);
  switch (s.type) {
    case 'object': {
      out.type = 'object';
      copyBounds(s, out);
      if (s.properties) {
        out.properties = {};
        for (const [name, prop] of Object.entries(s.properties as Record<string, TSchema>)) out.properties[name] = structural(prop);
        const required = (s.required as string[] | undefined)?.filter((r) => !(s.properties as Record<string, TSchema>)[r]?.[OptionalKind]);
        if (required && required.length > 0) out.required = required;
      } else if (s.patternProperties) {
        const values = Object.values(s.patternProperties as Record<string, TSchema>);
        out.additionalProperties = values.length === 1 ? structural(values[0]!) : { 'x-kubernetes-preserve-unknown-fields': true };
      } else if (typeof s.additionalProperties === 'object') {
        out.additionalProperties = structural(s.additionalProperties as TSchema);
      } else {
        out['x-kubernetes-preserve-unknown-fields'] = true;
      }
      return out;
    }
    case 'array': {
      out.type = 'array';
      copyBounds(s, out);
      out.items = structural(s.items as TSchema);
      // uniqueItems is refused (quadratic to check); a list of scalars can say it as a set.
      if (s.uniqueItems === true && out.items.type && SCALAR_TYPES.has(out.items.type)) out['x-kubernetes-list-type'] = 'set';
      return out;
    }
    case 'string':
    case 'integer':
    case 'number':
    case 'boolean':
      out.type = s.type;
      copyBounds(s, out);
      if (literals) out.enum = literals;
      return out;
    default:
      throw new Error(`schema node ${JSON.stringify(s).slice(0, 200)} has no structural equivalent`);
  }
}

const PROJECT_COLUMN_PATH = `.metadata.labels.${STORE_GROUP.replaceAll('.', '\\.')}/project`;

function crd(
  group: string,
  version: string,
  kind: string,
  plural: string,
  root: JSONSchemaProps,
  columns: NonNullable<CustomResourceDefinition['spec']['versions'][number]['additionalPrinterColumns']>,
): CustomResourceDefinition {
  const def: CustomResourceDefinition = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}`, labels: { 'app.kubernetes.io/part-of': 'marina' } },
    spec: {
      group,
      scope: 'Namespaced',
      names: { plural, singular: kind.toLowerCase(), kind, listKind: `${kind}List`, categories: [group === GROUP ? 'marina' : 'marina-store'] },
      versions: [{ name: version, served: true, storage: true, schema: { openAPIV3Schema: root }, additionalPrinterColumns: columns }],
    },
  };
  def.metadata.annotations = { [SCHEMA_HASH_ANNOTATION]: createHash('sha256').update(JSON.stringify(def.spec)).digest('hex').slice(0, 16) };
  return def;
}

/** The root schema of a Marina kind: spec and status from its TypeBox envelope. */
function kindRoot(info: KindInfo): JSONSchemaProps {
  const props = (info.schema.properties ?? {}) as Record<string, TSchema>;
  const spec: JSONSchemaProps = info.sensitive
    ? {
        type: 'object',
        description: `${props.spec?.description ?? 'spec'}; encrypted by Marina (AES-256-GCM) before it is written`,
        properties: { $encrypted: { type: 'string', description: 'base64(iv | tag | ciphertext) of the JSON spec' } },
        required: ['$encrypted'],
      }
    : structural(props.spec!);
  const root: JSONSchemaProps = {
    type: 'object',
    properties: { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' }, spec },
  };
  if (info.schema.description) root.description = info.schema.description;
  if (props.status) root.properties!.status = structural(props.status);
  return root;
}

function kindColumns(info: KindInfo): CustomResourceDefinition['spec']['versions'][number]['additionalPrinterColumns'] & object {
  const columns = [];
  if (info.scope === 'project') columns.push({ name: 'Project', type: 'string', jsonPath: PROJECT_COLUMN_PATH });
  const status = (info.schema.properties as Record<string, TSchema> | undefined)?.status;
  if (status?.properties?.phase) columns.push({ name: 'Phase', type: 'string', jsonPath: '.status.phase' });
  columns.push({ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' });
  return columns;
}

/** The CRD of one Marina kind (group marina.dev). */
export function kindCrd(info: KindInfo): CustomResourceDefinition {
  return crd(GROUP, VERSION, info.kind, info.plural, kindRoot(info), kindColumns(info));
}

// ----- the store's bookkeeping kinds -----------------------------------------------------------

export const TokenRecord = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 64 }),
    user: Type.String({ minLength: 1, maxLength: 253 }),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    createdAt: Type.String(),
    expiresAt: Type.Optional(Type.String()),
  },
  { additionalProperties: false, description: 'An API token: only the SHA-256 of the secret is kept (it is the object name)' },
);

export const AuditRecordSchema = Type.Object(
  {
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
  { additionalProperties: false, description: 'One audited API request; its id is the resourceVersion it was created at' },
);

export const HealthSampleRecord = Type.Object(
  {
    series: Type.String({ minLength: 1 }),
    time: Type.String(),
    sample: Type.Unknown(),
  },
  { additionalProperties: false, description: 'One sample of a bounded time series (a cluster health history)' },
);

export const SeriesLatestRecord = Type.Object(
  {
    series: Type.String({ minLength: 1 }),
    time: Type.String(),
    value: Type.Unknown(),
  },
  { additionalProperties: false, description: "The newest full record of a series (a cluster's newest health report): one object per series, replaced on each write" },
);

export interface StoreKind {
  kind: string;
  plural: string;
  /** Schema of the single top-level field `record`. */
  schema: TSchema;
}

export const STORE_KINDS = {
  token: { kind: 'APIToken', plural: 'apitokens', schema: TokenRecord },
  audit: { kind: 'AuditEntry', plural: 'auditentries', schema: AuditRecordSchema },
  sample: { kind: 'HealthSample', plural: 'healthsamples', schema: HealthSampleRecord },
  latest: { kind: 'HealthReport', plural: 'healthreports', schema: SeriesLatestRecord },
} as const satisfies Record<string, StoreKind>;

/** The CRD of a bookkeeping kind: its data sits in one top-level field, `record`. */
export function storeKindCrd(k: StoreKind): CustomResourceDefinition {
  const root: JSONSchemaProps = {
    type: 'object',
    description: k.schema.description,
    properties: { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' }, record: structural(k.schema) },
    required: ['record'],
  };
  return crd(STORE_GROUP, STORE_VERSION, k.kind, k.plural, root, [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }]);
}

/** Every CRD the Kubernetes-backed store needs, Marina's kinds first. */
export function allCrds(): CustomResourceDefinition[] {
  return [...KINDS.map(kindCrd), ...Object.values(STORE_KINDS).map(storeKindCrd)];
}
