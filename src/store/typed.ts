// Typed access to the store, per kind: the one place where a stored Resource becomes a Cluster, a
// Machine, a Secret..., so the code that reads and writes them does not cast. The kind name picks
// the type: `typed(store, 'Machine').get(project, name)` is a Machine or undefined.
import { isApiError } from '../api/errors.js';
import type { Addon, AddonDefinition, AddonPolicy } from '../api/addons.js';
import type { Alert, Cluster, Machine, NodePool, NotificationChannel, Project, Secret, User } from '../api/kinds.js';
import type { Resource } from '../api/meta.js';
import type { BackupTarget, Operation, Snapshot } from '../api/operations.js';
import { LABEL_CLUSTER } from '../api/wellknown.js';
import type { ListOptions, Store } from './types.js';

/** The type of each kind's objects. */
export interface Kinds {
  User: User;
  Project: Project;
  Secret: Secret;
  Cluster: Cluster;
  NodePool: NodePool;
  Machine: Machine;
  Alert: Alert;
  NotificationChannel: NotificationChannel;
  Operation: Operation;
  Snapshot: Snapshot;
  BackupTarget: BackupTarget;
  AddonDefinition: AddonDefinition;
  AddonPolicy: AddonPolicy;
  Addon: Addon;
}

export type KindName = keyof Kinds;

export interface TypedStore<T extends Resource> {
  /** `project` is empty for global kinds. */
  get(project: string, name: string): Promise<T | undefined>;
  /** Every object matching the options, all pages read. */
  list(opts?: Omit<ListOptions, 'limit' | 'continue'>): Promise<T[]>;
  create(obj: T): Promise<T>;
  update(obj: T): Promise<T>;
  updateStatus(obj: T): Promise<T>;
  /** Deletes (or marks for deletion); an object that is already gone counts as deleted. */
  deleteIfExists(project: string, name: string): Promise<void>;
}

const PAGE = 500;

export function typed<K extends KindName>(store: Store, kind: K): TypedStore<Kinds[K]> {
  type T = Kinds[K];
  // The store validated every object against its kind's schema when it was written: what comes
  // back for `kind` is a T.
  const as = (obj: Resource): T => obj as T;
  return {
    get: async (project, name) => {
      const obj = await store.get({ kind, project, name });
      return obj && as(obj);
    },
    list: async (opts = {}) => {
      const out: T[] = [];
      let cont: string | undefined;
      do {
        const page = await store.list(kind, { ...opts, limit: PAGE, continue: cont });
        out.push(...page.items.map(as));
        cont = page.continue;
      } while (cont);
      return out;
    },
    create: async (obj) => as(await store.create(obj)),
    update: async (obj) => as(await store.update(obj)),
    updateStatus: async (obj) => as(await store.updateStatus(obj)),
    deleteIfExists: async (project, name) => {
      try {
        await store.delete({ kind, project, name });
      } catch (err) {
        if (!(isApiError(err) && err.code === 404)) throw err;
      }
    },
  };
}

/** The Machines of a cluster (labelled with it, and naming it in spec.cluster). */
export async function clusterMachines(store: Store, project: string, cluster: string): Promise<Machine[]> {
  const items = await typed(store, 'Machine').list({ project, labelSelector: `${LABEL_CLUSTER}=${cluster}` });
  return items.filter((m) => m.spec.cluster === cluster);
}

/** The NodePools of a cluster (labelled with it, and naming it in spec.cluster). */
export async function clusterNodePools(store: Store, project: string, cluster: string): Promise<NodePool[]> {
  const items = await typed(store, 'NodePool').list({ project, labelSelector: `${LABEL_CLUSTER}=${cluster}` });
  return items.filter((p) => p.spec.cluster === cluster);
}
