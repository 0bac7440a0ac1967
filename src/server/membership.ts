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
      return;
    }
    const members = new Map<string, Role>();
    for (const m of (project.spec as ProjectSpecLike).members ?? []) members.set(m.user, m.role);
    this.byProject.set(project.metadata.name, members);
  }

  rolesOf(user: string): Map<string, Role> {
    const roles = new Map<string, Role>();
    for (const [project, members] of this.byProject) {
      const role = members.get(user);
      if (role) roles.set(project, role);
    }
    return roles;
  }

  stop(): void {
    this.watch?.stop();
  }
}
