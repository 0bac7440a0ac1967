// How the add-on controllers name the objects they manage: identity across API versions (what the
// inventory, pruning and the shared-object check compare), names for people, and API errors as
// one line.
import type { ObjectRef } from '../clusteraccess/access.js';
import { KubeError } from '../kube/client.js';

/** `apps/v1` → `apps`; `v1` → `` (the core group). */
export function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

/** Identity across API versions of a kind (policy/v1beta1 and policy/v1 name the same object). */
export function refKey(r: ObjectRef): string {
  return `${groupOf(r.apiVersion)}/${r.kind}/${r.namespace ?? ''}/${r.name}`;
}

/** `Deployment kube-system/coredns`, `Namespace monitoring`. */
export function showRef(r: { kind: string; namespace?: string; name: string }): string {
  return `${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}`;
}

export function describeKubeError(err: unknown): string {
  if (err instanceof KubeError) return `${err.code ? `HTTP ${err.code} ` : ''}${err.reason}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
