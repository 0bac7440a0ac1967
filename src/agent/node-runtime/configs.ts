// Configuration files of a real node's containerd, kubelet and kube-proxy. Why each setting is
// there: docs/real-workers.md (what failed on this kind of host, and the fix).
import type { AgentNodeConfig } from './config.js';

export interface NodePaths {
  containerdRoot: string;
  containerdState: string;
  containerdSocket: string;
  shimSocketDir: string;
  cniConfDir: string;
  cniDataDir: string;
  kubeletConfig: string;
  kubeletCertDir: string;
  kubeletKubeconfig: string;
  bootstrapKubeconfig: string;
  kubeProxyConfig: string;
  kubeProxyKubeconfig: string;
}

export function containerdConfig(c: AgentNodeConfig, p: NodePaths): string {
  return `version = 3
root = '${p.containerdRoot}'
state = '${p.containerdState}'
# no /etc/containerd/conf.d drop-ins, no NRI socket in /var/run/nri
imports = []
disabled_plugins = ['io.containerd.nri.v1.nri']

[grpc]
  address = '${p.containerdSocket}'
[ttrpc]
  address = '${p.containerdSocket}.ttrpc'

[plugins.'io.containerd.grpc.v1.cri']
  # kubelet proxies exec/attach/port-forward to this stream server
  stream_server_address = '${c.network.address}'
  stream_server_port = '0'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '${c.sandboxImage}'

[plugins.'io.containerd.cri.v1.runtime']
  # network namespaces under the state dir instead of /var/run/netns
  netns_mounts_under_state_dir = true
  # Kernels that refuse negative oom_score_adj even to root (runc: "failed to update
  # /proc/self/oom_score_adj: Permission denied" for the -998 of every pod sandbox): clamp to 0.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
    BinaryName = '${c.binaries.runc}'
    Root = '${p.containerdState}/runc'
    SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['${c.binaries.cniBinDir}']
    conf_dir = '${p.cniConfDir}'

[plugins.'io.containerd.shim.v1.manager']
  # shim sockets default to /run/containerd/s
  socket_dir = '${p.shimSocketDir}'
`;
}

export function kubeletConfig(c: AgentNodeConfig, p: NodePaths, opts: { cgroupV1: boolean }): Record<string, unknown> {
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: c.network.address,
    port: 10250,
    readOnlyPort: 0,
    // The agent checks kubelet's health from outside the node's network namespace.
    healthzBindAddress: c.network.address,
    healthzPort: 10248,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: c.caFile } },
    authorization: { mode: 'Webhook' },
    // Client certificate by TLS bootstrap, serving certificate by a CSR (both approved by Marina).
    serverTLSBootstrap: true,
    rotateCertificates: true,
    containerRuntimeEndpoint: `unix://${p.containerdSocket}`,
    cgroupDriver: 'cgroupfs',
    // kubelet puts pods in <cgroupRoot>/kubepods
    cgroupRoot: c.cgroupRoot,
    cgroupsPerQOS: true,
    // kubelet >= 1.35 refuses to start on a cgroup v1 host unless told otherwise
    ...(opts.cgroupV1 ? { failCgroupV1: false } : {}),
    clusterDNS: [c.clusterDNS],
    clusterDomain: c.clusterDomain,
    resolvConf: '/etc/resolv.conf',
    maxPods: c.maxPods,
    registerWithTaints: c.taints,
    // Parallel image pulls: kubelet does not cancel the image pull of a pod being deleted (it runs
    // the pod's sync with context.WithoutCancel, kubernetes#113606) and waits for its turn in the
    // serial pull queue without a deadline, so with serialized pulls a deleted pod stays
    // Terminating until every pull queued before its own has failed or finished (minutes behind
    // images of an unreachable registry). No maxParallelImagePulls: any limit brings the queue back.
    serializeImagePulls: false,
    // keep the locally imported images: nothing can be pulled again
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
  };
}

export function kubeProxyConfig(c: AgentNodeConfig, p: NodePaths): Record<string, unknown> {
  return {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: p.kubeProxyKubeconfig },
    hostnameOverride: c.nodeName,
    bindAddress: c.network.address,
    healthzBindAddress: `${c.network.address}:10256`,
    metricsBindAddress: `${c.network.address}:10249`,
    mode: 'nftables',
    clusterCIDR: c.clusterCIDR,
    detectLocalMode: 'NodeCIDR',
    // nf_conntrack_max is writable only in the host's initial network namespace: leave it and the
    // TCP timeouts as they are.
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
  };
}
