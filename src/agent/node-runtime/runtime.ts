// A real Kubernetes node run by the machine agent: containerd (with runc and bridge CNI), kubelet
// and kube-proxy, isolated from the host and from other nodes on it.
//
// - Mount namespace: one holder process (`unshare --mount [--net]`) keeps a private mount namespace
//   in which the host paths kubelet and the CNI library use whatever their flags say
//   (/var/lib/kubelet with its device-plugin socket, /var/log/pods, /var/log/containers,
//   /var/lib/cni) are bind mounts of this node's directories, and the kernel settings kubelet
//   rewrites (vm.overcommit_memory, kernel.panic, ...) are bind mounts of files: the host's values
//   never change. Every mount containerd and kubelet make lives in that namespace and disappears
//   with its last process.
// - Network: namespace mode gives the node a network namespace of its own (see network.ts); host
//   mode uses the agent's.
// - cgroups: everything runs in `<cgroupRoot>` (cgroups.ts); kubelet puts pods below it.
// - Joining: kubelet TLS bootstrap with the bootstrap token; Marina creates the token's Secret and
//   approves the CSRs (client and serving certificate). The agent waits until the token
//   authenticates, so kubelet does not start before Marina made it valid.
// - Pod network: once the Node has its pod CIDR (kube-controller-manager allocates it), the bridge
//   CNI configuration for it is written and the routes to other nodes' pod CIDRs kept current.
// - Registered again: kubelet never registers its Node a second time (kubernetes#71398). When the
//   Node disappears while kubelet runs — a restore from a snapshot taken before this node joined,
//   `kubectl delete node` — kubelet is restarted and registers with the certificate it has; the
//   CNI configuration waits for the pod CIDR the new Node is given.
//
// stop() stops everything and sweeps (sweep.ts), so nothing of the node is left on the host.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeClient, Resources, type KubeObject, type Watcher } from '../../kube/client.js';
import { buildKubeconfig } from '../../pki/kubeconfig.js';
import { TcpBalancer } from '../../lb/balancer.js';
import { ProcessSupervisor, type ProcessInfo } from '../supervisor.js';
import type { KubeletLog } from '../virtual-kubelet.js';
import { cgroupDirsOf, createCgroups, isCgroupV1, JOIN_CGROUPS, memoryBytes } from './cgroups.js';
import type { AgentNodeConfig } from './config.js';
import { containerdConfig, kubeletConfig, kubeProxyConfig, type NodePaths } from './configs.js';
import { run } from './exec.js';
import { applyNat, cniConfig, enableHostForwarding, isAdjacent, setupNamespaceNetwork, syncPodRoutes, type NatRules, type PodRoute } from './network.js';
import { readNodeState, sweepNode, writeNodeState, type Leftovers, type NodeState } from './sweep.js';

const CNI_CONFIG_FILE = '10-marina.conflist';

/** Kernel settings kubelet's container manager rewrites unless protectKernelDefaults is set. */
export const KUBELET_SYSCTLS = ['vm/overcommit_memory', 'vm/panic_on_oom', 'kernel/panic', 'kernel/panic_on_oops', 'kernel/keys/root_maxkeys', 'kernel/keys/root_maxbytes'];

/**
 * Host paths kubelet and the CNI library use regardless of their flags. They must exist on the host
 * as mount points (created empty when missing, and left: other nodes may use them meanwhile);
 * nothing is ever written to them.
 */
export const HOST_PATHS = ['/var/lib/kubelet', '/var/log/pods', '/var/log/containers', '/var/lib/cni'];

/** Where kubelet and kube-proxy reach the API inside the node (127.0.0.1 is in every apiserver certificate). */
const LOCAL_API_PORT = 6443;
/** host mode: the agent's in-process relay to the API endpoint (6443 may be taken on a user's server). */
const LOCAL_API_PORT_HOST_MODE = 6444;

interface NodeObject extends KubeObject {
  metadata: { name: string };
  spec?: { podCIDR?: string };
  status?: { addresses?: { type: string; address: string }[] };
}

export interface NodeRuntimeOptions {
  log: KubeletLog;
  /** Restart backoff of containerd/kubelet/kube-proxy (tests shrink it). */
  backoff?: { initialMs?: number; maxMs?: number };
}

export class NodeRuntime {
  readonly paths: NodePaths;
  private readonly log: KubeletLog;
  private holder: ChildProcess | undefined;
  private holderPid: number | undefined;
  private readonly supervisors = new Map<string, ProcessSupervisor>();
  private relay: TcpBalancer | undefined;
  private api: KubeClient | undefined;
  private nodes: Watcher<NodeObject> | undefined;
  private podCIDR: string | undefined;
  /** Its Node was seen: from then on, a Node that is gone was deleted. */
  private registered = false;
  private nat: NatRules = {};
  private kubeletHealthy = false;
  private lastProblem = 'starting';
  private healthTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private stopping: Promise<Leftovers> | undefined;
  private state: NodeState | undefined;

  constructor(
    readonly config: AgentNodeConfig,
    private readonly opts: NodeRuntimeOptions,
  ) {
    this.log = opts.log;
    const d = (...p: string[]) => join(config.dir, ...p);
    const r = (...p: string[]) => join(config.runDir, ...p);
    this.paths = {
      containerdRoot: d('containerd'),
      containerdState: r('state'),
      containerdSocket: r('containerd.sock'),
      shimSocketDir: r('s'),
      cniConfDir: d('cni', 'net.d'),
      cniDataDir: d('cni', 'networks'),
      kubeletConfig: d('kubelet-config.json'),
      kubeletCertDir: d('kubelet-pki'),
      kubeletKubeconfig: d('kubelet.kubeconfig'),
      bootstrapKubeconfig: d('bootstrap-kubelet.kubeconfig'),
      kubeProxyConfig: d('kube-proxy-config.json'),
      kubeProxyKubeconfig: d('kube-proxy.kubeconfig'),
    };
  }

  private get namespaced(): boolean {
    return this.config.network.mode === 'namespace';
  }

  /** Where kubelet and kube-proxy find the API inside the node. */
  private get localApiURL(): string {
    return `https://127.0.0.1:${this.namespaced ? LOCAL_API_PORT : LOCAL_API_PORT_HOST_MODE}`;
  }

  /** Sets the node up and starts containerd, kubelet and kube-proxy; resolves once kubelet runs. */
  async start(): Promise<void> {
    const c = this.config;
    const d = (...p: string[]) => join(c.dir, ...p);
    // An earlier incarnation (the agent was killed) may have left processes and cgroups behind.
    const previous = readNodeState(c.dir);
    if (previous) await sweepNode(previous);
    for (const sub of ['containerd', 'cni/net.d', 'cni/networks', 'kubelet-pki', 'sysctl', 'logs', 'var']) mkdirSync(d(sub), { recursive: true, mode: 0o700 });
    for (const sub of ['state', 's']) mkdirSync(join(c.runDir, sub), { recursive: true, mode: 0o700 });
    for (const p of HOST_PATHS) {
      mkdirSync(p, { recursive: true });
      mkdirSync(this.hostPathCopy(p), { recursive: true });
    }
    this.state = {
      cgroupRoot: c.cgroupRoot,
      runDir: c.runDir,
      mode: c.network.mode,
      ...(c.network.mode === 'namespace' ? { hostVeth: c.network.hostVeth } : { ipForwardBefore: enableHostForwarding() }),
    };
    writeNodeState(c.dir, this.state);
    createCgroups(c.cgroupRoot, ['runtime', 'kubelet']);

    await this.startHolder();
    if (c.network.mode === 'namespace') {
      await setupNamespaceNetwork(this.holderPid!, c.network);
      const target = new URL(c.apiServer.url);
      this.nat = { apiRedirect: { localPort: LOCAL_API_PORT, host: target.hostname, port: Number(target.port || 443) } };
      await applyNat(this.holderPid, this.nat);
    } else {
      await this.startRelay();
    }

    await this.startContainerd();
    this.writeKubeconfigs();
    writeFileSync(this.paths.kubeletConfig, `${JSON.stringify(kubeletConfig(c, this.paths, { cgroupV1: isCgroupV1() }), null, 2)}\n`);
    if (!existsSync(this.paths.kubeletKubeconfig)) await this.waitForBootstrapToken();
    if (this.stopping) return;
    this.startProcess('kubelet', 'kubelet', c.binaries.kubelet, this.kubeletArgs(), {
      // Without iptables on its PATH kubelet adds no chains to the tables of the network it runs in.
      PATH: '/usr/local/bin:/usr/bin:/bin',
    });
    if (c.binaries.kubeProxy) {
      writeFileSync(this.paths.kubeProxyConfig, `${JSON.stringify(kubeProxyConfig(c, this.paths), null, 2)}\n`);
      // nftables mode: kube-proxy runs the `nft` command (in /usr/sbin).
      this.startProcess('kube-proxy', 'kubelet', c.binaries.kubeProxy, [`--config=${this.paths.kubeProxyConfig}`, '--v=1'], {
        PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      });
    }
    this.watchNodes();
    this.healthTimer = setInterval(() => void this.checkKubelet(), 2000);
    this.healthTimer.unref();
  }

  /** Stops the node and removes everything it made on the host; returns what is left (nothing). */
  stop(): Promise<Leftovers> {
    this.stopping ??= (async () => {
      clearInterval(this.healthTimer);
      this.nodes?.stop();
      this.api?.close();
      // kubelet first (it would restart what we stop), then the pods go with the sweep.
      for (const name of ['kube-proxy', 'kubelet', 'containerd']) await this.supervisors.get(name)?.stop();
      await this.relay?.stop();
      this.holder?.kill('SIGKILL');
      await this.syncing.catch(() => undefined);
      const left = this.state ? await sweepNode(this.state, this.config.dir) : { pids: [], cgroups: [], interfaces: [], mounts: [] };
      this.log.info({ left }, 'node stopped and swept');
      return left;
    })();
    return this.stopping;
  }

  /**
   * Restarts kube-proxy and kubelet on the binaries now at their paths — an in-place upgrade
   * swapped them (src/joinagent). containerd and the pods it runs stay; kubelet keeps its client
   * certificate and registers its Node again with the new version.
   */
  async restartKubelet(): Promise<void> {
    const names = ['kube-proxy', 'kubelet'].filter((n) => this.supervisors.has(n));
    for (const n of names) await this.supervisors.get(n)!.hold([n]);
    this.kubeletHealthy = false;
    this.lastProblem = 'restarting on new binaries';
    for (const n of [...names].reverse()) this.supervisors.get(n)!.release([n]);
  }

  processes(): ProcessInfo[] {
    return [...this.supervisors.values()].flatMap((s) => s.processes());
  }

  pids(): { name: string; pid: number }[] {
    return [...this.supervisors.values()].flatMap((s) => s.pids());
  }

  /** Healthy: containerd, kubelet (and kube-proxy) run and kubelet's /healthz answers ok. */
  health(): { ok: boolean; message: string; podCIDR?: string } {
    const down = this.processes().filter((p) => p.state !== 'running');
    if (down.length > 0) return { ok: false, message: `not running: ${down.map((p) => `${p.name} (${p.state})`).join(', ')}` };
    if (!this.kubeletHealthy) return { ok: false, message: `kubelet: ${this.lastProblem}` };
    return { ok: true, message: 'containerd and kubelet healthy', ...(this.podCIDR ? { podCIDR: this.podCIDR } : {}) };
  }

  /** Memory charged to the node's cgroups (containerd, shims, kubelet, kube-proxy, pods). */
  memoryBytes(): number {
    return memoryBytes(this.config.cgroupRoot);
  }

  // ------------------------------------------------------------------------------------------

  private hostPathCopy(hostPath: string): string {
    return join(this.config.dir, 'var', hostPath.slice(1).replaceAll('/', '-'));
  }

  private async startHolder(): Promise<void> {
    const c = this.config;
    const binds = HOST_PATHS.map((p) => `mount --bind ${this.hostPathCopy(p)} ${p}`);
    for (const key of KUBELET_SYSCTLS) {
      const file = join(c.dir, 'sysctl', key.replaceAll('/', '.'));
      writeFileSync(file, `${readFileSync(`/proc/sys/${key}`, 'utf8').trim()}\n`);
      binds.push(`mount --bind ${file} /proc/sys/${key}`);
    }
    // The holder writes this once its mounts are in place (a marker of an earlier incarnation goes first).
    const ready = join(c.dir, 'namespace-ready');
    rmSync(ready, { force: true });
    const logFd = openSync(join(c.dir, 'logs', 'namespace.log'), 'a', 0o600);
    try {
      this.holder = spawn(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          ...(this.namespaced ? ['--net'] : []),
          '--',
          '/bin/sh',
          '-c',
          `set -e; ${JOIN_CGROUPS}; ${binds.join('; ')}; echo $$ > ${ready}; exec sleep 2147483647`,
        ],
        { stdio: ['ignore', logFd, logFd], env: { ...process.env, MARINA_CGROUP_DIRS: cgroupDirsOf(c.cgroupRoot, 'runtime') } },
      );
    } finally {
      closeSync(logFd);
    }
    for (let i = 0; !existsSync(ready); i++) {
      if (this.holder.exitCode !== null || i > 200) {
        throw new Error(`the node's namespaces were not set up: ${readFileSync(join(c.dir, 'logs', 'namespace.log'), 'utf8').slice(-2000)}`);
      }
      await sleep(25);
    }
    this.holderPid = this.holder.pid;
  }

  /** host mode: kubelet and kube-proxy reach the API through this relay on 127.0.0.1. */
  private async startRelay(): Promise<void> {
    const target = new URL(this.config.apiServer.url);
    this.relay = new TcpBalancer({
      host: '127.0.0.1',
      port: LOCAL_API_PORT_HOST_MODE,
      backends: [`${target.hostname}:${target.port || 443}`],
      log: (msg) => this.log.info({}, `api relay: ${msg}`),
    });
    await this.relay.start();
  }

  /** Runs a binary inside the node's namespaces and cgroup `sub`; nsenter and sh exec it (same pid). */
  private startProcess(name: string, sub: string, command: string, args: string[], env: Record<string, string>): ProcessSupervisor {
    const ns = [`--mount=/proc/${this.holderPid}/ns/mnt`, ...(this.namespaced ? [`--net=/proc/${this.holderPid}/ns/net`] : [])];
    const supervisor = new ProcessSupervisor(
      [
        {
          name,
          command: 'nsenter',
          args: [...ns, '--', '/bin/sh', '-c', `${JOIN_CGROUPS}; exec "$@"`, 'sh', command, ...args],
          env: { ...env, MARINA_CGROUP_DIRS: cgroupDirsOf(this.config.cgroupRoot, sub) },
        },
      ],
      { logDir: join(this.config.dir, 'logs'), log: this.log, stopGraceMs: 5000, ...(this.opts.backoff ? { backoff: this.opts.backoff } : {}) },
    );
    this.supervisors.set(name, supervisor);
    void supervisor.start();
    return supervisor;
  }

  private async startContainerd(): Promise<void> {
    const c = this.config;
    const conf = join(c.dir, 'containerd.toml');
    writeFileSync(conf, containerdConfig(c, this.paths));
    // containerd starts containerd-shim-runc-v2 from its PATH; the portmap plugin needs iptables/nft.
    const containerd = this.startProcess('containerd', 'runtime', c.binaries.containerd, ['--config', conf], {
      PATH: [...c.binaries.pathDirs, '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':'),
    });
    const ctr = (args: string[]) => run(c.binaries.ctr, ['--address', this.paths.containerdSocket, '--namespace', 'k8s.io', ...args], { timeoutMs: 120_000 });
    for (let i = 0; ; i++) {
      try {
        await ctr(['version']);
        break;
      } catch (err) {
        if (i > 600 || this.stopping) throw new Error(`containerd did not start: ${String(err)}; ${JSON.stringify(containerd.processes())}`);
        await sleep(100);
      }
    }
    const have = await ctr(['images', 'list', '-q']);
    for (const img of c.images) if (!have.split('\n').includes(img.ref)) await ctr(['images', 'import', img.archive]);
  }

  private writeKubeconfigs(): void {
    const c = this.config;
    const caPem = readFileSync(c.caFile, 'utf8');
    writeFileSync(
      this.paths.bootstrapKubeconfig,
      buildKubeconfig({ server: this.localApiURL, caPem, userName: 'kubelet-bootstrap', token: c.bootstrapToken }),
      { mode: 0o600 },
    );
    {
      writeFileSync(
        this.paths.kubeProxyKubeconfig,
        buildKubeconfig({
          server: this.localApiURL,
          caPem,
          userName: 'system:kube-proxy',
          clientCertPem: readFileSync(c.kubeProxy.certFile, 'utf8'),
          clientKeyPem: readFileSync(c.kubeProxy.keyFile, 'utf8'),
        }),
        { mode: 0o600 },
      );
    }
  }

  private kubeletArgs(): string[] {
    const c = this.config;
    const labels = Object.entries(c.labels).map(([k, v]) => `${k}=${v}`);
    return [
      `--config=${this.paths.kubeletConfig}`,
      `--bootstrap-kubeconfig=${this.paths.bootstrapKubeconfig}`,
      `--kubeconfig=${this.paths.kubeletKubeconfig}`,
      `--cert-dir=${this.paths.kubeletCertDir}`,
      `--hostname-override=${c.nodeName}`,
      `--node-ip=${c.network.address}`,
      ...(labels.length > 0 ? [`--node-labels=${labels.join(',')}`] : []),
      '--v=2',
    ];
  }

  /**
   * A client of the API as this agent reaches it (not through the node's 127.0.0.1): with the
   * bootstrap token, or with kube-proxy's identity (system:node-proxier reads every Node; a
   * kubelet may read only its own).
   */
  private client(auth: 'bootstrap' | 'proxier'): KubeClient {
    const c = this.config;
    const credentials =
      auth === 'bootstrap' ? { token: c.bootstrapToken } : { cert: readFileSync(c.kubeProxy.certFile), key: readFileSync(c.kubeProxy.keyFile) };
    return new KubeClient(
      { server: c.apiServer.url, ca: readFileSync(c.caFile), ...credentials, ...(c.apiServer.tlsServerName ? { tlsServerName: c.apiServer.tlsServerName } : {}) },
      { userAgent: `marina-agent/${c.nodeName}`, timeoutMs: 10_000 },
    );
  }

  /** Waits until Marina created the bootstrap token's Secret (the token authenticates). */
  private async waitForBootstrapToken(): Promise<void> {
    const client = this.client('bootstrap');
    try {
      for (let i = 0; !this.stopping; i++) {
        try {
          await client.request({
            method: 'POST',
            path: '/apis/authentication.k8s.io/v1/selfsubjectreviews',
            body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
          });
          return;
        } catch (err) {
          this.lastProblem = `waiting for the bootstrap token to become valid: ${(err as Error).message}`;
          if (i % 30 === 0) this.log.info({ err: (err as Error).message }, 'waiting for the bootstrap token to become valid');
        }
        await sleep(1000);
      }
    } finally {
      client.close();
    }
  }

  private async checkKubelet(): Promise<void> {
    try {
      const res = await fetch(`http://${this.config.network.address}:10248/healthz`, { signal: AbortSignal.timeout(2000) });
      this.kubeletHealthy = res.status === 200 && (await res.text()).trim() === 'ok';
      if (!this.kubeletHealthy) this.lastProblem = `/healthz answered ${res.status}`;
    } catch (err) {
      this.kubeletHealthy = false;
      this.lastProblem = `/healthz: ${(err as Error).message}`;
    }
  }

  /** Watches Nodes for this node's pod CIDR and the other nodes' routes. */
  private watchNodes(): void {
    this.api = this.client('proxier');
    this.nodes = this.api.watch<NodeObject>(Resources.nodes, {
      onEvent: () => this.scheduleNetworkSync(),
      onSynced: () => this.scheduleNetworkSync(),
      onError: (err) => this.log.debug({ err: (err as Error).message }, 'node watch interrupted'),
    });
  }

  private scheduleNetworkSync(): void {
    this.syncing = this.syncing.then(() => this.syncNetwork()).catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'pod network sync failed'));
  }

  /** Own pod CIDR → CNI configuration and masquerade; other Nodes → routes to their pod CIDRs. */
  private async syncNetwork(): Promise<void> {
    if (this.stopping || !this.nodes) return;
    const c = this.config;
    const pid = this.namespaced ? this.holderPid : undefined;
    const nodes = [...this.nodes.store.values()];
    const node = nodes.find((n) => n.metadata.name === c.nodeName);
    if (node) this.registered = true;
    else if (this.registered) await this.registerAgain();
    const own = node?.spec?.podCIDR;
    if (own && own !== this.podCIDR) {
      this.log.info({ podCIDR: own }, 'pod CIDR assigned; writing the CNI configuration');
      this.nat = { ...this.nat, masquerade: { podCIDR: own, clusterCIDR: c.clusterCIDR } };
      await applyNat(pid, this.nat);
      writeFileSync(join(this.paths.cniConfDir, CNI_CONFIG_FILE), cniConfig(own, this.paths.cniDataDir));
      this.podCIDR = own;
    }
    const routes: PodRoute[] = [];
    for (const n of nodes) {
      const ip = n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
      const cidr = n.spec?.podCIDR;
      if (n.metadata.name === c.nodeName || !ip || !cidr) continue;
      if (await isAdjacent(pid, ip)) routes.push({ cidr, via: ip });
    }
    await syncPodRoutes(pid, routes);
  }

  /** Restarts kubelet, whose Node was deleted, so that it registers it again (see the top of this file). */
  private async registerAgain(): Promise<void> {
    const kubelet = this.supervisors.get('kubelet');
    if (!kubelet || this.stopping) return;
    this.registered = false;
    this.log.warn({ node: this.config.nodeName }, 'this machine\'s Node is gone while kubelet runs: restarting kubelet so that it registers again');
    // The new Node gets a pod CIDR of its own: no pod starts with the old one's in the meantime.
    rmSync(join(this.paths.cniConfDir, CNI_CONFIG_FILE), { force: true });
    this.podCIDR = undefined;
    await kubelet.hold(['kubelet']);
    kubelet.release(['kubelet']);
  }
}
