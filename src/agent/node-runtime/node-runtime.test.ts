import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateAgentConfig } from '../config.js';
import type { AgentNodeConfig } from './config.js';
import { kubeletConfig, kubeProxyConfig, type NodePaths } from './configs.js';
import { cniConfig, natRuleset } from './network.js';

const node = (o: Partial<AgentNodeConfig> = {}): AgentNodeConfig => ({
  nodeName: 'c1-w-abcde',
  dir: '/data/m/node',
  runDir: '/run/marina/0123abcd',
  cgroupRoot: '/marina-0123abcd',
  binaries: { kubelet: '/b/kubelet', kubeProxy: '/b/kube-proxy', containerd: '/b/containerd', ctr: '/b/ctr', runc: '/b/runc', cniBinDir: '/b/cni', pathDirs: ['/b'] },
  images: [{ ref: 'marina.local/pause:3.10.2', archive: '/i/pause.tar' }],
  sandboxImage: 'marina.local/pause:3.10.2',
  apiServer: { url: 'https://172.30.4.1:6443', tlsServerName: 'kubernetes' },
  caFile: '/data/m/pki/ca.crt',
  bootstrapToken: 'abcdef.0123456789abcdef',
  kubeProxy: { certFile: '/data/m/pki/kp.crt', keyFile: '/data/m/pki/kp.key' },
  clusterCIDR: '10.244.0.0/16',
  clusterDNS: '10.96.0.10',
  clusterDomain: 'cluster.local',
  labels: { 'marina.dev/pool': 'w' },
  taints: [],
  maxPods: 110,
  network: { mode: 'namespace', address: '172.30.4.2', prefixLength: 24, gateway: '172.30.4.1', bridge: 'mrn01234567', hostVeth: 'mv0123abcd' },
  ...o,
});
const agent = (n: unknown) => ({ machine: 'c1-w-abcde', nodeName: 'c1-w-abcde', address: '127.77.0.9', dataDir: '/data/m', agentPort: 10250, processes: [], node: n });

describe('agent config: the node section', () => {
  it('accepts a complete node', () => {
    assert.doesNotThrow(() => validateAgentConfig(agent(node())));
  });

  it('names every bad field', () => {
    const bad = node({ network: { mode: 'host', address: '127.0.0.5' }, bootstrapToken: 'nope', cgroupRoot: 'relative/x' });
    assert.throws(
      () => validateAgentConfig(agent(bad)),
      (err: Error) =>
        err.message.includes('node.network.address: kubelet refuses a loopback node IP') &&
        err.message.includes('node.bootstrapToken: must look like') &&
        err.message.includes('node.cgroupRoot: must be one path element'),
    );
    assert.throws(() => validateAgentConfig({ ...agent(node()), kubelet: { kubeconfigPath: '/k', capacity: { cpu: '1', memory: '1Gi', pods: '1' }, kubeletVersion: 'v1.36.3' } }), /either the virtual kubelet/);
  });
});

describe('node configuration files', () => {
  const paths = { containerdSocket: '/run/marina/0123abcd/containerd.sock', kubeProxyKubeconfig: '/data/m/node/kube-proxy.kubeconfig' } as NodePaths;

  it('kubelet: TLS bootstrap of client and serving certificates, cluster DNS, cgroup root, failCgroupV1 only on v1 hosts, parallel image pulls', () => {
    const v1 = kubeletConfig(node(), paths, { cgroupV1: true });
    assert.equal(v1.serverTLSBootstrap, true);
    assert.equal(v1.rotateCertificates, true);
    assert.deepEqual(v1.clusterDNS, ['10.96.0.10']);
    assert.equal(v1.clusterDomain, 'cluster.local');
    assert.equal(v1.cgroupRoot, '/marina-0123abcd');
    assert.equal(v1.failCgroupV1, false);
    assert.equal(v1.containerRuntimeEndpoint, 'unix:///run/marina/0123abcd/containerd.sock');
    // a deleted pod must not wait for other pods' image pulls (docs/real-workers.md, finding 14)
    assert.equal(v1.serializeImagePulls, false);
    assert.equal('maxParallelImagePulls' in v1, false);
    assert.equal('failCgroupV1' in kubeletConfig(node(), paths, { cgroupV1: false }), false);
  });

  it('kube-proxy: nftables mode, the cluster CIDR, no host-wide conntrack settings', () => {
    const kp = kubeProxyConfig(node(), paths);
    assert.equal(kp.mode, 'nftables');
    assert.equal(kp.clusterCIDR, '10.244.0.0/16');
    assert.deepEqual(kp.conntrack, { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' });
  });

  it('CNI: a bridge with the Node pod CIDR, no masquerading by the plugin', () => {
    const c = JSON.parse(cniConfig('10.244.3.0/24', '/d/cni/networks'));
    assert.equal(c.plugins[0].type, 'bridge');
    assert.equal(c.plugins[0].ipMasq, false);
    assert.deepEqual(c.plugins[0].ipam.ranges, [[{ subnet: '10.244.3.0/24' }]]);
  });

  it('nftables: 127.0.0.1:6443 redirected to the endpoint, pod traffic leaving the pod CIDR masqueraded', () => {
    const rules = natRuleset({ apiRedirect: { localPort: 6443, host: '172.30.4.1', port: 6443 }, masquerade: { podCIDR: '10.244.3.0/24', clusterCIDR: '10.244.0.0/16' } });
    assert.match(rules, /ip daddr 127\.0\.0\.1 tcp dport 6443 dnat to 172\.30\.4\.1:6443/);
    assert.match(rules, /ip saddr 127\.0\.0\.0\/8 oifname "eth0" masquerade/);
    assert.match(rules, /ip saddr 10\.244\.3\.0\/24 ip daddr != 10\.244\.0\.0\/16 masquerade/);
    assert.doesNotMatch(natRuleset({ masquerade: { podCIDR: '10.244.3.0/24', clusterCIDR: '10.244.0.0/16' } }), /dnat/);
  });
});
