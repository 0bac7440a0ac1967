import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Role } from '../api/kinds.js';
import { decideAccess, denial, type Access, type Principal } from './authz.js';

const user = (name: string, roles: Record<string, Role> = {}, platformAdmin = false): Principal => ({
  user: name,
  platformAdmin,
  roles: new Map(Object.entries(roles)),
});

const viewer = user('vera', { alpha: 'viewer' });
const member = user('max', { alpha: 'member' });
const admin = user('ada', { alpha: 'admin' });
const platform = user('root', {}, true);

test('every access is decided in one table', () => {
  const cases: [Principal, Access, string][] = [
    // objects in a project: role × verb × kind; other projects are invisible
    [viewer, { verb: 'get', kind: 'Cluster', project: 'alpha', name: 'c' }, 'allow'],
    [viewer, { verb: 'create', kind: 'Cluster', project: 'alpha', name: 'c' }, 'forbidden'],
    [member, { verb: 'create', kind: 'Cluster', project: 'alpha', name: 'c' }, 'allow'],
    [member, { verb: 'get', kind: 'Cluster', project: 'beta', name: 'c' }, 'invisible'],
    [viewer, { verb: 'get', kind: 'Secret', project: 'alpha', name: 's' }, 'forbidden'],
    [admin, { verb: 'updateStatus', kind: 'Cluster', project: 'alpha', name: 'c' }, 'forbidden'],
    // projects: members read, admins change, only platform admins create
    [viewer, { verb: 'get', kind: 'Project', project: 'alpha', name: 'alpha' }, 'allow'],
    [member, { verb: 'delete', kind: 'Project', project: 'alpha', name: 'alpha' }, 'forbidden'],
    [admin, { verb: 'update', kind: 'Project', project: 'alpha', name: 'alpha' }, 'allow'],
    [admin, { verb: 'get', kind: 'Project', project: 'beta', name: 'beta' }, 'invisible'],
    [admin, { verb: 'create', kind: 'Project', project: 'new', name: 'new' }, 'forbidden'],
    // users: your own User is readable, others are not acknowledged, writes are for platform admins
    [member, { verb: 'get', kind: 'User', name: 'max' }, 'allow'],
    [member, { verb: 'get', kind: 'User', name: 'ada' }, 'invisible'],
    [member, { verb: 'list', kind: 'User', name: 'max' }, 'invisible'],
    [member, { verb: 'update', kind: 'User', name: 'max' }, 'forbidden'],
    // add-ons: members enable them on their clusters; everyone reads the catalog and the policy, platform admins change them
    [viewer, { verb: 'get', kind: 'Addon', project: 'alpha', name: 'c-coredns' }, 'allow'],
    [viewer, { verb: 'create', kind: 'Addon', project: 'alpha', name: 'c-coredns' }, 'forbidden'],
    [member, { verb: 'delete', kind: 'Addon', project: 'alpha', name: 'c-coredns' }, 'allow'],
    [member, { verb: 'get', kind: 'Addon', project: 'beta', name: 'c-coredns' }, 'invisible'],
    [viewer, { verb: 'list', kind: 'AddonDefinition' }, 'allow'],
    [member, { verb: 'get', kind: 'AddonPolicy', name: 'default' }, 'allow'],
    [admin, { verb: 'create', kind: 'AddonDefinition', name: 'x-v1-0-0' }, 'forbidden'],
    [admin, { verb: 'update', kind: 'AddonPolicy', name: 'default' }, 'forbidden'],
    [platform, { verb: 'update', kind: 'AddonPolicy', name: 'default' }, 'allow'],
    // tokens belong to their owner
    [member, { verb: 'create', kind: 'Token', owner: 'max' }, 'allow'],
    [member, { verb: 'create', kind: 'Token', owner: 'ada' }, 'forbidden'],
    [member, { verb: 'delete', kind: 'Token', name: 't1', owner: 'ada' }, 'invisible'],
    [member, { verb: 'delete', kind: 'Token', name: 'gone' }, 'invisible'],
    // the audit log: a project's for its admins, the whole of it for platform admins
    [admin, { verb: 'list', kind: 'AuditLog', project: 'alpha' }, 'allow'],
    [member, { verb: 'list', kind: 'AuditLog', project: 'alpha' }, 'forbidden'],
    [admin, { verb: 'list', kind: 'AuditLog' }, 'forbidden'],
    [admin, { verb: 'list', kind: 'AuditLog', project: 'beta' }, 'invisible'],
    [platform, { verb: 'list', kind: 'AuditLog' }, 'allow'],
    // functions: viewers read them and their records, members deploy and invoke, replay, ingest
    [viewer, { verb: 'get', kind: 'Function', project: 'alpha', name: 'f' }, 'allow'],
    [viewer, { verb: 'invoke', kind: 'Function', project: 'alpha', name: 'f' }, 'forbidden'],
    [member, { verb: 'invoke', kind: 'Function', project: 'alpha', name: 'f' }, 'allow'],
    [member, { verb: 'invoke', kind: 'Pipeline', project: 'beta', name: 'p' }, 'invisible'],
    [viewer, { verb: 'list', kind: 'Activation', project: 'alpha' }, 'allow'],
    [admin, { verb: 'delete', kind: 'Activation', project: 'alpha', name: 'a' }, 'forbidden'],
    [viewer, { verb: 'list', kind: 'DeadLetter', project: 'alpha' }, 'allow'],
    [viewer, { verb: 'invoke', kind: 'DeadLetter', project: 'alpha', name: 'd' }, 'forbidden'],
    [member, { verb: 'invoke', kind: 'DeadLetter', project: 'alpha', name: 'd' }, 'allow'],
    [member, { verb: 'invoke', kind: 'CloudEvent', project: 'alpha' }, 'allow'],
    [viewer, { verb: 'invoke', kind: 'CloudEvent', project: 'alpha' }, 'forbidden'],
    [viewer, { verb: 'get', kind: 'EventSource', project: 'alpha', name: 'e' }, 'forbidden'],
    [member, { verb: 'update', kind: 'EventSource', project: 'alpha', name: 'e' }, 'forbidden'],
    [admin, { verb: 'update', kind: 'EventSource', project: 'alpha', name: 'e' }, 'allow'],
    // join tokens: viewers list them, members create and revoke them
    [viewer, { verb: 'list', kind: 'JoinToken', project: 'alpha', name: 'c' }, 'allow'],
    [viewer, { verb: 'create', kind: 'JoinToken', project: 'alpha', name: 'c' }, 'forbidden'],
    [member, { verb: 'create', kind: 'JoinToken', project: 'alpha', name: 'c' }, 'allow'],
    [member, { verb: 'delete', kind: 'JoinToken', project: 'beta', name: 'c' }, 'invisible'],
    [platform, { verb: 'create', kind: 'Project', name: 'x' }, 'allow'],
    [platform, { verb: 'delete', kind: 'Token', name: 'gone' }, 'allow'],
  ];
  for (const [p, access, want] of cases) assert.equal(decideAccess(p, access), want, `${p.user} ${JSON.stringify(access)}`);
});

test('a denial is a 404 that names the invisible thing, or a 403 that says why', () => {
  assert.equal(denial(member, { verb: 'get', kind: 'Cluster', project: 'beta', name: 'c' }, 'invisible').message, 'Cluster "c" not found');
  assert.equal(denial(member, { verb: 'list', kind: 'Cluster', project: 'beta' }, 'invisible').message, 'Project "beta" not found');
  assert.equal(denial(member, { verb: 'delete', kind: 'Token', name: 't1' }, 'invisible').code, 404);
  const forbidden = denial(viewer, { verb: 'create', kind: 'Cluster', project: 'alpha', name: 'c' }, 'forbidden');
  assert.equal(forbidden.code, 403);
  assert.match(forbidden.message, /vera may not create Cluster in project alpha/);
  assert.match(denial(admin, { verb: 'list', kind: 'AuditLog' }, 'forbidden').message, /pass \?project=/);
});
