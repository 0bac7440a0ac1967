// What one machine needs to join its cluster, computed without any provider knowledge: the
// certificates and kubeconfigs it holds, the services it runs (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler) with their arguments, and the registration of its
// (virtual) kubelet. Providers turn this into files + processes (local) or cloud-init (OpenStack).
//
// Every machine has its own address, so ports are fixed: etcd 2379/2380, kube-apiserver 6443,
// kube-controller-manager 10257, kube-scheduler 10259. The last two are also relayed from
// 127.0.0.1 (`loopbackPorts`), where kube-apiserver's ComponentStatus probes them; binding them
// there directly would collide between the machines that share a host.
//
// Paths in `files` are relative to the machine's root; service arguments name them as `{root}/...`
// (the provider substitutes the root directory).
import { nthAddress, parseCidr } from '../api/cidr.js';
import { DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR } from '../api/cluster-validation.js';
import type { Cluster, Machine, Taint } from '../api/kinds.js';
import { hasKubelet, hasRole, usesRealKubelet } from '../api/machines.js';
import { CONTROL_PLANE_TAINT, LABEL_CLUSTER, LABEL_MACHINE, LABEL_POOL, ROLE_LABELS } from '../api/wellknown.js';
import {
  etcdArgs,
  hostPort,
  kubeApiServerArgs,
  kubeControllerManagerArgs,
  kubeSchedulerArgs,
} from '../kube/components.js';
import { buildKubeconfig, type IssuedCertificate, type IssueOptions, KUBERNETES_SERVICE_NAMES, sanList } from '../pki/index.js';
import { bootstrapTokenFor } from './bootstrap-token.js';
import type {
  BootstrapFile,
  BootstrapKubelet,
  BootstrapNode,
  BootstrapService,
  EndpointDescription,
  MachineBootstrap,
} from '../providers/contract.js';
import { MAX_JOINING, type JoinPlan } from '../etcd/membership.js';
import { issueLeaf, trustPem, type CaName, type ClusterPki } from './clusterPki.js';
import { kubeletMaySetLabel } from '../kube/node-labels.js';
import { CLUSTER_DOMAIN, clusterDnsIP } from '../api/cluster-dns.js';

export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
export const APISERVER_PORT = 6443;
export const KCM_PORT = 10257;
export const SCHEDULER_PORT = 10259;

export const DEFAULT_CPU = 4;
export const DEFAULT_MEMORY_MIB = 8192;
export const DEFAULT_MAX_PODS = 110;
export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

/** Machine-relative paths of every bootstrap file. */
export const PATHS = {
  /** The cluster CA bundle every component trusts (old + new during a CA rotation). */
  caCert: 'pki/ca.crt',
  /** The one CA kube-controller-manager signs with (its key is caKey). */
  caSignerCert: 'pki/ca-signer.crt',
  caKey: 'pki/ca.key',
  etcdCaCert: 'pki/etcd/ca.crt',
  etcdServerCert: 'pki/etcd/server.crt',
  etcdServerKey: 'pki/etcd/server.key',
  etcdPeerCert: 'pki/etcd/peer.crt',
  etcdPeerKey: 'pki/etcd/peer.key',
  etcdDataDir: 'etcd',
  apiServerCert: 'pki/apiserver.crt',
  apiServerKey: 'pki/apiserver.key',
  apiServerEtcdClientCert: 'pki/apiserver-etcd-client.crt',
  apiServerEtcdClientKey: 'pki/apiserver-etcd-client.key',
  apiServerKubeletClientCert: 'pki/apiserver-kubelet-client.crt',
  apiServerKubeletClientKey: 'pki/apiserver-kubelet-client.key',
  frontProxyCaCert: 'pki/front-proxy-ca.crt',
  frontProxyClientCert: 'pki/front-proxy-client.crt',
  frontProxyClientKey: 'pki/front-proxy-client.key',
  serviceAccountKey: 'pki/sa.key',
  serviceAccountPub: 'pki/sa.pub',
  controllerManagerKubeconfig: 'controller-manager.kubeconfig',
  schedulerKubeconfig: 'scheduler.kubeconfig',
  kubeletKubeconfig: 'kubelet.kubeconfig',
  probeCa: 'pki/probe-ca.crt',
  probeCert: 'pki/probe.crt',
  probeKey: 'pki/probe.key',
  kubeProxyCert: 'pki/kube-proxy.crt',
  kubeProxyKey: 'pki/kube-proxy.key',
} as const;


const root = (p: string): string => `{root}/${p}`;

export function etcdPeerURL(address: string): string {
  return `https://${hostPort(address, ETCD_PEER_PORT)}`;
}

export function etcdClientURL(address: string): string {
  return `https://${hostPort(address, ETCD_CLIENT_PORT)}`;
}

export function apiServerURL(address: string): string {
  return `https://${hostPort(address, APISERVER_PORT)}`;
}

export function podCIDR(cluster: Cluster): string {
  return cluster.spec.network?.podCIDR ?? DEFAULT_POD_CIDR;
}

export function serviceCIDR(cluster: Cluster): string {
  return cluster.spec.network?.serviceCIDR ?? DEFAULT_SERVICE_CIDR;
}

/** First address of the service CIDR: the ClusterIP of the `kubernetes` Service. */
export function kubernetesServiceIP(cluster: Cluster): string {
  const cidr = parseCidr(serviceCIDR(cluster));
  if (typeof cidr === 'string') throw new Error(`cluster ${cluster.metadata.name}: spec.network.serviceCIDR: ${cidr}`);
  return nthAddress(cidr, 1);
}

/** Every label Marina wants on the machine's Node. */
export function nodeLabels(machine: Machine): Record<string, string> {
  const labels: Record<string, string> = { ...(machine.spec.labels ?? {}) };
  for (const role of machine.spec.roles) labels[ROLE_LABELS[role]] = '';
  labels[LABEL_CLUSTER] = machine.spec.cluster;
  labels[LABEL_POOL] = machine.spec.pool;
  labels[LABEL_MACHINE] = machine.metadata.name;
  labels['kubernetes.io/hostname'] = machine.metadata.name;
  labels['kubernetes.io/os'] = 'linux';
  return labels;
}

/**
 * Every taint Marina wants on the machine's Node: the pool's, plus the control-plane taint on
 * control-plane machines that are not also workers (a combined pool would otherwise accept no pods).
 */
export function nodeTaints(machine: Machine): Taint[] {
  const taints: Taint[] = (machine.spec.taints ?? []).map((t) => ({ ...t }));
  if (hasRole(machine, 'controlplane') && !hasRole(machine, 'worker')) {
    if (!taints.some((t) => t.key === CONTROL_PLANE_TAINT.key && t.effect === CONTROL_PLANE_TAINT.effect)) {
      taints.push({ ...CONTROL_PLANE_TAINT });
    }
  }
  return taints;
}

function formatMemory(mib: number): string {
  return mib % 1024 === 0 ? `${mib / 1024}Gi` : `${mib}Mi`;
}

export function nodeCapacity(machine: Machine): BootstrapKubelet['capacity'] {
  return {
    cpu: String(machine.spec.machine?.cpu ?? DEFAULT_CPU),
    memory: formatMemory(machine.spec.machine?.memoryMiB ?? DEFAULT_MEMORY_MIB),
    pods: String(machine.spec.runtime?.maxPods ?? DEFAULT_MAX_PODS),
  };
}

export interface MachineBootstrapInput {
  cluster: Cluster;
  machine: Machine;
  /** The machine's address from prepareMachine. */
  address: string;
  endpoint: EndpointDescription;
  pki: ClusterPki;
  /** Required for machines with the etcd or controlplane role: how etcd starts (see src/etcd/membership.ts). */
  etcd?: JoinPlan;
  kubernetesVersion: string;
  /** Validity of the machine's leaf certificates (default 365 days). */
  validityDays?: number;
}

interface FileSink {
  files: BootstrapFile[];
  put(path: string, content: string, secret?: boolean): void;
  pair(cert: IssuedCertificate, certPath: string, keyPath: string): void;
}

/** A machine's bootstrap, and when the earliest of the leaf certificates issued for it ends. */
export type BuiltBootstrap = MachineBootstrap & { certificatesNotAfter: Date };

function sink(): FileSink {
  const files: BootstrapFile[] = [];
  const put = (path: string, content: string, secret = false) => {
    const i = files.findIndex((f) => f.path === path);
    const f = { path, content, mode: secret ? 0o600 : 0o644 };
    if (i >= 0) files[i] = f;
    else files.push(f);
  };
  return {
    files,
    put,
    pair(cert, certPath, keyPath) {
      put(certPath, cert.certPem);
      put(keyPath, cert.keyPem, true);
    },
  };
}

/** Builds the bootstrap of one machine; issues fresh leaf certificates on every call. */
export async function buildMachineBootstrap(input: MachineBootstrapInput): Promise<BuiltBootstrap> {
  const { cluster, machine, address, endpoint, pki } = input;
  const roles = machine.spec.roles;
  const isEtcd = roles.includes('etcd');
  const isControlPlane = roles.includes('controlplane');
  const kubelet = hasKubelet(machine);
  const validityDays = input.validityDays ?? 365;
  const clusterName = cluster.metadata.name;
  const out = sink();
  const services: BootstrapService[] = [];
  let earliest: Date | undefined;
  const issue = async (ca: CaName, opts: IssueOptions): Promise<IssuedCertificate> => {
    const cert = await issueLeaf(pki, ca, { validityDays, ...opts });
    if (!earliest || cert.notAfter < earliest) earliest = cert.notAfter;
    return cert;
  };
  const caBundle = trustPem(pki, 'ca');

  out.put(PATHS.caCert, caBundle);

  if ((isEtcd || isControlPlane) && !input.etcd) {
    throw new Error(`machine ${machine.metadata.name}: etcd bootstrap data is required for the etcd and controlplane roles`);
  }

  // ---------- etcd ----------
  if (isEtcd) {
    const etcd = input.etcd!;
    const sans = sanList(['localhost', machine.metadata.name, address, '127.0.0.1']);
    const [server, peer] = await Promise.all([
      issue('etcdCa', { commonName: `${machine.metadata.name}-etcd-server`, usage: 'both', ...sans }),
      issue('etcdCa', { commonName: `${machine.metadata.name}-etcd-peer`, usage: 'both', ...sans }),
    ]);
    out.put(PATHS.etcdCaCert, trustPem(pki, 'etcdCa'));
    out.pair(server, PATHS.etcdServerCert, PATHS.etcdServerKey);
    out.pair(peer, PATHS.etcdPeerCert, PATHS.etcdPeerKey);
    services.push({
      name: 'etcd',
      binary: 'etcd',
      args: etcdArgs({
        name: machine.metadata.name,
        dataDir: root(PATHS.etcdDataDir),
        listenAddress: address,
        clientPort: ETCD_CLIENT_PORT,
        peerPort: ETCD_PEER_PORT,
        tls: {
          certFile: root(PATHS.etcdServerCert),
          keyFile: root(PATHS.etcdServerKey),
          trustedCaFile: root(PATHS.etcdCaCert),
          peerCertFile: root(PATHS.etcdPeerCert),
          peerKeyFile: root(PATHS.etcdPeerKey),
          peerTrustedCaFile: root(PATHS.etcdCaCert),
        },
        initialCluster: etcd.initialCluster,
        initialClusterState: etcd.state,
        initialClusterToken: `marina-${cluster.metadata.uid ?? clusterName}`,
        // A new cluster's members join together (src/etcd/membership.ts).
        maxLearners: MAX_JOINING,
      }),
      // serializable: the member itself serves (a joining learner has no say in the cluster's
      // health yet; the Machine controller promotes it and checks the quorum). On a combined
      // etcd + control-plane machine the probe identity is a cluster-CA client (for /readyz),
      // which etcd would refuse; kube-apiserver's /readyz includes etcd anyway.
      ...(isControlPlane ? {} : { readyUrl: `${etcdClientURL(address)}/health?serializable=true` }),
    });
  }

  // ---------- control plane ----------
  if (isControlPlane) {
    const etcd = input.etcd!;
    const etcdServers = uniq([...(isEtcd ? [etcdClientURL(address)] : []), ...etcd.clientURLs]);
    if (etcdServers.length === 0) throw new Error(`machine ${machine.metadata.name}: no etcd client URLs for kube-apiserver`);
    const svcCIDR = serviceCIDR(cluster);
    const apiSANs = sanList([endpoint.host, address, kubernetesServiceIP(cluster), ...KUBERNETES_SERVICE_NAMES, 'localhost', '127.0.0.1']);
    const ownServer = apiServerURL(address);
    const [apiServer, etcdClient, kubeletClient, frontProxyClient, kcm, scheduler] = await Promise.all([
      issue('ca', { commonName: 'kube-apiserver', usage: 'server', ...apiSANs }),
      issue('etcdCa', { commonName: 'kube-apiserver-etcd-client', usage: 'client' }),
      issue('ca', { commonName: 'kube-apiserver-kubelet-client', organizations: ['system:masters'], usage: 'client' }),
      issue('frontProxyCa', { commonName: 'front-proxy-client', usage: 'client' }),
      issue('ca', { commonName: 'system:kube-controller-manager', usage: 'client' }),
      issue('ca', { commonName: 'system:kube-scheduler', usage: 'client' }),
    ]);
    out.put(PATHS.caKey, pki.ca.keyPem, true);
    out.put(PATHS.caSignerCert, pki.ca.certPem);
    out.put(PATHS.etcdCaCert, trustPem(pki, 'etcdCa'));
    out.put(PATHS.frontProxyCaCert, trustPem(pki, 'frontProxyCa'));
    out.put(PATHS.serviceAccountKey, pki.serviceAccount.privateKeyPem, true);
    out.put(PATHS.serviceAccountPub, pki.serviceAccount.publicKeyPem);
    out.pair(apiServer, PATHS.apiServerCert, PATHS.apiServerKey);
    out.pair(etcdClient, PATHS.apiServerEtcdClientCert, PATHS.apiServerEtcdClientKey);
    out.pair(kubeletClient, PATHS.apiServerKubeletClientCert, PATHS.apiServerKubeletClientKey);
    out.pair(frontProxyClient, PATHS.frontProxyClientCert, PATHS.frontProxyClientKey);
    const kubeconfig = (userName: string, c: IssuedCertificate) =>
      buildKubeconfig({ server: ownServer, caPem: caBundle, userName, clientCertPem: c.certPem, clientKeyPem: c.keyPem, clusterName });
    out.put(PATHS.controllerManagerKubeconfig, kubeconfig('system:kube-controller-manager', kcm), true);
    out.put(PATHS.schedulerKubeconfig, kubeconfig('system:kube-scheduler', scheduler), true);

    services.push({
      name: 'kube-apiserver',
      binary: 'kube-apiserver',
      args: kubeApiServerArgs({
        bindAddress: address,
        advertiseAddress: address,
        securePort: APISERVER_PORT,
        etcdServers,
        etcdCaFile: root(PATHS.etcdCaCert),
        etcdCertFile: root(PATHS.apiServerEtcdClientCert),
        etcdKeyFile: root(PATHS.apiServerEtcdClientKey),
        tlsCertFile: root(PATHS.apiServerCert),
        tlsPrivateKeyFile: root(PATHS.apiServerKey),
        clientCaFile: root(PATHS.caCert),
        serviceAccountKeyFile: root(PATHS.serviceAccountPub),
        serviceAccountSigningKeyFile: root(PATHS.serviceAccountKey),
        serviceAccountIssuer: SERVICE_ACCOUNT_ISSUER,
        serviceClusterIpRange: svcCIDR,
        authorizationModes: ['Node', 'RBAC'],
        enableAdmissionPlugins: ['NodeRestriction'],
        frontProxy: {
          clientCertFile: root(PATHS.frontProxyClientCert),
          clientKeyFile: root(PATHS.frontProxyClientKey),
          requestheaderClientCaFile: root(PATHS.frontProxyCaCert),
        },
        kubeletClientCertFile: root(PATHS.apiServerKubeletClientCert),
        kubeletClientKeyFile: root(PATHS.apiServerKubeletClientKey),
        // Loopback addresses are invalid in Endpoints/EndpointSlices; the apiservers must not try
        // to publish them in the `kubernetes` Service.
        endpointReconcilerType: 'none',
        extraArgs: {
          // Real kubelets join by TLS bootstrap (bootstrap-token-<id> Secrets Marina creates).
          'enable-bootstrap-token-auth': true,
          // Reach kubelets at their address (a Node named after its Machine has no DNS entry) and
          // verify their serving certificates, which the cluster CA signs.
          'kubelet-preferred-address-types': ['InternalIP', 'ExternalIP', 'Hostname'],
          'kubelet-certificate-authority': root(PATHS.caCert),
        },
      }),
      readyUrl: `${ownServer}/readyz`,
    });
    services.push({
      name: 'kube-controller-manager',
      binary: 'kube-controller-manager',
      args: kubeControllerManagerArgs({
        kubeconfig: root(PATHS.controllerManagerKubeconfig),
        bindAddress: address,
        securePort: KCM_PORT,
        rootCaFile: root(PATHS.caCert),
        serviceAccountPrivateKeyFile: root(PATHS.serviceAccountKey),
        clusterSigningCertFile: root(PATHS.caSignerCert),
        clusterSigningKeyFile: root(PATHS.caKey),
        clusterName,
        serviceClusterIpRange: svcCIDR,
        clusterCidr: podCIDR(cluster),
        allocateNodeCidrs: true,
        // tokencleaner removes expired bootstrap-token Secrets (off by default).
        controllers: ['*', 'tokencleaner'],
      }),
    });
    services.push({
      name: 'kube-scheduler',
      binary: 'kube-scheduler',
      args: kubeSchedulerArgs({
        kubeconfig: root(PATHS.schedulerKubeconfig),
        bindAddress: address,
        securePort: SCHEDULER_PORT,
      }),
    });
  }

  // ---------- kubelet ----------
  let kubeletSpec: BootstrapKubelet | undefined;
  let nodeSpec: BootstrapNode | undefined;
  if (kubelet && usesRealKubelet(machine)) {
    if (!machine.metadata.uid) throw new Error(`machine ${machine.metadata.name}: a real kubelet needs the Machine's uid (bootstrap token)`);
    const kubeProxy = await issue('ca', { commonName: 'system:kube-proxy', usage: 'client' });
    out.pair(kubeProxy, PATHS.kubeProxyCert, PATHS.kubeProxyKey);
    nodeSpec = {
      nodeName: machine.metadata.name,
      apiServerURL: endpoint.url,
      caFile: PATHS.caCert,
      bootstrapToken: bootstrapTokenFor(pki.ca.keyPem, machine.metadata.uid).token,
      kubeProxyCertFile: PATHS.kubeProxyCert,
      kubeProxyKeyFile: PATHS.kubeProxyKey,
      clusterCIDR: podCIDR(cluster),
      clusterDNS: clusterDnsIP(serviceCIDR(cluster)),
      clusterDomain: CLUSTER_DOMAIN,
      labels: Object.fromEntries(Object.entries(nodeLabels(machine)).filter(([k]) => kubeletMaySetLabel(k))),
      taints: nodeTaints(machine),
      maxPods: machine.spec.runtime?.maxPods ?? DEFAULT_MAX_PODS,
    };
  } else if (kubelet) {
    const nodeName = machine.metadata.name;
    const nodeCert = await issue('ca', { commonName: `system:node:${nodeName}`, organizations: ['system:nodes'], usage: 'client' });
    out.put(
      PATHS.kubeletKubeconfig,
      buildKubeconfig({
        server: endpoint.url,
        caPem: caBundle,
        userName: `system:node:${nodeName}`,
        clientCertPem: nodeCert.certPem,
        clientKeyPem: nodeCert.keyPem,
        clusterName,
      }),
      true,
    );
    const labels = Object.fromEntries(Object.entries(nodeLabels(machine)).filter(([k]) => kubeletMaySetLabel(k)));
    kubeletSpec = {
      nodeName,
      kubeconfig: PATHS.kubeletKubeconfig,
      labels,
      taints: nodeTaints(machine),
      capacity: nodeCapacity(machine),
      kubeletVersion: input.kubernetesVersion,
      clusterDNS: [clusterDnsIP(serviceCIDR(cluster))],
      clusterDomain: CLUSTER_DOMAIN,
    };
  }

  // ---------- probe identity (the provider checks readyUrls with it) ----------
  let probeTls: MachineBootstrap['probeTls'];
  if (services.some((s) => s.readyUrl)) {
    // etcd-only machines are probed by etcd (client certs from the etcd CA); everything else by
    // kube-apiserver (client certs from the cluster CA; /readyz is open to authenticated users).
    const etcdOnly = isEtcd && !isControlPlane;
    const probe = await issue(etcdOnly ? 'etcdCa' : 'ca', { commonName: 'marina-probe', usage: 'client' });
    out.put(PATHS.probeCa, etcdOnly ? trustPem(pki, 'etcdCa') : caBundle);
    out.pair(probe, PATHS.probeCert, PATHS.probeKey);
    probeTls = { ca: PATHS.probeCa, cert: PATHS.probeCert, key: PATHS.probeKey };
  }

  const bootstrap: BuiltBootstrap = {
    kubernetesVersion: input.kubernetesVersion,
    roles: [...roles],
    files: out.files,
    services,
    certificatesNotAfter: earliest ?? new Date(Date.now() + validityDays * 86_400_000),
  };
  if (kubeletSpec) bootstrap.kubelet = kubeletSpec;
  if (nodeSpec) bootstrap.node = nodeSpec;
  if (probeTls) bootstrap.probeTls = probeTls;
  // kube-apiserver's ComponentStatus looks for them at 127.0.0.1, whatever their bind address.
  if (isControlPlane) bootstrap.loopbackPorts = [KCM_PORT, SCHEDULER_PORT];
  return bootstrap;
}

export interface AdminKubeconfig {
  kubeconfig: string;
  notBefore: Date;
  notAfter: Date;
}

/** A kubeconfig for the cluster endpoint with a system:masters client certificate. */
export async function buildAdminKubeconfig(opts: {
  clusterName: string;
  endpointUrl: string;
  pki: ClusterPki;
  validityDays?: number;
}): Promise<AdminKubeconfig> {
  const cert = await issueLeaf(opts.pki, 'ca', {
    commonName: 'marina:admin',
    organizations: ['system:masters'],
    usage: 'client',
    validityDays: opts.validityDays ?? 365,
  });
  const kubeconfig = buildKubeconfig({
    server: opts.endpointUrl,
    caPem: trustPem(opts.pki, 'ca'),
    userName: `${opts.clusterName}-admin`,
    clientCertPem: cert.certPem,
    clientKeyPem: cert.keyPem,
    clusterName: opts.clusterName,
    contextName: opts.clusterName,
  });
  return { kubeconfig, notBefore: cert.notBefore, notAfter: cert.notAfter };
}

function uniq(xs: string[]): string[] {
  return [...new Set(xs)];
}

