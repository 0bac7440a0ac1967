// Who may do what. Roles are ranked: every role can do what the roles below it can.
//   viewer   — read everything in the project except secrets and notification channels
//   member   — create, change and delete clusters; read secrets and kubeconfigs
//   operator — day-2 operations on machines and pools (replace a node, tune a pool)
//   admin    — the project itself: its members and its deletion; its notification channels
// Alerts are written by Marina (controllers); users read them (viewer+), only platform admins
// write them through the API. Notification channels hold webhook URLs, which often carry a secret:
// members read them, admins change them.
// Members enable and disable add-ons (Addon) like they create clusters; the catalog
// (AddonDefinition) and the AddonPolicy are global: everyone reads them, platform admins write them.
// Platform admins (User.spec.platformAdmin) may do everything, in every project. Status is
// written by Marina's own controllers; through the API only platform admins may write it.
import type { Role } from '../api/kinds.js';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'updateStatus';

const RANK: Record<Role, number> = { viewer: 1, member: 2, operator: 3, admin: 4 };
const READ: ReadonlySet<Verb> = new Set(['get', 'list', 'watch']);

export interface Principal {
  user: string;
  platformAdmin: boolean;
  /** Role per project the user is a member of. */
  roles: ReadonlyMap<string, Role>;
  tokenId?: string;
}

/** The lowest project role allowed to apply `verb` to `kind`; undefined: platform admins only. */
export function requiredRole(verb: Verb, kind: string): Role | undefined {
  if (verb === 'updateStatus') return undefined;
  const read = READ.has(verb);
  switch (kind) {
    case 'Project':
      if (read) return 'viewer';
      return verb === 'create' ? undefined : 'admin';
    case 'User':
      return undefined;
    case 'Secret':
      return 'member';
    case 'Cluster':
    case 'Addon':
      return read ? 'viewer' : 'member';
    case 'NodePool':
    case 'Machine':
      return read ? 'viewer' : 'operator';
    case 'Alert':
      return read ? 'viewer' : undefined;
    case 'NotificationChannel':
      return read ? 'member' : 'admin';
    default:
      return read ? 'viewer' : 'admin';
  }
}

export function roleAllows(role: Role | undefined, required: Role | undefined): boolean {
  if (role === undefined || required === undefined) return false;
  return RANK[role] >= RANK[required];
}

export type Decision = 'allow' | 'forbidden' | 'invisible';

/**
 * Decides a request on one project's object. A user who is no member of the project gets
 * 'invisible' so the API can answer 404 and not reveal that the project exists.
 */
export function decide(p: Principal, verb: Verb, kind: string, project: string): Decision {
  if (p.platformAdmin) return 'allow';
  const role = p.roles.get(project);
  if (role === undefined) return 'invisible';
  return roleAllows(role, requiredRole(verb, kind)) ? 'allow' : 'forbidden';
}
