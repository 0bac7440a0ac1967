// The `local` provider: every machine is a process group on this host, led by a machine agent
// (src/agent) that supervises the machine's real etcd / Kubernetes binaries and runs its virtual
// kubelet — or, for a real worker (runtime containerd), a real node in a network namespace of its
// own on the cluster's node network (./node-network.ts, ./real-node.ts). Each machine and each
// cluster endpoint has its own loopback address. All state lives
// in files under the provider's root, so a restarted Marina re-adopts what still runs; processes
// carry their machine's directory and uid on their command line (./processes.ts), so one started
// just before a crash, before its pid was recorded, is adopted too instead of started twice.
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandLine, findFreePort, isProcessAlive, isProcessGroupAlive, spawnLogged, stopProcessGroup } from '../../proc/index.js';
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
import type { NodeArtifacts } from '../../agent/node-runtime/config.js';
import { sweepNodeDir } from '../../agent/node-runtime/sweep.js';
import { nextFreeAddress } from './addresses.js';
import { NodeNetworks } from './node-network.js';
import { MACHINE_UID_FLAG, processesWithConfig, type ConfiguredProcess } from './processes.js';
import { API_TLS_SERVER_NAME, localNodeConfig } from './real-node.js';

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
  /** What real workers (runtime containerd) run, for a Kubernetes version; throws when not installed. */
  nodeArtifacts?: (version: string) => NodeArtifacts;
  /**
   * An address other hosts reach this one on (Marina listens beyond loopback): every cluster's
   * balancer also listens there, on a port of its own, so that imported servers reach the API.
   * `bind` is what the balancer binds (may be 0.0.0.0), `advertise` what servers connect to.
   */
  publicAddress?: { bind: string; advertise: string };
}

interface MachineRecord {
  uid: string;
  address: string;
  pid?: number;
  startedAt?: string;
  /** When this agent first answered /healthz: from then on, an unhealthy agent is not a failed start. */
  healthyAt?: string;
  /** Real workers: the node's address on the cluster's node network (the agent keeps `address`). */
  nodeAddress?: string;
}

interface EndpointRecord {
  uid: string;
  address: string;
  port: number;
  pid?: number;
  backends: string[];
  /** The balancer's port on the public address (see LocalProviderOptions.publicAddress). */
  publicPort?: number;
}

/** A real worker's agent takes its node apart before it exits (pods, containerd, namespaces). */
const REAL_NODE_STOP_GRACE_MS = 60_000;
const AGENT_STOP_GRACE_MS = 10_000;

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
  private readonly nodeNetworks: NodeNetworks;

  constructor(private readonly opts: LocalProviderOptions) {
    mkdirSync(opts.root, { recursive: true, mode: 0o700 });
    this.nodeNetworks = new NodeNetworks(join(opts.root, 'endpoints'));
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
      if (existing) await this.removeMachine(m, existing, () => true);
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
    const node = bootstrap.node ? await this.realNode(m, dir, bootstrap) : undefined;
    // Recorded before the agent starts, so an agent adopted after a crash keeps its node address.
    const nodeAddress = node?.network.address;
    if (nodeAddress && record.nodeAddress !== nodeAddress) {
      record.nodeAddress = nodeAddress;
      writeJson(join(dir, 'machine.json'), record);
    }
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
      node,
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
    writeJson(join(dir, 'machine.json'), { ...record, pid: proc.pid, startedAt: new Date().toISOString() } satisfies MachineRecord);
    return { state: 'Provisioning', address: nodeAddress ?? record.address, providerID: providerId(m), agentUrl: agentUrl(record.address), providerStatus: { pid: proc.pid } };
  }

  async describeMachine(m: MachineRef): Promise<MachineDescription> {
    const dir = this.machineDir(m);
    const record = readJson<MachineRecord>(join(dir, 'machine.json'));
    if (!record || record.uid !== m.uid) return { state: 'Missing' };
    const base = { address: record.nodeAddress ?? record.address, providerID: providerId(m), agentUrl: agentUrl(record.address) };
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
      for (const p of this.agentProcesses(dir).filter(ofThisUid)) await stopProcessGroup(p.pid, { graceMs: REAL_NODE_STOP_GRACE_MS });
      return;
    }
    await this.removeMachine(m, record, ofThisUid);
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
      if (this.opts.publicAddress && record.publicPort === undefined) record.publicPort = await findFreePort(this.opts.publicAddress.bind);
      const sorted = [...backends].sort();
      const configPath = join(dir, 'lb.json');
      const extraListen = this.extraListen(dir, record);
      const changed =
        JSON.stringify(sorted) !== JSON.stringify(record.backends) ||
        !existsSync(configPath) ||
        JSON.stringify(extraListen) !== JSON.stringify(readJson<{ extraListen?: string[] }>(configPath)?.extraListen ?? []);
      if (changed) writeJson(configPath, { host: record.address, port: record.port, extraListen, backends: sorted });
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
    await this.nodeNetworks.remove(dir);
    rmSync(dir, { recursive: true, force: true });
    pruneEmptyParents(dir, join(this.opts.root, 'endpoints'));
  }

  async close(): Promise<void> {
    await this.allocation;
  }

  /** The endpoint directory of a machine's cluster. */
  private endpointDirOf(m: MachineRef): string {
    return join(this.opts.root, 'endpoints', m.project, m.cluster);
  }

  /** Addresses the cluster's balancer listens on besides its own: the node network's gateway, the public address. */
  private extraListen(endpointDir: string, endpoint: EndpointRecord): string[] {
    const net = this.nodeNetworks.get(endpointDir);
    const pub = this.opts.publicAddress;
    return [...(net ? [`${net.gateway}:${endpoint.port}`] : []), ...(pub && endpoint.publicPort ? [`${pub.bind}:${endpoint.publicPort}`] : [])];
  }

  /** Real workers reach the API at the node network's gateway (the balancer listens there). */
  async nodeAPIEndpoint(c: ClusterRef): Promise<string | undefined> {
    const dir = this.endpointDir(c);
    const endpoint = readJson<EndpointRecord>(join(dir, 'endpoint.json'));
    const net = this.nodeNetworks.get(dir);
    return endpoint && endpoint.uid === c.uid && net ? `${net.gateway}:${endpoint.port}` : undefined;
  }

  /**
   * A cluster endpoint as other hosts reach it (imported servers), or undefined when they cannot
   * (Marina listens on loopback only). The apiserver certificate does not name the public address:
   * the caller verifies the name `kubernetes`, which it does name.
   */
  reachableEndpoint(url: string): { url: string; tlsServerName: string } | undefined {
    const pub = this.opts.publicAddress;
    if (!pub) return undefined;
    for (const file of findFiles(join(this.opts.root, 'endpoints'), 'endpoint.json', 2)) {
      const r = readJson<EndpointRecord>(file);
      if (r?.publicPort && `https://${r.address}:${r.port}` === url) return { url: `https://${pub.advertise}:${r.publicPort}`, tlsServerName: API_TLS_SERVER_NAME };
    }
    return undefined;
  }

  /**
   * A real worker: the cluster's node network (bridge, gateway listener of the balancer), the
   * node's address on it, and the agent's `node` configuration.
   */
  private async realNode(m: MachineRef, dir: string, bootstrap: MachineBootstrap) {
    const node = bootstrap.node!;
    let artifacts: NodeArtifacts;
    try {
      if (!this.opts.nodeArtifacts) throw new Error('this server has no node runtime configured');
      artifacts = this.opts.nodeArtifacts(bootstrap.kubernetesVersion);
    } catch (err) {
      throw new ProviderError('NodeRuntimeMissing', `real worker ${m.name}: ${(err as Error).message}`, true);
    }
    return this.serialized(async () => {
      const endpointDir = this.endpointDirOf(m);
      const endpoint = readJson<EndpointRecord>(join(endpointDir, 'endpoint.json'));
      if (!endpoint) throw new ProviderError('NoEndpoint', `cluster ${m.cluster} has no endpoint yet`);
      const network = await this.nodeNetworks.ensure(endpointDir, endpoint.uid);
      const address = this.nodeNetworks.assign(endpointDir, m.uid);
      // The balancer listens on the gateway from now on (it re-reads lb.json on SIGHUP).
      const configPath = join(endpointDir, 'lb.json');
      const lb = readJson<Record<string, unknown>>(configPath);
      const extraListen = this.extraListen(endpointDir, endpoint);
      if (lb && JSON.stringify(lb.extraListen ?? []) !== JSON.stringify(extraListen)) {
        writeJson(configPath, { ...lb, extraListen });
        if (endpoint.pid && this.processAlive(endpoint.pid, configPath)) process.kill(endpoint.pid, 'SIGHUP');
      }
      return localNodeConfig({ machineDir: dir, machine: m, node, network, address, apiPort: endpoint.port, artifacts });
    });
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
    for (const p of extra) await stopProcessGroup(p.pid, { graceMs: record.nodeAddress ? REAL_NODE_STOP_GRACE_MS : AGENT_STOP_GRACE_MS });
    writeJson(join(dir, 'machine.json'), { ...record, pid: agent.pid, startedAt: new Date().toISOString() } satisfies MachineRecord);
    return true;
  }

  /**
   * Stops the recorded agent and every agent process `which` selects, takes a real worker's node
   * apart (again, from its state file: the agent may have died before it finished), releases its
   * node address, then removes the directory.
   */
  private async removeMachine(m: MachineRef, record: MachineRecord | undefined, which: (p: ConfiguredProcess) => boolean): Promise<void> {
    const dir = this.machineDir(m);
    const graceMs = record?.nodeAddress ? REAL_NODE_STOP_GRACE_MS : AGENT_STOP_GRACE_MS;
    if (record?.pid && this.agentAlive(record.pid, dir)) await stopProcessGroup(record.pid, { graceMs });
    else if (record?.pid && isProcessGroupAlive(record.pid)) await stopProcessGroup(record.pid, { graceMs: 2_000 });
    for (const p of this.agentProcesses(dir).filter(which)) await stopProcessGroup(p.pid, { graceMs });
    const left = await sweepNodeDir(join(dir, 'node'));
    if (left && (left.pids.length > 0 || left.cgroups.length > 0 || left.interfaces.length > 0)) {
      throw new ProviderError('NodeNotSwept', `machine ${m.name}: the real node left ${JSON.stringify(left)}; retrying`);
    }
    // Synchronous read-modify-write: nothing interleaves with it (removeMachine also runs inside serialized()).
    if (record?.nodeAddress) this.nodeNetworks.release(this.endpointDirOf(m), record.uid);
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
