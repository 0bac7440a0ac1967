// How a Marina object sits in the Kubernetes API, and back.
//
// - One namespace holds everything. A project-scoped object is the custom resource
//   `<project>.<name>` (both are DNS-1123 labels, so the dot makes the name unique per
//   (kind, project) and reversible) with the label `store.marina.dev/project=<project>`, which
//   lets the API server filter by project; a global object (User, Project) is named `<name>`.
// - Marina's generation is kept in the annotation `store.marina.dev/generation`: without a status
//   subresource (Marina creates objects together with their status, in one write) Kubernetes bumps
//   metadata.generation on status changes and on deletion, Marina only on spec changes.
// - Labels, annotations, finalizers, uid, resourceVersion, creationTimestamp and
//   deletionTimestamp are Kubernetes' own. Keys under `store.marina.dev/` are reserved.
// - The spec of a sensitive kind (Secret, NotificationChannel) is encrypted by Marina before it is
//   written, exactly as in the SQLite store (same AAD), so the API server never sees it.
import { ApiError } from '../../api/errors.js';
import { API_VERSION, GROUP, VERSION, type Resource } from '../../api/meta.js';
import type { KindInfo } from '../../api/registry.js';
import { KubeError, type KubeObject, type ResourceType } from '../../kube/client.js';
import { aadOf, envelope, type Labels } from '../admission.js';
import { decryptJson, encryptJson, isEncryptedField } from '../crypto.js';
import { RESERVED_PREFIX } from './crd.js';

export const PROJECT_LABEL = `${RESERVED_PREFIX}project`;
export const GENERATION_ANNOTATION = `${RESERVED_PREFIX}generation`;

/** A Marina object as the API server holds it. */
export interface CustomResource extends KubeObject {
  apiVersion: string;
  kind: string;
  metadata: NonNullable<KubeObject['metadata']> & { name: string };
  spec?: unknown;
  status?: unknown;
}

export function resourceType(info: KindInfo): ResourceType {
  return { apiVersion: `${GROUP}/${VERSION}`, kind: info.kind, plural: info.plural, namespaced: true };
}

/** The custom resource's name of a Marina object. */
export function crName(info: KindInfo, project: string, name: string): string {
  return info.scope === 'project' ? `${project}.${name}` : name;
}

function splitName(info: KindInfo, cr: CustomResource): { project: string; name: string } {
  const n = cr.metadata.name;
  if (info.scope === 'global') return { project: '', name: n };
  const project = cr.metadata.labels?.[PROJECT_LABEL] ?? n.slice(0, Math.max(0, n.indexOf('.')));
  return { project, name: n.slice(project.length + 1) };
}

function refuseReserved(map: Labels | undefined, field: string): void {
  for (const k of Object.keys(map ?? {})) {
    if (k.startsWith(RESERVED_PREFIX)) throw ApiError.invalidField(field, `keys under ${RESERVED_PREFIX} are reserved for the store (${JSON.stringify(k)})`);
  }
}

function withoutReserved(map: Record<string, string> | undefined): Labels | undefined {
  if (!map) return undefined;
  const out: Labels = {};
  for (const [k, v] of Object.entries(map)) if (!k.startsWith(RESERVED_PREFIX)) out[k] = v;
  return Object.keys(out).length > 0 ? out : undefined;
}

/**
 * The custom resource for a Marina object (as admitted). `resourceVersion` and `uid` are the
 * preconditions of a replace; absent for a create.
 */
export function toCustomResource(info: KindInfo, obj: Resource, namespace: string, key: Buffer): CustomResource {
  const md = obj.metadata;
  const project = md.project ?? '';
  refuseReserved(md.labels, 'metadata.labels');
  refuseReserved(md.annotations, 'metadata.annotations');
  const labels: Record<string, string> = { ...md.labels };
  if (info.scope === 'project') labels[PROJECT_LABEL] = project;
  const annotations: Record<string, string> = { ...md.annotations, [GENERATION_ANNOTATION]: String(md.generation ?? 1) };
  const cr: CustomResource = {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: info.kind,
    metadata: { name: crName(info, project, md.name), namespace, labels, annotations },
  };
  if (md.finalizers?.length) cr.metadata.finalizers = md.finalizers;
  if (md.resourceVersion) cr.metadata.resourceVersion = md.resourceVersion;
  if (md.uid) cr.metadata.uid = md.uid;
  if (obj.spec !== undefined) {
    cr.spec = info.sensitive ? encryptJson(key, obj.spec, aadOf({ kind: info.kind, project, name: md.name })) : obj.spec;
  }
  if (obj.status !== undefined) cr.status = obj.status;
  return cr;
}

/** The Marina object a custom resource holds (spec decrypted for sensitive kinds). */
export function fromCustomResource(info: KindInfo, cr: CustomResource, key: Buffer): Resource {
  const { project, name } = splitName(info, cr);
  const m = cr.metadata;
  const generation = Number(m.annotations?.[GENERATION_ANNOTATION] ?? '1');
  let spec = cr.spec;
  if (info.sensitive && isEncryptedField(spec)) spec = decryptJson(key, spec, aadOf({ kind: info.kind, project, name }));
  return envelope(
    API_VERSION,
    info.kind,
    {
      name,
      project: project || undefined,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      generation: Number.isSafeInteger(generation) ? generation : 1,
      creationTimestamp: m.creationTimestamp,
      deletionTimestamp: m.deletionTimestamp,
      labels: withoutReserved(m.labels),
      annotations: withoutReserved(m.annotations),
      finalizers: m.finalizers,
    },
    spec,
    cr.status,
  );
}

const UNKNOWN_FIELD_RE = /unknown field "([^"]+)"/g;

/**
 * The API server's answer as the ApiError the store contract names (404, 409, 410, 422). Anything
 * else (403: Marina's service account lacks a permission; 5xx; no connection) stays a KubeError:
 * it is the server's problem, not the request's.
 */
export function toApiError(err: unknown, kind: string, name: string): unknown {
  if (!(err instanceof KubeError)) return err;
  switch (err.code) {
    case 404:
      return ApiError.notFound(kind, name);
    case 409:
      return err.reason === 'AlreadyExists' ? ApiError.alreadyExists(kind, name) : ApiError.conflict(kind, name, err.message);
    case 410:
      return ApiError.gone(`${err.message}; list again`);
    case 422: {
      const causes = (err.details?.causes ?? [])
        .filter((c) => c.field)
        .map((c) => ({ field: c.field!, message: c.message ?? err.message }));
      return ApiError.invalid(causes.length > 0 ? dedupe(causes) : [{ field: '<root>', message: err.message }]);
    }
    case 400: {
      // fieldValidation=Strict: a field the CRD schema does not know.
      const fields = [...err.message.matchAll(UNKNOWN_FIELD_RE)].map((m) => m[1]!);
      if (fields.length > 0) return ApiError.invalid(fields.map((field) => ({ field, message: 'unknown field' })));
      return ApiError.badRequest(err.message);
    }
    case 504:
      // "Too large resource version": a revision from the future for this management cluster.
      if (/too large resource version/i.test(err.message)) return ApiError.gone(`${err.message}; list again`);
      return err;
    default:
      return err;
  }
}

function dedupe(causes: { field: string; message: string }[]): { field: string; message: string }[] {
  const seen = new Set<string>();
  return causes.filter((c) => {
    const k = `${c.field}\u0000${c.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
