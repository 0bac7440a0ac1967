// An in-memory index of project membership, kept current by a store watch, so that authorizing a
// request needs no store read.
import type { Role } from '../api/kinds.js';
import type { Resource } from '../api/meta.js';
import type { Store, Watch } from '../store/types.js';

interface ProjectSpecLike {
  members?: { user: string; role: Role }[];
}

export class MembershipIndex {
  private byProject = new Map<string, Map<string, Role>>();
  /** Derived from byProject on every change: requests look roles up per user, writes are rare. */
  private byUser = new Map<string, Map<string, Role>>();
  private watch?: Watch;

  private constructor(private readonly store: Store) {}

  static async start(store: Store): Promise<MembershipIndex> {
    const index = new MembershipIndex(store);
    const list = await store.list('Project');
    for (const p of list.items) index.apply(p, false);
    index.watch = store.watch({ kind: 'Project', resourceVersion: list.resourceVersion }, (ev) =>
      index.apply(ev.object, ev.type === 'DELETED'),
    );
    return index;
  }

  private apply(project: Resource, deleted: boolean): void {
    if (deleted) {
      this.byProject.delete(project.metadata.name);
    } else {
      const members = new Map<string, Role>();
      for (const m of (project.spec as ProjectSpecLike).members ?? []) members.set(m.user, m.role);
      this.byProject.set(project.metadata.name, members);
    }
    this.byUser = new Map();
    for (const [name, members] of this.byProject) {
      for (const [user, role] of members) {
        let roles = this.byUser.get(user);
        if (!roles) this.byUser.set(user, (roles = new Map()));
        roles.set(name, role);
      }
    }
  }

  /** The user's role per project; callers must not change the map. */
  rolesOf(user: string): ReadonlyMap<string, Role> {
    return this.byUser.get(user) ?? new Map();
  }

  stop(): void {
    this.watch?.stop();
  }
}
