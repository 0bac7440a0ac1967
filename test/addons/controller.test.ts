// The starter and the per-cluster add-on controllers against the real store and the shipped
// catalog, with each cluster's API in memory (FakeClusterApi). The end-to-end test does the same
// against real clusters; this one covers the paths that need many states quickly. The resync is
// an hour: what happens here is driven by the store's watches and the watches on the clusters'
// managed objects (one test turns those off and shortens the resync).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { Addon, AddonPolicy } from '../../src/api/addons.js';
import { ANNOTATION_ADDON_DEFAULTS, ANNOTATION_ADDON_DEFAULTS_APPLIED } from '../../src/api/wellknown.js';
import type { Alert, Cluster } from '../../src/api/kinds.js';
import { API_VERSION, type Resource } from '../../src/api/meta.js';
import { AlertManager } from '../../src/alerts/manager.js';
import { openAddons, type Addons } from '../../src/addons/index.js';
import { FakeClusterApi } from '../../src/addons/test-fakes.js';
import type { AddonStarter } from '../../src/addons/starter.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { waitUntil } from '../support/marina.js';
import { addonBody, definitionBody } from './harness.js';

const P = 'alpha';
let store: ReturnType<typeof openSqliteStore>;
let addons: Addons;
let starter: AddonStarter;
const apis = new Map<string, FakeClusterApi>();
const api = (cluster: string): FakeClusterApi => {
  let a = apis.get(cluster);
  if (!a) apis.set(cluster, (a = new FakeClusterApi()));
  return a;
};

async function createCluster(name: string, annotations?: Record<string, string>): Promise<Cluster> {
  return (await store.create({
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name, project: P, ...(annotations ? { annotations } : {}) },
    spec: { nodePools: [{ name: 'cp', roles: ['etcd', 'controlplane'], replicas: 1 }] },
    status: { phase: 'Ready', conditions: [{ type: 'ControlPlaneReady', status: 'True' }] },
  } as Resource)) as Cluster;
}

const addonsOf = async (cluster: string): Promise<Addon[]> =>
  ((await store.list('Addon', { project: P })).items as Addon[]).filter((a) => a.spec.cluster === cluster);
const getAddon = async (name: string) => (await store.get({ kind: 'Addon', project: P, name })) as Addon | undefined;
const cond = (a: Addon | undefined, type: string) => a?.status?.conditions?.find((c) => c.type === type);
const until = <T>(what: string, probe: () => Promise<T | undefined>) => waitUntil(what, 20_000, probe, 50);
const enable = async (name: string, spec: Addon['spec']) => {
  const body = addonBody(name, spec) as unknown as Resource;
  return store.create({ ...body, metadata: { ...body.metadata, project: P } });
};

before(async () => {
  store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
  await store.create({ apiVersion: API_VERSION, kind: 'Project', metadata: { name: P }, spec: { members: [] } });
  const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  addons = await openAddons({ store, logger: log });
  const policy = (await store.get({ kind: 'AddonPolicy', project: '', name: 'default' })) as AddonPolicy;
  await store.update({ ...policy, spec: { ...policy.spec, resyncSeconds: 3600, unhealthyAlertSeconds: 0 } } as Resource);
  starter = await addons.startControllers({ access: { objects: async (c) => api(c.metadata.name) }, alerts: new AlertManager({ store, logger: log }) });
});
after(async () => {
  await addons?.stop();
  await store?.close();
});

describe('the starter', () => {
  it('gives a new cluster the default set once, and its controller applies it', async () => {
    await createCluster('c1');
    const list = await until('default add-ons', async () => {
      const l = await addonsOf('c1');
      return l.length === 4 ? l : undefined;
    });
    assert.deepEqual(list.map((a) => a.spec.addon).sort(), ['coredns', 'kube-state-metrics', 'local-path-provisioner', 'node-exporter']);
    assert.ok(list.every((a) => a.metadata.name === `c1-${a.spec.addon}` && a.metadata.labels?.['marina.dev/cluster'] === 'c1'));
    const c = (await store.get({ kind: 'Cluster', project: P, name: 'c1' })) as Cluster;
    assert.ok(c.metadata.annotations?.[ANNOTATION_ADDON_DEFAULTS_APPLIED]);
    await until('all applied', async () => ((await addonsOf('c1')).every((a) => cond(a, 'Applied')?.status === 'True') ? true : undefined));
    const fake = api('c1');
    assert.equal((fake.find('Service', 'kube-dns') as { spec?: { clusterIP?: string } }).spec?.clusterIP, '10.96.0.10');
    assert.ok(fake.find('Namespace', 'monitoring'), 'the add-on namespace is created');
    assert.equal(fake.find('Deployment', 'coredns')?.metadata?.labels?.['addons.marina.dev/addon'], 'coredns');
    const dns = await getAddon('c1-coredns');
    assert.equal(cond(dns, 'Healthy')?.status, 'False', 'nothing runs yet');
    assert.match(cond(dns, 'Healthy')?.message ?? '', /Deployment kube-system\/coredns/);
    fake.settle();
    await until('healthy', async () => ((await addonsOf('c1')).every((a) => cond(a, 'Healthy')?.status === 'True') ? true : undefined));
    // Disabling a default add-on removes it (the cluster's annotation keeps the starter from adding it back).
    await store.delete({ kind: 'Addon', project: P, name: 'c1-local-path-provisioner' });
    await until('removed', async () => ((await getAddon('c1-local-path-provisioner')) ? undefined : true));
    assert.ok(!fake.find('Deployment', 'local-path-provisioner') && !fake.find('Namespace', 'local-path-storage'));
  });

  it('a cluster annotated defaults=none gets nothing', async () => {
    await createCluster('bare', { [ANNOTATION_ADDON_DEFAULTS]: 'none' });
    await enable('bare-coredns', { cluster: 'bare', addon: 'coredns', version: '1.12.0' });
    await until('applied', async () => (cond(await getAddon('bare-coredns'), 'Applied')?.status === 'True' ? true : undefined));
    assert.deepEqual((await addonsOf('bare')).map((a) => a.spec.addon), ['coredns']);
  });
});

describe('a cluster\'s add-on controller', () => {
  it('watches the managed kinds; puts back what was deleted or changed as soon as it is seen, counts it and raises AddonDriftCorrected', async () => {
    const fake = api('c1');
    assert.deepEqual(
      starter.watchedKinds(P, 'c1'),
      ['/ConfigMap', '/Namespace', '/Service', '/ServiceAccount', 'apps/DaemonSet', 'apps/Deployment', 'rbac.authorization.k8s.io/ClusterRole', 'rbac.authorization.k8s.io/ClusterRoleBinding'],
    );
    fake.remove('ConfigMap', 'coredns');
    fake.edit('Deployment', 'coredns', (o) => (o.spec!.replicas = 5));
    const a = await until('drift corrected', async () => {
      const x = await getAddon('c1-coredns');
      return (x?.status?.driftCorrections ?? 0) >= 2 ? x : undefined;
    });
    assert.ok(fake.find('ConfigMap', 'coredns'));
    assert.equal(fake.find('Deployment', 'coredns')?.spec?.replicas, 2);
    assert.deepEqual(a.status?.lastDriftCorrection?.objects.sort(), ['ConfigMap kube-system/coredns (deleted)', 'Deployment kube-system/coredns (changed)']);
    const alerts = (await store.list('Alert', { project: P })).items as Alert[];
    const drift = alerts.find((x) => x.spec.rule === 'AddonDriftCorrected' && x.spec.labels?.addon === 'coredns');
    assert.equal(drift?.status?.state, 'firing');
    assert.equal(drift?.spec.severity, 'info');
  });

  it('without watches (AddonPolicy watchObjects false) the resync finds drift; with them again, the watches come back', async () => {
    const fake = api('c1');
    const policy = async (change: Partial<AddonPolicy['spec']>) => {
      const p = (await store.get({ kind: 'AddonPolicy', project: '', name: 'default' })) as AddonPolicy;
      await store.update({ ...p, spec: { ...p.spec, ...change } } as Resource);
    };
    await policy({ watchObjects: false, resyncSeconds: 1 });
    await until('watches stopped', async () => (fake.watching().length === 0 ? true : undefined));
    const before = (await getAddon('c1-coredns'))?.status?.driftCorrections ?? 0;
    fake.remove('ConfigMap', 'coredns');
    await until('put back by a resync', async () => (((await getAddon('c1-coredns'))?.status?.driftCorrections ?? 0) > before ? true : undefined));
    assert.ok(fake.find('ConfigMap', 'coredns'));
    await policy({ watchObjects: true, resyncSeconds: 3600 });
    await until('watching again', async () => (fake.watching().includes('ConfigMap') ? true : undefined));
  });

  it('raises AddonUnhealthy past the policy\'s threshold and resolves it when healthy again', async () => {
    const fake = api('c1');
    fake.edit('Deployment', 'kube-state-metrics', (o) => (o.status = { observedGeneration: o.metadata?.generation, replicas: 1, updatedReplicas: 1, availableReplicas: 0 }));
    const firing = await until('AddonUnhealthy', async () => {
      const l = (await store.list('Alert', { project: P })).items as Alert[];
      return l.find((x) => x.spec.rule === 'AddonUnhealthy' && x.spec.labels?.addon === 'kube-state-metrics' && x.status?.state === 'firing');
    });
    assert.equal(firing.spec.severity, 'warning');
    assert.match(firing.spec.annotations.description ?? '', /Deployment monitoring\/kube-state-metrics: 0\/1 replicas available/);
    fake.settle();
    await until('resolved', async () => {
      const x = (await store.get({ kind: 'Alert', project: P, name: firing.metadata.name })) as Alert;
      return x.status?.state === 'resolved' ? true : undefined;
    });
  });

  it('upgrades when the version changes: new objects applied, dropped ones pruned; disabling removes everything', async () => {
    const fake = api('c1');
    await enable('c1-fluent-bit', { cluster: 'c1', addon: 'fluent-bit', version: '3.1.9' });
    await until('3.1.9 applied', async () => (fake.find('ConfigMap', 'fluent-bit-config') ? true : undefined));
    const old = (await getAddon('c1-fluent-bit'))!;
    await store.update({ ...old, spec: { ...old.spec, version: '3.2.4' } } as Resource);
    const up = await until('3.2.4 applied', async () => {
      const a = await getAddon('c1-fluent-bit');
      const pruned = !(a?.status?.inventory ?? []).some((r) => r.name === 'fluent-bit-config');
      return a?.status?.appliedVersion === '3.2.4' && pruned ? a : undefined;
    });
    assert.ok(!fake.find('ConfigMap', 'fluent-bit-config'));
    assert.ok(fake.find('ConfigMap', 'fluent-bit-yaml'));
    assert.equal(up.status?.driftCorrections ?? 0, 0, 'an upgrade is not drift');
    await store.delete({ kind: 'Addon', project: P, name: 'c1-fluent-bit' });
    await until('gone', async () => ((await getAddon('c1-fluent-bit')) ? undefined : true));
    assert.deepEqual([...fake.objects.values()].filter((o) => o.metadata?.labels?.['addons.marina.dev/addon'] === 'fluent-bit'), []);
    assert.ok(!fake.find('Namespace', 'logging'));
    assert.ok(fake.find('Namespace', 'monitoring'), 'other add-ons keep theirs');
  });

  it('a shared namespace stays while another add-on uses it', async () => {
    const fake = api('c1');
    await store.delete({ kind: 'Addon', project: P, name: 'c1-node-exporter' });
    await until('node-exporter gone', async () => ((await getAddon('c1-node-exporter')) ? undefined : true));
    assert.ok(!fake.find('DaemonSet', 'node-exporter'));
    assert.ok(fake.find('Namespace', 'monitoring'), 'kube-state-metrics still lives there');
  });

  it('reports duplicates, missing definitions and dependencies without applying anything', async () => {
    await enable('second-dns', { cluster: 'c1', addon: 'coredns', version: '1.12.0' });
    const dup = await until('duplicate', async () => cond(await getAddon('second-dns'), 'Applied'));
    assert.equal(dup.reason, 'Duplicate');
    assert.match(dup.message ?? '', /already enabled on cluster c1 by Addon c1-coredns/);
    await store.delete({ kind: 'Addon', project: P, name: 'second-dns' });

    const cm = (n: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${n}\n`;
    await store.create(definitionBody('needy', '1.0.0', cm('needy'), { dependencies: [{ addon: 'helper', minVersion: '1.0.0' }] }) as unknown as Resource);
    await store.create(definitionBody('helper', '1.0.0', cm('helper')) as unknown as Resource);
    await enable('c1-needy', { cluster: 'c1', addon: 'needy', version: '1.0.0' });
    const waiting = await until('dependency missing', async () => cond(await getAddon('c1-needy'), 'Applied'));
    assert.equal(waiting.reason, 'DependencyMissing');
    assert.ok(!api('c1').find('ConfigMap', 'needy'));
    await enable('c1-helper', { cluster: 'c1', addon: 'helper', version: '1.0.0' });
    await until('dependent applied', async () => (cond(await getAddon('c1-needy'), 'Applied')?.status === 'True' ? true : undefined));
    assert.ok(api('c1').find('ConfigMap', 'needy'));
  });

  it('deleting the cluster deletes its Addons and stops its controller', async () => {
    await createCluster('short');
    await until('defaults', async () => ((await addonsOf('short')).length === 4 ? true : undefined));
    const before = starter.controllerCount();
    await store.delete({ kind: 'Cluster', project: P, name: 'short' });
    await until('addons gone', async () => ((await addonsOf('short')).length === 0 ? true : undefined));
    await until('controller stopped', async () => (starter.controllerCount() === before - 1 ? true : undefined));
    assert.deepEqual(api('short').watching(), [], 'its watches on the cluster are stopped');
  });
});
