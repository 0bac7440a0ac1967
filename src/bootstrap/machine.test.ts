import { test } from 'node:test';
import assert from 'node:assert/strict';
import { API_VERSION } from '../api/meta.js';
import type { Cluster, Machine, MachineRole } from '../api/kinds.js';
import { parseKubeconfig } from '../kube/client.js';
import { certificateInfo } from '../pki/index.js';
import { generateClusterPki, type ClusterPki } from './clusterPki.js';
import {
  buildAdminKubeconfig,
  buildMachineBootstrap,
  nodeLabels,
  nodeTaints,
  PATHS,
} from './machine.js';
import type { MachineBootstrap } from '../providers/contract.js';

const endpoint = { url: 'https://127.0.20.1:6443', host: '127.0.20.1', port: 6443 };
let pkiPromise: Promise<ClusterPki> | undefined;
const pki = () => (pkiPromise ??= generateClusterPki({ clusterName: 'demo' }));

function cluster(network?: Cluster['spec']['network']): Cluster {
  return {
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name: 'demo', project: 'p', uid: 'u-1' },
    spec: { nodePools: [{ name: 'a', roles: ['etcd'], replicas: 1 }], ...(network ? { network } : {}) },
  };
}

function machine(name: string, roles: MachineRole[], extra: Partial<Machine['spec']> = {}): Machine {
  return {
    apiVersion: API_VERSION,
    kind: 'Machine',
    metadata: { name, project: 'p' },
    spec: { cluster: 'demo', pool: 'pool1', roles, provider: 'local', kubernetesVersion: 'v1.36.3', ...extra },
  };
}

const etcdData = {
  initialCluster: [{ name: 'demo-etcd-aaaaa', peerURL: 'https://127.0.20.2:2380' }],
  state: 'new' as const,
  clientURLs: ['https://127.0.20.2:2379'],
};

function parseKubeconfigForTest(text: string): { server: string; ca: string; cert: string } {
  const c = parseKubeconfig(text);
  return { server: c.server, ca: c.ca?.toString('utf8') ?? '', cert: c.cert?.toString('utf8') ?? '' };
}

function file(b: MachineBootstrap, path: string): string {
  const f = b.files.find((x) => x.path === path);
  assert.ok(f, `file ${path} is in the bootstrap`);
  return f.content;
}

function args(b: MachineBootstrap, service: string): Map<string, string> {
  const s = b.services.find((x) => x.name === service);
  assert.ok(s, `service ${service} is in the bootstrap`);
  return new Map(s.args.map((a) => {
    const m = /^--([^=]+)=(.*)$/.exec(a);
    assert.ok(m, `argument ${a} has the --name=value form`);
    return [m[1]!, m[2]!] as [string, string];
  }));
}

test('etcd-only machine: server/peer certs name its IP, args carry TLS and the initial cluster, no kubelet', async () => {
  const b = await buildMachineBootstrap({
    cluster: cluster(),
    machine: machine('demo-etcd-aaaaa', ['etcd']),
    address: '127.0.20.2',
    endpoint,
    pki: await pki(),
    etcd: etcdData,
    kubernetesVersion: 'v1.36.3',
  });
  assert.deepEqual(b.services.map((s) => s.name), ['etcd']);
  assert.equal(b.kubelet, undefined);
  const server = certificateInfo(file(b, PATHS.etcdServerCert));
  assert.ok(server.ipAddresses.includes('127.0.20.2'));
  assert.deepEqual(server.extendedKeyUsages.sort(), ['clientAuth', 'serverAuth']);
  assert.ok(certificateInfo(file(b, PATHS.etcdPeerCert)).ipAddresses.includes('127.0.20.2'));
  assert.equal(server.issuer, (await pki()).etcdCa.cert.subject);

  const a = args(b, 'etcd');
  assert.equal(a.get('name'), 'demo-etcd-aaaaa');
  assert.equal(a.get('listen-client-urls'), 'https://127.0.20.2:2379');
  assert.equal(a.get('listen-peer-urls'), 'https://127.0.20.2:2380');
  assert.equal(a.get('initial-advertise-peer-urls'), 'https://127.0.20.2:2380');
  assert.equal(a.get('initial-cluster'), 'demo-etcd-aaaaa=https://127.0.20.2:2380');
  assert.equal(a.get('initial-cluster-state'), 'new');
  assert.equal(a.get('client-cert-auth'), 'true');
  assert.equal(a.get('peer-client-cert-auth'), 'true');
  assert.equal(a.get('trusted-ca-file'), `{root}/${PATHS.etcdCaCert}`);
  assert.equal(a.get('data-dir'), `{root}/${PATHS.etcdDataDir}`);
  assert.equal(b.services[0]!.readyUrl, 'https://127.0.20.2:2379/health?serializable=true');
  // The probe identity comes from the etcd CA, which etcd's client-cert-auth demands.
  assert.deepEqual(b.probeTls, { ca: PATHS.probeCa, cert: PATHS.probeCert, key: PATHS.probeKey });
  assert.equal(certificateInfo(file(b, PATHS.probeCert)).issuer, (await pki()).etcdCa.cert.subject);
  // Keys are private, certificates are not.
  for (const f of b.files) assert.equal(f.mode, f.path.endsWith('.key') ? 0o600 : 0o644, f.path);
  assert.ok(!b.files.some((f) => f.path === PATHS.caKey), 'an etcd machine does not get the cluster CA key');
});

test('joining etcd member starts with state existing and the full member list', async () => {
  const b = await buildMachineBootstrap({
    cluster: cluster(),
    machine: machine('demo-etcd-bbbbb', ['etcd']),
    address: '127.0.20.3',
    endpoint,
    pki: await pki(),
    etcd: {
      initialCluster: [
        { name: 'demo-etcd-aaaaa', peerURL: 'https://127.0.20.2:2380' },
        { name: 'demo-etcd-bbbbb', peerURL: 'https://127.0.20.3:2380' },
      ],
      state: 'existing',
      clientURLs: ['https://127.0.20.2:2379'],
    },
    kubernetesVersion: 'v1.36.3',
  });
  const a = args(b, 'etcd');
  assert.equal(a.get('initial-cluster-state'), 'existing');
  assert.equal(a.get('initial-cluster'), 'demo-etcd-aaaaa=https://127.0.20.2:2380,demo-etcd-bbbbb=https://127.0.20.3:2380');
});

test('control-plane machine: apiserver SANs, flags, component kubeconfigs, tainted kubelet', async () => {
  const c = cluster({ serviceCIDR: '10.100.0.0/16', podCIDR: '10.200.0.0/16' });
  const m = machine('demo-cp-ccccc', ['controlplane'], { labels: { tier: 'gold' } });
  const b = await buildMachineBootstrap({
    cluster: c,
    machine: m,
    address: '127.0.20.5',
    endpoint,
    pki: await pki(),
    etcd: { ...etcdData, clientURLs: ['https://127.0.20.2:2379', 'https://127.0.20.3:2379'] },
    kubernetesVersion: 'v1.36.3',
  });
  assert.deepEqual(b.services.map((s) => s.name), ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler']);
  const serving = certificateInfo(file(b, PATHS.apiServerCert));
  for (const ip of ['127.0.20.1', '127.0.20.5', '10.100.0.1']) assert.ok(serving.ipAddresses.includes(ip), `SAN ${ip}`);
  for (const dns of ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local']) {
    assert.ok(serving.dnsNames.includes(dns), `SAN ${dns}`);
  }
  assert.deepEqual(serving.extendedKeyUsages, ['serverAuth']);

  const api = args(b, 'kube-apiserver');
  assert.equal(api.get('etcd-servers'), 'https://127.0.20.2:2379,https://127.0.20.3:2379');
  assert.equal(api.get('bind-address'), '127.0.20.5');
  assert.equal(api.get('secure-port'), '6443');
  assert.equal(api.get('service-cluster-ip-range'), '10.100.0.0/16');
  assert.equal(api.get('endpoint-reconciler-type'), 'none');
  assert.equal(api.get('authorization-mode'), 'Node,RBAC');
  assert.equal(api.get('enable-admission-plugins'), 'NodeRestriction');
  assert.equal(api.get('etcd-certfile'), `{root}/${PATHS.apiServerEtcdClientCert}`);
  assert.equal(api.get('requestheader-client-ca-file'), `{root}/${PATHS.frontProxyCaCert}`);
  assert.equal(api.get('service-account-key-file'), `{root}/${PATHS.serviceAccountPub}`);
  assert.equal(b.services[0]!.readyUrl, 'https://127.0.20.5:6443/readyz');

  const kcm = args(b, 'kube-controller-manager');
  assert.equal(kcm.get('cluster-cidr'), '10.200.0.0/16');
  assert.equal(kcm.get('allocate-node-cidrs'), 'true');
  assert.equal(kcm.get('service-cluster-ip-range'), '10.100.0.0/16');
  assert.equal(kcm.get('cluster-signing-key-file'), `{root}/${PATHS.caKey}`);
  assert.equal(kcm.get('secure-port'), '10257');
  assert.equal(args(b, 'kube-scheduler').get('secure-port'), '10259');

  // Component kubeconfigs talk to the machine's own apiserver; the kubelet's to the endpoint.
  const kcmConf = parseKubeconfigForTest(file(b, PATHS.controllerManagerKubeconfig));
  assert.equal(kcmConf.server, 'https://127.0.20.5:6443');
  assert.equal(certificateInfo(kcmConf.cert).commonName, 'system:kube-controller-manager');
  assert.equal(parseKubeconfigForTest(file(b, PATHS.schedulerKubeconfig)).server, 'https://127.0.20.5:6443');
  const kubeletConf = parseKubeconfigForTest(file(b, PATHS.kubeletKubeconfig));
  assert.equal(kubeletConf.server, endpoint.url);
  const node = certificateInfo(kubeletConf.cert);
  assert.equal(node.commonName, 'system:node:demo-cp-ccccc');
  assert.deepEqual(node.organizations, ['system:nodes']);

  assert.ok(b.kubelet);
  assert.deepEqual(b.kubelet.taints, [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }]);
  assert.equal(b.kubelet.nodeName, 'demo-cp-ccccc');
  assert.equal(b.kubelet.labels.tier, 'gold');
  assert.equal(b.kubelet.labels['marina.dev/machine'], 'demo-cp-ccccc');
  // NodeRestriction forbids kubelets to set node-role labels; Marina sets them with admin rights.
  assert.equal(b.kubelet.labels['node-role.kubernetes.io/control-plane'], undefined);
  assert.equal(nodeLabels(m)['node-role.kubernetes.io/control-plane'], '');
  // The probe identity comes from the cluster CA (for /readyz).
  assert.equal(certificateInfo(file(b, PATHS.probeCert)).issuer, (await pki()).ca.cert.subject);
  // kube-apiserver's ComponentStatus looks for the controller-manager and scheduler at 127.0.0.1.
  assert.deepEqual(b.loopbackPorts, [10257, 10259]);
});

test('worker machine: labels, taints and capacity from the machine spec; no services', async () => {
  const m = machine('demo-w-ddddd', ['worker'], {
    labels: { gpu: 'true', 'topology.kubernetes.io/zone': 'z1' },
    taints: [{ key: 'gpu', value: 'yes', effect: 'NoSchedule' }],
    machine: { cpu: 16, memoryMiB: 3000 },
    runtime: { maxPods: 50 },
  });
  const b = await buildMachineBootstrap({ cluster: cluster(), machine: m, address: '127.0.20.9', endpoint, pki: await pki(), kubernetesVersion: 'v1.35.4' });
  assert.deepEqual(b.services, []);
  assert.equal(b.probeTls, undefined);
  assert.equal(b.loopbackPorts, undefined);
  assert.ok(b.kubelet);
  assert.deepEqual(b.kubelet.capacity, { cpu: '16', memory: '3000Mi', pods: '50' });
  assert.equal(b.kubelet.kubeletVersion, 'v1.35.4');
  assert.deepEqual(b.kubelet.taints, [{ key: 'gpu', value: 'yes', effect: 'NoSchedule' }]);
  assert.deepEqual(b.kubelet.labels, {
    gpu: 'true',
    'topology.kubernetes.io/zone': 'z1',
    'marina.dev/cluster': 'demo',
    'marina.dev/pool': 'pool1',
    'marina.dev/machine': 'demo-w-ddddd',
    'kubernetes.io/hostname': 'demo-w-ddddd',
    'kubernetes.io/os': 'linux',
  });
  assert.equal(nodeLabels(m)['node-role.kubernetes.io/worker'], '');
  assert.ok(!b.files.some((f) => f.path.startsWith('pki/etcd') || f.path === PATHS.caKey), 'a worker holds no etcd or CA keys');

  const defaults = await buildMachineBootstrap({
    cluster: cluster(),
    machine: machine('demo-w-eeeee', ['worker']),
    address: '127.0.20.10',
    endpoint,
    pki: await pki(),
    kubernetesVersion: 'v1.36.3',
  });
  assert.deepEqual(defaults.kubelet?.capacity, { cpu: '4', memory: '8Gi', pods: '110' });
});

test('combined etcd + control plane: both service sets, apiserver includes the local member', async () => {
  const b = await buildMachineBootstrap({
    cluster: cluster(),
    machine: machine('demo-all-fffff', ['etcd', 'controlplane', 'worker']),
    address: '127.0.20.7',
    endpoint,
    pki: await pki(),
    etcd: { initialCluster: [{ name: 'demo-all-fffff', peerURL: 'https://127.0.20.7:2380' }], state: 'new', clientURLs: [] },
    kubernetesVersion: 'v1.36.3',
  });
  assert.deepEqual(b.services.map((s) => s.name), ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']);
  assert.equal(args(b, 'kube-apiserver').get('etcd-servers'), 'https://127.0.20.7:2379');
  assert.equal(b.services[0]!.readyUrl, undefined, 'etcd is covered by the apiserver /readyz');
  assert.deepEqual(nodeTaints(machine('x', ['controlplane', 'worker'])), [], 'control plane + worker is schedulable');
});

test('control-plane machine without etcd data is refused', async () => {
  await assert.rejects(
    buildMachineBootstrap({ cluster: cluster(), machine: machine('m', ['controlplane']), address: '127.0.0.9', endpoint, pki: await pki(), kubernetesVersion: 'v1.36.3' }),
    /etcd bootstrap data is required/,
  );
});

test('admin kubeconfig: endpoint server, cluster CA, system:masters client certificate', async () => {
  const p = await pki();
  const admin = await buildAdminKubeconfig({ clusterName: 'demo', endpointUrl: endpoint.url, pki: p });
  const conf = parseKubeconfigForTest(admin.kubeconfig);
  assert.equal(conf.server, endpoint.url);
  assert.equal(conf.ca, p.ca.certPem);
  const info = certificateInfo(conf.cert);
  assert.deepEqual(info.organizations, ['system:masters']);
  assert.deepEqual(info.extendedKeyUsages, ['clientAuth']);
  assert.equal(admin.notAfter.getTime(), info.notAfter.getTime());
});
