// The machine agent: supervises the machine's processes, runs its virtual kubelet and serves
// /healthz, /facts and /metrics on the machine's address. src/agent/main.ts is the process entry.
import http from 'node:http';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge, Registry } from 'prom-client';
import { KubeClient } from '../kube/client.js';
import type { AgentConfig } from './config.js';
import { MachineControl } from './control.js';
import { diskUsageBytes, processUsage, type ProcessUsage } from './procfs.js';
import { type ProcessInfo, ProcessSupervisor, type SupervisorOptions } from './supervisor.js';
import { type KubeletLog, type KubeletState, VirtualKubelet } from './virtual-kubelet.js';
import { NodeRuntime } from './node-runtime/runtime.js';
import { LoopbackRelay } from './loopback-relay.js';

export interface MachineAgentOptions {
  log: KubeletLog;
  /** Overrides for tests (restart backoff, probe interval). */
  supervisor?: Pick<SupervisorOptions, 'backoff' | 'probeIntervalMs'>;
  /** Overrides for tests (resync interval etc.). */
  kubelet?: { resyncIntervalMs?: number };
  /** Processes held down by a day-2 operation when the agent last ran (see control.ts readHeld). */
  held?: readonly string[];
}

export interface HealthReport {
  ok: boolean;
  machine: string;
  nodeName: string;
  processes: ProcessInfo[];
  kubelet: KubeletState | null;
  /** A real node's health (containerd, kubelet, kube-proxy), when the machine runs one. */
  node?: { ok: boolean; message: string; podCIDR?: string };
}

export interface MachineFacts {
  machine: string;
  hostname: string;
  nodeName: string;
  address: string;
  roles: string[];
  uptimeSeconds: number;
  agent: { pid: number } & ProcessUsage;
  processes: (ProcessInfo & ProcessUsage & { uptimeSeconds?: number })[];
  total: { rssBytes: number; cpuSeconds: number };
  disk: { path: string; usedBytes: number };
  kubelet: KubeletState | null;
  /** The nameservers the kubelet is configured to give pods (the cluster DNS Service address). */
  clusterDNS: string[];
}

const DISK_CACHE_MS = 15_000;

export class MachineAgent {
  readonly config: AgentConfig;
  private readonly log: KubeletLog;
  private readonly supervisor: ProcessSupervisor;
  private readonly control: MachineControl | undefined;
  private kubelet: VirtualKubelet | undefined;
  /** The real node (containerd + kubelet), when the config has a `node` section. */
  readonly node: NodeRuntime | undefined;
  private clients: KubeClient[] = [];
  private server: http.Server | undefined;
  private readonly registry = new Registry();
  private readonly startedMs = Date.now();
  private disk: { at: number; bytes: number; pending?: Promise<number> } = { at: 0, bytes: 0 };
  private readonly opts: MachineAgentOptions;
  private stopped: Promise<void> | undefined;
  private readonly relays: LoopbackRelay[];

  constructor(config: AgentConfig, opts: MachineAgentOptions) {
    this.config = config;
    this.log = opts.log;
    this.opts = opts;
    this.supervisor = new ProcessSupervisor(config.processes, {
      logDir: join(config.dataDir, 'logs'),
      log: opts.log,
      stopGraceMs: (config.stopGraceSeconds ?? 10) * 1000,
      ...(opts.held ? { held: opts.held } : {}),
      ...opts.supervisor,
    });
    this.node = config.node ? new NodeRuntime(config.node, { log: opts.log }) : undefined;
    this.relays = (config.loopbackRelayPorts ?? []).map((port) => new LoopbackRelay({ port, ownAddress: config.address, log: opts.log }));
    this.control = config.control ? new MachineControl(config.control, config.dataDir, this.supervisor, opts.log) : undefined;
    this.defineMetrics();
  }

  get pidFile(): string {
    return join(this.config.dataDir, 'agent.pid');
  }

  /** Listens, starts the processes in order, then the virtual kubelet. Resolves once all started. */
  async start(): Promise<void> {
    await mkdir(join(this.config.dataDir, 'logs'), { recursive: true });
    await writeFile(this.pidFile, `${process.pid}\n`);
    await this.listen();
    this.log.info({ address: this.config.address, port: this.config.agentPort }, 'agent listening');
    await this.supervisor.start();
    if (this.stopped) return;
    for (const r of this.relays) r.start();
    await this.node?.start();
    if (this.stopped) return;
    const k = this.config.kubelet;
    if (k) {
      const client = await KubeClient.fromKubeconfigFile(k.kubeconfigPath, { userAgent: `marina-virtual-kubelet/${this.config.nodeName}` });
      this.clients.push(client);
      let labeler: KubeClient | undefined;
      if (k.labelerKubeconfigPath) {
        labeler = await KubeClient.fromKubeconfigFile(k.labelerKubeconfigPath, { userAgent: `marina-agent-labeler/${this.config.nodeName}` });
        this.clients.push(labeler);
      }
      if (this.stopped) {
        for (const c of this.clients) c.close();
        return;
      }
      const capacity: Record<string, string> = { cpu: k.capacity.cpu, memory: k.capacity.memory, pods: k.capacity.pods };
      if (k.capacity.ephemeralStorage) capacity['ephemeral-storage'] = k.capacity.ephemeralStorage;
      this.kubelet = new VirtualKubelet({
        client,
        labeler,
        identity: {
          nodeName: this.config.nodeName,
          machine: this.config.machine,
          address: this.config.address,
          roles: this.config.roles ?? [],
          labels: k.labels ?? {},
          taints: k.taints ?? [],
          capacity,
          kubeletVersion: k.kubeletVersion,
          podCIDR: k.podCIDR,
          daemonPort: this.config.agentPort,
        },
        stateDir: join(this.config.dataDir, 'kubelet'),
        log: this.log,
        ...(k.leaseDurationSeconds !== undefined ? { leaseDurationSeconds: k.leaseDurationSeconds } : {}),
        ...(k.renewIntervalSeconds !== undefined ? { renewIntervalMs: k.renewIntervalSeconds * 1000 } : {}),
        ...(k.statusIntervalSeconds !== undefined ? { statusIntervalMs: k.statusIntervalSeconds * 1000 } : {}),
        ...(this.opts.kubelet?.resyncIntervalMs !== undefined ? { resyncIntervalMs: this.opts.kubelet.resyncIntervalMs } : {}),
      });
      this.kubelet.start();
    }
  }

  /** Stops the kubelet loops, then the processes (last first), then the server. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.log.info({}, 'agent stopping');
      const k = this.kubelet?.stop();
      for (const c of this.clients) c.close(); // aborts in-flight calls so the kubelet stops at once
      await k;
      await this.node?.stop();
      await Promise.all(this.relays.map((r) => r.stop()));
      await this.supervisor.stop();
      await new Promise<void>((resolve) => {
        if (!this.server) return resolve();
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
      await rm(this.pidFile, { force: true });
      this.log.info({}, 'agent stopped');
    })();
    return this.stopped;
  }

  health(): HealthReport {
    const processes = this.allProcesses();
    const kubelet = this.kubelet?.state() ?? null;
    const kubeletOk = !this.config.kubelet || (kubelet !== null && kubelet.heartbeating);
    const node = this.node?.health();
    return {
      ok: this.supervisor.allRunning() && kubeletOk && (node?.ok ?? true) && !this.stopped,
      machine: this.config.machine,
      nodeName: this.config.nodeName,
      processes,
      kubelet,
      ...(node ? { node } : {}),
    };
  }

  /** The configured processes and, on a real node, containerd, kubelet and kube-proxy. */
  allProcesses(): ProcessInfo[] {
    return [...this.supervisor.processes(), ...(this.node?.processes() ?? [])];
  }

  private async diskUsed(): Promise<number> {
    const d = this.disk;
    if (Date.now() - d.at < DISK_CACHE_MS) return d.bytes;
    d.pending ??= diskUsageBytes(this.config.dataDir).finally(() => (d.pending = undefined));
    d.bytes = await d.pending;
    d.at = Date.now();
    return d.bytes;
  }

  async facts(): Promise<MachineFacts> {
    const now = Date.now();
    const agentUsage = processUsage(process.pid);
    const processes = this.allProcesses().map((p) => {
      const usage = p.pid !== undefined ? processUsage(p.pid) : {};
      const out: MachineFacts['processes'][number] = { ...p, ...usage };
      if (p.startedAt) out.uptimeSeconds = Math.round((now - Date.parse(p.startedAt)) / 1000);
      return out;
    });
    const all = [agentUsage, ...processes];
    return {
      machine: this.config.machine,
      hostname: this.config.nodeName,
      nodeName: this.config.nodeName,
      address: this.config.address,
      roles: this.config.roles ?? [],
      uptimeSeconds: Math.round((now - this.startedMs) / 1000),
      agent: { pid: process.pid, ...agentUsage },
      processes,
      total: {
        rssBytes: all.reduce((s, u) => s + (u.rssBytes ?? 0), 0),
        cpuSeconds: Math.round(all.reduce((s, u) => s + (u.cpuSeconds ?? 0), 0) * 100) / 100,
      },
      disk: { path: this.config.dataDir, usedBytes: await this.diskUsed() },
      kubelet: this.kubelet?.state() ?? null,
      clusterDNS: this.config.kubelet?.clusterDNS ?? [],
    };
  }

  async metrics(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  // -------------------------------------------------------------------------------------------

  /** The agent itself ("agent") plus every child with a pid. */
  private usageByProcess(): { name: string; usage: ProcessUsage }[] {
    return [
      { name: 'agent', usage: processUsage(process.pid) },
      ...[...this.supervisor.pids(), ...(this.node?.pids() ?? [])].map(({ name, pid }) => ({ name, usage: processUsage(pid) })),
    ];
  }

  private defineMetrics(): void {
    const agent = this;
    const registers = [this.registry];
    new Gauge({
      name: 'marina_agent_process_rss_bytes',
      help: 'Resident set size of the agent and each process it runs.',
      labelNames: ['process'],
      registers,
      collect() {
        this.reset();
        for (const { name, usage } of agent.usageByProcess()) if (usage.rssBytes !== undefined) this.set({ process: name }, usage.rssBytes);
      },
    });
    new Counter({
      name: 'marina_agent_process_cpu_seconds_total',
      help: 'User plus system CPU time of the agent and each process it runs (current incarnation).',
      labelNames: ['process'],
      registers,
      collect() {
        this.reset();
        for (const { name, usage } of agent.usageByProcess()) if (usage.cpuSeconds !== undefined) this.inc({ process: name }, usage.cpuSeconds);
      },
    });
    new Counter({
      name: 'marina_agent_process_restarts_total',
      help: 'Times the agent restarted a process after it exited.',
      labelNames: ['process'],
      registers,
      collect() {
        this.reset();
        for (const p of agent.allProcesses()) this.inc({ process: p.name }, p.restarts);
      },
    });
    new Gauge({
      name: 'marina_agent_process_up',
      help: '1 if the process is running, else 0.',
      labelNames: ['process'],
      registers,
      collect() {
        this.reset();
        for (const p of agent.allProcesses()) this.set({ process: p.name }, p.state === 'running' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'marina_agent_disk_used_bytes',
      help: 'Disk space used under the machine data directory.',
      registers,
      async collect() {
        this.set(await agent.diskUsed());
      },
    });
    new Gauge({
      name: 'marina_agent_kubelet_heartbeat_timestamp_seconds',
      help: 'Unix time of the last successful Node Lease renewal by the virtual kubelet (0: none yet).',
      registers,
      collect() {
        this.set(agent.kubelet?.lastHeartbeatSeconds() ?? 0);
      },
    });
  }

  private listen(): Promise<void> {
    const server = http.createServer((req, res) => {
      void this.handle(req, res).catch((err: unknown) => {
        this.log.error({ err }, 'agent HTTP handler failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: String(err) }));
      });
    });
    server.keepAliveTimeout = 5000;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.config.address, port: this.config.agentPort }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.log.error({ err }, 'agent HTTP server error'));
        resolve();
      });
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://agent');
    const path = url.pathname;
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    if (this.control && (await this.control.handle(req, res, path, url.searchParams))) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: 'only GET' });
    switch (path) {
      case '/healthz': {
        const h = this.health();
        return json(h.ok ? 200 : 503, h);
      }
      case '/facts':
        return json(200, await this.facts());
      case '/metrics': {
        const m = await this.metrics();
        res.writeHead(200, { 'content-type': m.contentType });
        res.end(m.body);
        return;
      }
      default:
        return json(404, { error: `no route ${path}; try /healthz, /facts or /metrics` });
    }
  }
}
