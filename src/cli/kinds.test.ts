import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RESOURCES } from '../client/index.js';
import { CliError, EXIT } from './errors.js';
import { aliasesOf, objectRef, resolveKind, splitKindArgs } from './kinds.js';

test('kinds resolve from singular, plural, short forms and any case', () => {
  const cases: [string, string][] = [
    ['cluster', 'Cluster'], ['clusters', 'Cluster'], ['cl', 'Cluster'], ['Cluster', 'Cluster'], ['CLUSTERS', 'Cluster'],
    ['nodepool', 'NodePool'], ['nodepools', 'NodePool'], ['np', 'NodePool'], ['NodePool', 'NodePool'],
    ['machine', 'Machine'], ['machines', 'Machine'], ['m', 'Machine'],
    ['project', 'Project'], ['projects', 'Project'], ['proj', 'Project'],
    ['user', 'User'], ['users', 'User'], ['secret', 'Secret'], ['secrets', 'Secret'],
    ['alert', 'Alert'], ['alerts', 'Alert'], ['al', 'Alert'],
    ['notificationchannel', 'NotificationChannel'], ['NotificationChannels', 'NotificationChannel'], ['channel', 'NotificationChannel'], ['nc', 'NotificationChannel'],
  ];
  for (const [input, kind] of cases) assert.equal(resolveKind(input).kind, kind, input);
  assert.equal(resolveKind('np').plural, 'nodepools');
  assert.equal(resolveKind('project').scope, 'global');
  assert.equal(resolveKind('secret').scope, 'project');
});

test('an unknown kind is a usage error that lists the known ones', () => {
  assert.throws(() => resolveKind('pods'), (e: unknown) => e instanceof CliError && e.exitCode === EXIT.usage && /cluster\/cl/.test(e.message));
});

test('every alias is unique to its kind', () => {
  const all = RESOURCES.flatMap((r) => aliasesOf(r.kind));
  assert.equal(new Set(all).size, all.length);
  assert.ok(aliasesOf('Machine').includes('m'));
});

test('KIND/NAME arguments split like kubectl', () => {
  assert.deepEqual(splitKindArgs('cluster/demo', []), { ref: resolveKind('Cluster'), names: ['demo'] });
  assert.deepEqual(splitKindArgs('cl/a', ['cluster/b', 'c']).names, ['a', 'b', 'c']);
  assert.deepEqual(splitKindArgs('machines', ['x', 'y']).names, ['x', 'y']);
  assert.throws(() => splitKindArgs('cluster/a', ['machine/b']), /cannot mix kinds/);
  assert.equal(objectRef('NodePool', 'w'), 'nodepool/w');
});
