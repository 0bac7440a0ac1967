// Starts one etcd + kube-apiserver + kube-controller-manager + kube-scheduler on a loopback address
// from the toolchain binaries. Shared by test/toolchain/smoke.test.ts and bench/toolchain.ts; a
// test fixture, not the local cluster provider.
import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  etcdArgs,
  etcdClientURL,
  kubeApiServerArgs,
  kubeApiServerURL,
  kubeControllerManagerArgs,
  kubeSchedulerArgs,
} from '../../src/kube/components.js';
import { type ControlPlanePki, generateControlPlanePki } from '../../src/pki/index.js';
import {
  findFreePorts,
  isPortListening,
  isProcessGroupAlive,
  type SpawnedProcess,
  spawnLogged,
  stopProcessGroup,
  tailFile,
  waitForHttps,
} from '../../src/proc/index.js';
import type { ResolvedToolchain } from '../../src/toolchain/resolve.js';

const execFileAsync = promisify(execFile);

export type ComponentName = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler';

export interface RunningComponent {
  name: ComponentName;
  proc: SpawnedProcess;
  port: number;
  /** ms from spawn to healthy. */
  readyMs?: number;
}

export interface ControlPlane {
  dir: string;
  host: string;
  pki: ControlPlanePki;
  apiServerURL: string;
  kubeconfig: string;
  components: RunningComponent[];
  ports: number[];
  /** ms from the first spawn to kube-apiserver /readyz == ok. */
  apiServerReadyMs?: number;
  toolchain: ResolvedToolchain;
  /** Runs kubectl with the admin kubeconfig; resolves stdout. */
  kubectl(args: string[], timeoutMs?: number): Promise<string>;
  /** Stops every component (reverse order) and checks nothing is left. Idempotent. */
  stop(): Promise<{ leftoverPids: number[]; listeningPorts: number[] }>;
  /** Tail of every component's log (for failure messages). */
  logs(): string;
}

export interface StartOptions {
  toolchain: ResolvedToolchain;
  dir: string;
  /** Loopback address to bind (default a random 127.0.10.x). */
  host?: string;
  /** Which components to start (default all four). */
  components?: ComponentName[];
  timeoutMs?: number;
  /** Called as each component becomes healthy. */
  onProgress?: (message: string) => void;
}

/** A random address in 127.0.10.0/24 (2..254), so parallel runs rarely share one. */
export function randomLoopbackHost(): string {
  return `127.0.10.${2 + Math.floor(Math.random() * 253)}`;
}

/**
 * Starts the control plane. On failure everything already started is stopped before the error is
 * rethrown (with the logs' tails appended).
 */
export async function startControlPlane(options: StartOptions): Promise<ControlPlane> {
  const { toolchain, dir } = options;
  const host = options.host ?? randomLoopbackHost();
  const wanted = new Set<ComponentName>(options.components ?? ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']);
  const timeoutMs = options.timeoutMs ?? 120_000;
  const progress = options.onProgress ?? (() => undefined);
  await mkdir(join(dir, 'logs'), { recursive: true });
  const [etcdClientPort, etcdPeerPort, apiPort, kcmPort, schedPort] = (await findFreePorts(host, 5)) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const pki = await generateControlPlanePki({ dir: join(dir, 'pki'), apiServerHost: host, apiServerPort: apiPort });
  const f = pki.files;
  const ca = await readFile(f.caCert, 'utf8');
  const etcdCa = await readFile(f.etcdCaCert, 'utf8');
  const etcdClientCert = await readFile(f.apiServerEtcdClientCert, 'utf8');
  const etcdClientKey = await readFile(f.apiServerEtcdClientKey, 'utf8');
  const admin = { ca, cert: pki.admin.certPem, key: pki.admin.keyPem };
  const env = { ...process.env };
  delete env.KUBECONFIG;

  const components: RunningComponent[] = [];
  let stopped: Promise<{ leftoverPids: number[]; listeningPorts: number[] }> | undefined;
  const ports = [etcdClientPort, etcdPeerPort, apiPort, kcmPort, schedPort];

  const logs = (): string =>
    components.map((c) => `----- ${c.name} (${c.proc.logFile}) -----\n${tailFile(c.proc.logFile, 3000)}`).join('\n');

  const stop = (): Promise<{ leftoverPids: number[]; listeningPorts: number[] }> => {
    stopped ??= (async () => {
      for (const c of [...components].reverse()) {
        await stopProcessGroup(c.proc.pid, { graceMs: 15_000 }).catch(() => undefined);
      }
      const leftoverPids = components.map((c) => c.proc.pid).filter((pid) => isProcessGroupAlive(pid));
      const listeningPorts: number[] = [];
      for (const port of ports) if (await isPortListening(host, port, 500)) listeningPorts.push(port);
      return { leftoverPids, listeningPorts };
    })();
    return stopped;
  };

  const start = async (name: ComponentName, command: string, args: string[], port: number): Promise<RunningComponent> => {
    const proc = await spawnLogged({ command, args, logFile: join(dir, 'logs', `${name}.log`), env });
    const c: RunningComponent = { name, proc, port };
    components.push(c);
    return c;
  };
  const alive = (c: RunningComponent) => () => c.proc.exitInfo() === undefined;

  const t0 = Date.now();
  try {
    const etcdCfg = {
      name: 'etcd-0',
      dataDir: join(dir, 'etcd'),
      listenAddress: host,
      clientPort: etcdClientPort,
      peerPort: etcdPeerPort,
      unsafeNoFsync: true,
      tls: {
        certFile: f.etcdServerCert,
        keyFile: f.etcdServerKey,
        trustedCaFile: f.etcdCaCert,
        peerCertFile: f.etcdPeerCert,
        peerKeyFile: f.etcdPeerKey,
        peerTrustedCaFile: f.etcdCaCert,
      },
    };
    const etcd = await start('etcd', toolchain.paths.etcd, etcdArgs(etcdCfg), etcdClientPort);
    await waitForHttps(`${etcdClientURL(etcdCfg)}/health`, {
      ca: etcdCa,
      cert: etcdClientCert,
      key: etcdClientKey,
      timeoutMs,
      keepWaiting: alive(etcd),
    });
    etcd.readyMs = Date.now() - t0;
    progress(`etcd healthy after ${etcd.readyMs} ms`);

    let apiServerReadyMs: number | undefined;
    if (wanted.has('kube-apiserver')) {
      const apiCfg = {
        bindAddress: host,
        securePort: apiPort,
        etcdServers: [etcdClientURL(etcdCfg)],
        etcdCaFile: f.etcdCaCert,
        etcdCertFile: f.apiServerEtcdClientCert,
        etcdKeyFile: f.apiServerEtcdClientKey,
        tlsCertFile: f.apiServerCert,
        tlsPrivateKeyFile: f.apiServerKey,
        clientCaFile: f.caCert,
        serviceAccountKeyFile: f.serviceAccountPub,
        serviceAccountSigningKeyFile: f.serviceAccountKey,
        serviceAccountIssuer: 'https://kubernetes.default.svc.cluster.local',
        serviceClusterIpRange: '10.96.0.0/16',
        frontProxy: {
          clientCertFile: f.frontProxyClientCert,
          clientKeyFile: f.frontProxyClientKey,
          requestheaderClientCaFile: f.frontProxyCaCert,
        },
        kubeletClientCertFile: f.apiServerKubeletClientCert,
        kubeletClientKeyFile: f.apiServerKubeletClientKey,
      };
      const api = await start('kube-apiserver', toolchain.paths['kube-apiserver'], kubeApiServerArgs(apiCfg), apiPort);
      const apiStart = Date.now();
      await waitForHttps(`${kubeApiServerURL(apiCfg)}/readyz`, { ...admin, timeoutMs, expectBody: 'ok', keepWaiting: alive(api) });
      api.readyMs = Date.now() - apiStart;
      apiServerReadyMs = Date.now() - t0;
      progress(`kube-apiserver ready after ${api.readyMs} ms (${apiServerReadyMs} ms since etcd start)`);
    }

    const healthz = async (c: RunningComponent): Promise<void> => {
      const s = Date.now();
      await waitForHttps(`https://${host}:${c.port}/healthz`, { ca, timeoutMs, expectBody: 'ok', keepWaiting: alive(c) });
      c.readyMs = Date.now() - s;
      progress(`${c.name} healthy after ${c.readyMs} ms`);
    };
    const pending: Promise<void>[] = [];
    if (wanted.has('kube-controller-manager')) {
      const kcm = await start(
        'kube-controller-manager',
        toolchain.paths['kube-controller-manager'],
        kubeControllerManagerArgs({
          kubeconfig: f.controllerManagerKubeconfig,
          bindAddress: host,
          securePort: kcmPort,
          tlsCertFile: f.controllerManagerServingCert,
          tlsPrivateKeyFile: f.controllerManagerServingKey,
          rootCaFile: f.caCert,
          serviceAccountPrivateKeyFile: f.serviceAccountKey,
          clusterSigningCertFile: f.caCert,
          clusterSigningKeyFile: f.caKey,
          serviceClusterIpRange: '10.96.0.0/16',
        }),
        kcmPort,
      );
      pending.push(healthz(kcm));
    }
    if (wanted.has('kube-scheduler')) {
      const sched = await start(
        'kube-scheduler',
        toolchain.paths['kube-scheduler'],
        kubeSchedulerArgs({
          kubeconfig: f.schedulerKubeconfig,
          bindAddress: host,
          securePort: schedPort,
          tlsCertFile: f.schedulerServingCert,
          tlsPrivateKeyFile: f.schedulerServingKey,
        }),
        schedPort,
      );
      pending.push(healthz(sched));
    }
    await Promise.all(pending);

    return {
      dir,
      host,
      pki,
      apiServerURL: pki.apiServerURL,
      kubeconfig: f.adminKubeconfig,
      components,
      ports,
      ...(apiServerReadyMs !== undefined ? { apiServerReadyMs } : {}),
      toolchain,
      kubectl: async (args, kubectlTimeoutMs = 30_000) => {
        const { stdout } = await execFileAsync(toolchain.paths.kubectl, ['--kubeconfig', f.adminKubeconfig, ...args], {
          env,
          timeout: kubectlTimeoutMs,
          maxBuffer: 16 * 1024 * 1024,
        });
        return stdout;
      },
      stop,
      logs,
    };
  } catch (err) {
    const text = logs();
    await stop();
    throw new Error(`${(err as Error).message}\n${text}`);
  }
}
