// `marina agent join` on a user's server or a VM a provider booted: join with a token (after
// checking Marina's CA pin), then keep syncing with Marina — wait (approval, the control plane),
// run (download the binaries and images with their checksums, start what the bootstrap says —
// services such as etcd and kube-apiserver, containerd + kubelet + kube-proxy — as a machine agent;
// a run answer of another Kubernetes version for a running node is an in-place upgrade: new
// kubelet and kube-proxy binaries, both restarted), or leave (stop and remove everything Marina
// started here, tell Marina, exit). The server's own files are never touched: everything lives
// in the agent's data directory, the node's cgroups, its socket directory and the objects its
// network setup made (swept on leave).
//
// The join state (Marina's URL and CA, the machine, its credential) is kept in
// `<data-dir>/join.json` (0600): a restarted agent resumes without a token.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MachineAgent } from '../agent/agent.js';
import { validateAgentConfig } from '../agent/config.js';
import type { AgentNodeConfig } from '../agent/node-runtime/config.js';
import { run } from '../agent/node-runtime/exec.js';
import { sweepNodeDir } from '../agent/node-runtime/sweep.js';
import type { KubeletLog } from '../agent/virtual-kubelet.js';
import type { MachineBootstrap } from '../providers/contract.js';
import type { JoinAnswer, SyncAnswer } from '../server/join-schemas.js';
import { JoinClient, pinnedCa } from './client.js';

export interface JoinOptions {
  url: string;
  /** Needed for the first join only. */
  token?: string;
  caPin: string;
  dataDir: string;
  /** The server's node IP (default: its address on the route to Marina). */
  nodeIp?: string;
  hostname?: string;
  log: KubeletLog;
  /** Progress for the person at the terminal. */
  say: (line: string) => void;
  /** Aborted on SIGTERM/SIGINT: stop the node, keep the join (a restart resumes). */
  signal: AbortSignal;
  syncIntervalMs?: number;
}

interface JoinState extends JoinAnswer {
  url: string;
  caPem: string;
  address: string;
  hostname: string;
}

const STATE = 'join.json';

/** The address this host uses towards `url`'s host. */
async function routeSource(url: string): Promise<string> {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  const ip = isIP(host) ? host : (await lookup(host, { family: 4 })).address;
  const route = JSON.parse(await run('ip', ['-j', 'route', 'get', ip])) as { prefsrc?: string }[];
  const src = route[0]?.prefsrc;
  if (!src) throw new Error(`cannot tell this server's address towards ${ip}; pass --node-ip`);
  return src;
}

export async function runJoinAgent(o: JoinOptions): Promise<'left' | 'stopped'> {
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  const statePath = join(o.dataDir, STATE);
  let state: JoinState | undefined = existsSync(statePath) ? (JSON.parse(readFileSync(statePath, 'utf8')) as JoinState) : undefined;
  if (state) {
    o.say(`already joined as machine ${state.machine} of cluster ${state.cluster}; resuming`);
  } else {
    if (!o.token) throw new Error('the first join needs --token');
    // The pin first: not a byte of the token goes to a server whose CA does not match.
    const caPem = await pinnedCa(o.url, o.caPin);
    const address = o.nodeIp ?? (await routeSource(o.url));
    const hostname = o.hostname ?? osHostname();
    const client = new JoinClient(o.url, caPem);
    try {
      const answer = await client.join(o.token, { hostname, address });
      state = { ...answer, url: o.url, caPem, address, hostname };
      writeFileSync(statePath, JSON.stringify(state, null, 2), { mode: 0o600 });
    } finally {
      client.close();
    }
    o.say(`joined cluster ${state.cluster} (pool ${state.pool}) as machine ${state.machine}${state.approvalRequired ? '; waiting for an operator to approve it' : ''}`);
  }
  return new JoinedServer(o, state).loop();
}

class JoinedServer {
  private readonly client: JoinClient;
  private agent: MachineAgent | undefined;
  /** The Kubernetes version of the binaries the running node was started or last upgraded on. */
  private version: string | undefined;
  private lastMessage = '';

  constructor(
    private readonly o: JoinOptions,
    private readonly state: JoinState,
  ) {
    this.client = new JoinClient(state.url, state.caPem);
  }

  private get nodeId(): string {
    return createHash('sha256').update(`${this.o.dataDir}\0${this.state.machine}`).digest('hex').slice(0, 8);
  }

  async loop(): Promise<'left' | 'stopped'> {
    try {
      while (!this.o.signal.aborted) {
        let answer: SyncAnswer | undefined;
        try {
          const h = this.agent?.health();
          answer = await this.client.sync(this.state.credential, h ? { ok: h.ok, message: h.node?.message ?? (h.ok ? 'ok' : 'unhealthy') } : undefined);
        } catch (err) {
          this.tell(`cannot reach Marina: ${(err as Error).message}; retrying`);
        }
        if (answer?.action === 'wait') this.tell(`waiting: ${answer.message}`);
        if (answer?.action === 'run' && !this.agent) {
          await this.start(answer).catch((err: unknown) => this.tell(`could not start the node: ${(err as Error).message}; retrying`));
        } else if (answer?.action === 'run' && this.agent?.node && answer.bootstrap.kubernetesVersion !== this.version) {
          await this.upgrade(answer).catch((err: unknown) => this.tell(`could not upgrade the node to ${answer!.bootstrap.kubernetesVersion}: ${(err as Error).message}; retrying`));
        }
        if (answer?.action === 'leave') {
          await this.leave(answer.message);
          return 'left';
        }
        await sleep(this.o.syncIntervalMs ?? 3000, undefined, { signal: this.o.signal }).catch(() => undefined);
      }
      await this.agent?.stop();
      this.o.say('stopped; the node is stopped, the join is kept (run the agent again to resume)');
      return 'stopped';
    } finally {
      this.client.close();
    }
  }

  private tell(message: string): void {
    if (message === this.lastMessage) return;
    this.lastMessage = message;
    this.o.say(message);
  }

  private dir(...p: string[]): string {
    return join(this.o.dataDir, ...p);
  }

  /**
   * Downloads what the machine runs, writes its files and starts it as a machine agent: the
   * bootstrap's services in order (etcd, kube-apiserver, ... on a VM a provider booted), its node
   * (containerd + kubelet + kube-proxy) or virtual kubelet — as the local provider's agent runs a
   * machine, with the downloaded binaries.
   */
  private async start(answer: Extract<SyncAnswer, { action: 'run' }>): Promise<void> {
    const { bootstrap, apiServer, artifacts } = answer;
    const paths = await this.download(artifacts);
    const files = this.dir('files');
    for (const f of bootstrap.files) {
      const path = join(files, f.path);
      if (!path.startsWith(files + '/')) throw new Error(`bootstrap file ${f.path} leaves the data directory`);
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(path, f.content, { mode: f.mode });
    }
    const need = (name: string): string => {
      const p = paths.get(name);
      if (!p) throw new Error(`Marina sent no ${name}`);
      return p;
    };
    const node = bootstrap.node ? this.nodeConfig(bootstrap.node, artifacts, need, apiServer) : undefined;
    const probe = bootstrap.probeTls;
    // Checked as the agent checks its config file (taint effects, label keys, ...): Marina's
    // bootstrap is data from the wire.
    const config = validateAgentConfig({
      machine: this.state.machine,
      nodeName: bootstrap.node?.nodeName ?? bootstrap.kubelet?.nodeName ?? this.state.machine,
      address: this.state.address,
      dataDir: this.dir('agent'),
      agentPort: this.state.agentPort,
      roles: bootstrap.roles,
      ...(bootstrap.loopbackPorts?.length ? { loopbackRelayPorts: bootstrap.loopbackPorts } : {}),
      processes: bootstrap.services.map((s) => ({
        name: s.name,
        command: need(s.binary),
        args: s.args.map((a) => a.replaceAll('{root}', files)),
        ...(s.readyUrl ? { readyUrl: s.readyUrl } : {}),
        ...(probe ? { tls: { ca: join(files, probe.ca), cert: join(files, probe.cert), key: join(files, probe.key) } } : {}),
      })),
      ...(bootstrap.kubelet
        ? {
            kubelet: {
              kubeconfigPath: join(files, bootstrap.kubelet.kubeconfig),
              labels: bootstrap.kubelet.labels,
              taints: bootstrap.kubelet.taints,
              capacity: bootstrap.kubelet.capacity,
              kubeletVersion: bootstrap.kubelet.kubeletVersion,
              ...(bootstrap.kubelet.clusterDNS ? { clusterDNS: bootstrap.kubelet.clusterDNS } : {}),
              ...(bootstrap.kubelet.clusterDomain ? { clusterDomain: bootstrap.kubelet.clusterDomain } : {}),
            },
          }
        : {}),
      ...(node ? { node } : {}),
    }, 'from Marina\'s bootstrap');
    writeFileSync(this.dir('agent.json'), JSON.stringify(config, null, 2), { mode: 0o600 });
    this.agent = new MachineAgent(config, { log: this.o.log });
    const what = [...bootstrap.services.map((s) => s.name), ...(node ? ['containerd', 'kubelet', 'kube-proxy'] : bootstrap.kubelet ? ['a virtual kubelet'] : [])];
    this.tell(`starting ${what.join(', ')} as machine ${this.state.machine} (${this.state.address})`);
    try {
      await this.agent.start();
    } catch (err) {
      await this.agent.stop().catch(() => undefined);
      this.agent = undefined;
      throw err;
    }
    this.version = bootstrap.kubernetesVersion;
    this.tell(node ? `node ${node.nodeName} is running; it joins once Marina approved its certificates` : `machine ${this.state.machine} is running`);
  }

  /**
   * Downloads the artifacts (a file whose checksum matches is kept) into the agent's directory;
   * each lands under a temporary name and is renamed over the old one, so a running binary is
   * replaced, not overwritten. Returns name → path.
   */
  private async download(artifacts: Extract<SyncAnswer, { action: 'run' }>['artifacts']): Promise<Map<string, string>> {
    this.tell(`downloading ${artifacts.length} artifacts (${(artifacts.reduce((n, a) => n + a.size, 0) / 2 ** 20).toFixed(0)} MiB) with checksums`);
    const paths = new Map<string, string>();
    for (const a of artifacts) {
      const sub = a.kind === 'cni' ? 'cni' : a.kind === 'image' ? 'images' : 'bin';
      const file = a.kind === 'cni' ? a.name.slice('cni-'.length) : a.kind === 'image' ? `${a.name}.oci.tar` : a.name;
      mkdirSync(this.dir(sub), { recursive: true, mode: 0o755 });
      const dest = this.dir(sub, file);
      await this.client.download(this.state.credential, a, dest, a.kind === 'image' ? 0o644 : 0o755);
      paths.set(a.name, dest);
    }
    return paths;
  }

  /**
   * An in-place upgrade (Marina's Upgrade operation drained the Node first): the new version's
   * binaries replace the old ones at the same paths, then kubelet and kube-proxy restart on them.
   * containerd, the node's certificates and state, and everything outside the agent's directory stay.
   */
  private async upgrade(answer: Extract<SyncAnswer, { action: 'run' }>): Promise<void> {
    const to = answer.bootstrap.kubernetesVersion;
    this.tell(`upgrading the node from ${this.version} to ${to}`);
    await this.download(answer.artifacts);
    await this.agent!.node!.restartKubelet();
    this.version = to;
    this.tell(`node ${this.agent!.node!.config.nodeName} restarted kubelet and kube-proxy on ${to}`);
  }

  /** The real node's configuration (containerd + kubelet + kube-proxy) from the downloaded files. */
  private nodeConfig(
    node: NonNullable<MachineBootstrap['node']>,
    artifacts: Extract<SyncAnswer, { action: 'run' }>['artifacts'],
    need: (name: string) => string,
    apiServer: { url: string; tlsServerName?: string } | undefined,
  ): AgentNodeConfig {
    if (!apiServer) throw new Error('Marina sent a node without the address of its API endpoint');
    const images = artifacts.filter((a) => a.kind === 'image' && a.ref).map((a) => ({ ref: a.ref!, archive: need(a.name) }));
    const sandbox = artifacts.find((a) => a.sandbox)?.ref;
    if (!sandbox) throw new Error('Marina sent no sandbox (pause) image');
    return {
      nodeName: node.nodeName,
      dir: this.dir('node'),
      runDir: `/run/marina/${this.nodeId}`,
      cgroupRoot: `/marina-${this.nodeId}`,
      binaries: {
        kubelet: need('kubelet'),
        ...(artifacts.some((a) => a.name === 'kube-proxy') ? { kubeProxy: need('kube-proxy') } : {}),
        containerd: need('containerd'),
        ctr: need('ctr'),
        runc: need('runc'),
        cniBinDir: this.dir('cni'),
        pathDirs: [this.dir('bin')],
      },
      images,
      sandboxImage: sandbox,
      apiServer,
      caFile: this.dir('files', node.caFile),
      bootstrapToken: node.bootstrapToken,
      kubeProxy: { certFile: this.dir('files', node.kubeProxyCertFile), keyFile: this.dir('files', node.kubeProxyKeyFile) },
      clusterCIDR: node.clusterCIDR,
      clusterDNS: node.clusterDNS,
      clusterDomain: node.clusterDomain,
      labels: node.labels,
      taints: node.taints,
      maxPods: node.maxPods,
      network: { mode: 'host', address: this.state.address },
    };
  }

  /** Stops and removes what Marina started here, tells Marina, forgets the join. */
  private async leave(message: string): Promise<void> {
    this.o.say(`leaving: ${message}`);
    if (this.agent) await this.agent.stop();
    else await sweepNodeDir(this.dir('node'));
    for (const sub of ['node', 'agent', 'bin', 'cni', 'images', 'files', 'agent.json']) rmSync(this.dir(sub), { recursive: true, force: true });
    await this.client.left(this.state.credential);
    rmSync(this.dir(STATE), { force: true });
    this.o.say(`left cluster ${this.state.cluster}: everything Marina started on this server is stopped and removed`);
  }
}
