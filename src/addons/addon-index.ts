// Every Addon, by cluster, as the starter's watch last saw it: for dependency and duplicate checks,
// shared objects, and the resync of one cluster, without listing the store each time.
import type { Addon } from '../api/addons.js';
import { refKey } from './refs.js';

export const clusterKeyOf = (project: string, cluster: string): string => `${project}/${cluster}`;

export class AddonIndex {
  private readonly byCluster = new Map<string, Map<string, Addon>>();

  /** Records a change; returns the previous state of the object. */
  note(addon: Addon, deleted: boolean): Addon | undefined {
    const key = clusterKeyOf(addon.metadata.project ?? '', addon.spec.cluster);
    let addons = this.byCluster.get(key);
    const previous = addons?.get(addon.metadata.name);
    if (deleted) {
      addons?.delete(addon.metadata.name);
      if (addons?.size === 0) this.byCluster.delete(key);
    } else {
      if (!addons) this.byCluster.set(key, (addons = new Map()));
      addons.set(addon.metadata.name, addon);
    }
    return previous;
  }

  /** The Addons of one cluster, oldest first (the oldest of two for the same add-on wins). */
  of(project: string, cluster: string): Addon[] {
    return [...(this.byCluster.get(clusterKeyOf(project, cluster))?.values() ?? [])].sort(
      (a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || a.metadata.name.localeCompare(b.metadata.name),
    );
  }

  clusterKeys(): string[] {
    return [...this.byCluster.keys()];
  }

  /** Is the object `key` (refKey) in the inventory of another live add-on of the cluster? */
  sharedWith(project: string, cluster: string, exceptName: string, key: string): boolean {
    return this.of(project, cluster).some(
      (a) => a.metadata.name !== exceptName && !a.metadata.deletionTimestamp && (a.status?.inventory ?? []).some((r) => refKey(r) === key),
    );
  }
}
