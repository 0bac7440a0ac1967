import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import type { Resource } from '../api/meta.js';
import { age, clusterPools, columnsFor, formatResources, formatTable, formatWatchEvent, humanDuration, parseOutputFormat, StreamingTable } from './output.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();

const cluster: Resource = {
  apiVersion: 'marina.dev/v1alpha1',
  kind: 'Cluster',
  metadata: { name: 'demo', project: 'team-a', creationTimestamp: ago(125), resourceVersion: '7' },
  spec: {
    kubernetesVersion: 'v1.36.3',
    nodePools: [
      { name: 'etcd', roles: ['etcd'], replicas: 3 },
      { name: 'controlplane', roles: ['controlplane'], replicas: 1 },
      { name: 'workers', roles: ['worker'], replicas: 2 },
    ],
  },
  status: {
    phase: 'Provisioning',
    endpoint: 'https://127.0.10.1:6443',
    pools: [
      { name: 'etcd', replicas: 3, readyReplicas: 3 },
      { name: 'controlplane', replicas: 1, readyReplicas: 1 },
      { name: 'workers', replicas: 2, readyReplicas: 0 },
    ],
  },
};

const machine: Resource = {
  apiVersion: 'marina.dev/v1alpha1',
  kind: 'Machine',
  metadata: { name: 'demo-etcd-x2k1', project: 'team-a', creationTimestamp: ago(30) },
  spec: { cluster: 'demo', pool: 'etcd', roles: ['etcd'], provider: 'local', kubernetesVersion: 'v1.36.3' },
  status: { phase: 'Running', address: '127.0.10.5', nodeName: 'demo-etcd-x2k1', nodeReady: true },
};

test('humanDuration follows kubectl', () => {
  assert.equal(humanDuration(0), '0s');
  assert.equal(humanDuration(45_000), '45s');
  assert.equal(humanDuration(119_000), '119s');
  assert.equal(humanDuration(125_000), '2m5s');
  assert.equal(humanDuration(600_000), '10m');
  assert.equal(humanDuration(3 * 3600_000 + 20 * 60_000), '3h20m');
  assert.equal(humanDuration(30 * 3600_000), '30h');
  assert.equal(humanDuration(50 * 3600_000), '2d2h');
  assert.equal(humanDuration(45 * 86400_000), '45d');
  assert.equal(humanDuration(800 * 86400_000), '2y70d');
  assert.equal(age(undefined), '<unknown>');
  assert.equal(age(ago(10), NOW), '10s');
});

test('formatTable pads every column but the last', () => {
  assert.equal(formatTable(['NAME', 'AGE'], [['a', '1s'], ['longer-name', '2m']]), 'NAME          AGE\na             1s\nlonger-name   2m\n');
});

test('cluster table: NAME VERSION PHASE ENDPOINT POOLS AGE', () => {
  const text = formatResources('table', 'Cluster', [cluster], { now: NOW });
  const [header, row] = text.trimEnd().split('\n');
  assert.deepEqual(header!.split(/\s+/), ['NAME', 'VERSION', 'PHASE', 'ENDPOINT', 'POOLS', 'AGE']);
  assert.deepEqual(row!.split(/\s+/), ['demo', 'v1.36.3', 'Provisioning', 'https://127.0.10.1:6443', '4/6', '2m5s']);
  assert.equal(clusterPools({ ...cluster, status: {} }), '0/6');
});

test('-A adds a PROJECT column first', () => {
  const text = formatResources('table', 'Cluster', [cluster], { now: NOW, withProject: true });
  assert.match(text, /^PROJECT\s+NAME\s+VERSION/);
  assert.match(text.split('\n')[1]!, /^team-a\s+demo/);
});

test('machine, nodepool, project, user and secret columns', () => {
  const m = formatResources('table', 'Machine', [machine], { now: NOW }).split('\n');
  assert.deepEqual(m[0]!.split(/\s{2,}/), ['NAME', 'CLUSTER', 'POOL', 'ROLES', 'PHASE', 'ADDRESS', 'NODE', 'AGE']);
  assert.deepEqual(m[1]!.split(/\s{2,}/), ['demo-etcd-x2k1', 'demo', 'etcd', 'etcd', 'Running', '127.0.10.5', 'demo-etcd-x2k1 (Ready)', '30s']);

  const pool: Resource = { apiVersion: 'x', kind: 'NodePool', metadata: { name: 'demo-workers', creationTimestamp: ago(5) }, spec: { cluster: 'demo', roles: ['worker', 'etcd'], replicas: 3 }, status: { readyReplicas: 1 } };
  assert.deepEqual(formatResources('table', 'NodePool', [pool], { now: NOW }).split('\n')[1]!.split(/\s+/), ['demo-workers', 'demo', 'worker,etcd', '1/3', '5s']);

  const project: Resource = { apiVersion: 'x', kind: 'Project', metadata: { name: 'team-a', creationTimestamp: ago(5) }, spec: { members: [{ user: 'a', role: 'admin' }, { user: 'b', role: 'viewer' }] } };
  assert.deepEqual(formatResources('table', 'Project', [project], { now: NOW }).split('\n').map((l) => l.split(/\s+/).filter(Boolean)), [['NAME', 'MEMBERS', 'AGE'], ['team-a', '2', '5s'], []]);

  const user: Resource = { apiVersion: 'x', kind: 'User', metadata: { name: 'root' }, spec: { platformAdmin: true } };
  assert.match(formatResources('table', 'User', [user], { now: NOW }), /root\s+true\s+<none>\s+<unknown>/);

  const secret: Resource = { apiVersion: 'x', kind: 'Secret', metadata: { name: 's' }, spec: { type: 'opaque', data: { a: '1', b: '2' } } };
  const st = formatResources('table', 'Secret', [secret], { now: NOW });
  assert.match(st, /s\s+opaque\s+2\s+/);
  assert.doesNotMatch(st, /\b1\b.*\b2\b.*\b2\b/);
});

test('a deletion in progress shows in the phase', () => {
  const deleting = { ...machine, metadata: { ...machine.metadata, deletionTimestamp: ago(1) } };
  assert.match(formatResources('table', 'Machine', [deleting], { now: NOW }), /Running \(Deleting\)/);
});

test('json and yaml outputs parse back; one named object is not wrapped in a list', () => {
  const list = JSON.parse(formatResources('json', 'Cluster', [cluster, cluster], { resourceVersion: '9' }));
  assert.equal(list.kind, 'ClusterList');
  assert.equal(list.metadata.resourceVersion, '9');
  assert.equal(list.items.length, 2);
  assert.deepEqual(JSON.parse(formatResources('json', 'Cluster', [cluster], { single: true })), cluster);
  assert.deepEqual(parseYaml(formatResources('yaml', 'Cluster', [cluster], { single: true })), cluster);
  assert.equal(parseYaml(formatResources('yaml', 'Cluster', [cluster])).items[0].metadata.name, 'demo');
  assert.equal(formatResources('name', 'Cluster', [cluster, machine]), 'cluster/demo\nmachine/demo-etcd-x2k1\n');
  assert.equal(formatResources('table', 'Cluster', []), '');
});

test('output format parsing', () => {
  assert.equal(parseOutputFormat(undefined), 'table');
  assert.equal(parseOutputFormat('YAML'), 'yaml');
  assert.equal(parseOutputFormat('wide'), 'table');
  assert.throws(() => parseOutputFormat('xml'), /unknown output format/);
  assert.throws(() => parseOutputFormat('name', ['table', 'json']), /unknown output format/);
});

test('watch events: NDJSON, YAML documents, names and aligned table rows', () => {
  const ev = { type: 'MODIFIED' as const, object: cluster };
  assert.deepEqual(JSON.parse(formatWatchEvent('json', ev)), ev);
  assert.deepEqual(parseYaml(formatWatchEvent('yaml', ev).replace(/^---\n/, '')), ev);
  assert.equal(formatWatchEvent('name', ev), 'MODIFIED cluster/demo\n');
  const cols = columnsFor('Cluster');
  const table = new StreamingTable(['EVENT', ...cols.map((c) => c.header)]);
  const header = table.headerLine();
  const row = formatWatchEvent('table', ev, { table, cols }, NOW);
  assert.equal(header.indexOf('NAME'), row.indexOf('demo'));
  assert.ok(row.startsWith('MODIFIED'));
});
