// Pure builders of the command-line arguments of etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler. Flag names checked against the --help of etcd v3.6.16 and Kubernetes v1.36.3 /
// v1.35.4 (see docs/toolchain.md). No I/O here: callers write the files and spawn the processes.
import { stringify } from 'yaml';

/**
 * Extra flags merged over the generated ones (key without the leading dashes). A key that the
 * builder already emits replaces its value in place; `null` removes it; arrays are comma-joined.
 */
export type ExtraArgs = Record<string, string | number | boolean | string[] | null>;

type FlagValue = string | number | boolean | string[] | undefined | null;

class Flags {
  private readonly entries: [string, string][] = [];
  set(name: string, value: FlagValue): this {
    if (value === undefined || value === null) return this;
    const v = Array.isArray(value) ? value.join(',') : String(value);
    const i = this.entries.findIndex(([n]) => n === name);
    if (i >= 0) this.entries[i] = [name, v];
    else this.entries.push([name, v]);
    return this;
  }
  remove(name: string): this {
    const i = this.entries.findIndex(([n]) => n === name);
    if (i >= 0) this.entries.splice(i, 1);
    return this;
  }
  merge(extra: ExtraArgs | undefined): this {
    for (const [k, v] of Object.entries(extra ?? {})) {
      const name = k.replace(/^-+/, '');
      if (v === null) this.remove(name);
      else this.set(name, v);
    }
    return this;
  }
  toArgs(): string[] {
    return this.entries.map(([n, v]) => `--${n}=${v}`);
  }
}

/** host:port with IPv6 hosts bracketed. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

function featureGates(gates: Record<string, boolean> | undefined): string | undefined {
  if (!gates || Object.keys(gates).length === 0) return undefined;
  return Object.entries(gates)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** Paths the secure-serving health endpoints are open on without authorization. */
export const ALWAYS_ALLOW_PATHS = ['/healthz', '/readyz', '/livez', '/metrics'];

// ----------------------------------------------------------------------------------------------
// etcd
// ----------------------------------------------------------------------------------------------

export interface EtcdMember {
  name: string;
  /** https://host:peerPort */
  peerURL: string;
}

export interface EtcdTlsFiles {
  /** Serving certificate for clients (server auth; SANs must cover the client address). */
  certFile: string;
  keyFile: string;
  /** CA that client certificates must chain to. */
  trustedCaFile: string;
  /** Peer certificate (server + client auth; SANs must cover the peer address). */
  peerCertFile: string;
  peerKeyFile: string;
  peerTrustedCaFile: string;
  /** Require client certificates (default true). */
  clientCertAuth?: boolean;
  /** Require peer client certificates (default true). */
  peerClientCertAuth?: boolean;
}

export interface EtcdConfig {
  /** Member name (unique in the cluster). */
  name: string;
  dataDir: string;
  /** Address the client and peer listeners bind to, e.g. 127.0.10.1. */
  listenAddress: string;
  /** Address advertised to clients and peers (default listenAddress). */
  advertiseAddress?: string;
  clientPort: number;
  peerPort: number;
  /** Plain-HTTP listener for /metrics and /health (optional). */
  metricsPort?: number;
  tls: EtcdTlsFiles;
  /** All members including this one; default: just this member (single-member cluster). */
  initialCluster?: EtcdMember[];
  initialClusterState?: 'new' | 'existing';
  initialClusterToken?: string;
  /** --unsafe-no-fsync (tests only: data loss on crash). */
  unsafeNoFsync?: boolean;
  quotaBackendBytes?: number;
  snapshotCount?: number;
  autoCompaction?: { mode: 'periodic' | 'revision'; retention: string };
  /** --max-learners: learners allowed in the membership at once (etcd's default 1). */
  maxLearners?: number;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  extraArgs?: ExtraArgs;
}

export function etcdClientURL(config: EtcdConfig): string {
  return `https://${hostPort(config.advertiseAddress ?? config.listenAddress, config.clientPort)}`;
}

export function etcdPeerURL(config: EtcdConfig): string {
  return `https://${hostPort(config.advertiseAddress ?? config.listenAddress, config.peerPort)}`;
}

/** The --initial-cluster value for a member list. */
export function etcdInitialCluster(members: EtcdMember[]): string {
  return members.map((m) => `${m.name}=${m.peerURL}`).join(',');
}

export function etcdArgs(config: EtcdConfig): string[] {
  const members = config.initialCluster ?? [{ name: config.name, peerURL: etcdPeerURL(config) }];
  if (!members.some((m) => m.name === config.name)) {
    throw new Error(`etcd member ${config.name} is not in its initial cluster`);
  }
  const t = config.tls;
  const flags = new Flags()
    .set('name', config.name)
    .set('data-dir', config.dataDir)
    .set('listen-client-urls', `https://${hostPort(config.listenAddress, config.clientPort)}`)
    .set('advertise-client-urls', etcdClientURL(config))
    .set('listen-peer-urls', `https://${hostPort(config.listenAddress, config.peerPort)}`)
    .set('initial-advertise-peer-urls', etcdPeerURL(config))
    .set('initial-cluster', etcdInitialCluster(members))
    .set('initial-cluster-state', config.initialClusterState ?? 'new')
    .set('initial-cluster-token', config.initialClusterToken)
    .set('cert-file', t.certFile)
    .set('key-file', t.keyFile)
    .set('trusted-ca-file', t.trustedCaFile)
    .set('client-cert-auth', t.clientCertAuth ?? true)
    .set('peer-cert-file', t.peerCertFile)
    .set('peer-key-file', t.peerKeyFile)
    .set('peer-trusted-ca-file', t.peerTrustedCaFile)
    .set('peer-client-cert-auth', t.peerClientCertAuth ?? true)
    .set(
      'listen-metrics-urls',
      config.metricsPort !== undefined ? `http://${hostPort(config.listenAddress, config.metricsPort)}` : undefined,
    )
    .set('quota-backend-bytes', config.quotaBackendBytes)
    .set('snapshot-count', config.snapshotCount)
    .set('auto-compaction-mode', config.autoCompaction?.mode)
    .set('auto-compaction-retention', config.autoCompaction?.retention)
    .set('unsafe-no-fsync', config.unsafeNoFsync ? true : undefined)
    .set('max-learners', config.maxLearners)
    .set('log-level', config.logLevel);
  return flags.merge(config.extraArgs).toArgs();
}

// ----------------------------------------------------------------------------------------------
// kube-apiserver
// ----------------------------------------------------------------------------------------------

export interface FrontProxyFiles {
  /** Client certificate the aggregator presents to extension API servers. */
  clientCertFile: string;
  clientKeyFile: string;
  /** CA of front-proxy client certificates (--requestheader-client-ca-file). */
  requestheaderClientCaFile: string;
  /** Allowed CNs (default ["front-proxy-client"]). */
  allowedNames?: string[];
}

export interface KubeApiServerConfig {
  /** Address to bind the secure port to, e.g. 127.0.10.1. */
  bindAddress: string;
  /** Address advertised in the `kubernetes` Endpoints (default bindAddress). */
  advertiseAddress?: string;
  securePort: number;
  etcdServers: string[];
  etcdCaFile: string;
  etcdCertFile: string;
  etcdKeyFile: string;
  /** etcd key prefix (default /registry); distinct per cluster when clusters share one etcd. */
  etcdPrefix?: string;
  tlsCertFile: string;
  tlsPrivateKeyFile: string;
  /** CA for x509 client authentication. */
  clientCaFile: string;
  /** Public (or private) key(s) verifying service-account tokens. */
  serviceAccountKeyFile: string;
  /** Private key signing service-account tokens. */
  serviceAccountSigningKeyFile: string;
  /** Token issuer, e.g. https://kubernetes.default.svc.cluster.local. */
  serviceAccountIssuer: string;
  /** e.g. 10.96.0.0/16 */
  serviceClusterIpRange: string;
  /** Default ["Node", "RBAC"]. */
  authorizationModes?: string[];
  frontProxy?: FrontProxyFiles;
  kubeletClientCertFile?: string;
  kubeletClientKeyFile?: string;
  /** Default true. */
  allowPrivileged?: boolean;
  /** "none" when several API servers share one host and should not fight over the endpoints. */
  endpointReconcilerType?: 'lease' | 'master-count' | 'none';
  enableAdmissionPlugins?: string[];
  disableAdmissionPlugins?: string[];
  serviceNodePortRange?: string;
  apiAudiences?: string[];
  featureGates?: Record<string, boolean>;
  runtimeConfig?: Record<string, boolean | string>;
  auditPolicyFile?: string;
  auditLogPath?: string;
  encryptionProviderConfig?: string;
  /** Default false (saves memory and an unauthenticated-ish surface). */
  profiling?: boolean;
  /** klog -v */
  verbosity?: number;
  extraArgs?: ExtraArgs;
}

export function kubeApiServerURL(config: Pick<KubeApiServerConfig, 'bindAddress' | 'advertiseAddress' | 'securePort'>): string {
  return `https://${hostPort(config.advertiseAddress ?? config.bindAddress, config.securePort)}`;
}

export function kubeApiServerArgs(config: KubeApiServerConfig): string[] {
  if (config.etcdServers.length === 0) throw new Error('kube-apiserver needs at least one etcd server');
  const fp = config.frontProxy;
  const runtimeConfig = config.runtimeConfig
    ? Object.entries(config.runtimeConfig)
        .map(([k, v]) => `${k}=${v}`)
        .join(',')
    : undefined;
  const flags = new Flags()
    .set('bind-address', config.bindAddress)
    .set('advertise-address', config.advertiseAddress ?? config.bindAddress)
    .set('secure-port', config.securePort)
    .set('etcd-servers', config.etcdServers)
    .set('etcd-cafile', config.etcdCaFile)
    .set('etcd-certfile', config.etcdCertFile)
    .set('etcd-keyfile', config.etcdKeyFile)
    .set('etcd-prefix', config.etcdPrefix)
    .set('tls-cert-file', config.tlsCertFile)
    .set('tls-private-key-file', config.tlsPrivateKeyFile)
    .set('client-ca-file', config.clientCaFile)
    .set('service-account-key-file', config.serviceAccountKeyFile)
    .set('service-account-signing-key-file', config.serviceAccountSigningKeyFile)
    .set('service-account-issuer', config.serviceAccountIssuer)
    .set('api-audiences', config.apiAudiences)
    .set('service-cluster-ip-range', config.serviceClusterIpRange)
    .set('service-node-port-range', config.serviceNodePortRange)
    .set('authorization-mode', config.authorizationModes ?? ['Node', 'RBAC'])
    .set('allow-privileged', config.allowPrivileged ?? true)
    .set('endpoint-reconciler-type', config.endpointReconcilerType)
    .set('enable-admission-plugins', config.enableAdmissionPlugins)
    .set('disable-admission-plugins', config.disableAdmissionPlugins)
    .set('kubelet-client-certificate', config.kubeletClientCertFile)
    .set('kubelet-client-key', config.kubeletClientKeyFile)
    .set('proxy-client-cert-file', fp?.clientCertFile)
    .set('proxy-client-key-file', fp?.clientKeyFile)
    .set('requestheader-client-ca-file', fp?.requestheaderClientCaFile)
    .set('requestheader-allowed-names', fp ? (fp.allowedNames ?? ['front-proxy-client']) : undefined)
    .set('requestheader-username-headers', fp ? 'X-Remote-User' : undefined)
    .set('requestheader-group-headers', fp ? 'X-Remote-Group' : undefined)
    .set('requestheader-extra-headers-prefix', fp ? 'X-Remote-Extra-' : undefined)
    .set('feature-gates', featureGates(config.featureGates))
    .set('runtime-config', runtimeConfig)
    .set('audit-policy-file', config.auditPolicyFile)
    .set('audit-log-path', config.auditLogPath)
    .set('encryption-provider-config', config.encryptionProviderConfig)
    .set('profiling', config.profiling ?? false)
    .set('v', config.verbosity);
  return flags.merge(config.extraArgs).toArgs();
}

// ----------------------------------------------------------------------------------------------
// kube-controller-manager
// ----------------------------------------------------------------------------------------------

export interface KubeControllerManagerConfig {
  kubeconfig: string;
  /** Default: kubeconfig. */
  authenticationKubeconfig?: string;
  /** Default: kubeconfig. */
  authorizationKubeconfig?: string;
  bindAddress: string;
  securePort: number;
  /** CA bundle put into service-account token secrets / kube-root-ca.crt ConfigMaps. */
  rootCaFile: string;
  serviceAccountPrivateKeyFile: string;
  /** CA used by the CSR signing controllers (omit to leave them without a signer). */
  clusterSigningCertFile?: string;
  clusterSigningKeyFile?: string;
  /** Default true; the lease is kube-system/kube-controller-manager. */
  leaderElect?: boolean;
  /** Default "5s" (upstream default 5s). */
  nodeMonitorPeriod?: string;
  /** Default "40s" (upstream default 50s since 1.32; kwokctl uses 40s). */
  nodeMonitorGracePeriod?: string;
  /** Controllers to enable, default ["*"]. */
  controllers?: string[];
  /** Default true (each controller uses its own service account). */
  useServiceAccountCredentials?: boolean;
  clusterName?: string;
  serviceClusterIpRange?: string;
  /** Pod CIDR; with allocateNodeCidrs the node-ipam controller gives each Node a podCIDR. */
  clusterCidr?: string;
  allocateNodeCidrs?: boolean;
  /** Serving certificate; without it the component generates a self-signed one in memory. */
  tlsCertFile?: string;
  tlsPrivateKeyFile?: string;
  featureGates?: Record<string, boolean>;
  profiling?: boolean;
  verbosity?: number;
  extraArgs?: ExtraArgs;
}

export function kubeControllerManagerArgs(config: KubeControllerManagerConfig): string[] {
  if ((config.clusterSigningCertFile === undefined) !== (config.clusterSigningKeyFile === undefined)) {
    throw new Error('kube-controller-manager: clusterSigningCertFile and clusterSigningKeyFile go together');
  }
  const flags = new Flags()
    .set('kubeconfig', config.kubeconfig)
    .set('authentication-kubeconfig', config.authenticationKubeconfig ?? config.kubeconfig)
    .set('authorization-kubeconfig', config.authorizationKubeconfig ?? config.kubeconfig)
    .set('authorization-always-allow-paths', ALWAYS_ALLOW_PATHS)
    .set('bind-address', config.bindAddress)
    .set('secure-port', config.securePort)
    .set('tls-cert-file', config.tlsCertFile)
    .set('tls-private-key-file', config.tlsPrivateKeyFile)
    .set('root-ca-file', config.rootCaFile)
    .set('service-account-private-key-file', config.serviceAccountPrivateKeyFile)
    .set('cluster-signing-cert-file', config.clusterSigningCertFile)
    .set('cluster-signing-key-file', config.clusterSigningKeyFile)
    .set('use-service-account-credentials', config.useServiceAccountCredentials ?? true)
    .set('controllers', config.controllers ?? ['*'])
    .set('leader-elect', config.leaderElect ?? true)
    .set('node-monitor-period', config.nodeMonitorPeriod ?? '5s')
    .set('node-monitor-grace-period', config.nodeMonitorGracePeriod ?? '40s')
    .set('cluster-name', config.clusterName)
    .set('service-cluster-ip-range', config.serviceClusterIpRange)
    .set('cluster-cidr', config.clusterCidr)
    .set('allocate-node-cidrs', config.allocateNodeCidrs)
    .set('feature-gates', featureGates(config.featureGates))
    .set('profiling', config.profiling ?? false)
    .set('v', config.verbosity);
  return flags.merge(config.extraArgs).toArgs();
}

// ----------------------------------------------------------------------------------------------
// kube-scheduler
// ----------------------------------------------------------------------------------------------

export interface KubeSchedulerConfig {
  /**
   * Client kubeconfig. v1.36 marks the --kubeconfig flag deprecated (prefer a --config file built with
   * kubeSchedulerConfiguration()); it still works, and is omitted when configFile is given.
   */
  kubeconfig: string;
  authenticationKubeconfig?: string;
  authorizationKubeconfig?: string;
  bindAddress: string;
  securePort: number;
  /** Default true; the lease is kube-system/kube-scheduler. Ignored with configFile (set it in the file). */
  leaderElect?: boolean;
  /** KubeSchedulerConfiguration file (--config), e.g. written from kubeSchedulerConfiguration(). */
  configFile?: string;
  tlsCertFile?: string;
  tlsPrivateKeyFile?: string;
  featureGates?: Record<string, boolean>;
  /** Emitted only when set (the flag is deprecated in kube-scheduler). */
  profiling?: boolean;
  verbosity?: number;
  extraArgs?: ExtraArgs;
}

export function kubeSchedulerArgs(config: KubeSchedulerConfig): string[] {
  const file = config.configFile;
  const flags = new Flags()
    // With --config, the client kubeconfig and leader election come from the file (the flags would be ignored).
    .set('config', file)
    .set('kubeconfig', file ? undefined : config.kubeconfig)
    .set('authentication-kubeconfig', config.authenticationKubeconfig ?? config.kubeconfig)
    .set('authorization-kubeconfig', config.authorizationKubeconfig ?? config.kubeconfig)
    .set('authorization-always-allow-paths', ALWAYS_ALLOW_PATHS)
    .set('bind-address', config.bindAddress)
    .set('secure-port', config.securePort)
    .set('tls-cert-file', config.tlsCertFile)
    .set('tls-private-key-file', config.tlsPrivateKeyFile)
    .set('leader-elect', file ? undefined : (config.leaderElect ?? true))
    .set('feature-gates', featureGates(config.featureGates))
    .set('profiling', config.profiling)
    .set('v', config.verbosity);
  return flags.merge(config.extraArgs).toArgs();
}

export interface KubeSchedulerConfigurationOptions {
  kubeconfig: string;
  /** Default true. */
  leaderElect?: boolean;
  /** Client QPS/burst towards the API server. */
  qps?: number;
  burst?: number;
}

/** A kubescheduler.config.k8s.io/v1 KubeSchedulerConfiguration document (YAML) for --config. */
export function kubeSchedulerConfiguration(options: KubeSchedulerConfigurationOptions): string {
  const clientConnection: Record<string, unknown> = { kubeconfig: options.kubeconfig };
  if (options.qps !== undefined) clientConnection.qps = options.qps;
  if (options.burst !== undefined) clientConnection.burst = options.burst;
  return stringify({
    apiVersion: 'kubescheduler.config.k8s.io/v1',
    kind: 'KubeSchedulerConfiguration',
    clientConnection,
    leaderElection: { leaderElect: options.leaderElect ?? true },
  });
}
