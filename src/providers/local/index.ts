// The `local` provider: every machine is a process group on this host, led by a machine agent
// (src/agent) that supervises the machine's real etcd / Kubernetes binaries and runs its virtual
// kubelet. Each machine and each cluster endpoint has its own loopback address. All state lives
// in files under the provider's root, so a restarted Marina re-adopts what still runs; processes
// carry their machine's directory and uid on their command line (./processes.ts), so one started
// just before a crash, before its pid was recorded, is adopted too instead of started twice.
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandLine, isProcessAlive, isProcessGroupAlive, spawnLogged, stopProcessGroup } from '../../proc/index.js';
import type {
  ClusterRef,
  EndpointDescription,
  EtcdRestoreRequest,
  InfrastructureProvider,
  MachineActions,
  MachineBootstrap,
  MachineDescription,
  MachineRef,
  PreparedMachine,
  ProviderMachine,
} from '../contract.js';
import { ProviderError } from '../contract.js';
import { nextFreeAddress } from './addresses.js';
import { MACHINE_UID_FLAG, processesWithConfig, type ConfiguredProcess } from './processes.js';

export const AGENT_PORT = 10250;
export const ENDPOINT_PORT = 6443;

export interface LocalProviderOptions {
  /** Root of all machine and endpoint directories, e.g. `<marina data dir>/local`. */
  root: string;
  /** Absolute paths of the toolchain binaries for a Kubernetes version. */
  binaries: (version: string) => Record<string, string>;
  /** First address of the /16 block machines are allocated from. */
  addressBase?: string;
  /** How long a machine may take from start to a healthy agent before it counts as failed. */
  startTimeoutMs?: number;
}

interface MachineRecord {
  uid: string;
  address: string;
  pid?: number;
  startedAt?: string;
  /** When this agent first answered /healthz: from then on, an unhealthy agent is not a failed start. */
  healthyAt?: string;
}

interface EndpointRecord {
  uid: string;
  address: string;
  port: number;
  pid?: number;
  backends: string[];
}

const here = dirname(fileURLToPath(import.meta.url));
const AGENT_MAIN = resolve(here, '../../agent/main.js');
const LB_MAIN = resolve(here, '../../lb/main.js');
/** How agent and balancer processes are told apart from others naming a config file below root. */
const AGENT_SCRIPT = '/agent/main.js';
const LB_SCRIPT = '/lb/main.js';

export class LocalProvider implements InfrastructureProvider {
  readonly name = 'local';
  /** Every machine of this provider is a process group Marina started: its own to sweep. */
  readonly sweepOrphans = true;
  /** Serializes allocation so two machines never get one address. */
  private allocation: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: LocalProviderOptions) {
    mkdirSync(opts.root, { recursive: true, mode: 0o700 });
  }

  machineDir(m: MachineRef): string {
    return join(this.opts.root, 'machines', m.project, m.cluster, m.name);
  }

  endpointDir(c: ClusterRef): string {
    return join(this.opts.root, 'endpoints', c.project, c.name);
  }

  async prepareMachine(m: MachineRef): Promise<PreparedMachine> {
    return this.serialized(async () => {
      const existing = readJson<MachineRecord>(join(this.machineDir(m), 'machine.json'));
      if (existing && existing.uid === m.uid) return { address: existing.address, providerID: providerId(m) };
      // A directory of an earlier object with the same name: never adopt it, clear it out first.
      if (existing) await this.removeMachine(this.machineDir(m), existing, () => true);
      const address = this.allocate();
      mkdirSync(this.machineDir(m), { recursive: true, mode: 0o700 });
      writeJson(join(this.machineDir(m), 'machine.json'), { uid: m.uid, address } satisfies MachineRecord);
      return { address, providerID: providerId(m) };
    });
  }

  async startMachine(m: MachineRef, bootstrap: MachineBootstrap): Promise<MachineDescription> {
    const dir = this.machineDir(m);
    const record = readJson<MachineRecord>(join(dir, 'machine.json'));
    if (!record || record.uid !== m.uid) throw new ProviderError('NotPrepared', `machine ${m.name} was not prepared`);
    if (record.pid && this.agentAlive(record.pid, dir)) return this.describeMachine(m);
    if (await this.adoptUnrecordedAgent(m, dir, record)) return this.describeMachine(m);

    let binaries: Record<string, string>;
    try {
      binaries = this.opts.binaries(bootstrap.kubernetesVersion);
    } catch (err) {
      throw new ProviderError('ToolchainMissing', (err as Error).message, true);
    }
    for (const file of bootstrap.files) {
      const path = join(dir, file.path);
      if (!path.startsWith(dir + '/')) throw new ProviderError('InvalidBootstrap', `file path ${file.path} leaves the machine directory`, true);
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(path, file.content, { mode: file.mode });
    }
    const sub = (s: string) => s.replaceAll('{root}', dir);
    const etcdDataDir = bootstrap.services.find((svc) => svc.binary === 'etcd')?.args.find((a) => a.startsWith('--data-dir='))?.slice('--data-dir='.length);
    const config = {
      machine: m.name,
      nodeName: bootstrap.kubelet?.nodeName ?? m.name,
      address: record.address,
      dataDir: dir,
      agentPort: AGENT_PORT,
      roles: bootstrap.roles,
      ...(bootstrap.loopbackPorts?.length ? { loopbackRelayPorts: bootstrap.loopbackPorts } : {}),
      processes: bootstrap.services.map((s) => {
        const command = binaries[s.binary];
        if (!command) throw new ProviderError('UnknownBinary', `service ${s.name} needs binary ${s.binary}, not in the toolchain`, true);
        return {
          name: s.name,
          command,
          args: s.args.map(sub),
          readyUrl: s.readyUrl,
          tls: bootstrap.probeTls
            ? { ca: join(dir, bootstrap.probeTls.ca), cert: join(dir, bootstrap.probeTls.cert), key: join(dir, bootstrap.probeTls.key) }
            : undefined,
        };
      }),
      kubelet: bootstrap.kubelet
        ? {
            kubeconfigPath: join(dir, bootstrap.kubelet.kubeconfig),
            labels: bootstrap.kubelet.labels,
            taints: bootstrap.kubelet.taints,
            capacity: bootstrap.kubelet.capacity,
            kubeletVersion: bootstrap.kubelet.kubeletVersion,
            clusterDNS: bootstrap.kubelet.clusterDNS,
            clusterDomain: bootstrap.kubelet.clusterDomain,
          }
        : undefined,
      // Day-2 actions (hold/release services, restore etcd) for whoever holds this token: Marina.
      control: {
        token: randomBytes(32).toString('hex'),
        ...(etcdDataDir ? { etcdDataDir: sub(etcdDataDir) } : {}),
        ...(binaries.etcdutl ? { etcdutl: binaries.etcdutl } : {}),
      },
    };
    const configPath = join(dir, 'agent.json');
    writeJson(configPath, config);
    const proc = await spawnLogged({
      command: process.execPath,
      args: [AGENT_MAIN, '--config', configPath, MACHINE_UID_FLAG, m.uid],
      logFile: join(dir, 'logs', 'agent.out'),
      unref: true,
    });
    writeJson(join(dir, 'machine.json'), { uid: record.uid, address: record.address, pid: proc.pid, startedAt: new Date().toISOString() } satisfies MachineRecord);
    return { state: 'Provisioning', address: record.address, providerID: providerId(m), agentUrl: agentUrl(record.address), providerStatus: { pid: proc.pid } };
  }

  async describeMachine(m: MachineRef): Promise<MachineDescription> {
    const dir = this.machineDir(m);
    const record = readJson<MachineRecord>(join(dir, 'machine.json'));
    if (!record || record.uid !== m.uid) return { state: 'Missing' };
    const base = { address: record.address, providerID: providerId(m), agentUrl: agentUrl(record.address) };
    if (!record.pid) return { ...base, state: 'Provisioning', providerStatus: {} };
    const providerStatus = { pid: record.pid, startedAt: record.startedAt };
    if (!this.agentAlive(record.pid, dir)) {
      return { ...base, state: 'Failed', providerStatus, failureReason: 'MachineStopped', failureMessage: `machine agent (pid ${record.pid}) is not running` };
    }
    const healthy = await agentHealthy(record.address);
    if (healthy) {
      if (!record.healthyAt) this.noteHealthy(dir, record);
      return { ...base, state: 'Running', providerStatus };
    }
    // Once healthy, a machine whose agent reports a problem (a process restarting, the kubelet
    // missing heartbeats while the API is away) is not running right now, but it did not fail to
    // start: only a machine that never turns healthy within the start timeout is Failed.
    if (record.healthyAt) return { ...base, state: 'Provisioning', providerStatus };
    const age = Date.now() - Date.parse(record.startedAt ?? new Date().toISOString());
    if (age > (this.opts.startTimeoutMs ?? 120_000)) {
      return { ...base, state: 'Failed', providerStatus, failureReason: 'Unhealthy', failureMessage: `machine agent unhealthy for ${Math.round(age / 1000)}s since start` };
    }
    return { ...base, state: 'Provisioning', providerStatus };
  }

  async deleteMachine(m: MachineRef): Promise<void> {
    const dir = this.machineDir(m);
    const record = readJson<MachineRecord>(join(dir, 'machine.json'));
    // An agent started without a uid tag belongs to whatever its directory's record names.
    const ofThisUid = (p: ConfiguredProcess) => (p.uid ?? record?.uid ?? '') === m.uid;
    if (record && record.uid !== m.uid) {
      // The directory belongs to a newer object of the same name: only a stray agent of this uid goes.
      for (const p of this.agentProcesses(dir).filter(ofThisUid)) await stopProcessGroup(p.pid, { graceMs: 10_000 });
      return;
    }
    await this.removeMachine(dir, record, ofThisUid);
  }

  async listMachines(): Promise<ProviderMachine[]> {
    const machinesRoot = join(this.opts.root, 'machines');
    const found = new Map<string, MachineRef>();
    for (const file of findFiles(machinesRoot, 'machine.json', 3)) {
      const record = readJson<MachineRecord>(file);
      const ref = refFromPath(machinesRoot, dirname(file), record?.uid ?? '');
      if (ref) found.set(`${dirname(file)}\0${ref.uid}`, ref);
    }
    // Agents whose directory is gone or names another uid: only /proc still knows them.
    for (const p of processesWithConfig(AGENT_SCRIPT, `${machinesRoot}/`)) {
      const dir = dirname(p.config);
      const uid = p.uid ?? readJson<MachineRecord>(join(dir, 'machine.json'))?.uid ?? '';
      const ref = refFromPath(machinesRoot, dir, uid);
      if (ref && !found.has(`${dir}\0${uid}`)) found.set(`${dir}\0${uid}`, ref);
    }
    return Promise.all(
      [...found.values()].map(async (ref) => {
        const desc = await this.describeMachine(ref);
        // A listed machine that describeMachine does not know is an unrecorded agent: it runs.
        return { ref, providerID: providerId(ref), state: desc.state === 'Missing' ? 'Running' : desc.state } satisfies ProviderMachine;
      }),
    );
  }

  async ensureEndpoint(c: ClusterRef, backends: string[]): Promise<EndpointDescription> {
    return this.serialized(async () => {
      const dir = this.endpointDir(c);
      const recordPath = join(dir, 'endpoint.json');
      let record = readJson<EndpointRecord>(recordPath);
      if (record && record.uid !== c.uid) {
        await this.deleteEndpoint(c);
        record = undefined;
      }
      if (!record) {
        const address = this.allocate();
        record = { uid: c.uid, address, port: ENDPOINT_PORT, backends: [] };
        mkdirSync(dir, { recursive: true, mode: 0o700 });
      }
      const sorted = [...backends].sort();
      const configPath = join(dir, 'lb.json');
      const changed = JSON.stringify(sorted) !== JSON.stringify(record.backends) || !existsSync(configPath);
      if (changed) writeJson(configPath, { host: record.address, port: record.port, backends: sorted });
      record.backends = sorted;
      // A balancer started just before a crash is running without its pid recorded: adopt it.
      if (!(record.pid && this.processAlive(record.pid, configPath))) {
        const unrecorded = processesWithConfig(LB_SCRIPT, configPath)[0];
        if (unrecorded) record.pid = unrecorded.pid;
      }
      if (record.pid && this.processAlive(record.pid, configPath)) {
        if (changed) process.kill(record.pid, 'SIGHUP');
      } else {
        const proc = await spawnLogged({
          command: process.execPath,
          args: [LB_MAIN, '--config', configPath],
          logFile: join(dir, 'lb.log'),
          unref: true,
        });
        record.pid = proc.pid;
      }
      writeJson(recordPath, record);
      return { url: `https://${record.address}:${record.port}`, host: record.address, port: record.port };
    });
  }

  async deleteEndpoint(c: ClusterRef): Promise<void> {
    const dir = this.endpointDir(c);
    const record = readJson<EndpointRecord>(join(dir, 'endpoint.json'));
    if (record?.pid && isProcessGroupAlive(record.pid) && this.processAlive(record.pid, join(dir, 'lb.json'))) {
      await stopProcessGroup(record.pid, { graceMs: 5_000 });
    }
    for (const p of processesWithConfig(LB_SCRIPT, join(dir, 'lb.json'))) await stopProcessGroup(p.pid, { graceMs: 5_000 });
    rmSync(dir, { recursive: true, force: true });
    pruneEmptyParents(dir, join(this.opts.root, 'endpoints'));
  }

  async close(): Promise<void> {
    await this.allocation;
  }

  /** Day-2 actions, carried to the machine's agent with the control token from its agent.json. */
  readonly actions: MachineActions = {
    holdServices: async (m, names, opts) => {
      await this.agentCall(m, 'POST', '/v1/services/hold', JSON.stringify({ names, immediate: opts?.immediate === true }), opts?.signal);
    },
    releaseServices: async (m, names, opts) => {
      await this.agentCall(m, 'POST', '/v1/services/release', JSON.stringify({ names }), opts?.signal);
    },
    restoreEtcd: async (m, r: EtcdRestoreRequest, opts) => {
      const q = new URLSearchParams({
        id: r.id,
        name: r.memberName,
        initialCluster: r.initialCluster,
        peerURL: r.peerURL,
        token: r.clusterToken,
        sha256: r.sha256,
        bumpRevision: String(r.bumpRevision),
      });
      await this.agentCall(m, 'PUT', `/v1/etcd/restore?${q}`, { path: r.snapshotPath }, opts?.signal);
    },
  };

  /** One control call to the machine's agent; throws a ProviderError with the agent's message. */
  private async agentCall(m: MachineRef, method: string, path: string, body: string | { path: string }, signal?: AbortSignal): Promise<unknown> {
    const dir = this.machineDir(m);
    const record = readJson<MachineRecord>(join(dir, 'machine.json'));
    if (!record || record.uid !== m.uid) throw new ProviderError('MachineMissing', `machine ${m.name} is not known to the local provider`);
    const token = readJson<{ control?: { token?: string } }>(join(dir, 'agent.json'))?.control?.token;
    if (!token) throw new ProviderError('ActionsUnsupported', `machine ${m.name} was started without day-2 actions (its agent has no control token); replace it first`, true);
    const size = typeof body === 'string' ? Buffer.byteLength(body) : statSync(body.path).size;
    return new Promise((resolve, reject) => {
      const req = http.request(
        `${agentUrl(record.address)}${path}`,
        {
          method,
          headers: { authorization: `Bearer ${token}`, 'content-type': typeof body === 'string' ? 'application/json' : 'application/octet-stream', 'content-length': size },
          ...(signal ? { signal } : {}),
          timeout: 15 * 60_000,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            let parsed: { error?: string } = {};
            try {
              parsed = JSON.parse(text) as { error?: string };
            } catch {
              /* not JSON */
            }
            if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) resolve(parsed);
            else reject(new ProviderError('ActionFailed', `agent of ${m.name}: ${method} ${path.split('?')[0]}: HTTP ${res.statusCode}: ${parsed.error ?? text.slice(0, 500)}`, (res.statusCode ?? 0) < 500 && res.statusCode !== 409));
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer within 15 minutes')));
      req.on('error', (err) => reject(new ProviderError('AgentUnreachable', `agent of ${m.name}: ${err.message}`)));
      if (typeof body === 'string') req.end(body);
      else createReadStream(body.path).on('error', (err) => req.destroy(err)).pipe(req);
    });
  }

  /** Records the first healthy answer of the current agent (unless a restart replaced it meanwhile). */
  private noteHealthy(dir: string, seen: MachineRecord): void {
    const path = join(dir, 'machine.json');
    const current = readJson<MachineRecord>(path);
    if (!current || current.uid !== seen.uid || current.pid !== seen.pid || current.healthyAt) return;
    writeJson(path, { ...current, healthyAt: new Date().toISOString() } satisfies MachineRecord);
  }

  private agentAlive(pid: number, dir: string): boolean {
    return this.processAlive(pid, join(dir, 'agent.json'));
  }

  /** Agent processes started for the machine directory `dir`, recorded or not. */
  private agentProcesses(dir: string): ConfiguredProcess[] {
    return processesWithConfig(AGENT_SCRIPT, join(dir, 'agent.json'));
  }

  /**
   * A start that was in flight when Marina died spawned the agent but never recorded its pid: the
   * agent of this uid found in /proc is recorded now, and any extra copy stopped. True if adopted.
   */
  private async adoptUnrecordedAgent(m: MachineRef, dir: string, record: MachineRecord): Promise<boolean> {
    const [agent, ...extra] = this.agentProcesses(dir).filter((p) => (p.uid ?? record.uid) === m.uid);
    if (!agent) return false;
    for (const p of extra) await stopProcessGroup(p.pid, { graceMs: 10_000 });
    writeJson(join(dir, 'machine.json'), { uid: record.uid, address: record.address, pid: agent.pid, startedAt: new Date().toISOString() } satisfies MachineRecord);
    return true;
  }

  /** Stops the recorded agent and every agent process `which` selects, then removes the directory. */
  private async removeMachine(dir: string, record: MachineRecord | undefined, which: (p: ConfiguredProcess) => boolean): Promise<void> {
    if (record?.pid && this.agentAlive(record.pid, dir)) await stopProcessGroup(record.pid, { graceMs: 10_000 });
    else if (record?.pid && isProcessGroupAlive(record.pid)) await stopProcessGroup(record.pid, { graceMs: 2_000 });
    for (const p of this.agentProcesses(dir).filter(which)) await stopProcessGroup(p.pid, { graceMs: 10_000 });
    rmSync(dir, { recursive: true, force: true });
    pruneEmptyParents(dir, join(this.opts.root, 'machines'));
  }

  /** A live pid is ours only if its command line names our config file (pids get reused). */
  private processAlive(pid: number, configPath: string): boolean {
    return isProcessAlive(pid) && (commandLine(pid)?.includes(configPath) ?? false);
  }

  /** A free address after the previous allocation (called inside serialized()). */
  private allocate(): string {
    const lastFile = join(this.opts.root, 'last-address');
    let after: string | undefined;
    try {
      after = readFileSync(lastFile, 'utf8').trim();
    } catch {
      after = undefined;
    }
    const address = nextFreeAddress(this.usedAddresses(), this.opts.addressBase, after);
    writeFileSync(lastFile, `${address}\n`, { mode: 0o600 });
    return address;
  }

  private usedAddresses(): string[] {
    const used: string[] = [];
    for (const file of findFiles(join(this.opts.root, 'machines'), 'machine.json', 3)) {
      const r = readJson<MachineRecord>(file);
      if (r) used.push(r.address);
    }
    for (const file of findFiles(join(this.opts.root, 'endpoints'), 'endpoint.json', 2)) {
      const r = readJson<EndpointRecord>(file);
      if (r) used.push(r.address);
    }
    return used;
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.allocation.then(fn, fn);
    this.allocation = run.catch(() => undefined);
    return run;
  }
}

/** The MachineRef of `<machinesRoot>/<project>/<cluster>/<name>`; undefined for other paths. */
function refFromPath(machinesRoot: string, dir: string, uid: string): MachineRef | undefined {
  const parts = relative(machinesRoot, dir).split(sep);
  if (parts.length !== 3 || parts.some((x) => !x || x === '..')) return undefined;
  const [project, cluster, name] = parts as [string, string, string];
  return { project, cluster, name, uid };
}

function providerId(m: MachineRef): string {
  return `local:///${m.project}/${m.cluster}/${m.name}`;
}

function agentUrl(address: string): string {
  return `http://${address}:${AGENT_PORT}`;
}

async function agentHealthy(address: string): Promise<boolean> {
  try {
    const res = await fetch(`${agentUrl(address)}/healthz`, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

function writeJson(path: string, value: unknown): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2), { mode: 0o600 });
  // rename is atomic: a crash never leaves a half-written record behind.
  renameSync(tmp, path);
}

/** Files named `name` exactly `depth` directories below `root`. */
function findFiles(root: string, name: string, depth: number): string[] {
  if (!existsSync(root)) return [];
  if (depth === 0) return existsSync(join(root, name)) ? [join(root, name)] : [];
  const out: string[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (entry.isDirectory()) out.push(...findFiles(join(root, entry.name), name, depth - 1));
  }
  return out;
}

/** Removes now-empty project/cluster directories up to (not including) `stop`. */
function pruneEmptyParents(dir: string, stop: string): void {
  let parent = dirname(dir);
  while (parent.startsWith(stop + '/') && existsSync(parent) && readdirSync(parent).length === 0) {
    rmSync(parent, { recursive: true, force: true });
    parent = dirname(parent);
  }
}
