// The `node` section of the machine agent's configuration: a real kubelet with containerd, runc and
// bridge CNI (runtime `containerd` pools of the local provider, and imported servers). Written by the
// local provider (agent.json) or by `marina agent join` from what Marina hands out; validated here.
import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';

export interface NodeBinaries {
  kubelet: string;
  /** Absent: no kube-proxy (Services' ClusterIPs then do not work on this node). */
  kubeProxy?: string;
  containerd: string;
  ctr: string;
  runc: string;
  /** Directory of the CNI plugins (bridge, host-local, loopback, portmap). */
  cniBinDir: string;
  /** Put first on containerd's PATH (it starts containerd-shim-runc-v2 from there). */
  pathDirs: string[];
}

/** What a real node runs: binaries, the images to import and which one is the pod sandbox. */
export interface NodeArtifacts {
  binaries: NodeBinaries;
  images: { ref: string; archive: string }[];
  sandboxImage: string;
}

/**
 * `namespace`: the node gets its own network namespace (a separate machine on this host) joined to a
 * host bridge by a veth pair; `address` is its node IP on that bridge's subnet. `host`: the node uses
 * the network namespace the agent runs in (an imported server's own network); `address` is its IP.
 */
export type NodeNetwork =
  | { mode: 'namespace'; address: string; prefixLength: number; gateway: string; bridge: string; hostVeth: string }
  | { mode: 'host'; address: string };

export interface AgentNodeConfig {
  nodeName: string;
  /** Everything of the node: containerd root, kubelet directories, CNI state, logs. */
  dir: string;
  /** Short directory (unix socket paths are limited to 108 bytes): containerd's sockets and state. */
  runDir: string;
  /** cgroup (in every hierarchy) that holds the node: containerd, kubelet, kube-proxy, pods. */
  cgroupRoot: string;
  binaries: NodeBinaries;
  /** OCI archives imported into containerd at start (no registry is reachable). */
  images: { ref: string; archive: string }[];
  /** Pod sandbox image (pinned: never pulled). */
  sandboxImage: string;
  /** How this node reaches the cluster's API; tlsServerName: a name in the apiserver certificate. */
  apiServer: { url: string; tlsServerName?: string };
  /** Absolute path of the cluster CA. */
  caFile: string;
  /** Kubelet TLS bootstrap token `<id>.<secret>`. */
  bootstrapToken: string;
  /**
   * kube-proxy's client certificate (CN system:kube-proxy): used by kube-proxy and by the agent to
   * watch Nodes (pod CIDR, routes), which the node's own identity may not.
   */
  kubeProxy: { certFile: string; keyFile: string };
  clusterCIDR: string;
  clusterDNS: string;
  clusterDomain: string;
  labels: Record<string, string>;
  taints: { key: string; value?: string; effect: string }[];
  maxPods: number;
  network: NodeNetwork;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Problems of a `node` section, each naming its field (`node.network.address: ...`). */
export function nodeConfigProblems(raw: unknown, at = 'node'): string[] {
  const p: string[] = [];
  if (!isObject(raw)) return [`${at}: must be an object`];
  const str = (o: Record<string, unknown>, k: string, where: string, optional = false): string | undefined => {
    const v = o[k];
    if (v === undefined && optional) return undefined;
    if (typeof v !== 'string' || v === '') p.push(`${where}.${k}: must be a non-empty string`);
    return typeof v === 'string' ? v : undefined;
  };
  const abs = (o: Record<string, unknown>, k: string, where: string, optional = false) => {
    const v = str(o, k, where, optional);
    if (v !== undefined && !isAbsolute(v)) p.push(`${where}.${k}: must be an absolute path`);
  };
  for (const k of ['nodeName', 'sandboxImage', 'bootstrapToken', 'clusterCIDR', 'clusterDNS', 'clusterDomain', 'cgroupRoot']) str(raw, k, at);
  for (const k of ['dir', 'runDir', 'caFile']) abs(raw, k, at);
  if (typeof raw.bootstrapToken === 'string' && !/^[a-z0-9]{6}\.[a-z0-9]{16}$/.test(raw.bootstrapToken)) p.push(`${at}.bootstrapToken: must look like abcdef.0123456789abcdef`);
  if (typeof raw.cgroupRoot === 'string' && !/^\/[A-Za-z0-9_.-]+$/.test(raw.cgroupRoot)) p.push(`${at}.cgroupRoot: must be one path element like /marina-node-1`);
  if (typeof raw.maxPods !== 'number' || !Number.isInteger(raw.maxPods) || raw.maxPods < 1) p.push(`${at}.maxPods: must be a positive integer`);
  if (!isObject(raw.binaries)) p.push(`${at}.binaries: must be an object`);
  else {
    for (const k of ['kubelet', 'containerd', 'ctr', 'runc', 'cniBinDir']) abs(raw.binaries, k, `${at}.binaries`);
    abs(raw.binaries, 'kubeProxy', `${at}.binaries`, true);
    if (!Array.isArray(raw.binaries.pathDirs) || raw.binaries.pathDirs.some((d) => typeof d !== 'string' || !isAbsolute(d))) {
      p.push(`${at}.binaries.pathDirs: must be an array of absolute paths`);
    }
  }
  if (!Array.isArray(raw.images)) p.push(`${at}.images: must be an array of {ref, archive}`);
  else raw.images.forEach((img, i) => (isObject(img) ? (str(img, 'ref', `${at}.images[${i}]`), abs(img, 'archive', `${at}.images[${i}]`)) : p.push(`${at}.images[${i}]: must be an object`)));
  if (!isObject(raw.apiServer)) p.push(`${at}.apiServer: must be an object {url, tlsServerName?}`);
  else {
    const url = str(raw.apiServer, 'url', `${at}.apiServer`);
    if (url !== undefined && !/^https:\/\/[^/]+/.test(url)) p.push(`${at}.apiServer.url: must be an https:// URL`);
    str(raw.apiServer, 'tlsServerName', `${at}.apiServer`, true);
  }
  if (!isObject(raw.kubeProxy)) p.push(`${at}.kubeProxy: must be an object {certFile, keyFile}`);
  else for (const k of ['certFile', 'keyFile']) abs(raw.kubeProxy, k, `${at}.kubeProxy`);
  if (!isObject(raw.labels) || Object.values(raw.labels).some((v) => typeof v !== 'string')) p.push(`${at}.labels: must be an object of strings`);
  if (!Array.isArray(raw.taints)) p.push(`${at}.taints: must be an array`);
  if (typeof raw.clusterDNS === 'string' && isIP(raw.clusterDNS) === 0) p.push(`${at}.clusterDNS: must be an IP address`);
  const net = raw.network;
  if (!isObject(net)) p.push(`${at}.network: must be an object`);
  else {
    const address = str(net, 'address', `${at}.network`);
    if (address !== undefined && isIP(address) !== 4) p.push(`${at}.network.address: must be an IPv4 address`);
    if (address?.startsWith('127.')) p.push(`${at}.network.address: kubelet refuses a loopback node IP`);
    if (net.mode === 'namespace') {
      if (typeof net.prefixLength !== 'number' || net.prefixLength < 8 || net.prefixLength > 30) p.push(`${at}.network.prefixLength: must be 8..30`);
      const gw = str(net, 'gateway', `${at}.network`);
      if (gw !== undefined && isIP(gw) !== 4) p.push(`${at}.network.gateway: must be an IPv4 address`);
      for (const k of ['bridge', 'hostVeth']) {
        const v = str(net, k, `${at}.network`);
        if (v !== undefined && !/^[A-Za-z0-9_.-]{1,15}$/.test(v)) p.push(`${at}.network.${k}: must be an interface name (at most 15 characters)`);
      }
    } else if (net.mode !== 'host') {
      p.push(`${at}.network.mode: must be namespace or host`);
    }
  }
  return p;
}
