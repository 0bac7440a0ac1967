// Where each kind lives and how it is named in URLs: the client's copy of `KINDS` in
// src/api/registry.ts (kept as plain data so that the browser bundle carries no schemas;
// resources.test.ts checks that both agree).
import type { Resource } from '../api/meta.js';

export const API_PATH = '/api/v1alpha1';
/** `apiVersion` of every Marina object (the same as API_VERSION in src/api/meta.ts). */
export const API_VERSION = 'marina.dev/v1alpha1';

/** Where a kind lives and how it is named in URLs. Mirrors `KINDS` in src/api/registry.ts. */
export interface ResourceRef {
  kind: string;
  plural: string;
  scope: 'global' | 'project';
}

export const RESOURCES: readonly ResourceRef[] = [
  { kind: 'User', plural: 'users', scope: 'global' },
  { kind: 'Project', plural: 'projects', scope: 'global' },
  { kind: 'Secret', plural: 'secrets', scope: 'project' },
  { kind: 'Cluster', plural: 'clusters', scope: 'project' },
  { kind: 'NodePool', plural: 'nodepools', scope: 'project' },
  { kind: 'Machine', plural: 'machines', scope: 'project' },
  { kind: 'Alert', plural: 'alerts', scope: 'project' },
  { kind: 'NotificationChannel', plural: 'notificationchannels', scope: 'project' },
  { kind: 'Operation', plural: 'operations', scope: 'project' },
  { kind: 'Snapshot', plural: 'snapshots', scope: 'project' },
  { kind: 'BackupTarget', plural: 'backuptargets', scope: 'project' },
  { kind: 'Function', plural: 'functions', scope: 'project' },
  { kind: 'Pipeline', plural: 'pipelines', scope: 'project' },
  { kind: 'EventSource', plural: 'eventsources', scope: 'project' },
  { kind: 'AddonDefinition', plural: 'addondefinitions', scope: 'global' },
  { kind: 'AddonPolicy', plural: 'addonpolicies', scope: 'global' },
  { kind: 'Addon', plural: 'addons', scope: 'project' },
];

/** A kind name (`Cluster`) or a ref. Unknown kind names are an error. */
export type KindLike = string | ResourceRef;

export function resourceRef(kind: KindLike): ResourceRef {
  if (typeof kind !== 'string') return kind;
  const ref = RESOURCES.find((r) => r.kind === kind);
  if (!ref) throw new Error(`unknown kind ${JSON.stringify(kind)}; known: ${RESOURCES.map((r) => r.kind).join(', ')}`);
  return ref;
}

/** `/api/v1alpha1/projects/p/clusters/demo` and friends. */
export function resourcePath(kind: KindLike, opts: { project?: string; name?: string; subresource?: string } = {}): string {
  const ref = resourceRef(kind);
  let p = API_PATH;
  if (ref.scope === 'project' && opts.project) p += `/projects/${encodeURIComponent(opts.project)}`;
  p += `/${ref.plural}`;
  if (opts.name !== undefined) p += `/${encodeURIComponent(opts.name)}`;
  if (opts.subresource) p += `/${opts.subresource}`;
  return p;
}

/** The project of a project kind, required; undefined for global kinds. */
export function requireProject(kind: KindLike, project: string | undefined): string | undefined {
  const ref = resourceRef(kind);
  if (ref.scope === 'project' && !project) throw new Error(`${ref.kind} lives in a project; give one`);
  return ref.scope === 'project' ? project : undefined;
}

export interface ResourceList<T extends Resource = Resource> {
  apiVersion: string;
  kind: string;
  metadata: { resourceVersion: string; continue?: string };
  items: T[];
}
