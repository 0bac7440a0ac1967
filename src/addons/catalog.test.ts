import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddonDefinition } from '../api/addons.js';
import { openSqliteStore } from '../store/sqlite.js';
import { addonAdmission } from './admission.js';
import { ANNOTATION_CATALOG_DIGEST, loadCatalog, readCatalog } from './catalog.js';
import { DefinitionIndex } from './definitions.js';
import { clusterContext, renderAddon } from './render.js';

const cluster = (serviceCIDR?: string) =>
  clusterContext({ metadata: { name: 'demo', project: 'p' }, spec: { nodePools: [], ...(serviceCIDR ? { network: { serviceCIDR } } : {}) } }, 'v1.36.3');

async function withStore<T>(fn: (store: ReturnType<typeof openSqliteStore>, index: DefinitionIndex) => Promise<T>): Promise<T> {
  const store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
  const index = await DefinitionIndex.start(store);
  try {
    return await fn(store, index);
  } finally {
    index.stop();
    await store.close();
  }
}

test('the shipped catalog: the required add-ons, two versions of one, every definition admitted and renderable with its defaults', async () => {
  const catalog = readCatalog();
  const names = catalog.definitions.map((d) => `${d.spec.addon}@${d.spec.version}`);
  for (const want of ['coredns@', 'kube-state-metrics@', 'node-exporter@', 'local-path-provisioner@', 'fluent-bit@3.1.9', 'fluent-bit@3.2.4']) {
    assert.ok(names.some((n) => n.startsWith(want)), `${want} in ${names.join(', ')}`);
  }
  assert.deepEqual(catalog.policy?.spec.defaults.map((d) => d.addon).includes('coredns'), true, 'DNS is in the default set');
  await withStore(async (store, index) => {
    const ctx = { kubernetesVersions: [], addons: addonAdmission(index) };
    const loaded = await loadCatalog(store, catalog, ctx);
    assert.equal(loaded.created.length, catalog.definitions.length + 1);
    for (const d of catalog.definitions) {
      const p = index.prepare(index.get(d.spec.addon, d.spec.version)!);
      assert.ok(typeof p !== 'string', p as string);
      const r = renderAddon(p, {}, cluster());
      for (const o of r.objects) {
        assert.equal(o.metadata.labels?.['app.kubernetes.io/managed-by'], 'marina-addons');
        const image = JSON.stringify(o).match(/"image":"([^"]+)"/)?.[1];
        if (image) assert.match(image, /^(registry\.k8s\.io|quay\.io|docker\.io|cr\.fluentbit\.io)\//, 'upstream image names');
      }
    }
    const dns = renderAddon(index.prepare(index.newest('coredns')!) as never, {}, cluster('10.100.0.0/16'));
    const svc = dns.objects.find((o) => o.kind === 'Service' && o.metadata.name === 'kube-dns') as { spec: { clusterIP: string } } | undefined;
    assert.equal(svc?.spec.clusterIP, '10.100.0.10', 'kube-dns sits at the 10th address of the service CIDR');
  });
});

test('loading again changes nothing; a catalog update is applied unless a platform admin changed the definition', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'marina-catalog-'));
  try {
    const write = (version: string, data: string) => {
      const base = join(dir, 'addons', 'demo', version);
      mkdirSync(join(base, 'manifests'), { recursive: true });
      writeFileSync(join(base, 'addon.yaml'), 'description: demo\nnamespace: kube-system\n');
      writeFileSync(join(base, 'manifests', 'cm.yaml'), `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\ndata:\n  v: "${data}"\n`);
    };
    write('1.0.0', 'one');
    write('2.0.0', 'two');
    await withStore(async (store, index) => {
      const ctx = { kubernetesVersions: [], addons: addonAdmission(index) };
      assert.deepEqual((await loadCatalog(store, readCatalog(dir), ctx)).created, ['demo-v1-0-0', 'demo-v2-0-0']);
      assert.deepEqual(await loadCatalog(store, readCatalog(dir), ctx), { created: [], updated: [], keptAdmin: [] });
      // A platform admin overrides 2.0.0 through the API.
      const two = (await store.get({ kind: 'AddonDefinition', project: '', name: 'demo-v2-0-0' })) as AddonDefinition;
      await store.update({ ...two, spec: { ...two.spec, description: 'ours' } });
      write('1.0.0', 'one-fixed');
      write('2.0.0', 'two-fixed');
      const again = await loadCatalog(store, readCatalog(dir), ctx);
      assert.deepEqual(again, { created: [], updated: ['demo-v1-0-0'], keptAdmin: ['demo-v2-0-0'] });
      assert.match(index.get('demo', '1.0.0')!.spec.manifests[0]!.content, /one-fixed/);
      assert.equal(index.get('demo', '2.0.0')!.spec.description, 'ours');
      assert.ok(index.get('demo', '1.0.0')!.metadata.annotations?.[ANNOTATION_CATALOG_DIGEST]);
      assert.deepEqual(index.versions('demo'), ['2.0.0', '1.0.0']);
    });
    // A broken catalog stops the start with the field named.
    writeFileSync(join(dir, 'addons', 'demo', '1.0.0', 'manifests', 'cm.yaml'), 'apiVersion: v1\nkind: [\n');
    await withStore(async (store, index) => {
      await assert.rejects(loadCatalog(store, readCatalog(dir), { kubernetesVersions: [], addons: addonAdmission(index) }), /spec\.manifests\[0\]\.content/);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('replicas starting together load the catalog at once: each definition written once, no start fails', async () => {
  await withStore(async (store, index) => {
    const ctx = { kubernetesVersions: [], addons: addonAdmission(index) };
    const catalog = readCatalog();
    // Interleaved on one store, both see a definition missing and create it: one gets the 409.
    const [a, b] = await Promise.all([loadCatalog(store, catalog, ctx), loadCatalog(store, catalog, ctx)]);
    const names = catalog.definitions.map((d) => d.metadata.name).sort();
    assert.deepEqual([...a.created, ...b.created].filter((n) => !n.startsWith('policy/')).sort(), names, 'every definition created by exactly one');
    assert.deepEqual([...a.updated, ...b.updated, ...a.keptAdmin, ...b.keptAdmin], []);
    assert.equal((await store.list('AddonDefinition')).items.length, names.length);
  });
});
