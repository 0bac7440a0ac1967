// Issue 13's "done when", through the product's real surfaces: a `marina server` process, the
// marina CLI, the shipped catalog, a local cluster of real etcd / Kubernetes binaries (the smallest
// shape: one etcd+control-plane machine, one worker) and kubectl as the client.
//
//   new cluster → the default set; coredns Available; kube-dns at the address the kubelets have
//   kubectl delete / scale of managed objects → put back (the resync is an hour here, so it is the
//     watches on the managed kinds that see it), counted, alerted; with the watches turned off, a
//     resync (3 s) puts a deletion back
//   an object annotated ignore → left alone; keep → survives its add-on
//   an add-on with a CRD and a custom resource of it → both applied (CRD established first)
//   fluent-bit 3.1.9 → 3.2.4 → new objects applied, dropped ones pruned; disable → nothing left
//   bad values → 422 naming spec.values.*; a definition that does not parse → refused at creation
//
// Skips when the Kubernetes toolchain is not installed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Addon } from '../../src/api/addons.js';
import type { Alert } from '../../src/api/kinds.js';
import { toolchainOrSkip } from '../support/controlplane.js';
import {
  apiRequest,
  Cli,
  freePort,
  kubectl,
  machineRecords,
  pickAddressBase,
  serverEnv,
  serverLogTail,
  startServerProcess,
  teardown,
  waitUntil,
  type ServerProcess,
} from '../support/marina.js';

const { toolchain, skip } = toolchainOrSkip();
if (skip) console.log(`SKIP e2e add-ons test: ${skip}`);

const PROJECT = 'default';
/** An hour: within the tests' waits only the watches on the managed objects can find drift. */
const RESYNC_SECONDS = 3600;
/** The resync of the test without watches. */
const SHORT_RESYNC_SECONDS = 3;
/** Waiting for a correction: room for a loaded machine (the bench measures the real latency). */
const CORRECTION_TIMEOUT_MS = 60_000;

interface Deployment {
  spec: { replicas: number; template: { spec: { volumes?: { configMap?: { name: string } }[] } } };
  status: { conditions?: { type: string; status: string }[] };
}

describe('e2e: add-ons on a real cluster through `marina server`, the CLI and kubectl', { skip, timeout: 900_000 }, () => {
  let tmp = '';
  let dataDir = '';
  let server: ServerProcess | undefined;
  let cli: Cli;
  let kc = '';
  let token = '';

  const k = (...args: string[]) => kubectl(toolchain!, kc, args);
  const kjson = async <T>(...args: string[]): Promise<T> => JSON.parse(await k(...args, '-o', 'json')) as T;
  const exists = async (...args: string[]) => (await k('get', ...args, '--ignore-not-found', '-o', 'name')).trim() !== '';
  const addons = async (cluster = 'demo'): Promise<Addon[]> => (await cli.json<{ items: Addon[] }>(['addon', 'list', cluster])).items;
  const addon = async (name: string): Promise<Addon> => cli.json<Addon>(['get', 'addon', name]);
  const drift = async (name: string) => (await addon(name)).status?.driftCorrections ?? 0;
  const settled = (a: Addon) =>
    a.status?.observedGeneration === a.metadata.generation &&
    a.status?.appliedVersion === a.spec.version &&
    ['Applied', 'Healthy'].every((t) => a.status?.conditions?.some((c) => c.type === t && c.status === 'True'));

  before(async () => {
    if (!toolchain) return;
    tmp = mkdtempSync(join(tmpdir(), 'marina-e2e-addons-'));
    dataDir = join(tmp, 'data');
    mkdirSync(join(tmp, 'home'));
    cli = new Cli(join(tmp, 'home'));
    server = await startServerProcess({
      dataDir,
      listen: `127.0.0.1:${await freePort()}`,
      logFile: join(tmp, 'server.log'),
      env: serverEnv({ home: join(tmp, 'home'), toolchain, addressBase: await pickAddressBase() }),
    });
    token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    await cli.ok(['login', server.url, '--token-file', join(dataDir, 'admin-token')]);
  });

  after(() => teardown({ tmp, dataDir, cli, server, cluster: 'demo' }));

  const applyPolicy = async (more: string) => {
    const file = join(tmp, 'policy.yaml');
    writeFileSync(
      file,
      `apiVersion: marina.dev/v1alpha1\nkind: AddonPolicy\nmetadata:\n  name: default\nspec:\n  defaults: [{addon: coredns}, {addon: kube-state-metrics}, {addon: node-exporter}, {addon: local-path-provisioner}]\n${more}`,
    );
    await cli.ok(['apply', '-f', file]);
  };

  it('the platform admin sets the resync through the AddonPolicy', async () => {
    const policy = await cli.json<{ spec: { defaults: { addon: string }[] } }>(['get', 'addonpolicy', 'default']);
    assert.deepEqual(policy.spec.defaults.map((d) => d.addon), ['coredns', 'kube-state-metrics', 'node-exporter', 'local-path-provisioner']);
    await applyPolicy(`  resyncSeconds: ${RESYNC_SECONDS}\n`);
    const catalog = await cli.ok(['addon', 'list', '--catalog']);
    assert.match(catalog.stdout, /^fluent-bit\s+3\.2\.4,3\.1\.9\s+logging\s+no/m);
    assert.match(catalog.stdout, /^coredns\s+1\.12\.0\s+kube-system\s+yes/m);
  });

  it('a new cluster gets the default set; coredns is Available and kube-dns has the kubelets\' cluster DNS address', async () => {
    const file = join(tmp, 'cluster.yaml');
    writeFileSync(
      file,
      'apiVersion: marina.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: demo\nspec:\n  nodePools:\n    - {name: cp, roles: [etcd, controlplane], replicas: 1}\n    - {name: workers, roles: [worker], replicas: 1}\n',
    );
    const r = await cli.run(['cluster', 'create', 'demo', '-f', file, '--timeout', '5m'], 400_000);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}\n${serverLogTail(server!.logFile)}`);
    kc = join(tmp, 'kc');
    writeFileSync(kc, (await cli.ok(['cluster', 'kubeconfig', 'demo'])).stdout, { mode: 0o600 });

    const all = await waitUntil('the default set applied and healthy', 180_000, async () => {
      const list = await addons();
      return list.length === 4 && list.every(settled) ? list : undefined;
    }, 1000);
    assert.deepEqual(all.map((a) => a.spec.addon).sort(), ['coredns', 'kube-state-metrics', 'local-path-provisioner', 'node-exporter']);

    await k('-n', 'kube-system', 'wait', 'deploy/coredns', '--for=condition=Available', '--timeout=60s');
    const deploy = await kjson<Deployment>('-n', 'kube-system', 'get', 'deploy', 'coredns');
    assert.equal(deploy.status.conditions?.find((c) => c.type === 'Available')?.status, 'True');
    const svc = await kjson<{ spec: { clusterIP: string } }>('-n', 'kube-system', 'get', 'svc', 'kube-dns');
    assert.equal(svc.spec.clusterIP, '10.96.0.10', '10th address of the default service CIDR');
    const kubelets = machineRecords(dataDir).filter((m) => m.cluster === 'demo');
    assert.equal(kubelets.length, 2);
    for (const m of kubelets) {
      const config = JSON.parse(readFileSync(join(m.dir, 'agent.json'), 'utf8')) as { kubelet?: { clusterDNS?: string[]; clusterDomain?: string } };
      assert.deepEqual(config.kubelet?.clusterDNS, [svc.spec.clusterIP], `kubelet of ${m.name}`);
      assert.equal(config.kubelet?.clusterDomain, 'cluster.local');
      const facts = (await (await fetch(`http://${m.address}:10250/facts`, { signal: AbortSignal.timeout(5000) })).json()) as { clusterDNS: string[] };
      assert.deepEqual(facts.clusterDNS, [svc.spec.clusterIP], `agent of ${m.name} reports it`);
    }
    // node-exporter runs on both nodes; the local-path StorageClass is the default one.
    await k('-n', 'monitoring', 'rollout', 'status', 'ds/node-exporter', '--timeout=60s');
    const ds = await kjson<{ status: { numberReady: number } }>('-n', 'monitoring', 'get', 'ds', 'node-exporter');
    assert.equal(ds.status.numberReady, 2);
    assert.match(await k('get', 'storageclass', 'local-path'), /local-path \(default\)/);
  });

  it('kubectl delete of a managed ConfigMap and kubectl scale of a managed Deployment are put back, counted and alerted', async () => {
    const before = await drift('demo-coredns');
    await k('-n', 'kube-system', 'delete', 'configmap', 'coredns');
    await k('-n', 'kube-system', 'scale', 'deployment', 'coredns', '--replicas=5');
    await waitUntil('coredns ConfigMap and replicas restored', CORRECTION_TIMEOUT_MS, async () => {
      const cm = await exists('-n', 'kube-system', 'configmap', 'coredns');
      const replicas = (await kjson<Deployment>('-n', 'kube-system', 'get', 'deploy', 'coredns')).spec.replicas;
      return cm && replicas === 2 ? true : undefined;
    });
    const a = await waitUntil('corrections counted', 30_000, async () => {
      const x = await addon('demo-coredns');
      return (x.status?.driftCorrections ?? 0) >= before + 2 ? x : undefined;
    });
    // The watches see the deletion and the scale one after the other: one pass or two, the scale (the later change) is in the last.
    assert.ok(a.status?.lastDriftCorrection?.objects.includes('Deployment kube-system/coredns (changed)'), JSON.stringify(a.status?.lastDriftCorrection));
    const described = await cli.ok(['addon', 'describe', 'demo', 'coredns']);
    assert.match(described.stdout, /Drift Corrections:\s+[1-9]/);
    const alerts = await cli.json<{ items: Alert[] }>(['alerts', '--rule', 'AddonDriftCorrected']);
    const alert = alerts.items.find((x) => x.spec.cluster === 'demo' && x.spec.labels?.addon === 'coredns');
    assert.equal(alert?.status?.state, 'firing');
    assert.equal(alert?.spec.severity, 'info');
  });

  it('with the watches turned off (watchObjects: false), a resync puts a deleted object back', async () => {
    await applyPolicy(`  resyncSeconds: ${SHORT_RESYNC_SECONDS}\n  watchObjects: false\n`);
    const before = await drift('demo-node-exporter');
    await k('-n', 'monitoring', 'delete', 'service', 'node-exporter');
    await waitUntil('node-exporter Service restored', CORRECTION_TIMEOUT_MS, async () => ((await exists('-n', 'monitoring', 'service', 'node-exporter')) ? true : undefined));
    await waitUntil('the correction counted', 30_000, async () => ((await drift('demo-node-exporter')) > before ? true : undefined));
    await applyPolicy(`  resyncSeconds: ${RESYNC_SECONDS}\n`);
  });

  it('an object annotated addons.marina.dev/ignore is left alone, and managed again without it', async () => {
    await k('-n', 'monitoring', 'annotate', 'deployment', 'kube-state-metrics', 'addons.marina.dev/ignore=true');
    await k('-n', 'monitoring', 'scale', 'deployment', 'kube-state-metrics', '--replicas=0');
    const before = await drift('demo-kube-state-metrics');
    // A correction of another object of the add-on proves a whole pass ran after the scale.
    await k('-n', 'monitoring', 'delete', 'service', 'kube-state-metrics');
    await waitUntil('a pass after the scale', CORRECTION_TIMEOUT_MS, async () => ((await drift('demo-kube-state-metrics')) > before ? true : undefined));
    assert.ok(await exists('-n', 'monitoring', 'service', 'kube-state-metrics'));
    assert.equal((await kjson<Deployment>('-n', 'monitoring', 'get', 'deploy', 'kube-state-metrics')).spec.replicas, 0, 'the ignored Deployment keeps its scale');

    await k('-n', 'monitoring', 'annotate', 'deployment', 'kube-state-metrics', 'addons.marina.dev/ignore-');
    await waitUntil('managed again', CORRECTION_TIMEOUT_MS, async () =>
      (await kjson<Deployment>('-n', 'monitoring', 'get', 'deploy', 'kube-state-metrics')).spec.replicas === 1 ? true : undefined,
    );
  });

  it('upgrading an add-on\'s version applies the new objects and prunes the ones the new version dropped', async () => {
    await cli.ok(['addon', 'enable', 'demo', 'fluent-bit', '--version', '3.1.9', '--wait', '--timeout', '3m'], 200_000);
    assert.ok(await exists('-n', 'logging', 'configmap', 'fluent-bit-config'));
    const up = await cli.ok(['addon', 'enable', 'demo', 'fluent-bit', '--version', '3.2.4', '--wait', '--timeout', '3m'], 200_000);
    assert.match(up.stdout, /fluent-bit 3\.1\.9 → 3\.2\.4/);
    await waitUntil('the 3.1.9 ConfigMap pruned', CORRECTION_TIMEOUT_MS, async () => (!(await exists('-n', 'logging', 'configmap', 'fluent-bit-config')) ? true : undefined));
    assert.ok(await exists('-n', 'logging', 'configmap', 'fluent-bit-yaml'));
    const ds = await kjson<Deployment>('-n', 'logging', 'get', 'daemonset', 'fluent-bit');
    assert.ok(ds.spec.template.spec.volumes?.some((v) => v.configMap?.name === 'fluent-bit-yaml'), 'the DaemonSet mounts the new configuration');
    const a = await addon('demo-fluent-bit');
    assert.equal(a.status?.appliedVersion, '3.2.4');
    assert.equal(a.status?.driftCorrections ?? 0, 0, 'an upgrade is not drift');
  });

  it('disabling leaves nothing of the add-on in the cluster, except an object annotated keep', async () => {
    await cli.ok(['addon', 'disable', 'demo', 'fluent-bit', '--wait', '--timeout', '3m'], 200_000);
    const left = await k('get', 'all,configmaps,serviceaccounts,roles,rolebindings,clusterroles,clusterrolebindings', '-A', '-l', 'addons.marina.dev/addon=fluent-bit', '-o', 'name');
    assert.equal(left.trim(), '');
    assert.ok(!(await exists('namespace', 'logging')), 'its namespace is gone');

    await k('annotate', 'storageclass', 'local-path', 'addons.marina.dev/keep=true');
    await cli.ok(['addon', 'disable', 'demo', 'local-path-provisioner', '--wait', '--timeout', '3m'], 200_000);
    assert.ok(await exists('storageclass', 'local-path'), 'the kept StorageClass stays');
    assert.ok(!(await exists('namespace', 'local-path-storage')));
    assert.ok(!(await exists('clusterrole', 'local-path-provisioner-role')));
    assert.deepEqual((await addons()).map((x) => x.spec.addon).sort(), ['coredns', 'kube-state-metrics', 'node-exporter']);
  });

  it('an add-on shipping a CRD and a custom resource of it applies both: the CRD first, established, then the resource', async () => {
    const crd = [
      'apiVersion: apiextensions.k8s.io/v1',
      'kind: CustomResourceDefinition',
      'metadata: {name: widgets.example.marina.dev}',
      'spec:',
      '  group: example.marina.dev',
      '  scope: Namespaced',
      '  names: {plural: widgets, singular: widget, kind: Widget}',
      '  versions:',
      '    - name: v1',
      '      served: true',
      '      storage: true',
      '      schema: {openAPIV3Schema: {type: object, properties: {spec: {type: object, x-kubernetes-preserve-unknown-fields: true}}}}',
    ].join('\n');
    const widget = ['apiVersion: example.marina.dev/v1', 'kind: Widget', 'metadata: {name: first}', 'spec:', '  size: ${values.size}'].join('\n');
    const def = join(tmp, 'widgets.yaml');
    writeFileSync(
      def,
      JSON.stringify({
        apiVersion: 'marina.dev/v1alpha1',
        kind: 'AddonDefinition',
        metadata: { name: 'widgets-v1-0-0' },
        spec: {
          addon: 'widgets',
          version: '1.0.0',
          description: 'a CRD and a resource of it',
          namespace: 'widgets',
          manifests: [{ file: 'crd.yaml', content: crd }, { file: 'widget.yaml', content: widget }],
          valuesSchema: { type: 'object', properties: { size: { type: 'integer', default: 3 } } },
        },
      }),
    );
    await cli.ok(['apply', '-f', def]);
    // The resync is an hour: a resource that failed a first pass would not be applied within the wait.
    await cli.ok(['addon', 'enable', 'demo', 'widgets', '--wait', '--timeout', '2m'], 150_000);
    const w = await kjson<{ spec: { size: number } }>('-n', 'widgets', 'get', 'widgets.example.marina.dev', 'first');
    assert.equal(w.spec.size, 3);
    const a = await addon('demo-widgets');
    assert.deepEqual(a.status?.inventory?.map((r) => r.kind), ['CustomResourceDefinition', 'Namespace', 'Widget']);
    await cli.ok(['addon', 'disable', 'demo', 'widgets', '--wait', '--timeout', '2m'], 150_000);
    assert.ok(!(await exists('crd', 'widgets.example.marina.dev')), 'the CRD goes with its add-on');
    assert.ok(!(await exists('namespace', 'widgets')));
  });

  it('bad values get a 422 naming the field; a definition whose manifests do not parse is refused when it is created', async () => {
    const bad = await cli.run(['addon', 'enable', 'demo', 'coredns', '--set', 'replicas=0']);
    assert.equal(bad.code, 5, bad.stderr);
    assert.match(bad.stderr, /spec\.values\.replicas: must be >= 1/);
    const raw = await apiRequest(server!.url, token, 'POST', `/projects/${PROJECT}/addons`, {
      apiVersion: 'marina.dev/v1alpha1',
      kind: 'Addon',
      metadata: { name: 'demo-fb' },
      spec: { cluster: 'demo', addon: 'fluent-bit', version: '3.2.4', values: { output: { port: 'http' } } },
    });
    assert.equal(raw.status, 422);
    assert.equal(raw.json.field, 'spec.values.output.port');

    const def = join(tmp, 'broken.yaml');
    writeFileSync(
      def,
      [
        'apiVersion: marina.dev/v1alpha1',
        'kind: AddonDefinition',
        'metadata: {name: broken-v1-0-0}',
        'spec:',
        '  addon: broken',
        '  version: 1.0.0',
        '  description: does not parse',
        '  namespace: kube-system',
        '  manifests:',
        '    - file: cm.yaml',
        '      content: "apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: [broken\\n"',
        '',
      ].join('\n'),
    );
    const refused = await cli.run(['apply', '-f', def]);
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(refused.stderr, /spec\.manifests\[0\]\.content: cm\.yaml document 1/);
    assert.equal((await apiRequest(server!.url, token, 'GET', '/addondefinitions/broken-v1-0-0')).status, 404);
  });

  it('deleting the cluster deletes its add-ons', async () => {
    await cli.ok(['cluster', 'delete', 'demo', '--wait', '--timeout', '3m'], 200_000);
    await waitUntil('Addons gone', 60_000, async () => ((await cli.json<{ items: Addon[] }>(['get', 'addons'])).items.length === 0 ? true : undefined));
  });
});
