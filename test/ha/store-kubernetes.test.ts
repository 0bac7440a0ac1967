// What only the Kubernetes-backed store does (the contract itself: store-conformance.test.ts), on a
// real etcd + kube-apiserver: continue tokens expire when the API server no longer has their revision, a watch resumes on
// another replica from a revision seen on the first, the store's own keys and Kubernetes' label
// syntax are 422s naming the field, a field the CRD does not know is a 422 (not silently pruned),
// replicas must share the encryption key, and outdated CRDs are applied or reported.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Resources } from '../../src/kube/client.js';
import { cluster, collect, barrier, rejectsApi, waitFor } from '../../src/store/conformance.js';
import { SCHEMA_HASH_ANNOTATION } from '../../src/store/kubernetes/crd.js';
import { openKubernetesStore } from '../../src/store/kubernetes/store.js';
import { startManagement, TEST_KEY, toolchainOrSkip, type Management } from './management.js';

const run = promisify(execFile);
const tc = toolchainOrSkip();

describe('kubernetes store: beyond the contract', { skip: tc.skip }, () => {
  let mgmt: Management;
  before(async () => {
    mgmt = await startManagement(tc.toolchain!);
  });
  after(async () => {
    await mgmt?.stop();
  });

  /** Compacts the management etcd up to its current revision (kube-apiserver does it every 5 min). */
  async function compactEtcd(): Promise<void> {
    const f = mgmt.cp.pki.files;
    const etcd = mgmt.cp.components.find((c) => c.name === 'etcd')!;
    const args = [`--endpoints=https://${mgmt.cp.host}:${etcd.port}`, `--cacert=${f.etcdCaCert}`, `--cert=${f.apiServerEtcdClientCert}`, `--key=${f.apiServerEtcdClientKey}`];
    const { stdout } = await run(tc.toolchain!.paths.etcdctl, [...args, 'endpoint', 'status', '-w', 'json']);
    const rev = (JSON.parse(stdout) as { Status: { header: { revision: number } } }[])[0]!.Status.header.revision;
    await run(tc.toolchain!.paths.etcdctl, [...args, 'compact', String(rev)]);
  }

  test('a continue token at a revision the API server no longer has (compacted, not cached) is 410: start the list again', async () => {
    const s = await mgmt.openStore();
    try {
      for (const n of ['a', 'b', 'c']) await s.create(cluster('p', n));
      const page = await s.list('Cluster', { limit: 1 });
      const next = await s.list('Cluster', { limit: 1, continue: page.continue });
      assert.deepEqual(next.items.map((i) => i.metadata.name), ['b']);
      // kube-apiserver serves exact-revision lists from its watch cache while the revision is in
      // it, else from etcd until compaction: a token from before both is gone.
      await compactEtcd();
      const old = Buffer.from(JSON.stringify({ k: 'Cluster', p: 'p', n: 'a', rv: 2 })).toString('base64url');
      const err = await rejectsApi(s.list('Cluster', { limit: 1, continue: old }), 410);
      assert.match(err.message, /start the list again/);
      assert.deepEqual((await s.list('Cluster')).items.map((i) => i.metadata.name), ['a', 'b', 'c']);
    } finally {
      await s.close();
    }
  });

  test('two replicas: a watch on the second resumes from the revision a client last saw on the first', async () => {
    const a = await mgmt.openStore({ namespace: 'replicas' });
    const b = await openKubernetesStore({ client: mgmt.client, namespace: a.namespace, encryptionKey: TEST_KEY });
    try {
      const onA = collect(a, { kind: 'Cluster' });
      const onB = collect(b, { kind: 'Cluster' });
      const x = await a.create(cluster('p', 'x'));
      await waitFor('the event on a', () => onA.real().length === 1);
      const seen = onA.real()[0]!.object.metadata.resourceVersion!;
      assert.equal(seen, x.metadata.resourceVersion);
      onA.watch.stop();
      // Written through b while the client moves over.
      const y = await b.create(cluster('p', 'y'));
      await b.update({ ...x, spec: cluster('p', 'x', 2).spec });
      const resumed = collect(b, { kind: 'Cluster', resourceVersion: seen });
      await barrier(a, 'Cluster');
      await barrier(b, 'Cluster');
      assert.deepEqual(resumed.summary(), ['ADDED y', 'MODIFIED x']);
      assert.deepEqual(onB.summary(), ['ADDED x', 'ADDED y', 'MODIFIED x']);
      assert.ok(Number(resumed.real()[0]!.object.metadata.resourceVersion) >= Number(y.metadata.resourceVersion));
      // The same objects through either replica.
      assert.deepEqual((await a.list('Cluster')).items, (await b.list('Cluster')).items);
    } finally {
      await b.close();
      await a.close();
    }
  });

  test('the store\'s own keys, Kubernetes label syntax and unknown fields are 422s naming the field', async () => {
    const s = await mgmt.openStore();
    try {
      await rejectsApi(s.create(cluster('p', 'a', 1, { labels: { 'store.marina.dev/project': 'q' } })), 422, 'metadata.labels');
      await rejectsApi(s.create(cluster('p', 'a', 1, { annotations: { 'store.marina.dev/generation': '9' } })), 422, 'metadata.annotations');
      await rejectsApi(s.create(cluster('p', 'a', 1, { labels: { tier: 'x'.repeat(64) } })), 422, 'metadata.labels');
      const bogus = cluster('p', 'a');
      (bogus.spec as Record<string, unknown>).bogus = true;
      await rejectsApi(s.create(bogus), 422, 'spec.bogus');
      const wrongType = cluster('p', 'a');
      (wrongType.spec as { nodePools: { replicas: unknown }[] }).nodePools[0]!.replicas = 'many';
      await rejectsApi(s.create(wrongType), 422, 'spec.nodePools[0].replicas');
      assert.deepEqual((await s.list('Cluster')).items, [], 'nothing was written');
    } finally {
      await s.close();
    }
  });

  test('a replica with another encryption key refuses to open the store', async () => {
    const s = await mgmt.openStore();
    const namespace = s.namespace;
    await s.close();
    await assert.rejects(
      openKubernetesStore({ client: mgmt.client, namespace, encryptionKey: Buffer.alloc(32, 8) }),
      /encryption key differs/,
    );
  });

  test('an outdated CRD is applied at open, or reported when Marina may not install it', async () => {
    const name = 'alerts.marina.dev';
    await mgmt.client.patch(Resources.customResourceDefinitions, name, { metadata: { annotations: { [SCHEMA_HASH_ANNOTATION]: 'outdated' } } }, { type: 'merge' });
    await assert.rejects(
      openKubernetesStore({ client: mgmt.client, namespace: 'crd-check', encryptionKey: TEST_KEY, installCrds: false }),
      /alerts\.marina\.dev; install them with `marina crds/,
    );
    const s = await openKubernetesStore({ client: mgmt.client, namespace: 'crd-check', encryptionKey: TEST_KEY });
    await s.close();
    const crd = await mgmt.client.get(Resources.customResourceDefinitions, name);
    assert.notEqual(crd.metadata?.annotations?.[SCHEMA_HASH_ANNOTATION], 'outdated');
  });

  test('an object through kubectl: the custom resource Marina wrote, with the spec of a Secret encrypted', async () => {
    const s = await mgmt.openStore();
    try {
      await s.create({ apiVersion: 'marina.dev/v1alpha1', kind: 'Secret', metadata: { name: 'pw', project: 'team' }, spec: { type: 'opaque', data: { password: 'hunter2' } } });
      await s.create(cluster('team', 'web', 2, { labels: { tier: 'web' } }));
      const out = await mgmt.cp.kubectl(['-n', s.namespace, 'get', 'clusters.marina.dev', '-l', 'tier=web', '-o', 'jsonpath={.items[*].metadata.name} {.items[*].spec.nodePools[0].replicas}']);
      assert.equal(out, 'team.web 2');
      const secret = await mgmt.cp.kubectl(['-n', s.namespace, 'get', 'secrets.marina.dev', 'team.pw', '-o', 'json']);
      assert.ok(!secret.includes('hunter2'));
      assert.match(secret, /"\$encrypted"/);
      const explain = await mgmt.cp.kubectl(['explain', 'clusters.spec.nodePools.replicas']);
      assert.match(explain, /FIELD: replicas <integer>/);
    } finally {
      await s.close();
    }
  });

});
