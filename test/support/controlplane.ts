// "Boot a single control plane for tests", for tests that need Nodes to live and die: etcd,
// kube-apiserver and kube-scheduler come from the toolchain fixture (test/toolchain/controlplane.ts);
// kube-controller-manager is started here with a short node-monitor grace period (a killed node
// goes Unknown in seconds, not 40 s) and node IPAM on. Also issues kubelet (system:node:<name>)
// kubeconfigs signed by the cluster CA.
//
// Skip helper: `toolchainOrSkip()` returns the toolchain or a skip message naming the install command.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { kubeControllerManagerArgs } from '../../src/kube/components.js';
import { buildKubeconfig, issueCertificate } from '../../src/pki/index.js';
import {
  findFreePort,
  isPortListening,
  isProcessGroupAlive,
  spawnLogged,
  stopProcessGroup,
  tailFile,
  waitForHttps,
} from '../../src/proc/index.js';
import { findToolchain, type ResolvedToolchain } from '../../src/toolchain/resolve.js';
import { defaultVersion } from '../../src/toolchain/versions.js';
import { type ControlPlane, startControlPlane } from '../toolchain/controlplane.js';

export type { ControlPlane } from '../toolchain/controlplane.js';

export interface TestControlPlaneOptions {
  dir: string;
  toolchain: ResolvedToolchain;
  host?: string;
  /** kube-controller-manager --node-monitor-grace-period (default 8s; upstream validates nothing lower). */
  nodeMonitorGracePeriod?: string;
  /** --node-monitor-period (default 1s). */
  nodeMonitorPeriod?: string;
  /** Pod CIDR handed out per Node by node IPAM (default 10.244.0.0/16, /24 per node). */
  clusterCidr?: string;
  onProgress?: (message: string) => void;
  timeoutMs?: number;
}

export interface TestControlPlane extends ControlPlane {
  clusterCidr: string;
  /** Writes a kubeconfig for `system:node:<nodeName>` (group system:nodes) and returns its path. */
  kubeletKubeconfig(nodeName: string): Promise<string>;
}

/** The default version's toolchain, or a message saying why the test must skip. */
export function toolchainOrSkip(version = defaultVersion()): { toolchain: ResolvedToolchain; skip: false } | { toolchain: undefined; skip: string } {
  const found = findToolchain(version);
  if (found.ok) return { toolchain: found.toolchain, skip: false };
  return {
    toolchain: undefined,
    skip: `Kubernetes toolchain ${version} not installed (missing ${found.missing.join(', ')}); run scripts/toolchain/install.sh ${version}`,
  };
}

export async function startTestControlPlane(options: TestControlPlaneOptions): Promise<TestControlPlane> {
  const clusterCidr = options.clusterCidr ?? '10.244.0.0/16';
  const cp = await startControlPlane({
    toolchain: options.toolchain,
    dir: options.dir,
    components: ['etcd', 'kube-apiserver', 'kube-scheduler'],
    ...(options.host ? { host: options.host } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });
  const f = cp.pki.files;
  let kcmPid: number | undefined;
  let kcmLog = '';
  try {
    const port = await findFreePort(cp.host);
    cp.ports.push(port);
    kcmLog = join(options.dir, 'logs', 'kube-controller-manager.log');
    const kcm = await spawnLogged({
      command: options.toolchain.paths['kube-controller-manager'],
      args: kubeControllerManagerArgs({
        kubeconfig: f.controllerManagerKubeconfig,
        bindAddress: cp.host,
        securePort: port,
        tlsCertFile: f.controllerManagerServingCert,
        tlsPrivateKeyFile: f.controllerManagerServingKey,
        rootCaFile: f.caCert,
        serviceAccountPrivateKeyFile: f.serviceAccountKey,
        clusterSigningCertFile: f.caCert,
        clusterSigningKeyFile: f.caKey,
        serviceClusterIpRange: '10.96.0.0/16',
        clusterCidr,
        allocateNodeCidrs: true,
        // One instance: no lease to lose while a test restarts kube-apiserver.
        leaderElect: false,
        nodeMonitorPeriod: options.nodeMonitorPeriod ?? '1s',
        nodeMonitorGracePeriod: options.nodeMonitorGracePeriod ?? '8s',
      }),
      logFile: kcmLog,
    });
    kcmPid = kcm.pid;
    await waitForHttps(`https://${cp.host}:${port}/healthz`, {
      ca: cp.pki.ca.certPem,
      timeoutMs: options.timeoutMs ?? 120_000,
      expectBody: 'ok',
      keepWaiting: () => kcm.exitInfo() === undefined,
    });
    options.onProgress?.('kube-controller-manager healthy');
  } catch (err) {
    if (kcmPid) await stopProcessGroup(kcmPid).catch(() => undefined);
    await cp.stop();
    throw new Error(`${(err as Error).message}\n${tailFile(kcmLog, 3000)}\n${cp.logs()}`);
  }

  const innerStop = cp.stop;
  let stopped: ReturnType<ControlPlane['stop']> | undefined;
  const stop = (): ReturnType<ControlPlane['stop']> => {
    stopped ??= (async () => {
      await stopProcessGroup(kcmPid!, { graceMs: 10_000 }).catch(() => undefined);
      const inner = await innerStop();
      const leftoverPids = [...inner.leftoverPids, ...(isProcessGroupAlive(kcmPid!) ? [kcmPid!] : [])];
      const listeningPorts = [...inner.listeningPorts];
      const kcmPort = cp.ports[cp.ports.length - 1]!;
      if (!listeningPorts.includes(kcmPort) && (await isPortListening(cp.host, kcmPort, 500))) listeningPorts.push(kcmPort);
      return { leftoverPids, listeningPorts };
    })();
    return stopped;
  };

  return {
    ...cp,
    clusterCidr,
    stop,
    logs: () => `${cp.logs()}\n----- kube-controller-manager (${kcmLog}) -----\n${tailFile(kcmLog, 3000)}`,
    async kubeletKubeconfig(nodeName: string): Promise<string> {
      const cert = await issueCertificate(cp.pki.ca, {
        commonName: `system:node:${nodeName}`,
        organizations: ['system:nodes'],
        usage: 'client',
      });
      const path = join(cp.pki.dir, `kubelet-${nodeName}.kubeconfig`);
      await writeFile(
        path,
        buildKubeconfig({
          server: cp.apiServerURL,
          caPem: cp.pki.ca.certPem,
          userName: `system:node:${nodeName}`,
          clientCertPem: cert.certPem,
          clientKeyPem: cert.keyPem,
        }),
        { mode: 0o600 },
      );
      return path;
    },
  };
}
