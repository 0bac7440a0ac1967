// A real worker of the local provider (runtime containerd): the `node` section of its agent's
// configuration. The worker is a network namespace of its own on the cluster's node network
// (node-network.ts); its kubelet reaches the API endpoint through the bridge's gateway, where the
// cluster's balancer also listens.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { AgentNodeConfig, NodeArtifacts } from '../../agent/node-runtime/config.js';
import type { BootstrapNode, MachineRef } from '../contract.js';
import { hostVethName, PREFIX_LENGTH, type NodeNetworkRecord } from './node-network.js';

/** The apiserver certificate names `kubernetes`; the gateway address it is reached at is not in it. */
export const API_TLS_SERVER_NAME = 'kubernetes';

export function nodeId(machineUid: string): string {
  return createHash('sha256').update(machineUid).digest('hex').slice(0, 8);
}

export function localNodeConfig(o: {
  machineDir: string;
  machine: MachineRef;
  node: BootstrapNode;
  network: NodeNetworkRecord;
  address: string;
  apiPort: number;
  artifacts: NodeArtifacts;
}): AgentNodeConfig {
  const id = nodeId(o.machine.uid);
  const root = (p: string) => join(o.machineDir, p);
  return {
    nodeName: o.node.nodeName,
    dir: root('node'),
    // unix socket paths are limited to 108 bytes: containerd's sockets live in a short directory
    runDir: `/run/marina/${id}`,
    cgroupRoot: `/marina-${id}`,
    binaries: o.artifacts.binaries,
    images: o.artifacts.images,
    sandboxImage: o.artifacts.sandboxImage,
    apiServer: { url: `https://${o.network.gateway}:${o.apiPort}`, tlsServerName: API_TLS_SERVER_NAME },
    caFile: root(o.node.caFile),
    bootstrapToken: o.node.bootstrapToken,
    kubeProxy: { certFile: root(o.node.kubeProxyCertFile), keyFile: root(o.node.kubeProxyKeyFile) },
    clusterCIDR: o.node.clusterCIDR,
    clusterDNS: o.node.clusterDNS,
    clusterDomain: o.node.clusterDomain,
    labels: o.node.labels,
    taints: o.node.taints,
    maxPods: o.node.maxPods,
    network: {
      mode: 'namespace',
      address: o.address,
      prefixLength: PREFIX_LENGTH,
      gateway: o.network.gateway,
      bridge: o.network.bridge,
      hostVeth: hostVethName(o.machine.uid),
    },
  };
}
