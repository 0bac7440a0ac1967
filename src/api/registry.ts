// The kinds Marina serves: where they live (global or per project), how they are named in URLs,
// their schema, and the semantic checks the schema alone cannot express.
import type { TSchema } from '@sinclair/typebox';
import { ApiError, type FieldCause } from './errors.js';
import { Alert, Cluster, Machine, NodePool, NotificationChannel, Project, Secret, User } from './kinds.js';
import { API_VERSION, type Resource } from './meta.js';
import { schemaErrors } from './validate.js';
import { validateCluster } from './cluster-validation.js';
import { validateAlert, validateNotificationChannel } from './alert-validation.js';
import { BackupTarget, Operation, Snapshot } from './operations.js';
import { validateBackupTarget, validateOperation, validateSnapshot } from './operation-validation.js';
import { EventSource, Function, Pipeline } from './functions.js';
import { validateFunction, validatePipeline } from './function-validation.js';
import { Addon, AddonDefinition, AddonPolicy, validateAddon, validateAddonDefinition, validateAddonPolicy, type AddonAdmission } from './addons.js';

/** Facts from outside the API package that semantic validation needs. */
export interface ValidationContext {
  kubernetesVersions: string[];
  /** The version a cluster that names none gets (default: the first of kubernetesVersions). */
  defaultKubernetesVersion?: string;
  /** Checks of the add-on kinds that need the catalog (src/addons); without it those kinds are refused. */
  addons?: AddonAdmission;
}

export interface KindInfo {
  kind: string;
  /** URL segment: /api/v1alpha1/projects/:project/<plural> */
  plural: string;
  scope: 'global' | 'project';
  schema: TSchema;
  /** Spec-level data is encrypted at rest. */
  sensitive?: boolean;
  /** Semantic checks on a schema-valid object; `old` is the stored object on update. */
  validate?: (obj: Resource, old: Resource | undefined, ctx: ValidationContext) => FieldCause[];
}

export const KINDS: readonly KindInfo[] = [
  { kind: 'User', plural: 'users', scope: 'global', schema: User },
  { kind: 'Project', plural: 'projects', scope: 'global', schema: Project, validate: validateProject },
  { kind: 'Secret', plural: 'secrets', scope: 'project', schema: Secret, sensitive: true },
  { kind: 'Cluster', plural: 'clusters', scope: 'project', schema: Cluster, validate: validateCluster },
  { kind: 'NodePool', plural: 'nodepools', scope: 'project', schema: NodePool },
  { kind: 'Machine', plural: 'machines', scope: 'project', schema: Machine },
  { kind: 'Alert', plural: 'alerts', scope: 'project', schema: Alert, validate: validateAlert },
  // Webhook URLs often carry a secret (Slack's do): encrypted at rest like Secrets.
  { kind: 'NotificationChannel', plural: 'notificationchannels', scope: 'project', schema: NotificationChannel, sensitive: true, validate: validateNotificationChannel },
  { kind: 'Operation', plural: 'operations', scope: 'project', schema: Operation, validate: validateOperation },
  { kind: 'Snapshot', plural: 'snapshots', scope: 'project', schema: Snapshot, validate: validateSnapshot },
  { kind: 'BackupTarget', plural: 'backuptargets', scope: 'project', schema: BackupTarget, validate: validateBackupTarget },
  // Function source and environment may embed credentials: encrypted at rest like Secrets.
  { kind: 'Function', plural: 'functions', scope: 'project', schema: Function, sensitive: true, validate: validateFunction },
  { kind: 'Pipeline', plural: 'pipelines', scope: 'project', schema: Pipeline, validate: validatePipeline },
  { kind: 'EventSource', plural: 'eventsources', scope: 'project', schema: EventSource },
  { kind: 'AddonDefinition', plural: 'addondefinitions', scope: 'global', schema: AddonDefinition, validate: validateAddonDefinition },
  { kind: 'AddonPolicy', plural: 'addonpolicies', scope: 'global', schema: AddonPolicy, validate: validateAddonPolicy },
  { kind: 'Addon', plural: 'addons', scope: 'project', schema: Addon, validate: validateAddon },
];

const byKind = new Map(KINDS.map((k) => [k.kind, k]));
const byPlural = new Map(KINDS.map((k) => [k.plural, k]));

export function kindInfo(kind: string): KindInfo {
  const info = byKind.get(kind);
  if (!info) throw ApiError.badRequest(`unknown kind ${JSON.stringify(kind)}; known: ${KINDS.map((k) => k.kind).join(', ')}`, 'kind');
  return info;
}

export function kindByPlural(plural: string): KindInfo | undefined {
  return byPlural.get(plural);
}

export function findKind(kind: string): KindInfo | undefined {
  return byKind.get(kind);
}

/**
 * Full admission check of a client-supplied object: envelope, schema, then semantic rules.
 * Throws a 422 ApiError naming every offending field.
 */
export function validateObject(obj: unknown, old: Resource | undefined, ctx: ValidationContext): Resource {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw ApiError.badRequest('body must be a JSON or YAML object');
  }
  const o = obj as Record<string, unknown>;
  if (o.apiVersion !== API_VERSION) {
    throw ApiError.invalidField('apiVersion', `must be ${JSON.stringify(API_VERSION)}, got ${JSON.stringify(o.apiVersion)}`);
  }
  const info = typeof o.kind === 'string' ? findKind(o.kind) : undefined;
  if (!info) {
    throw ApiError.invalidField('kind', `must be one of ${KINDS.map((k) => k.kind).join(', ')}, got ${JSON.stringify(o.kind)}`);
  }
  const causes = schemaErrors(info.schema, obj);
  if (causes.length > 0) {
    // Report the cross-field problems in the same answer when the rules can judge this shape, so a
    // form shows every error at once instead of in two rounds. Rules written for valid objects may
    // trip over an invalid one: then the schema errors alone are the answer.
    let semantic: FieldCause[] = [];
    try {
      semantic = info.validate?.(obj as Resource, old, ctx) ?? [];
    } catch {
      semantic = [];
    }
    const seen = new Set(causes.map((c) => c.field));
    throw ApiError.invalid([...causes, ...semantic.filter((c) => !seen.has(c.field))]);
  }
  const semantic = info.validate?.(obj as Resource, old, ctx) ?? [];
  if (semantic.length > 0) throw ApiError.invalid(semantic);
  return obj as Resource;
}

function validateProject(obj: Resource): FieldCause[] {
  const spec = obj.spec as { members?: { user: string }[] };
  const seen = new Set<string>();
  const causes: FieldCause[] = [];
  (spec.members ?? []).forEach((m, i) => {
    if (seen.has(m.user)) causes.push({ field: `spec.members[${i}].user`, message: `duplicate member ${JSON.stringify(m.user)}` });
    seen.add(m.user);
  });
  return causes;
}
