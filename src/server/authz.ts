// Who may do what: the one place that decides. Every API route declares the access it needs
// (verb, kind, project, name — see routes.ts), and `decideAccess` answers it; lists that span
// projects ask it once per item.
//
// Roles are ranked: every role can do what the roles below it can.
//   viewer   — read everything in the project except secrets and notification channels
//   member   — create, change and delete clusters; read secrets and kubeconfigs
//   operator — day-2 operations on machines and pools (replace a node, tune a pool): Operations
//              (snapshot, restore, replace a machine), approving, rejecting and cancelling them
//              (never their own: four-eyes is checked where they are approved), deleting snapshots
//   admin    — the project itself: its members and its deletion; its notification channels and
//              its audit log
// Functions and pipelines run the project's code with its Secrets: members deploy and invoke them
// (verb `invoke`: a call, a pipeline run, a dead letter's replay, an ingested CloudEvent), viewers
// read them and their records (activations, pipeline runs, dead letters). Event sources name the
// Secret that signs a third party's events: members read them, admins change them.
// Join tokens let users' own servers into a cluster's import pool, as changing the cluster would:
// members create and revoke them, viewers list them (never their secrets).
// Alerts are written by Marina (controllers); users read them (viewer+), only platform admins
// write them through the API. Notification channels hold webhook URLs, which often carry a secret:
// members read them, admins change them.
// Members enable and disable add-ons (Addon) like they create clusters; the catalog
// (AddonDefinition) and the AddonPolicy are global: everyone reads them, platform admins write them.
// Platform admins (User.spec.platformAdmin) may do everything, in every project. Status is
// written by Marina's own controllers; through the API only platform admins may write it.
// Users and projects are created by platform admins; everyone may read their own User, and API
// tokens are their owner's (platform admins issue and revoke anyone's).
import { ApiError } from '../api/errors.js';
import type { Role } from '../api/kinds.js';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'updateStatus' | 'approve' | 'cancel' | 'invoke';

const RANK: Record<Role, number> = { viewer: 1, member: 2, operator: 3, admin: 4 };
const READ: ReadonlySet<Verb> = new Set(['get', 'list', 'watch']);

export interface Principal {
  user: string;
  platformAdmin: boolean;
  /** Role per project the user is a member of. */
  roles: ReadonlyMap<string, Role>;
  tokenId?: string;
}

/**
 * What a request needs. `kind` is a kind of the API or one of the non-object resources `Token`,
 * `AuditLog`, `JoinToken` and the function service's records (`Activation`, `PipelineRun`,
 * `DeadLetter`, `CloudEvent`). For objects in a project, `project` is the project; for a Project it is the
 * project itself (its name); `owner` is the user a Token belongs to.
 */
export interface Access {
  verb: Verb;
  kind: string;
  project?: string;
  name?: string;
  owner?: string;
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
    case 'Operation':
      // An Operation is a record: it is created, approved, rejected or cancelled, never edited.
      if (read) return 'viewer';
      return verb === 'create' || verb === 'approve' || verb === 'cancel' ? 'operator' : undefined;
    case 'Snapshot':
      // Marina takes snapshots (through Operations); people read and delete them.
      if (read) return 'viewer';
      return verb === 'delete' ? 'operator' : undefined;
    case 'BackupTarget':
      return read ? 'viewer' : 'admin';
    case 'Alert':
      return read ? 'viewer' : undefined;
    case 'NotificationChannel':
      return read ? 'member' : 'admin';
    case 'Function':
    case 'Pipeline':
      return read ? 'viewer' : 'member';
    // Records the function service writes; `invoke` on a DeadLetter replays it, on a CloudEvent
    // ingests it.
    case 'Activation':
    case 'PipelineRun':
      return read ? 'viewer' : undefined;
    case 'DeadLetter':
    case 'CloudEvent':
      return read ? 'viewer' : verb === 'invoke' ? 'member' : undefined;
    case 'EventSource':
      return read ? 'member' : 'admin';
    case 'JoinToken':
      return read ? 'viewer' : 'member';
    case 'AuditLog':
      return 'admin';
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

/** Decides any access: objects in projects, projects, users, tokens, the audit log. */
export function decideAccess(p: Principal, a: Access): Decision {
  if (p.platformAdmin) return 'allow';
  switch (a.kind) {
    case 'User':
      // Everyone reads their own User; other users are not acknowledged.
      if (a.verb === 'get' && a.name === p.user) return 'allow';
      return READ.has(a.verb) ? 'invisible' : 'forbidden';
    case 'Token':
      if (a.owner === p.user) return 'allow';
      // Issuing for someone else is refused outright; another user's token is not acknowledged.
      return a.verb === 'create' ? 'forbidden' : 'invisible';
    case 'Project':
      if (a.verb === 'create') return 'forbidden';
      return decide(p, a.verb, 'Project', a.project ?? a.name ?? '');
    case 'AddonDefinition':
    case 'AddonPolicy':
      // The catalog and the platform's add-on choices: every signed-in user reads them (to pick
      // an add-on and its values); they are the platform's to change.
      return READ.has(a.verb) ? 'allow' : 'forbidden';
    default:
      // The whole audit log (no project) is for platform admins only.
      if (a.project === undefined) return 'forbidden';
      return decide(p, a.verb, a.kind, a.project);
  }
}

/** The error for a denied access: 404 when the target is invisible to the caller, 403 otherwise. */
export function denial(p: Principal, a: Access, decision: Exclude<Decision, 'allow'>): ApiError {
  if (decision === 'invisible') {
    if (a.kind === 'Token') return new ApiError(404, 'NotFound', `token ${JSON.stringify(a.name ?? '')} not found`);
    if (a.kind === 'Project' || a.name === undefined) return ApiError.notFound('Project', a.project ?? a.name ?? '');
    return ApiError.notFound(a.kind, a.name);
  }
  switch (a.kind) {
    case 'Token':
      return ApiError.forbidden('only platform admins issue tokens for other users');
    case 'AuditLog':
      return ApiError.forbidden(
        a.project === undefined
          ? 'only platform admins read the whole audit log; pass ?project='
          : `reading the audit log of project ${a.project} needs the admin role`,
      );
    case 'User':
    case 'AddonDefinition':
    case 'AddonPolicy':
      return ApiError.forbidden(`only platform admins may ${a.verb} ${a.kind} objects`);
    case 'Project':
      if (a.verb === 'create') return ApiError.forbidden('only platform admins may create Project objects');
      return ApiError.forbidden(`user ${p.user} may not ${a.verb} project ${a.project ?? a.name}`);
    default:
      return ApiError.forbidden(`user ${p.user} may not ${a.verb} ${a.kind} in project ${a.project}`);
  }
}
