import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Resource } from '../api/meta.js';
import { applyOrder, deepEqual, mergeForUpdate, parseDocuments, prepareObject } from './apply.js';
import { CliError, EXIT } from './errors.js';

const MULTI = `
# a comment before the first document
apiVersion: marina.dev/v1alpha1
kind: Secret
metadata:
  name: creds
spec:
  type: opaque
  data: { password: hunter2 }
---
---
apiVersion: marina.dev/v1alpha1
kind: Cluster
metadata:
  name: demo
  project: other
spec:
  nodePools:
    - { name: etcd, roles: [etcd], replicas: 3 }
...
`;

test('multi-document YAML: empty documents are skipped, order is kept', () => {
  const docs = parseDocuments(MULTI, 'objs.yaml');
  assert.deepEqual(docs.map((d) => [d.object.kind, d.object.metadata.name, d.index]), [['Secret', 'creds', 1], ['Cluster', 'demo', 3]]);
  assert.equal(docs[1]!.source, 'objs.yaml (document 3)');
});

test('JSON, JSON arrays and List objects are accepted', () => {
  const one = { apiVersion: 'marina.dev/v1alpha1', kind: 'Project', metadata: { name: 'p' }, spec: { members: [] } };
  assert.equal(parseDocuments(JSON.stringify(one)).length, 1);
  assert.deepEqual(parseDocuments(JSON.stringify([one, { ...one, metadata: { name: 'q' } }])).map((d) => d.object.metadata.name), ['p', 'q']);
  assert.equal(parseDocuments(JSON.stringify({ kind: 'ClusterList', items: [one, one] })).length, 2);
  assert.deepEqual(parseDocuments(''), []);
});

test('malformed input is invalid input (exit 5) naming the document', () => {
  const bad = (text: string, re: RegExp) =>
    assert.throws(() => parseDocuments(text, 'f.yaml'), (e: unknown) => e instanceof CliError && e.exitCode === EXIT.invalid && re.test(e.message));
  bad('kind: Cluster\nmetadata: {name: a}\n---\nkind: [unclosed', /f\.yaml \(document 2\): malformed YAML/);
  bad('kind: Cluster\nspec: {}', /metadata\.name: missing/);
  bad('metadata: {name: a}', /kind: missing/);
  bad('- 1\n- 2', /expected an object/);
});

test('prepareObject fills project and apiVersion, drops server fields, keeps a given project', () => {
  const [secret, cluster] = parseDocuments(MULTI);
  const s = prepareObject({ ...secret!, object: { ...secret!.object, metadata: { ...secret!.object.metadata, resourceVersion: '5', uid: 'u' }, status: { x: 1 } } }, 'team-a');
  assert.equal(s.metadata.project, 'team-a');
  assert.equal(s.metadata.resourceVersion, undefined);
  assert.equal(s.metadata.uid, undefined);
  assert.equal(s.status, undefined);
  assert.equal(prepareObject(cluster!, 'team-a').metadata.project, 'other');
  const noVersion = parseDocuments('kind: Project\nmetadata: {name: p}\nspec: {members: []}');
  assert.equal(prepareObject(noVersion[0]!, 'x').apiVersion, 'marina.dev/v1alpha1');
  assert.equal(prepareObject(noVersion[0]!, 'x').metadata.project, undefined, 'global kinds get no project');
  assert.throws(() => prepareObject(secret!, undefined), (e: unknown) => e instanceof CliError && /needs a project/.test(e.message));
  assert.throws(() => prepareObject(parseDocuments('kind: Pod\nmetadata: {name: p}')[0]!, 'x'), /unknown kind "Pod"/);
});

test('applyOrder puts users and projects first, otherwise keeps file order', () => {
  const docs = parseDocuments(['Cluster/a', 'Project/p', 'Secret/s', 'Cluster/b', 'User/u'].map((x) => `kind: ${x.split('/')[0]}\nmetadata: {name: ${x.split('/')[1]}}`).join('\n---\n'));
  assert.deepEqual(applyOrder(docs).map((d) => d.object.metadata.name), ['u', 'p', 's', 'a', 'b']);
});

test('deepEqual ignores key order and undefined members', () => {
  assert.ok(deepEqual({ a: 1, b: [1, { c: 2, d: 3 }] }, { b: [1, { d: 3, c: 2 }], a: 1 }));
  assert.ok(deepEqual({ a: 1, b: undefined }, { a: 1 }));
  assert.ok(!deepEqual([1, 2], [2, 1]));
  assert.ok(!deepEqual({ a: 1 }, { a: '1' }));
});

test('mergeForUpdate: unchanged, or the stored object with the new spec and its resourceVersion', () => {
  const current: Resource = {
    apiVersion: 'marina.dev/v1alpha1',
    kind: 'Cluster',
    metadata: { name: 'demo', project: 'p', resourceVersion: '12', uid: 'u1', generation: 2, finalizers: ['marina.dev/cluster'], labels: { env: 'dev' } },
    spec: { nodePools: [{ name: 'etcd', roles: ['etcd'], replicas: 3 }] },
    status: { phase: 'Ready' },
  };
  const desired: Resource = { apiVersion: 'marina.dev/v1alpha1', kind: 'Cluster', metadata: { name: 'demo', project: 'p' }, spec: { nodePools: [{ replicas: 3, roles: ['etcd'], name: 'etcd' }] } };
  assert.equal(mergeForUpdate(current, desired), undefined);

  const scaled = structuredClone(desired);
  (scaled.spec as { nodePools: { replicas: number }[] }).nodePools[0]!.replicas = 5;
  const next = mergeForUpdate(current, scaled)!;
  assert.equal(next.metadata.resourceVersion, '12');
  assert.deepEqual(next.metadata.finalizers, ['marina.dev/cluster']);
  assert.deepEqual(next.metadata.labels, { env: 'dev' }, 'labels the file does not mention are kept');
  assert.deepEqual(next.status, { phase: 'Ready' });
  assert.deepEqual(next.spec, scaled.spec);

  const relabeled = { ...desired, metadata: { ...desired.metadata, labels: { env: 'prod' } } };
  assert.deepEqual(mergeForUpdate(current, relabeled)!.metadata.labels, { env: 'prod' });
});
