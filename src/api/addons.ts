// Add-on kinds: the catalog (`AddonDefinition`, global, one object per add-on version), what a
// cluster runs (`Addon`, per project, one object per cluster and add-on) and the platform's
// choices (`AddonPolicy`, global singleton `default`: the default set, how drift is found).
//
// Why `Addon` objects and not `Cluster.spec.addons`: each add-on gets its own status (conditions,
// the applied inventory, drift counts) written by one writer (the cluster's add-on controller),
// while Cluster status stays the cluster controller's; members enable and disable add-ons without
// rewriting the Cluster (no resourceVersion races with scaling), and a watch on Addons tells
// exactly which add-on changed.
//
// The rules a schema cannot express (manifests parse, placeholders name known values, values match
// the definition's JSON Schema) need the catalog and a JSON Schema validator, which live in
// src/addons; they reach the API edge through `ValidationContext.addons` (`AddonAdmission`).
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { FieldCause } from './errors.js';
import { API_VERSION, Name, ObjectMeta, statusSchema, type Resource } from './meta.js';

/** semver 2.0 without build metadata, lower case (it becomes part of object names). */
export const SEMVER = '^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9a-z]+(\\.[0-9a-z]+)*)?$';
export const SemVer = Type.String({ pattern: SEMVER, maxLength: 40, description: 'semantic version, e.g. 1.12.0 or 2.0.0-rc.1' });

/** Add-on names leave room in a 63-character object name for the version (`<addon>-v<version>`). */
export const AddonName = Type.String({
  pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
  minLength: 1,
  maxLength: 40,
  description: 'add-on name, a DNS-1123 label of at most 40 characters, e.g. coredns',
});

/** Free-form values; their shape is the definition's `valuesSchema`. */
export const AddonValues = Type.Record(Type.String({ maxLength: 253 }), Type.Unknown(), {
  description: 'values for the manifests\' ${values.*} placeholders, checked against the definition\'s valuesSchema (its defaults fill the gaps)',
});

function envelope<S extends TSchema, T extends TSchema>(kind: string, spec: S, status: T, description: string) {
  return Type.Object(
    { apiVersion: Type.Literal(API_VERSION), kind: Type.Literal(kind), metadata: ObjectMeta, spec, status: Type.Optional(status) },
    { additionalProperties: false, $id: kind, description },
  );
}

// ---------- AddonDefinition ----------

export const ManifestFile = Type.Object(
  {
    file: Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9._/-]+$', description: 'name of the file in the catalog, for messages' }),
    content: Type.String({
      minLength: 1,
      maxLength: 512 * 1024,
      description: 'YAML documents (---separated); ${values.x}, ${cluster.x} and ${addon.x} are replaced after parsing (a whole scalar keeps the value\'s type), $${ is a literal ${',
    }),
  },
  { additionalProperties: false },
);

export const HealthRule = Type.Object(
  {
    kind: Type.String({ minLength: 1, maxLength: 63, description: 'object kind the rule is for, e.g. Deployment or a custom resource kind' }),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 253, description: 'only this object (default: every object of the kind)' })),
    ignore: Type.Optional(Type.Boolean({ description: 'do not judge these objects (e.g. a Job allowed to fail)' })),
    condition: Type.Optional(
      Type.String({ minLength: 1, maxLength: 316, description: 'healthy when status.conditions has this type with status True (instead of the built-in rule of the kind)' }),
    ),
  },
  { additionalProperties: false },
);
export type HealthRule = Static<typeof HealthRule>;

export const AddonDependency = Type.Object(
  {
    addon: AddonName,
    minVersion: Type.Optional(SemVer),
  },
  { additionalProperties: false },
);
export type AddonDependency = Static<typeof AddonDependency>;

export const AddonDefinitionSpec = Type.Object(
  {
    addon: AddonName,
    version: SemVer,
    description: Type.String({ minLength: 1, maxLength: 2048 }),
    /** Namespace of the namespaced objects that name none; created with the add-on unless built in. */
    namespace: Name,
    manifests: Type.Array(ManifestFile, { minItems: 1, maxItems: 100 }),
    valuesSchema: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), { description: 'JSON Schema (draft 2020-12 subset that Ajv accepts in strict mode) of the values; `default`s fill what an Addon leaves out' }),
    ),
    health: Type.Optional(
      Type.Object(
        { rules: Type.Array(HealthRule, { maxItems: 100, description: 'the first rule matching an object (by kind and name, named rules first) decides how it is judged' }) },
        { additionalProperties: false },
      ),
    ),
    dependencies: Type.Optional(
      Type.Array(AddonDependency, { maxItems: 20, uniqueItems: true, description: 'add-ons that must be enabled and Healthy on the cluster before this one is applied' }),
    ),
  },
  { additionalProperties: false },
);
export type AddonDefinitionSpec = Static<typeof AddonDefinitionSpec>;
export const AddonDefinition = envelope(
  'AddonDefinition',
  AddonDefinitionSpec,
  statusSchema({}),
  'One version of a certified add-on: templated manifests, the JSON Schema of its values, health rules and dependencies. Named <addon>-v<version with dots as dashes>.',
);
export type AddonDefinition = Static<typeof AddonDefinition>;

/** coredns + 1.12.0 → coredns-v1-12-0 (the object name of that definition). */
export function definitionName(addon: string, version: string): string {
  return `${addon}-v${version.replace(/\./g, '-')}`;
}

// ---------- Addon ----------

/**
 * The name Marina gives the Addon of `addon` on `cluster`: `<cluster>-<addon>`, shortened with a
 * hash of both when that exceeds 63 characters. (Any name works; this one makes them findable.)
 */
export function addonObjectName(cluster: string, addon: string): string {
  const full = `${cluster}-${addon}`;
  if (full.length <= 63) return full;
  let h = 0x811c9dc5; // FNV-1a: short, stable, no crypto needed for a name suffix
  for (const ch of full) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return `${full.slice(0, 56).replace(/-+$/, '')}-${h.toString(36).padStart(7, '0').slice(0, 6)}`;
}

export const AddonSpec = Type.Object(
  {
    cluster: Name,
    addon: AddonName,
    version: SemVer,
    values: Type.Optional(AddonValues),
  },
  { additionalProperties: false },
);
export type AddonSpec = Static<typeof AddonSpec>;

/** One object an add-on put into its cluster. */
export const AppliedObject = Type.Object(
  {
    apiVersion: Type.String(),
    kind: Type.String(),
    namespace: Type.Optional(Type.String()),
    name: Type.String(),
  },
  { additionalProperties: false },
);
export type AppliedObject = Static<typeof AppliedObject>;

export const AddonStatus = statusSchema({
  /** uid of the Cluster the inventory was applied to (a new cluster of the same name is another one). */
  clusterUID: Type.Optional(Type.String()),
  appliedVersion: Type.Optional(Type.String()),
  /** SHA-256 of the rendered objects last applied in full. */
  appliedDigest: Type.Optional(Type.String()),
  lastAppliedAt: Type.Optional(Type.String()),
  /** What the controller created and will prune or remove (objects annotated keep/ignore leave it). */
  inventory: Type.Optional(Type.Array(AppliedObject, { maxItems: 1000 })),
  /** Objects that are not healthy, e.g. `Deployment kube-system/coredns: 0/2 replicas available`. */
  unhealthy: Type.Optional(Type.Array(Type.String(), { maxItems: 20 })),
  /** Managed objects put back after someone changed or deleted them, since the add-on was enabled. */
  driftCorrections: Type.Optional(Type.Integer({ minimum: 0 })),
  lastDriftCorrection: Type.Optional(
    Type.Object({ at: Type.String(), objects: Type.Array(Type.String(), { maxItems: 20 }) }, { additionalProperties: false }),
  ),
});
export type AddonStatus = Static<typeof AddonStatus>;
export const Addon = envelope('Addon', AddonSpec, AddonStatus, 'An add-on enabled on one cluster: which definition, which version, which values');
export type Addon = Static<typeof Addon>;

// ---------- AddonPolicy ----------

export const ADDON_POLICY_NAME = 'default';
export const ADDON_POLICY_DEFAULTS = { resyncSeconds: 30, unhealthyAlertSeconds: 300, watchObjects: true } as const;

export const DefaultAddon = Type.Object(
  {
    addon: AddonName,
    /** Default: the newest version in the catalog when the cluster is created. */
    version: Type.Optional(SemVer),
    values: Type.Optional(AddonValues),
  },
  { additionalProperties: false },
);
export type DefaultAddon = Static<typeof DefaultAddon>;

export const AddonPolicySpec = Type.Object(
  {
    defaults: Type.Array(DefaultAddon, { maxItems: 50, description: 'add-ons every new cluster gets (cluster DNS belongs here)' }),
    resyncSeconds: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 3600, description: `every add-on is re-applied and drift corrected this often (default ${ADDON_POLICY_DEFAULTS.resyncSeconds})` }),
    ),
    watchObjects: Type.Optional(
      Type.Boolean({
        description: `watch the managed objects' kinds in every cluster, so that an object changed or deleted there is put back within about a second; false: the resync alone finds drift (one watch per managed kind and cluster fewer). Default ${ADDON_POLICY_DEFAULTS.watchObjects}`,
      }),
    ),
    unhealthyAlertSeconds: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 86400, description: `AddonUnhealthy fires when an add-on has been unhealthy this long (default ${ADDON_POLICY_DEFAULTS.unhealthyAlertSeconds})` }),
    ),
  },
  { additionalProperties: false },
);
export type AddonPolicySpec = Static<typeof AddonPolicySpec>;
export const AddonPolicy = envelope(
  'AddonPolicy',
  AddonPolicySpec,
  statusSchema({}),
  'The platform\'s add-on choices (one object, named "default"): the default set of new clusters, resync interval, drift watches, alert threshold',
);
export type AddonPolicy = Static<typeof AddonPolicy>;

export function resolveAddonPolicy(spec: Partial<AddonPolicySpec> | undefined): Required<AddonPolicySpec> {
  return {
    defaults: spec?.defaults ?? [],
    resyncSeconds: spec?.resyncSeconds ?? ADDON_POLICY_DEFAULTS.resyncSeconds,
    unhealthyAlertSeconds: spec?.unhealthyAlertSeconds ?? ADDON_POLICY_DEFAULTS.unhealthyAlertSeconds,
    watchObjects: spec?.watchObjects ?? ADDON_POLICY_DEFAULTS.watchObjects,
  };
}

// ---------- admission (implemented in src/addons) ----------

/** Semantic checks that need the catalog; injected through ValidationContext.addons. */
export interface AddonAdmission {
  definition(obj: AddonDefinition, old: AddonDefinition | undefined): FieldCause[];
  addon(obj: Addon, old: Addon | undefined): FieldCause[];
  policy(obj: AddonPolicy, old: AddonPolicy | undefined): FieldCause[];
}

/** Fail closed: a server without add-on admission must not store definitions it could not check. */
function admit<T extends Resource>(check: (a: AddonAdmission, obj: T, old: T | undefined) => FieldCause[]) {
  return (obj: Resource, old: Resource | undefined, ctx: { addons?: AddonAdmission }): FieldCause[] => {
    if (!ctx.addons) return [{ field: 'kind', message: `${obj.kind} objects cannot be checked by this server (add-on admission is not configured)` }];
    return check(ctx.addons, obj as T, old as T | undefined);
  };
}

export const validateAddonDefinition = admit<AddonDefinition>((a, obj, old) => a.definition(obj, old));
export const validateAddon = admit<Addon>((a, obj, old) => a.addon(obj, old));
export const validateAddonPolicy = admit<AddonPolicy>((a, obj, old) => a.policy(obj, old));
