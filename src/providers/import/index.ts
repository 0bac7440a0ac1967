// The `import` provider: users' own servers as workers. Marina cannot create such a machine: a
// server joins by itself (`marina agent join` with a join token, see src/joins), the join creates
// the Machine and registers it here. From then on the contract applies as usual: the Machine
// controller prepares (the server's reported address), starts (the bootstrap is handed to the
// server's agent, which polls for it) and describes it; deleting it asks the agent to stop and
// remove what Marina started there, never the server or its data.
//
// The agent talks to Marina, never the other way round (it may sit behind NAT): every few seconds
// it syncs (heartbeat, its node's health) and learns what to do — wait, run (with the bootstrap)
// or leave. State lives in files (`<root>/machines/<project>/<cluster>/<name>.json`), so a
// restarted Marina knows its imported servers; a record outlives its Machine as a tombstone for a
// week, so an agent that was away learns to leave.
//
// The servers are their owners': listMachines names every server that joined and has not left,
// and the orphan sweep never deletes one (`sweepOrphans: false`). Every call is a quick file
// operation; one whose reconcile was aborted writes nothing.
//
// Day-2 `actions`: only upgradeNode. Marina cannot call a server's agent (it may sit behind NAT;
// it polls), so an action is a change of the record the agent learns of at its next sync: an
// in-place upgrade changes the version of the bootstrap it is handed, and the agent, finding its
// node on another version, fetches that version's binaries and restarts kubelet and kube-proxy on
// them. Holding services and restoring etcd are refused: a restore acts only on etcd and
// control-plane machines, which are never imported servers.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import type {
  ClusterRef,
  EndpointDescription,
  InfrastructureProvider,
  MachineActions,
  MachineBootstrap,
  MachineDescription,
  MachineRef,
  NodeUpgradeState,
  PreparedMachine,
  ProviderCallOptions,
  ProviderCapabilities,
  ProviderMachine,
} from '../contract.js';
import { ProviderError } from '../contract.js';

/** The port the agent on an imported server serves /healthz, /facts and /metrics on. */
export const IMPORT_AGENT_PORT = 10270;

export type ImportState = 'joined' | 'started' | 'leaving' | 'left';

export interface ImportRecord {
  uid: string;
  project: string;
  cluster: string;
  name: string;
  /** The server's node address (as its agent reported it). */
  address: string;
  hostname: string;
  /** SHA-256 (hex) of the agent's credential; the credential itself is never stored. */
  credentialHash: string;
  state: ImportState;
  joinedAt: string;
  lastSeenAt?: string;
  /** What the agent last reported about its node. */
  health?: { ok: boolean; message: string };
  /** Handed to the agent once the Machine controller started the machine (an in-place upgrade changes its version). */
  bootstrap?: MachineBootstrap;
  /** When an in-place upgrade last changed the bootstrap's version (upgradeNode). */
  upgradeRequestedAt?: string;
  leaveRequestedAt?: string;
  leftAt?: string;
  /**
   * Set when the server joined as a Machine another provider made (an OpenStack VM with a
   * machine-bound token): the record only carries the agent's credential, bootstrap and reports;
   * the Machine is that provider's, so this provider does not list it.
   */
  boundTo?: string;
}

/** How the agent on the server reaches a cluster's API endpoint. */
export interface ReachableEndpoint {
  url: string;
  /** A name in the apiserver certificate when the URL's host is not. */
  tlsServerName?: string;
}

export interface ImportProviderOptions {
  root: string;
  /** The endpoint as reachable from other hosts; undefined when it is not (local, loopback only). */
  reachableEndpoint: (endpointURL: string) => ReachableEndpoint | undefined;
  /** An agent not heard of this long after a leave was requested: give up waiting (default 60 s). */
  leaveTimeoutMs?: number;
  /** Tombstones are kept this long (default 7 days). */
  tombstoneMs?: number;
}

export type AgentAction =
  | { action: 'wait'; message: string }
  | { action: 'run'; bootstrap: MachineBootstrap; apiServer?: ReachableEndpoint }
  | { action: 'leave'; message: string };

const hash = (s: string): string => createHash('sha256').update(s).digest('hex');

export class ImportProvider implements InfrastructureProvider {
  readonly name = 'import';
  readonly capabilities: ProviderCapabilities = { createsMachines: false, endpoints: false };
  /** The servers are their owners', not Marina's: the orphan sweep never deletes one. */
  readonly sweepOrphans = false;

  constructor(private readonly opts: ImportProviderOptions) {
    mkdirSync(join(opts.root, 'machines'), { recursive: true, mode: 0o700 });
  }

  // ---------------------------------------------------------------- the join side (src/joins)

  /**
   * Records a server that joined as Machine `ref`; returns the agent's credential (shown once).
   * With `bound`, the server is a machine `bound.provider` made and started with `bound.bootstrap`:
   * its agent is told to run that at once.
   */
  register(ref: MachineRef, server: { address: string; hostname: string }, bound?: { provider: string; bootstrap: MachineBootstrap }): string {
    const credential = `mic_${randomBytes(24).toString('base64url')}`;
    this.write({
      uid: ref.uid,
      project: ref.project,
      cluster: ref.cluster,
      name: ref.name,
      address: server.address,
      hostname: server.hostname,
      credentialHash: hash(credential),
      state: bound ? 'started' : 'joined',
      joinedAt: new Date().toISOString(),
      ...(bound ? { boundTo: bound.provider, bootstrap: bound.bootstrap } : {}),
    });
    return credential;
  }

  /** The live record of a server that joined as Machine `ref` of another provider. */
  boundRecord(ref: MachineRef): ImportRecord | undefined {
    const r = this.current(ref);
    return r?.boundTo ? r : undefined;
  }

  /** The bound machine's server is gone: its credential is void (a tombstone tells a returning agent to leave). */
  forgetBound(ref: MachineRef): void {
    const r = this.read(ref);
    if (!r?.boundTo || r.uid !== ref.uid || r.state === 'left') return;
    r.state = 'left';
    r.leftAt = new Date().toISOString();
    delete r.bootstrap;
    this.write(r);
  }

  /** The record a credential belongs to (tombstones included), or undefined. */
  authenticate(credential: string): ImportRecord | undefined {
    const want = Buffer.from(hash(credential), 'hex');
    for (const r of this.records()) {
      const have = Buffer.from(r.credentialHash, 'hex');
      if (have.length === want.length && timingSafeEqual(have, want)) return r;
    }
    return undefined;
  }

  /** An agent's periodic sync: records that it is alive and tells it what to do. */
  sync(record: ImportRecord, health: { ok: boolean; message: string } | undefined, waiting: string): AgentAction {
    const r = this.read(record) ?? record;
    r.lastSeenAt = new Date().toISOString();
    if (health) r.health = health;
    this.write(r);
    if (r.state === 'leaving' || r.state === 'left') return { action: 'leave', message: `machine ${r.name} was removed from cluster ${r.cluster}` };
    // A machine of another provider reaches its cluster's endpoint directly (a cloud load balancer)
    // and may run no node at all (etcd, control plane).
    if (r.state === 'started' && r.boundTo && r.bootstrap) {
      return { action: 'run', bootstrap: r.bootstrap, ...(r.bootstrap.node ? { apiServer: { url: r.bootstrap.node.apiServerURL } } : {}) };
    }
    if (r.state === 'started' && r.bootstrap?.node) {
      const apiServer = this.opts.reachableEndpoint(r.bootstrap.node.apiServerURL);
      if (!apiServer) return { action: 'wait', message: `the API endpoint ${r.bootstrap.node.apiServerURL} of cluster ${r.cluster} is not reachable from other hosts (Marina listens on loopback only)` };
      return { action: 'run', bootstrap: r.bootstrap, apiServer };
    }
    return { action: 'wait', message: waiting };
  }

  /** The agent stopped and removed everything Marina started on the server. */
  confirmLeft(record: ImportRecord): void {
    const r = this.read(record) ?? record;
    r.state = 'left';
    r.leftAt = new Date().toISOString();
    delete r.bootstrap;
    this.write(r);
  }

  // ---------------------------------------------------------------- the contract

  async prepareMachine(m: MachineRef, opts?: ProviderCallOptions): Promise<PreparedMachine> {
    opts?.signal?.throwIfAborted();
    const r = this.current(m);
    if (!r) throw new ProviderError('NotJoined', `machine ${m.name}: no server joined as this machine (imported machines are created by \`marina agent join\`)`);
    return { address: r.address, providerID: providerId(m) };
  }

  async startMachine(m: MachineRef, bootstrap: MachineBootstrap, opts?: ProviderCallOptions): Promise<MachineDescription> {
    opts?.signal?.throwIfAborted();
    const r = this.current(m);
    if (!r) throw new ProviderError('NotJoined', `machine ${m.name}: no server joined as this machine`);
    if (!bootstrap.node) throw new ProviderError('InvalidBootstrap', 'an imported server runs a real kubelet: the bootstrap has no node section', true);
    if (r.state === 'joined') {
      r.state = 'started';
      r.bootstrap = bootstrap;
      this.write(r);
    }
    return this.describe(r);
  }

  async describeMachine(m: MachineRef, opts?: ProviderCallOptions): Promise<MachineDescription> {
    opts?.signal?.throwIfAborted();
    const r = this.current(m);
    return r ? this.describe(r) : { state: 'Missing' };
  }

  /**
   * Asks the server's agent to stop and remove what Marina started there, and waits (retryable
   * error) until it confirms, or until it was not heard of for the leave timeout: a server that is
   * gone cannot be cleaned up, and is never deleted by Marina anyway.
   */
  async deleteMachine(m: MachineRef, opts?: ProviderCallOptions): Promise<void> {
    opts?.signal?.throwIfAborted();
    const r = this.read(m);
    if (!r || r.uid !== m.uid || r.state === 'left') return;
    const now = Date.now();
    if (r.state !== 'leaving') {
      r.state = 'leaving';
      r.leaveRequestedAt = new Date(now).toISOString();
      this.write(r);
    }
    const since = Math.max(Date.parse(r.leaveRequestedAt ?? r.joinedAt), Date.parse(r.lastSeenAt ?? r.joinedAt));
    if (now - since > (this.opts.leaveTimeoutMs ?? 60_000)) {
      // The agent will be told to leave if it ever comes back (tombstone).
      r.state = 'left';
      r.leftAt = new Date(now).toISOString();
      delete r.bootstrap;
      this.write(r);
      return;
    }
    throw new ProviderError('LeavePending', `waiting for the agent on ${r.hostname} to stop and remove what Marina started there`);
  }

  /** Every server that joined and has not left (tombstones and other providers' machines are not listed). */
  async listMachines(): Promise<ProviderMachine[]> {
    return this.records()
      .filter((r) => r.state !== 'left' && !r.boundTo)
      .map((r) => ({ ref: { project: r.project, cluster: r.cluster, name: r.name, uid: r.uid }, providerID: providerId(r), state: this.describe(r).state }));
  }

  async ensureEndpoint(c: ClusterRef): Promise<EndpointDescription> {
    throw new ProviderError('NotSupported', `cluster ${c.name}: the import provider has no API endpoints; imported servers join clusters of another provider`, true);
  }

  async deleteEndpoint(): Promise<void> {
    /* nothing was ever created */
  }

  /** Imported servers reach the API where Marina publishes the endpoint (an IP address only). */
  async nodeAPIEndpoint(c: ClusterRef): Promise<string | undefined> {
    for (const r of this.records()) {
      if (r.boundTo || r.project !== c.project || r.cluster !== c.name || r.state !== 'started' || !r.bootstrap?.node) continue;
      const reachable = this.opts.reachableEndpoint(r.bootstrap.node.apiServerURL);
      if (!reachable) continue;
      const u = new URL(reachable.url);
      if (isIP(u.hostname) === 4) return `${u.hostname}:${u.port || 443}`;
    }
    return undefined;
  }

  async close(): Promise<void> {
    this.pruneTombstones();
  }

  // ---------------------------------------------------------------- day-2 actions

  readonly actions: MachineActions = {
    holdServices: async (m) => this.unsupported(m, 'holding services'),
    releaseServices: async (m) => this.unsupported(m, 'releasing services'),
    restoreEtcd: async (m) => this.unsupported(m, 'an etcd restore'),
    upgradeNode: async (m, version, opts) => this.upgradeNode(m, version, opts),
  };

  private unsupported(m: MachineRef, what: string): never {
    throw new ProviderError('ActionsUnsupported', `machine ${m.name} is an imported server: ${what} is not offered (it runs only a worker node)`, true);
  }

  /** The agent learns at its next sync that its node runs `version` from now on (see the top of this file). */
  private async upgradeNode(m: MachineRef, version: string, opts?: ProviderCallOptions): Promise<NodeUpgradeState> {
    opts?.signal?.throwIfAborted();
    const r = this.current(m);
    if (!r || r.boundTo) throw new ProviderError('NotJoined', `machine ${m.name}: no server joined as this machine`);
    if (r.state !== 'started' || !r.bootstrap?.node) throw new ProviderError('NotStarted', `machine ${m.name}: the server on ${r.hostname} runs no node yet`);
    if (r.bootstrap.kubernetesVersion !== version) {
      r.bootstrap = { ...r.bootstrap, kubernetesVersion: version };
      r.upgradeRequestedAt = new Date().toISOString();
      this.write(r);
    }
    return { requested: version, ...(r.lastSeenAt ? { agentSeenAt: r.lastSeenAt } : {}) };
  }

  // ---------------------------------------------------------------- records

  private describe(r: ImportRecord): MachineDescription {
    const base = { address: r.address, providerID: providerId(r), agentUrl: `http://${hostPort(r.address, IMPORT_AGENT_PORT)}` };
    const providerStatus = { hostname: r.hostname, joinedAt: r.joinedAt, ...(r.lastSeenAt ? { lastSeenAt: r.lastSeenAt } : {}) };
    const running = r.state === 'started' && r.health?.ok === true;
    return { ...base, state: running ? 'Running' : 'Provisioning', providerStatus };
  }

  /** The live record of this Machine (not a tombstone, not another object's). */
  private current(m: MachineRef): ImportRecord | undefined {
    const r = this.read(m);
    return r && r.uid === m.uid && r.state !== 'left' ? r : undefined;
  }

  private path(m: { project: string; cluster: string; name: string }): string {
    return join(this.opts.root, 'machines', m.project, m.cluster, `${m.name}.json`);
  }

  private read(m: { project: string; cluster: string; name: string }): ImportRecord | undefined {
    try {
      return JSON.parse(readFileSync(this.path(m), 'utf8')) as ImportRecord;
    } catch {
      return undefined;
    }
  }

  private write(r: ImportRecord): void {
    const path = this.path(r);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // 0600: the bootstrap holds the kubelet bootstrap token and kube-proxy's key.
    writeFileSync(`${path}.tmp`, JSON.stringify(r, null, 2), { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }

  private records(): ImportRecord[] {
    const root = join(this.opts.root, 'machines');
    const out: ImportRecord[] = [];
    for (const project of existsSync(root) ? readdirSync(root) : []) {
      for (const cluster of readdirSync(join(root, project))) {
        for (const file of readdirSync(join(root, project, cluster))) {
          if (!file.endsWith('.json')) continue;
          try {
            out.push(JSON.parse(readFileSync(join(root, project, cluster, file), 'utf8')) as ImportRecord);
          } catch {
            /* half-written or foreign: skip */
          }
        }
      }
    }
    return out;
  }

  private pruneTombstones(): void {
    const keep = this.opts.tombstoneMs ?? 7 * 24 * 3600 * 1000;
    for (const r of this.records()) {
      if (r.state === 'left' && Date.now() - Date.parse(r.leftAt ?? r.joinedAt) > keep) rmSync(this.path(r), { force: true });
    }
  }
}

function providerId(m: { project: string; cluster: string; name: string }): string {
  return `import:///${m.project}/${m.cluster}/${m.name}`;
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
